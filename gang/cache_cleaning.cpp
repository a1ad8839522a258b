#include "gang/cache_cleaning.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>

#include "sandbox/sandbox.hpp"
#include "util/fs.hpp"

namespace gang {

namespace {

std::vector<std::string> subdirectories(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    std::error_code type_ec;
    if (entry.is_directory(type_ec) && !entry.is_symlink(type_ec)) out.push_back(entry.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

Result<std::chrono::seconds> parse_age(const std::string& text) {
  std::size_t digits = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') ++digits;
  std::string unit = text.substr(digits);
  if (digits == 0 || digits > 9 || unit.size() > 1)
    return make_error("expected an age like 7d, 12h, 30m or 45s, got \"" + text + "\"");
  std::int64_t n = std::stoll(text.substr(0, digits));
  std::int64_t scale = 1;
  if (unit == "d") scale = 24 * 3600;
  else if (unit == "h") scale = 3600;
  else if (unit == "m") scale = 60;
  else if (!unit.empty() && unit != "s")
    return make_error("expected an age like 7d, 12h, 30m or 45s, got \"" + text + "\"");
  return std::chrono::seconds(n * scale);
}

std::vector<KeptSandbox> kept_sandboxes(const std::string& cache_dir) {
  std::vector<KeptSandbox> out;
  for (const auto& path : subdirectories(cache_dir + "/failed")) {
    KeptSandbox kept;
    kept.path = path;
    kept.component = std::filesystem::path(path).filename().string();
    struct stat st {};
    if (::stat(spec_path(path).c_str(), &st) == 0 || ::stat(path.c_str(), &st) == 0)
      kept.failed_at_s = st.st_mtim.tv_sec;
    out.push_back(std::move(kept));
  }
  std::stable_sort(out.begin(), out.end(), [](const KeptSandbox& a, const KeptSandbox& b) {
    return a.failed_at_s < b.failed_at_s;
  });
  return out;
}

KeptRemoval remove_kept_sandboxes(const std::string& cache_dir, std::chrono::seconds age,
                                  std::int64_t now_s) {
  KeptRemoval report;
  for (const auto& kept : kept_sandboxes(cache_dir)) {
    if (now_s - kept.failed_at_s < age.count()) continue;
    if (auto removed = remove_sandbox(kept.path); removed)
      report.removed.push_back(kept.component);
    else
      report.errors.push_back(removed.error().to_string());
  }
  return report;
}

Result<void> remove_cache(const std::string& cache_dir) {
  if (!path_exists(cache_dir)) return {};
  if (!path_exists(cache_dir + "/index") && !path_exists(cache_dir + "/objects"))
    return make_error(cache_dir + " does not look like a gang cache (no index/ or objects/); not removing it");
  // Sandboxes first: they may hold mounts and overlayfs's unreadable work directories.
  for (const char* holder : {"/failed", "/tmp"}) {
    for (const auto& sandbox : subdirectories(cache_dir + holder)) {
      if (auto removed = remove_sandbox(sandbox); !removed) {
        Error error = removed.error();
        if (error.message.find("Permission denied") != std::string::npos ||
            error.message.find("Operation not permitted") != std::string::npos)
          error.message += " (made by another user? run gang cache clean as that user, or as root)";
        return std::unexpected(error);
      }
    }
  }
  return remove_tree(cache_dir);
}

}  // namespace gang
