#include "cache/records.hpp"

#include <charconv>
#include <cstdio>
#include <vector>

namespace gang {

namespace {

void add(std::string& out, std::string_view name, std::string_view value) {
  out.append(name);
  out.push_back('=');
  for (char c : value) {
    if (c == '\\') {
      out.append("\\\\");
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
  out.push_back('\n');
}

void add(std::string& out, std::string_view name, std::int64_t value) {
  add(out, name, std::to_string(value));
}

std::string unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size()) {
      ++i;
      out.push_back(s[i] == 'n' ? '\n' : s[i]);
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

// Splits a row into name/value pairs, in order.
Result<std::vector<std::pair<std::string, std::string>>> fields(std::string_view row) {
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t start = 0;
  while (start < row.size()) {
    std::size_t end = row.find('\n', start);
    if (end == std::string_view::npos) end = row.size();
    std::string_view line = row.substr(start, end - start);
    auto eq = line.find('=');
    if (eq == std::string_view::npos) return make_error("corrupt index row: line without '='");
    out.emplace_back(std::string(line.substr(0, eq)), unescape(line.substr(eq + 1)));
    start = end + 1;
  }
  return out;
}

template <typename T>
bool to_number(const std::string& text, T& value) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  return ec == std::errc() && end == text.data() + text.size();
}

void add_holder(std::string& out, std::string_view prefix, const Holder& h) {
  std::string p(prefix);
  add(out, p + "host", h.host);
  add(out, p + "pid", h.pid);
  add(out, p + "start_time", static_cast<std::int64_t>(h.start_time));
  add(out, p + "instance", h.instance);
  add(out, p + "gang_id", h.gang_id);
  if (!h.boot_id.empty()) add(out, p + "boot_id", h.boot_id);
}

// Assigns a holder field if name is one; returns false if it is not.
bool set_holder(Holder& h, std::string_view prefix, const std::string& name,
                const std::string& value) {
  if (!name.starts_with(prefix)) return false;
  std::string_view field = std::string_view(name).substr(prefix.size());
  if (field == "host") return h.host = value, true;
  if (field == "pid") return to_number(value, h.pid), true;
  if (field == "start_time") return to_number(value, h.start_time), true;
  if (field == "instance") return to_number(value, h.instance), true;
  if (field == "gang_id") return h.gang_id = value, true;
  if (field == "boot_id") return h.boot_id = value, true;
  return false;
}

}  // namespace

std::string Holder::describe() const {
  std::string out = "instance " + std::to_string(instance) + " (pid " + std::to_string(pid) +
                    " on " + host;
  if (!gang_id.empty()) out += ", gang " + gang_id;
  return out + ")";
}

std::string encode_artifact(const ArtifactInfo& info) {
  std::string out;
  add(out, "manifest", info.manifest_digest);
  add(out, "size", static_cast<std::int64_t>(info.size));
  add(out, "files", static_cast<std::int64_t>(info.file_count));
  add(out, "created_ms", info.created_ms);
  add(out, "duration_ms", static_cast<std::int64_t>(info.meta.build_duration.count()));
  add_holder(out, "built_by.", info.meta.built_by);
  for (const auto& [name, value] : info.meta.extra) add(out, "x." + name, value);
  return out;
}

Result<ArtifactInfo> decode_artifact(std::string_view key, std::string_view row) {
  auto parsed = fields(row);
  if (!parsed) return std::unexpected(parsed.error());
  ArtifactInfo info;
  info.key = std::string(key);
  for (const auto& [name, value] : *parsed) {
    std::int64_t n = 0;
    if (name == "manifest") {
      info.manifest_digest = value;
    } else if (name == "size") {
      to_number(value, info.size);
    } else if (name == "files") {
      to_number(value, info.file_count);
    } else if (name == "created_ms") {
      to_number(value, info.created_ms);
    } else if (name == "duration_ms") {
      if (to_number(value, n)) info.meta.build_duration = std::chrono::milliseconds(n);
    } else if (name.starts_with("x.")) {
      info.meta.extra[name.substr(2)] = value;
    } else {
      set_holder(info.meta.built_by, "built_by.", name, value);
    }
  }
  if (info.manifest_digest.size() != 64)
    return make_error("corrupt index row for " + std::string(key) + ": no manifest digest");
  info.last_used_ms = info.created_ms;
  return info;
}

std::string encode_failure(const FailureRecord& record) {
  std::string out;
  add(out, "log", record.log_path);
  add(out, "reason", record.reason);
  add(out, "time_ms", record.time_ms);
  add_holder(out, "by.", record.failed_by);
  return out;
}

Result<FailureRecord> decode_failure(std::string_view row) {
  auto parsed = fields(row);
  if (!parsed) return std::unexpected(parsed.error());
  FailureRecord record;
  for (const auto& [name, value] : *parsed) {
    if (name == "log") {
      record.log_path = value;
    } else if (name == "reason") {
      record.reason = value;
    } else if (name == "time_ms") {
      to_number(value, record.time_ms);
    } else {
      set_holder(record.failed_by, "by.", name, value);
    }
  }
  return record;
}

std::string encode_claim(const ClaimRecord& record) {
  std::string out;
  add_holder(out, "", record.holder);
  add(out, "lease_until_ms", record.lease_until_ms);
  return out;
}

Result<ClaimRecord> decode_claim(std::string_view row) {
  auto parsed = fields(row);
  if (!parsed) return std::unexpected(parsed.error());
  ClaimRecord record;
  for (const auto& [name, value] : *parsed) {
    if (name == "lease_until_ms") {
      to_number(value, record.lease_until_ms);
    } else {
      set_holder(record.holder, "", name, value);
    }
  }
  return record;
}

Result<std::uint64_t> parse_size(std::string_view text) {
  std::uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data())
    return make_error("invalid size \"" + std::string(text) + "\" (expected e.g. 10G, 500M)");
  std::string_view suffix(end, static_cast<std::size_t>(text.data() + text.size() - end));
  if (suffix.size() == 2 && (suffix[1] == 'B' || suffix[1] == 'b')) suffix.remove_suffix(1);
  int shift = 0;
  if (suffix.empty() || suffix == "B" || suffix == "b") {
    shift = 0;
  } else if (suffix == "K" || suffix == "k") {
    shift = 10;
  } else if (suffix == "M" || suffix == "m") {
    shift = 20;
  } else if (suffix == "G" || suffix == "g") {
    shift = 30;
  } else if (suffix == "T" || suffix == "t") {
    shift = 40;
  } else {
    return make_error("invalid size \"" + std::string(text) + "\" (expected e.g. 10G, 500M)");
  }
  if (shift > 0 && value > (~std::uint64_t{0} >> shift))
    return make_error("size \"" + std::string(text) + "\" is too large");
  return value << shift;
}

std::string format_size(std::uint64_t bytes) {
  static const char* k_units = "BKMGT";
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  char buf[32];
  if (unit == 0 || value >= 100) {
    std::snprintf(buf, sizeof buf, "%.0f%c", value, k_units[unit]);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f%c", value, k_units[unit]);
  }
  return buf;
}

bool valid_cache_key(std::string_view key) {
  return !key.empty() && key.find_first_of(std::string_view("/\n\0", 3)) == std::string_view::npos;
}

}  // namespace gang
