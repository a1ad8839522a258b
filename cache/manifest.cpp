#include "cache/manifest.hpp"

#include <charconv>
#include <cstdio>
#include <unordered_map>

namespace gang {

namespace {

constexpr std::string_view k_header = "gang-manifest 1";
constexpr std::string_view k_header_v2 = "gang-manifest 2";

void append_escaped(std::string& out, std::string_view s) {
  for (unsigned char c : s) {
    if (c <= 0x20 || c == '%' || c == 0x7f) {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", c);
      out.append(buf);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

Result<std::string> unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return make_error("truncated escape in manifest path");
    int hi = hex_value(s[i + 1]);
    int lo = hex_value(s[i + 2]);
    if (hi < 0 || lo < 0) return make_error("bad escape in manifest path");
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

std::vector<std::string_view> split(std::string_view line) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (start <= line.size()) {
    auto space = line.find(' ', start);
    if (space == std::string_view::npos) space = line.size();
    out.push_back(line.substr(start, space - start));
    start = space + 1;
  }
  return out;
}

template <typename T>
bool parse_number(std::string_view s, T& value, int base = 10) {
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value, base);
  return ec == std::errc() && end == s.data() + s.size() && !s.empty();
}

bool safe_path(std::string_view p) {
  if (p.empty() || p.front() == '/') return false;
  std::size_t start = 0;
  while (start <= p.size()) {
    auto slash = p.find('/', start);
    if (slash == std::string_view::npos) slash = p.size();
    auto part = p.substr(start, slash - start);
    if (part.empty() || part == "." || part == "..") return false;
    start = slash + 1;
  }
  return true;
}

}  // namespace

std::uint64_t Manifest::total_size() const {
  std::uint64_t total = 0;
  for (const auto& e : entries)
    if (e.type == ManifestEntry::Type::file) total += e.size;
  return total;
}

std::uint64_t Manifest::file_count() const {
  std::uint64_t n = 0;
  for (const auto& e : entries)
    if (e.type == ManifestEntry::Type::file || e.type == ManifestEntry::Type::hardlink) ++n;
  return n;
}

std::string Manifest::encode() const {
  std::string out(key.empty() ? k_header : k_header_v2);
  out.push_back('\n');
  out.reserve(entries.size() * 120 + record.size() + 128);
  if (!key.empty()) {
    out.append("k ");
    append_escaped(out, key);
    out.append("\nm ");
    append_escaped(out, record);
    out.push_back('\n');
  }
  char mode[16];
  for (const auto& e : entries) {
    switch (e.type) {
      case ManifestEntry::Type::directory:
        std::snprintf(mode, sizeof mode, "d %04o ", e.mode);
        out.append(mode);
        break;
      case ManifestEntry::Type::file:
        std::snprintf(mode, sizeof mode, "f %04o ", e.mode);
        out.append(mode).append(e.digest).append(" ").append(std::to_string(e.size)).append(" ");
        break;
      case ManifestEntry::Type::symlink:
        out.append("l ");
        break;
      case ManifestEntry::Type::hardlink:
        out.append("h ");
        break;
    }
    append_escaped(out, e.path);
    if (e.type == ManifestEntry::Type::symlink || e.type == ManifestEntry::Type::hardlink) {
      out.push_back(' ');
      append_escaped(out, e.target);
    }
    out.push_back('\n');
  }
  return out;
}

Result<Manifest> Manifest::decode(std::string_view text) {
  bool v2 = text.starts_with(k_header_v2);
  if ((!v2 && !text.starts_with(k_header)) || text.size() <= k_header.size() ||
      text[k_header.size()] != '\n')
    return make_error("not a gang manifest (bad header)");
  Manifest m;
  std::size_t start = k_header.size() + 1;
  int line_no = 1;
  while (start < text.size()) {
    ++line_no;
    auto end = text.find('\n', start);
    if (end == std::string_view::npos) return make_error("truncated manifest");
    auto fields = split(text.substr(start, end - start));
    start = end + 1;
    auto bad = [&](const char* why) {
      return make_error("corrupt manifest line " + std::to_string(line_no) + ": " + why);
    };
    if (fields.empty() || fields[0].size() != 1) return bad("unknown entry type");
    if (v2 && line_no <= 3) {  // the artifact's own key and index record
      char want = line_no == 2 ? 'k' : 'm';
      if (fields[0][0] != want || fields.size() != 2) return bad("bad artifact record");
      auto value = unescape(fields[1]);
      if (!value) return bad("bad artifact record");
      (line_no == 2 ? m.key : m.record) = std::move(*value);
      continue;
    }
    ManifestEntry e;
    std::size_t path_field = 0;
    switch (fields[0][0]) {
      case 'd':
        if (fields.size() != 3 || !parse_number(fields[1], e.mode, 8)) return bad("bad directory");
        e.type = ManifestEntry::Type::directory;
        path_field = 2;
        break;
      case 'f':
        if (fields.size() != 5 || !parse_number(fields[1], e.mode, 8) || fields[2].size() != 64 ||
            !parse_number(fields[3], e.size))
          return bad("bad file");
        e.type = ManifestEntry::Type::file;
        e.digest = std::string(fields[2]);
        path_field = 4;
        break;
      case 'l':
      case 'h': {
        if (fields.size() != 3) return bad("bad link");
        e.type = fields[0][0] == 'l' ? ManifestEntry::Type::symlink : ManifestEntry::Type::hardlink;
        auto target = unescape(fields[2]);
        if (!target) return bad("bad link target");
        e.target = std::move(*target);
        path_field = 1;
        break;
      }
      default:
        return bad("unknown entry type");
    }
    auto path = unescape(fields[path_field]);
    if (!path || !safe_path(*path)) return bad("unsafe path");
    if (e.type == ManifestEntry::Type::hardlink && !safe_path(e.target)) return bad("unsafe hard link");
    e.path = std::move(*path);
    if (e.mode > 07777) return bad("bad mode");
    m.entries.push_back(std::move(e));
  }
  return m;
}

Manifest select_paths(const Manifest& manifest, const std::unordered_set<std::string>& paths) {
  std::unordered_set<std::string> parents;
  for (const auto& e : manifest.entries) {
    if (!paths.contains(e.path)) continue;
    for (auto slash = e.path.rfind('/'); slash != std::string::npos && slash > 0;
         slash = e.path.rfind('/', slash - 1)) {
      if (!parents.insert(e.path.substr(0, slash)).second) break;
    }
  }
  Manifest out;
  std::unordered_map<std::string, const ManifestEntry*> files;  // every file, by path
  std::unordered_map<std::string, std::string> first_kept;      // file path -> kept link
  for (const auto& e : manifest.entries) {
    if (e.type == ManifestEntry::Type::file) files.emplace(e.path, &e);
    bool wanted = paths.contains(e.path) ||
                  (e.type == ManifestEntry::Type::directory && parents.contains(e.path));
    if (!wanted) continue;
    if (e.type == ManifestEntry::Type::hardlink) {
      if (auto kept = first_kept.find(e.target); kept != first_kept.end()) {
        ManifestEntry link = e;
        link.target = kept->second;
        out.entries.push_back(std::move(link));
        continue;
      }
      auto original = files.find(e.target);
      if (original == files.end()) continue;  // a link to nothing: not in a valid manifest
      ManifestEntry file = *original->second;
      file.path = e.path;
      first_kept.emplace(e.target, e.path);
      out.entries.push_back(std::move(file));
      continue;
    }
    if (e.type == ManifestEntry::Type::file) first_kept.emplace(e.path, e.path);
    out.entries.push_back(e);
  }
  return out;
}

}  // namespace gang
