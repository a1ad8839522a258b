#include "util/mounts.hpp"

#include <algorithm>

#include "util/fs.hpp"

namespace gang {

namespace {

// Undoes the octal escapes (\040 etc.) of mountinfo's paths.
std::string unescape(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 3 < text.size()) {
      int value = 0;
      bool octal = true;
      for (std::size_t k = 1; k <= 3; ++k) {
        char c = text[i + k];
        if (c < '0' || c > '7') octal = false;
        value = value * 8 + (c - '0');
      }
      if (octal) {
        out += static_cast<char>(value);
        i += 3;
        continue;
      }
    }
    out += text[i];
  }
  return out;
}

}  // namespace

std::string mount_point_of(std::string_view line) {
  // "id parent major:minor root mount-point options ...": the fifth field.
  std::size_t start = 0;
  for (int field = 0; field < 4; ++field) {
    start = line.find(' ', start);
    if (start == std::string_view::npos) return {};
    ++start;
  }
  std::size_t end = line.find(' ', start);
  return unescape(line.substr(start, end == std::string_view::npos ? end : end - start));
}

std::vector<std::string> mount_points() {
  std::vector<std::string> out;
  auto text = read_file("/proc/self/mountinfo");
  if (!text) return out;
  std::string_view rest = *text;
  while (!rest.empty()) {
    std::size_t eol = rest.find('\n');
    std::string point = mount_point_of(rest.substr(0, eol));
    if (!point.empty()) out.push_back(std::move(point));
    if (eol == std::string_view::npos) break;
    rest.remove_prefix(eol + 1);
  }
  return out;
}

std::vector<std::string> mounts_under(const std::string& dir) {
  std::vector<std::string> out;
  for (auto& point : mount_points())
    if (point == dir || point.starts_with(dir + "/")) out.push_back(std::move(point));
  std::stable_sort(out.begin(), out.end(),
                   [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return out;
}

}  // namespace gang
