#include "sandbox/etc_mask.hpp"

#include <dirent.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <iterator>
#include <mutex>
#include <optional>
#include <set>

namespace gang {

namespace {

// Walks /etc. With `watch` (an inotify fd), every directory is watched
// before it is read, so that any later change is seen.
EtcMask walk_etc(int watch) {
  EtcMask mask;
  std::set<std::string> dirs;
  auto add_dir = [&](const std::string& rel) {
    if (!dirs.insert(rel).second) return;
    struct stat st {};
    if (::lstat((rel.empty() ? std::string("/etc") : "/etc/" + rel).c_str(), &st) != 0) return;
    mask.entries.push_back({rel, false, st.st_mode & 07777, st.st_uid, st.st_gid});
  };
  auto hide = [&](const std::string& rel) {
    for (std::size_t slash = rel.find('/'); slash != std::string::npos;
         slash = rel.find('/', slash + 1))
      add_dir(rel.substr(0, slash));
    mask.entries.push_back({rel, true, 0, 0, 0});
  };
  add_dir("");
  std::function<void(const std::string&)> walk = [&](const std::string& rel) {
    std::string dir_path = rel.empty() ? "/etc" : "/etc/" + rel;
    if (watch >= 0 &&
        ::inotify_add_watch(watch, dir_path.c_str(),
                            IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_ATTRIB |
                                IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW) < 0)
      mask.watched = false;
    DIR* dir = ::opendir(dir_path.c_str());
    if (dir == nullptr) return;
    std::vector<std::string> subdirs;
    while (dirent* entry = ::readdir(dir)) {
      std::string name = entry->d_name;
      if (name == "." || name == "..") continue;
      std::string child = rel.empty() ? name : rel + "/" + name;
      struct stat st {};
      if (::lstat(("/etc/" + child).c_str(), &st) != 0) continue;
      bool secret = std::find(std::begin(k_etc_secrets), std::end(k_etc_secrets), child) !=
                    std::end(k_etc_secrets);
      bool unreadable =
          !S_ISLNK(st.st_mode) &&
          ((st.st_mode & S_IROTH) == 0 || (S_ISDIR(st.st_mode) && (st.st_mode & S_IXOTH) == 0));
      if (secret || unreadable) {
        hide(child);
      } else if (S_ISDIR(st.st_mode)) {
        subdirs.push_back(child);
      }
    }
    ::closedir(dir);
    for (const auto& sub : subdirs) walk(sub);
  };
  mask.watched = watch >= 0;
  walk("");
  return mask;
}

}  // namespace

EtcMask etc_mask() {
  static std::mutex mutex;
  static std::optional<EtcMask> cached;
  static int watch = -1;
  static pid_t owner = 0;  // the process whose inotify instance `watch` is
  std::lock_guard lock(mutex);
  // A forked child shares its parent's inotify instance (reading it would
  // take the parent's events): it walks /etc and watches anew.
  if (owner != ::getpid()) cached.reset();
  if (cached && cached->watched && watch >= 0) {
    char events[4096];
    ssize_t n = ::read(watch, events, sizeof events);
    if (n < 0 && errno == EAGAIN) return *cached;  // nothing changed
  }
  if (watch >= 0) ::close(watch);
  watch = ::inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  owner = ::getpid();
  cached = walk_etc(watch);
  return *cached;
}

}  // namespace gang
