// version.hpp: what `gang --version` prints. The text is generated at build
// time by cmake/version.cmake: the project version and the commit it was
// built from ("gang 0.9.0 (commit 1a2b3c4d5e6f)", "-dirty" when the tree had
// uncommitted changes, "unknown" outside git and git archives).
#pragma once

#include <string_view>

namespace gang {

[[nodiscard]] std::string_view version_string();

}  // namespace gang
