#include "gang/config.hpp"

#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>

#include "definitions/yaml.hpp"
#include "util/fs.hpp"

namespace gang {

namespace {

const char* env(const char* name) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : nullptr;
}

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

std::string absolute(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  char cwd[4096];
  if (::getcwd(cwd, sizeof cwd) == nullptr) return path;
  return std::string(cwd) + "/" + path;
}

Result<int> parse_int(const std::string& text, const std::string& what) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value < 0)
    return make_error(what + ": expected a non-negative number, got \"" + text + "\"");
  return value;
}

Result<bool> parse_bool(const std::string& text, const std::string& what) {
  if (text == "1" || text == "true" || text == "yes" || text == "on") return true;
  if (text == "0" || text == "false" || text == "no" || text == "off") return false;
  return make_error(what + ": expected true or false, got \"" + text + "\"");
}

// Seconds, possibly fractional ("2", "0.5"), as milliseconds (at least 1).
Result<int> parse_seconds_ms(const std::string& text, const std::string& what) {
  double value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || !(value > 0) || value > 86400)
    return make_error(what + ": expected a number of seconds (0 < s <= 86400), got \"" + text + "\"");
  return std::max(1, static_cast<int>(value * 1000));
}

// The remote settings gang.conf and GANG_* share: applies `name` = text.
// Returns false if name is not one of them.
Result<bool> apply_remote_setting(const std::string& name, const std::string& text,
                                  const std::string& base_dir, RemoteOptions& remote) {
  auto path = [&](const std::string& p) {
    return p.empty() || p[0] == '/' || base_dir.empty() ? absolute(p) : base_dir + "/" + p;
  };
  if (name == "remote-cache") {
    auto url = text.empty() ? Result<std::string>("") : normalise_cache_url(text);
    if (!url) return std::unexpected(url.error());
    remote.cache_url = *url;
  } else if (name == "remote-credentials") {
    remote.credentials_file = text.empty() ? "" : path(text);
  } else if (name == "remote-netrc") {
    remote.netrc_file = text.empty() ? "" : path(text);
  } else if (name == "remote-push") {
    auto b = parse_bool(text, name);
    if (!b) return std::unexpected(b.error());
    remote.push = *b;
  } else if (name == "remote-connect-timeout" || name == "remote-timeout" ||
             name == "remote-retry-after" || name == "lease-time") {
    auto ms = parse_seconds_ms(text, name);
    if (!ms) return std::unexpected(ms.error());
    (name == "remote-connect-timeout" ? remote.connect_timeout_ms
     : name == "remote-timeout"       ? remote.timeout_ms
     : name == "remote-retry-after"   ? remote.retry_after_ms
                                      : remote.lease_ms) = *ms;
  } else if (name == "redis") {
    if (!text.empty()) {
      auto address = parse_redis_url(text);
      if (!address) return std::unexpected(address.error());
    }
    remote.redis_url = text;
  } else if (name == "redis-credentials") {
    remote.redis_credentials_file = text.empty() ? "" : path(text);
  } else {
    return false;
  }
  return true;
}


Result<void> parse_aliases(const std::string& text, Config& config) {
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!item.empty()) {
      auto eq = item.find('=');
      if (eq == std::string::npos || eq == 0)
        return make_error("GANG_ALIASES: expected name=prefix, got \"" + item + "\"");
      config.aliases[item.substr(0, eq)] = item.substr(eq + 1);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return {};
}

Result<void> load_conf_file(const std::string& path, Config& config) {
  // Read as any user input (a regular file, capped), and checked for alias
  // bombs and deep nesting by the definitions parser before yaml-cpp sees it.
  auto text = read_regular_file(path, 1u << 20);
  if (!text) return std::unexpected(text.error());
  if (auto checked = parse_yaml(*text, path); !checked) return std::unexpected(checked.error());
  YAML::Node root;
  try {
    root = YAML::Load(*text);
  } catch (const YAML::Exception& e) {
    return make_error_at(path, e.mark.line + 1, e.msg, {}, e.mark.column + 1);
  }
  if (!root || root.IsNull()) return {};
  if (!root.IsMap()) return make_error_at(path, root.Mark().line + 1, "expected a mapping");
  for (const auto& item : root) {
    std::string key = item.first.as<std::string>("");
    const YAML::Node& value = item.second;
    int line = item.first.Mark().line + 1;
    auto scalar = [&]() -> Result<std::string> {
      if (!value.IsScalar()) return make_error_at(path, line, "expected a scalar", key);
      return value.Scalar();
    };
    auto fail_on = [&](const Error& e) {
      return make_error_at(path, line, e.message, key);
    };
    if (key == "aliases") {
      if (!value.IsMap()) return make_error_at(path, line, "\"aliases\" must be a mapping", key);
      for (const auto& alias : value)
        config.aliases[alias.first.as<std::string>("")] = alias.second.as<std::string>("");
      continue;
    }
    auto text = scalar();
    if (!text) return std::unexpected(text.error());
    if (key == "cache") {
      config.cache_dir = absolute(*text);
    } else if (key == "instances") {
      config.instances = *text;
    } else if (key == "max-jobs") {
      auto n = parse_int(*text, key);
      if (!n) return fail_on(n.error());
      config.max_jobs = *n;
    } else if (key == "arch") {
      config.arch = *text;
    } else if (key == "base") {
      config.base = *text;
    } else if (key == "offline" || key == "strict") {
      auto b = parse_bool(*text, key);
      if (!b) return fail_on(b.error());
      (key == "offline" ? config.offline : config.strict) = *b;
    } else if (auto remote = apply_remote_setting(key, *text, dir_of(path), config.remote);
               !remote) {
      return fail_on(remote.error());
    } else if (!*remote) {
      return make_error_at(path, line, "unknown setting \"" + key + "\"", key);
    }
  }
  return {};
}

}  // namespace

