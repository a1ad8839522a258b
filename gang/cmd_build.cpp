#include <cstdio>

#include "gang/commands.hpp"

namespace gang {

int cmd_build(const Args&) {
  std::fputs("gang: error: 'build' is not implemented yet\n", stderr);
  return 1;
}

}  // namespace gang
