#include "cli/cli.h"

#include <openssl/crypto.h>

int main(int argc, char** argv)
{
  // The engine hashes with OpenSSL's built-in provider and needs nothing from
  // the host's openssl.cnf; reading it costs every command a few ms.
  OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, nullptr);
  return sandbox::cli::main(argc, argv);
}