std::string default_cache_dir() {
  if (const char* xdg = env("XDG_CACHE_HOME")) return absolute(std::string(xdg) + "/gang");
  if (const char* home = env("HOME")) return std::string(home) + "/.cache/gang";
  return "/var/tmp/gang-cache";
}

const std::map<std::string, std::string>& default_aliases() {
  // ybd's ybd.conf: the aliases every public Baserock definitions set uses.
  static const std::map<std::string, std::string> k_aliases = {
      {"baserock", "git://git.baserock.org/baserock/"},
      {"freedesktop", "git://anongit.freedesktop.org/"},
      {"github", "git://github.com/"},
      {"gnome", "git://git.gnome.org/"},
      {"upstream", "git://git.baserock.org/delta/"},
  };
  return k_aliases;
}

Result<Config> load_config(const std::string& definitions_dir) {
  Config config;
  config.cache_dir = default_cache_dir();
  config.aliases = default_aliases();
  if (!definitions_dir.empty()) {
    std::string conf = definitions_dir + "/gang.conf";
    if (path_exists(conf)) {
      auto loaded = load_conf_file(conf, config);
      if (!loaded) return std::unexpected(loaded.error());
    }
  }
  if (const char* v = env("GANG_CACHE")) config.cache_dir = absolute(v);
  if (const char* v = env("GANG_INSTANCES")) config.instances = v;
  if (const char* v = env("GANG_MAX_JOBS")) {
    auto n = parse_int(v, "GANG_MAX_JOBS");
    if (!n) return std::unexpected(n.error());
    config.max_jobs = *n;
  }
  if (const char* v = env("GANG_ARCH")) config.arch = v;
  if (const char* v = env("GANG_BASE")) config.base = v;
  if (const char* v = env("GANG_OFFLINE")) {
    auto b = parse_bool(v, "GANG_OFFLINE");
    if (!b) return std::unexpected(b.error());
    config.offline = *b;
  }
  if (const char* v = env("GANG_STRICT")) {
    auto b = parse_bool(v, "GANG_STRICT");
    if (!b) return std::unexpected(b.error());
    config.strict = *b;
  }
  for (const auto& [variable, name] :
       {std::pair{"GANG_REMOTE_CACHE", "remote-cache"}, {"GANG_REMOTE_CREDENTIALS", "remote-credentials"},
        {"GANG_REMOTE_NETRC", "remote-netrc"}, {"GANG_REMOTE_PUSH", "remote-push"},
        {"GANG_REDIS", "redis"}, {"GANG_REDIS_CREDENTIALS", "redis-credentials"}}) {
    if (const char* v = env(variable)) {
      auto applied = apply_remote_setting(name, v, "", config.remote);
      if (!applied) return make_error(std::string(variable) + ": " + applied.error().message);
    }
  }
  if (const char* v = env("GANG_ALIASES")) {
    auto parsed = parse_aliases(v, config);
    if (!parsed) return std::unexpected(parsed.error());
  }
  return config;
}

Result<int> resolve_instances(const std::string& value) {
  if (value == "auto") {
    long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
    return 1 + static_cast<int>(cores > 0 ? cores : 1) / 10;
  }
  auto n = parse_int(value, "instances");
  if (!n) return std::unexpected(n.error());
  if (*n < 1) return make_error("instances: must be at least 1 or \"auto\"");
  return *n;
}

int resolve_max_jobs(int max_jobs) {
  if (max_jobs > 0) return max_jobs;
  long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
  return cores > 0 ? static_cast<int>(cores) : 1;
}

}  // namespace gang
