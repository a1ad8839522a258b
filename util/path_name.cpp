#include "util/path_name.hpp"

namespace gang {

namespace {

constexpr std::size_t k_max_name = 200;

bool name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '.' || c == '+' || c == '@';
}

std::string shown(std::string_view text) {
  std::string out;
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f || c == '"' || c == '\\') {
      static const char* k_hex = "0123456789abcdef";
      out += "\\x";
      out += k_hex[u >> 4];
      out += k_hex[u & 15];
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

Result<void> check_name(std::string_view name) {
  if (name.empty()) return make_error("empty name");
  if (name == "." || name == "..")
    return make_error("invalid name \"" + std::string(name) + "\" (a name may not be . or ..)");
  if (name.size() > k_max_name)
    return make_error("name longer than " + std::to_string(k_max_name) + " bytes");
  for (char c : name)
    if (!name_char(c))
      return make_error("invalid name \"" + shown(name) +
                        "\" (a name may hold only letters, digits and - _ . + @)");
  return {};
}

Result<std::string> join_name(const std::string& dir, std::string_view name) {
  if (auto ok = check_name(name); !ok) return std::unexpected(ok.error());
  return dir + "/" + std::string(name);
}

std::string name_to_leaf(std::string_view id) {
  static const char* k_hex = "0123456789ABCDEF";
  std::string out;
  for (std::size_t i = 0; i < id.size(); ++i) {
    char c = id[i];
    auto u = static_cast<unsigned char>(c);
    bool dot_name = c == '.' && (id == "." || id == "..");
    if (c == '/') {
      out += '_';
    } else if (name_char(c) && !dot_name) {
      out += c;
    } else {
      out += '%';
      out += k_hex[u >> 4];
      out += k_hex[u & 15];
    }
  }
  if (out.empty()) out = "%";
  return out;
}

}  // namespace gang
