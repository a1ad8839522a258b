#include <cstdio>

#include "gang/commands.hpp"

namespace gang {

int cmd_worker(const Args&) {
  std::fputs("gang: error: 'worker' is not implemented yet\n", stderr);
  return 1;
}

}  // namespace gang
