#include "gang/overlay_upper.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <algorithm>

#include "util/fs.hpp"

namespace gang {

namespace {

std::string xattr(const std::string& path, const char* name) {
  char value[256];
  ssize_t n = ::lgetxattr(path.c_str(), name, value, sizeof value);
  return n > 0 ? std::string(value, static_cast<std::size_t>(n)) : std::string();
}

Result<void> merge_dir(const std::string& upper, const std::string& tree,
                       const std::vector<std::string>* skip) {
  DIR* d = ::opendir(upper.c_str());
  if (d == nullptr) return make_errno_error("cannot read " + upper);
  std::vector<std::string> names;
  while (struct dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  ::closedir(d);
  for (const auto& name : names) {
    std::string from = upper + "/" + name, to = tree + "/" + name;
    if (skip != nullptr && std::find(skip->begin(), skip->end(), name) != skip->end() &&
        !path_exists(to))
      continue;
    struct stat st;
    if (::lstat(from.c_str(), &st) != 0) return make_errno_error("cannot stat " + from);
    struct stat old;
    bool exists = ::lstat(to.c_str(), &old) == 0;
    if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {  // a whiteout: removed
      if (exists)
        if (auto removed = remove_tree(to); !removed) return removed;
      continue;
    }
    for (const char* prefix : {"trusted.overlay.", "user.overlay."})
      for (const char* what : {"redirect", "metacopy"})
        if (::lgetxattr(from.c_str(), (std::string(prefix) + what).c_str(), nullptr, 0) >= 0)
          return make_error(to + ": overlayfs " + what + " entries are not supported");
    if (S_ISDIR(st.st_mode)) {
      bool opaque =
          xattr(from, "trusted.overlay.opaque") == "y" || xattr(from, "user.overlay.opaque") == "y";
      if (exists && (opaque || !S_ISDIR(old.st_mode)))
        if (auto removed = remove_tree(to); !removed) return removed;
      if (!exists || opaque || !S_ISDIR(old.st_mode)) {
        if (::mkdir(to.c_str(), 0700) != 0) return make_errno_error("cannot create " + to);
      } else {
        ::chmod(to.c_str(), 0700 | (old.st_mode & 07777));  // writable while merging
      }
      if (auto merged = merge_dir(from, to, nullptr); !merged) return merged;
      if (::chmod(to.c_str(), st.st_mode & 07777) != 0)
        return make_errno_error("cannot chmod " + to);
    } else if (S_ISREG(st.st_mode) || S_ISLNK(st.st_mode)) {
      if (exists)
        if (auto removed = remove_tree(to); !removed) return removed;
      if (::rename(from.c_str(), to.c_str()) != 0) return make_errno_error("cannot move " + from);
    } else {
      return make_error(to + ": system integration left a device, FIFO or socket");
    }
  }
  return {};
}

}  // namespace

Result<void> merge_overlay_upper(const std::string& upper, const std::string& tree,
                                 const std::vector<std::string>& skip) {
  return merge_dir(upper, tree, &skip);
}

}  // namespace gang
