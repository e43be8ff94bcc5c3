#pragma once

namespace sandbox::cli {

// The `sandbox` command. Exit status: 0 success, 1 the compile or check failed, 2 bad usage.
int main(int argc, char** argv);

} // namespace sandbox::cli
