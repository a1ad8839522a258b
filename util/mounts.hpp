// mounts.hpp: the mount points this process sees, read from
// /proc/self/mountinfo (its one parser in gang). Used to find what is still
// mounted under a directory before it is removed. Thread-safe (no state).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace gang {

// The mount points of this process's mount namespace, in mountinfo's order,
// their octal escapes (\040 for a space...) undone. Empty when mountinfo
// cannot be read.
[[nodiscard]] std::vector<std::string> mount_points();

// The mount point field (the fifth) of one mountinfo line, unescaped; ""
// when the line has fewer fields.
[[nodiscard]] std::string mount_point_of(std::string_view mountinfo_line);

// The mount points that are `dir` or below it, deepest first (the order to
// unmount them in). `dir` should be canonical (no trailing slash).
[[nodiscard]] std::vector<std::string> mounts_under(const std::string& dir);

}  // namespace gang
