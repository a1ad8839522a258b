#include "cache/git_url.hpp"

#include <cctype>
#include <filesystem>

#include "util/sha256.hpp"

namespace gang {

namespace {

bool has_scheme(const std::string& s) {
  auto pos = s.find("://");
  if (pos == std::string::npos || pos == 0) return false;
  for (std::size_t i = 0; i < pos; ++i) {
    char c = s[i];
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.'))
      return false;
  }
  return true;
}

bool looks_like_alias(const std::string& name) {
  if (name.empty() || !std::isalpha(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_')) return false;
  return true;
}

std::string strip_trailing_slashes(std::string s) {
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}

std::string absolute_local(const std::string& path, const std::string& base_dir) {
  namespace fs = std::filesystem;
  fs::path p(path);
  if (p.is_relative()) {
    std::error_code ec;
    fs::path base = base_dir.empty() ? fs::current_path(ec) : fs::path(base_dir);
    if (base.is_relative()) base = fs::absolute(base, ec);
    p = base / p;
  }
  return strip_trailing_slashes(p.lexically_normal().string());
}

}  // namespace

Result<std::string> expand_repo_url(const std::string& repo,
                                    const std::map<std::string, std::string>& aliases,
                                    const std::string& base_dir) {
  if (repo.empty()) return make_error("empty repo");
  std::string url = repo;
  auto colon = repo.find(':');
  if (colon != std::string::npos && !has_scheme(repo)) {
    std::string alias = repo.substr(0, colon);
    std::string rest = repo.substr(colon + 1);
    if (auto it = aliases.find(alias); it != aliases.end()) {
      const std::string& prefix = it->second;
      if (auto pct = prefix.find("%s"); pct != std::string::npos)
        url = prefix.substr(0, pct) + rest + prefix.substr(pct + 2);
      else
        url = prefix + rest;
    } else if (looks_like_alias(alias)) {
      return make_error("unknown repo alias \"" + alias + "\" in \"" + repo +
                        "\" (set it under \"aliases:\" in gang.conf or in GANG_ALIASES)");
    } else {
      return url;  // scp-like user@host:path
    }
  }
  if (has_scheme(url)) return url;
  if (url.find(':') != std::string::npos && url.find('@') != std::string::npos &&
      url.find('@') < url.find(':'))
    return url;  // an alias expanded to an scp-like URL
  return absolute_local(url, base_dir);
}

std::string resolve_relative_url(const std::string& super_url, const std::string& url) {
  if (!url.starts_with("./") && !url.starts_with("../")) return url;
  std::string base = strip_trailing_slashes(super_url);
  std::string rest = url;
  for (;;) {
    if (rest.starts_with("./")) {
      rest = rest.substr(2);
    } else if (rest.starts_with("../")) {
      rest = rest.substr(3);
      auto slash = base.rfind('/');
      auto scheme_end = base.find("://");
      if (slash != std::string::npos && (scheme_end == std::string::npos || slash > scheme_end + 2))
        base = base.substr(0, slash);
    } else {
      break;
    }
  }
  return base + "/" + rest;
}

std::string mirror_name(const std::string& url) {
  std::string body = url;
  if (auto pos = body.find("://"); pos != std::string::npos) body = body.substr(pos + 3);
  std::string name;
  for (char c : body) {
    bool safe = std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
    char out = safe ? c : '_';
    if (out == '_' && !name.empty() && name.back() == '_') continue;
    name.push_back(out);
  }
  while (!name.empty() && (name.front() == '_' || name.front() == '.')) name.erase(0, 1);
  while (!name.empty() && name.back() == '_') name.pop_back();
  constexpr std::size_t k_max_readable = 80;
  if (name.size() > k_max_readable) name = name.substr(name.size() - k_max_readable);
  if (name.empty()) name = "repo";
  return name + "-" + sha256_hex(url).substr(0, 12);
}

}  // namespace gang
