#include "definitions/deploy_value.hpp"

#include <array>
#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <regex>
#include <string_view>

namespace gang {

namespace {

bool one_of(std::string_view s, std::initializer_list<std::string_view> words) {
  for (auto w : words)
    if (s == w) return true;
  return false;
}

// Python's repr of a str: single quotes unless the text holds a single
// quote and no double quote.
std::string python_repr_str(std::string_view s) {
  char quote = (s.find('\'') != std::string_view::npos && s.find('"') == std::string_view::npos)
                   ? '"'
                   : '\'';
  std::string out(1, quote);
  for (unsigned char ch : s) {
    if (ch == static_cast<unsigned char>(quote) || ch == '\\') {
      out += '\\';
      out += static_cast<char>(ch);
    } else if (ch == '\n') {
      out += "\\n";
    } else if (ch == '\t') {
      out += "\\t";
    } else if (ch == '\r') {
      out += "\\r";
    } else if (ch < 0x20 || ch == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", ch);
      out += buf;
    } else {
      out += static_cast<char>(ch);
    }
  }
  out += quote;
  return out;
}

std::string strip_underscores(std::string_view s) {
  std::string out;
  for (char ch : s)
    if (ch != '_') out += ch;
  return out;
}

// PyYAML's YAML 1.1 int: decimal, 0b binary, 0x hex, 0 octal (with '_'
// separators); sexagesimal ints are left as text.
std::optional<std::string> yaml_int(std::string_view text) {
  static const std::regex k_int(
      "[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+");
  std::string s(text);
  if (!std::regex_match(s, k_int)) return std::nullopt;
  std::string digits = strip_underscores(s);
  bool negative = false;
  if (digits[0] == '-' || digits[0] == '+') {
    negative = digits[0] == '-';
    digits.erase(0, 1);
  }
  int base = 10;
  if (digits.starts_with("0b")) {
    base = 2;
    digits.erase(0, 2);
  } else if (digits.starts_with("0x")) {
    base = 16;
    digits.erase(0, 2);
  } else if (digits.size() > 1 && digits[0] == '0') {
    base = 8;
    digits.erase(0, 1);
  }
  unsigned long long value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value, base);
  if (ec != std::errc() || end != digits.data() + digits.size()) return s;  // huge: as written
  if (value == 0) return "0";
  return (negative ? "-" : "") + std::to_string(value);
}

// PyYAML's YAML 1.1 float, rendered as Python's repr.
std::optional<std::string> yaml_float(std::string_view text) {
  static const std::regex k_float(
      "[-+]?(?:[0-9][0-9_]*)\\.[0-9_]*(?:[eE][-+][0-9]+)?|\\.[0-9_]+(?:[eE][-+][0-9]+)?|"
      "[-+]?\\.(?:inf|Inf|INF)|\\.(?:nan|NaN|NAN)");
  std::string s(text);
  if (!std::regex_match(s, k_float)) return std::nullopt;
  std::string lower;
  for (char ch : s) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (lower.ends_with(".nan")) return "nan";
  if (lower.ends_with(".inf")) return lower[0] == '-' ? "-inf" : "inf";
  double value = std::strtod(strip_underscores(s).c_str(), nullptr);
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  if (ec != std::errc()) return s;
  std::string out(buf, end);
  // Python writes 1e+16 as '1e+16' and 5 as '5.0'; to_chars writes "5".
  if (out.find_first_of(".en") == std::string::npos) out += ".0";
  return out;
}

std::string python_repr(const YamlNode& node) {
  switch (node.type) {
    case YamlNode::Type::null:
      return "None";
    case YamlNode::Type::scalar: {
      if (!node.plain) return python_repr_str(node.scalar);
      const std::string& s = node.scalar;
      if (one_of(s, {"yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"})) return "True";
      if (one_of(s, {"no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"}))
        return "False";
      if (one_of(s, {"null", "Null", "NULL", "~", ""})) return "None";
      if (auto i = yaml_int(s)) return *i;
      if (auto f = yaml_float(s)) return *f;
      return python_repr_str(s);
    }
    case YamlNode::Type::sequence: {
      std::string out = "[";
      for (std::size_t i = 0; i < node.items.size(); ++i) {
        if (i != 0) out += ", ";
        out += python_repr(node.items[i]);
      }
      return out + "]";
    }
    case YamlNode::Type::map: {
      std::string out = "{";
      for (std::size_t i = 0; i < node.entries.size(); ++i) {
        if (i != 0) out += ", ";
        out += python_repr_str(node.entries[i].key) + ": " + python_repr(node.entries[i].value);
      }
      return out + "}";
    }
  }
  return {};
}

}  // namespace

std::string render_deploy_value(const YamlNode& value) {
  if (value.is_null()) return {};
  if (value.is_scalar()) return value.scalar;
  return python_repr(value);
}

}  // namespace gang
