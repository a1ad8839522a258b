#include <cstdio>

#include "gang/commands.hpp"

namespace gang {

int cmd_show(const Args&) {
  std::fputs("gang: error: 'show' is not implemented yet\n", stderr);
  return 1;
}

}  // namespace gang
