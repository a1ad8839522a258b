#include <cstdio>

#include "gang/commands.hpp"

namespace gang {

int cmd_shell(const Args&) {
  std::fputs("gang: error: 'shell' is not implemented yet\n", stderr);
  return 1;
}

}  // namespace gang
