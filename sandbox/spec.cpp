#include "sandbox/spec.hpp"

#include <sys/utsname.h>

#include <algorithm>
#include <charconv>
#include <sstream>

#include "util/fs.hpp"
#include "util/path_name.hpp"

namespace gang {

namespace {

constexpr const char* k_spec_header = "gang-sandbox-spec 1";
constexpr const char* k_default_path = "/usr/bin:/bin:/usr/sbin:/sbin";

// Escapes backslash and newline so that every value fits on one line.
std::string escape(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string unescape(const std::string& value) {
  std::string out;
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '\\' && i + 1 < value.size()) {
      ++i;
      out += value[i] == 'n' ? '\n' : value[i];
    } else {
      out += value[i];
    }
  }
  return out;
}

// A path inside the sandbox directory is stored relative to it.
std::string relative_to(const std::string& dir, const std::string& path) {
  if (!dir.empty() && path.size() > dir.size() + 1 && path.starts_with(dir) &&
      path[dir.size()] == '/')
    return path.substr(dir.size() + 1);
  return path;
}

std::string resolve_from(const std::string& dir, const std::string& path) {
  if (path.empty() || path.front() == '/') return path;
  return dir + "/" + path;
}

std::string host_arch() {
  struct utsname names {};
  if (::uname(&names) != 0) return "x86_64";
  std::string machine = names.machine;
  if (machine == "i686" || machine == "i586" || machine == "i386") return "x86_32";
  if (machine == "aarch64") return "armv8l64";
  return machine;
}

}  // namespace

std::string kept_sandbox_dir(const std::string& cache_dir, const std::string& component) {
  return cache_dir + "/failed/" + name_to_leaf(component);
}

std::string spec_path(const std::string& sandbox_dir) { return sandbox_dir + "/sandbox.spec"; }

const char* sandbox_mode_name(SandboxMode mode) {
  switch (mode) {
    case SandboxMode::staging:
      return "staging";
    case SandboxMode::bootstrap:
      return "bootstrap";
    case SandboxMode::test:
      return "test";
  }
  return "staging";
}

Result<SandboxMode> parse_sandbox_mode(const std::string& text) {
  if (text == "staging") return SandboxMode::staging;
  if (text == "bootstrap") return SandboxMode::bootstrap;
  if (text == "test") return SandboxMode::test;
  return make_error("unknown build-mode \"" + text + "\" (expected staging, bootstrap or test)");
}

std::string sandbox_upper_dir(const std::string& sandbox_dir, const std::string& layer) {
  return sandbox_dir + "/root/overlay/" + layer + "/upper";
}

std::string sandbox_kept_dir(const std::string& sandbox_dir, const std::string& layer) {
  return sandbox_dir + "/kept/" + layer;
}

Result<void> save_spec(const SandboxSpec& spec) {
  if (auto ok = validate_spec(spec); !ok) return ok;
  const std::string& dir = spec.sandbox_dir;
  std::ostringstream out;
  out << k_spec_header << '\n';
  auto line = [&](const char* key, const std::string& value) {
    out << key << ' ' << escape(value) << '\n';
  };
  line("name", spec.name);
  line("base", relative_to(dir, spec.base));
  for (const auto& layer : spec.lower_layers) line("lower", relative_to(dir, layer));
  line("build-dir", relative_to(dir, spec.build_dir));
  line("install-dir", relative_to(dir, spec.install_dir));
  line("prefix", spec.prefix);
  line("arch", spec.arch);
  line("max-jobs", std::to_string(spec.max_jobs));
  if (spec.source_date_epoch) line("source-date-epoch", std::to_string(*spec.source_date_epoch));
  line("build-mode", sandbox_mode_name(spec.mode));
  for (const auto& [key, value] : spec.extra_env) line("env", key + "=" + value);
  for (const auto& dir_entry : spec.extra_path) line("path", dir_entry);
  line("network", spec.network == Network::none ? "none" : "host");
  if (!spec.log_path.empty()) line("log", relative_to(dir, spec.log_path));
  if (spec.keep_upper) line("keep-upper", "yes");
  return write_file_atomic(spec_path(dir), out.str());
}

