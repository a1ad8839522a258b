#include "definitions/arch.hpp"

#include <sys/utsname.h>

namespace gang {

std::string baserock_arch(std::string_view machine) {
  if (machine == "i386" || machine == "i486" || machine == "i586" || machine == "i686")
    return "x86_32";
  if (machine == "aarch64") return "armv8l64";
  if (machine == "aarch64_be") return "armv8b64";
  if (machine == "armv7l" || machine == "armv7hl") return "armv7lhf";
  if (machine == "armv7b") return "armv7b";
  if (machine == "ppc64le") return "ppc64le";
  if (machine == "ppc64") return "ppc64";
  return std::string(machine);
}

std::string host_arch() {
  struct utsname u {};
  if (::uname(&u) != 0) return "x86_64";
  return baserock_arch(u.machine);
}

}  // namespace gang
