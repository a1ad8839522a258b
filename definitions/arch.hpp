// arch.hpp: architecture names as Baserock spells them (x86_64, x86_32,
// armv7lhf, armv8l64, ppc64, ...), mapped from the kernel's machine names.
// Concurrency: pure functions (host_arch calls uname).
#pragma once

#include <string>
#include <string_view>

namespace gang {

// Baserock's name for a uname machine string ("aarch64" -> "armv8l64",
// "i686" -> "x86_32"); unknown machines are returned unchanged.
[[nodiscard]] std::string baserock_arch(std::string_view machine);

// The host's architecture in Baserock's names.
[[nodiscard]] std::string host_arch();

}  // namespace gang