Result<SandboxSpec> load_spec(const std::string& sandbox_dir) {
  std::string file = spec_path(sandbox_dir);
  auto text = read_file(file);
  if (!text) return std::unexpected(text.error());
  SandboxSpec spec;
  spec.sandbox_dir = sandbox_dir;
  spec.base.clear();
  std::istringstream in(*text);
  std::string raw;
  int line_no = 0;
  while (std::getline(in, raw)) {
    ++line_no;
    if (line_no == 1) {
      if (raw != k_spec_header)
        return make_error_at(
            file, 1, "not a gang sandbox spec (expected \"" + std::string(k_spec_header) + "\")");
      continue;
    }
    if (raw.empty()) continue;
    auto space = raw.find(' ');
    std::string key = raw.substr(0, space);
    std::string value = space == std::string::npos ? "" : unescape(raw.substr(space + 1));
    auto bad = [&](const std::string& why) { return make_error_at(file, line_no, why, key); };
    if (key == "name") {
      spec.name = value;
    } else if (key == "base") {
      spec.base = (value == "host" || value == "none") ? value : resolve_from(sandbox_dir, value);
    } else if (key == "lower") {
      spec.lower_layers.push_back(resolve_from(sandbox_dir, value));
    } else if (key == "build-dir") {
      spec.build_dir = resolve_from(sandbox_dir, value);
    } else if (key == "install-dir") {
      spec.install_dir = resolve_from(sandbox_dir, value);
    } else if (key == "prefix") {
      spec.prefix = value;
    } else if (key == "arch") {
      spec.arch = value;
    } else if (key == "max-jobs" || key == "source-date-epoch") {
      std::int64_t number = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), number);
      if (ec != std::errc() || end != value.data() + value.size())
        return bad("\"" + value + "\" is not a number");
      if (key == "max-jobs") {
        spec.max_jobs = static_cast<int>(number);
      } else {
        spec.source_date_epoch = number;
      }
    } else if (key == "build-mode") {
      auto mode = parse_sandbox_mode(value);
      if (!mode) return bad(mode.error().message);
      spec.mode = *mode;
    } else if (key == "env") {
      auto eq = value.find('=');
      if (eq == std::string::npos || eq == 0) return bad("expected KEY=VALUE");
      spec.extra_env[value.substr(0, eq)] = value.substr(eq + 1);
    } else if (key == "path") {
      spec.extra_path.push_back(value);
    } else if (key == "network") {
      if (value != "none" && value != "host") return bad("expected none or host");
      spec.network = value == "none" ? Network::none : Network::host;
    } else if (key == "log") {
      spec.log_path = resolve_from(sandbox_dir, value);
    } else if (key == "keep-upper") {
      if (value != "yes") return bad("expected yes");
      spec.keep_upper = true;
    } else {
      return bad("unknown key \"" + key + "\"");
    }
  }
  if (line_no == 0) return make_error_at(file, 1, "empty sandbox spec");
  if (auto ok = validate_spec(spec); !ok) return make_error_at(file, 0, ok.error().message);
  return spec;
}

std::string target_triplet(const std::string& arch_in, const std::string& vendor) {
  std::string arch = arch_in.empty() ? host_arch() : arch_in;
  static const std::map<std::string, std::string> k_cpus = {
      {"x86_32", "i686"},    {"armv8l64", "aarch64"}, {"armv8b64", "aarch64_be"},
      {"mips64b", "mips64"}, {"mips64l", "mips64el"}, {"mips32b", "mips"},
      {"mips32l", "mipsel"}, {"ppc64b", "powerpc64"}, {"ppc64l", "powerpc64le"},
  };
  auto found = k_cpus.find(arch);
  std::string cpu = found == k_cpus.end() ? arch : found->second;
  std::string abi;
  if (arch.starts_with("armv7") || arch.starts_with("armv5")) {
    abi = "eabi";
  } else if (arch.starts_with("mips64")) {
    abi = "abi64";
  }
  return cpu + "-" + vendor + "-linux-gnu" + abi;
}

std::vector<std::string> sandbox_environment(const SandboxSpec& spec, StepKind kind) {
  std::map<std::string, std::string> env;
  std::string path;
  for (const auto& dir : spec.extra_path) path += dir + ":";
  env["PATH"] = path + k_default_path;
  env["PREFIX"] = spec.prefix.empty() ? "/usr" : spec.prefix;
  env["DESTDIR"] = "/" + spec.name + ".inst";
  env["TERM"] = "dumb";
  env["LC_ALL"] = "C";
  env["HOME"] = "/tmp";
  env["TZ"] = "UTC";
  std::string arch = spec.arch.empty() ? host_arch() : spec.arch;
  env["MORPH_ARCH"] = arch;
  env["TARGET"] = target_triplet(arch);
  env["TARGET_STAGE1"] = target_triplet(arch, "bootstrap");
  if (spec.source_date_epoch) env["SOURCE_DATE_EPOCH"] = std::to_string(*spec.source_date_epoch);
  if (kind == StepKind::build) env["MAKEFLAGS"] = "-j" + std::to_string(std::max(1, spec.max_jobs));
  for (const auto& [key, value] : spec.extra_env) env[key] = value;
  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [key, value] : env) out.push_back(key + "=" + value);
  return out;
}

Result<void> validate_spec(const SandboxSpec& spec) {
  if (spec.name.empty() || spec.name.find('/') != std::string::npos || spec.name == "." ||
      spec.name == "..")
    return make_error("sandbox spec: bad component name \"" + spec.name + "\"");
  auto absolute = [](const std::string& what, const std::string& path) -> Result<void> {
    if (path.empty() || path.front() != '/')
      return make_error("sandbox spec: " + what + " must be an absolute path, not \"" + path +
                        "\"");
    if (path.find_first_of(":,\n") != std::string::npos)
      return make_error("sandbox spec: " + what + " \"" + path +
                        "\" contains ':', ',' or a newline, which overlayfs cannot take");
    return {};
  };
  if (auto ok = absolute("sandbox_dir", spec.sandbox_dir); !ok) return ok;
  if (auto ok = absolute("build_dir", spec.build_dir); !ok) return ok;
  if (auto ok = absolute("install_dir", spec.install_dir); !ok) return ok;
  if (spec.base != "host" && spec.base != "none")
    if (auto ok = absolute("base (host, none or a sysroot directory)", spec.base); !ok) return ok;
  for (const auto& layer : spec.lower_layers)
    if (auto ok = absolute("lower layer", layer); !ok) return ok;
  return {};
}

}  // namespace gang
