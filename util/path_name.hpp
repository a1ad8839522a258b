// path_name.hpp: names that become file names. A name from a definition (a
// component, an artifact) is data; it reaches the file system only through
// these helpers, which accept a single safe path component and nothing else:
// never empty, ".", "..", a '/', NUL or a control character. Pure functions,
// thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "util/error.hpp"

namespace gang {

// Succeeds if `name` is a safe file name: 1 to 200 bytes of letters, digits
// and - _ . + @, and not "." or "..". The error says what is wrong with it
// (the caller adds where the name came from).
[[nodiscard]] Result<void> check_name(std::string_view name);

// `dir + "/" + name` if check_name(name) succeeds, else its error.
[[nodiscard]] Result<std::string> join_name(const std::string& dir, std::string_view name);

// A single safe path component for any string: a valid name maps
// to itself; a component id "STRATUM/NAME" to "STRATUM_NAME" (as kept
// sandboxes were always named); any other byte outside the name set, and a
// leading '.' of "." or "..", as %XX. Total, so callers need no error path.
[[nodiscard]] std::string name_to_leaf(std::string_view id);

}  // namespace gang
