#include "cli/cli.h"

namespace sandbox::cli {

int main(int, char**)
{
  return 0;
}

} // namespace sandbox::cli
