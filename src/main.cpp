#include "cli/cli.h"

int main(int argc, char** argv)
{
  return sandbox::cli::main(argc, argv);
}
