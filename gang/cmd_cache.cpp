#include <cstdio>

#include "gang/commands.hpp"

namespace gang {

int cmd_cache(const Args&) {
  std::fputs("gang: error: 'cache' is not implemented yet\n", stderr);
  return 1;
}

}  // namespace gang
