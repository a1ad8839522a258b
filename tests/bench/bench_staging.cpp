// bench_staging.cpp: staging 300 dependencies holding 90,000 files (with
// shared directories usr/include, usr/lib), both ways, in one process:
//   hard links  every file of every dependency linked into one fresh
//               directory, then removed (what builds did before trees);
//   trees       the dependencies as cached read-only trees, grouped as
//               builds group them (cold: made from the blob store; warm: a
//               new worker's first use, checks included; hot: again), and
//               mounted as the lower layers of one overlay, then unmounted;
// and the cost of a lookup that misses in a shared directory on a fresh
// mount (what a configure probing headers pays), for the hard-linked tree
// (one layer), the grouped trees, and one layer per dependency (where the
// kernel takes "lowerdir+", 6.8 and later).
//
//   gang_bench_staging DIR [--deps 300] [--files 300]
// DIR must be fresh (created; on the file system to measure). Needs root or
// unprivileged user namespaces for the mounts. Prints one "name value" line
// per figure (seconds, or microseconds for lookups).
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cache/artifact_cache.hpp"
#include "cache/tree_cache.hpp"
#include "gang/staging_layers.hpp"
#include "util/fs.hpp"

namespace {

using namespace gang;
using Clock = std::chrono::steady_clock;

double since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void fail(const std::string& what) {
  std::fflush(stdout);
  std::fprintf(stderr, "gang_bench_staging: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

// A child's line before it leaves (stdout is a pipe: flush, _exit).
[[noreturn]] void child_says(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
  ::_exit(0);
}

bool write_id_map(const char* file, const std::string& line) {
  int fd = ::open(file, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ::close(fd);
  return ok;
}

// In a child with its own mount namespace (and user namespace unless
// root): mounts an overlay of `lowers` (top first) read-only at `target`,
// looks up `misses` missing names in <target>/usr/include, unmounts.
// Prints "<name>_mount_s", "<name>_miss_us", "<name>_umount_s"; with
// lowerdir_plus the layers go one per fsconfig() call.
void mount_and_probe(const std::string& name, const std::vector<std::string>& lowers,
                     const std::string& target, int misses, bool lowerdir_plus) {
  std::fflush(stdout);
  pid_t pid = ::fork();
  if (pid < 0) fail("fork");
  if (pid == 0) {
    uid_t uid = ::getuid();
    gid_t gid = ::getgid();
    int flags = CLONE_NEWNS | (uid == 0 ? 0 : CLONE_NEWUSER);
    if (::unshare(flags) != 0) {
      child_says(name + "_skipped namespaces: " + std::strerror(errno));
    }
    if (uid != 0) {
      write_id_map("/proc/self/setgroups", "deny");
      write_id_map("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1");
      write_id_map("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1");
    }
    ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr);
    // Twice: a first sandbox over these layers (their own directories'
    // negative dentries cold), then the next sandbox over the same layers
    // (a new overlay, its lookups reaching lower layers already looked at),
    // as consecutive builds on the same trees are.
    double mounted = 0, miss = 0, unmounted = 0, miss_next = 0;
    for (int round = 0; round < 2; ++round) {
      double round_mounted = 0, round_miss = 0, round_unmounted = 0;
      auto probe = [&] {
        auto start = Clock::now();
        if (lowerdir_plus) {
          int fs = static_cast<int>(::syscall(SYS_fsopen, "overlay", 0));
          if (fs < 0) {
            child_says(name + "_skipped fsopen: " + std::strerror(errno));
          }
          for (const auto& lower : lowers)
            if (::syscall(SYS_fsconfig, fs, 1 /*FSCONFIG_SET_STRING*/, "lowerdir+", lower.c_str(),
                          0) != 0) {
              child_says(name +
                         "_skipped lowerdir+ (a kernel before 6.8?): " + std::strerror(errno));
            }
          if (uid != 0)
            ::syscall(SYS_fsconfig, fs, 0 /*FSCONFIG_SET_FLAG*/, "userxattr", nullptr, 0);
          if (::syscall(SYS_fsconfig, fs, 6 /*FSCONFIG_CMD_CREATE*/, nullptr, nullptr, 0) != 0) {
            child_says(name + "_skipped create: " + std::strerror(errno));
          }
          int mnt = static_cast<int>(::syscall(SYS_fsmount, fs, 0, 0x1 /*MOUNT_ATTR_RDONLY*/));
          if (mnt < 0 || ::syscall(SYS_move_mount, mnt, "", AT_FDCWD, target.c_str(),
                                   0x4 /*MOVE_MOUNT_F_EMPTY_PATH*/) != 0) {
            child_says(name + "_skipped fsmount: " + std::strerror(errno));
          }
        } else {
          std::string data = "lowerdir=";
          for (std::size_t i = 0; i < lowers.size(); ++i) data += (i ? ":" : "") + lowers[i];
          if (uid != 0) data += ",userxattr";
          if (::mount("overlay", target.c_str(), "overlay", MS_RDONLY, data.c_str()) != 0) {
            child_says(name + "_skipped mount: " + std::strerror(errno));
          }
        }
        round_mounted = since(start);
        // (the new mount API's fds would keep the mount busy)
        for (int fd = 3; fd < 64; ++fd) ::close(fd);
        std::string dir = target + "/usr/include/";
        struct stat st;
        start = Clock::now();
        for (int i = 0; i < misses; ++i)
          ::stat((dir + "missing-" + std::to_string(i) + ".h").c_str(), &st);
        round_miss = since(start) / misses * 1e6;
        start = Clock::now();
        if (::umount2(target.c_str(), 0) != 0)
          child_says(name + "_skipped umount: " + std::strerror(errno));
        round_unmounted = since(start);
      };
      probe();
      if (round == 0) {
        mounted = round_mounted;
        miss = round_miss;
        unmounted = round_unmounted;
      } else {
        miss_next = round_miss;
      }
    }
    std::printf("%s_layers %zu\n%s_mount_s %.6f\n%s_miss_us %.2f\n%s_umount_s %.6f\n", name.c_str(),
                lowers.size(), name.c_str(), mounted, name.c_str(), miss, name.c_str(), unmounted);
    std::printf("%s_miss_next_us %.2f\n", name.c_str(), miss_next);
    std::fflush(stdout);
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) fail("usage: gang_bench_staging DIR [--deps N] [--files N]");
  std::string dir = argv[1];
  int deps = 300, files = 300;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    if (flag == "--deps") deps = std::atoi(argv[i + 1]);
    if (flag == "--files") files = std::atoi(argv[i + 1]);
  }
  if (!make_dirs(dir)) fail("cannot create " + dir);
  auto cache = ArtifactCache::open(dir + "/cache");
  if (!cache) fail(cache.error().to_string());

  // The dependencies: a third of each one's files in usr/include/pkgN, a
  // third in usr/lib (shared by all), the rest in usr/share/pkgN.
  auto start = Clock::now();
  std::vector<std::string> keys;
  for (int d = 0; d < deps; ++d) {
    std::string src = dir + "/src";
    (void)remove_tree(src);
    std::string pkg = "pkg" + std::to_string(d);
    for (const std::string& sub :
         {"/usr/include/" + pkg, std::string("/usr/lib"), "/usr/share/" + pkg})
      if (!make_dirs(src + sub)) fail("mkdir");
    for (int f = 0; f < files; ++f) {
      std::string path = f % 3 == 0 ? src + "/usr/include/" + pkg + "/h" + std::to_string(f) + ".h"
                         : f % 3 == 1 ? src + "/usr/lib/lib" + pkg + "_" + std::to_string(f) + ".so"
                                      : src + "/usr/share/" + pkg + "/f" + std::to_string(f);
      if (!write_file(path, pkg + " file " + std::to_string(f) + "\n", 0644)) fail("write " + path);
    }
    std::string key = pkg + ".0000000000000000000000000000000000000000000000000000000000000000";
    if (!cache->insert(key, src, ArtifactMeta{}, Ownership::take)) fail("insert " + key);
    keys.push_back(key);
  }
  std::printf("deps %d\nfiles %d\nsetup_s %.3f\n", deps, deps * files, since(start));

  // Hard links, as builds staged before.
  std::string staged = dir + "/staged";
  start = Clock::now();
  for (const auto& key : keys)
    if (!cache->stage(key, staged, StageMode::hardlink)) fail("stage " + key);
  std::printf("hardlink_stage_s %.6f\n", since(start));

  // Trees, grouped as builds group them, in two stacks: "stack" (4 whole
  // strata below the chunk's own, plus 20 dependencies in its own stratum:
  // the usual shape) and "flat" (all in the chunk's own stratum, none a
  // whole stratum: the worst case for grouping).
  auto graph_for = [&](int whole_strata, int own) {
    BuildGraph graph;
    int per = whole_strata > 0 ? (deps - own) / whole_strata : 0;
    int d = 0;
    for (int s = 0; s <= whole_strata; ++s) {
      Component stratum;
      stratum.name = "s" + std::to_string(s);
      stratum.kind = Kind::stratum;
      int members = s < whole_strata ? per : deps - d + 1;  // the last: own + the chunk built
      for (int m = 0; m < members; ++m, ++d) {
        Component c;
        c.name = "c" + std::to_string(d);
        c.kind = Kind::chunk;
        c.stratum = stratum.name;
        stratum.chunks.push_back(graph.components.size());
        graph.components.push_back(c);
      }
      graph.components.push_back(stratum);
    }
    std::vector<std::size_t> stage;
    for (std::size_t i = 0; i < graph.components.size(); ++i)
      if (graph.components[i].kind == Kind::chunk && stage.size() < static_cast<std::size_t>(deps))
        stage.push_back(i);
    // stage holds component indices; map them to dependency numbers.
    std::vector<std::vector<std::size_t>> groups;
    std::vector<std::size_t> number(graph.components.size(), 0);
    std::size_t n = 0;
    for (std::size_t i = 0; i < graph.components.size(); ++i)
      if (graph.components[i].kind == Kind::chunk) number[i] = n++;
    for (auto& g : layer_groups(graph, stage)) {
      for (auto& i : g) i = number[i];
      groups.push_back(g);
    }
    return groups;
  };
  auto tree_lowers = [&](const std::vector<std::vector<std::size_t>>& groups, TreeCache& trees,
                         std::vector<TreeCache::Use>& uses) {
    std::vector<std::string> lowers;
    for (auto g = groups.rbegin(); g != groups.rend(); ++g) {
      std::vector<std::string> group_keys;
      for (std::size_t i : *g) group_keys.push_back(keys[i]);
      auto tree = trees.tree(group_keys);
      if (!tree) fail(tree.error().to_string());
      lowers.push_back(tree->path);
      uses.push_back(std::move(*tree));
    }
    return lowers;
  };
  std::vector<std::pair<std::string, std::vector<std::string>>> scenarios;
  for (const auto& [name, groups] : {std::pair{std::string("stack"), graph_for(4, 20)},
                                     std::pair{std::string("flat"), graph_for(0, deps)}}) {
    std::vector<std::string> lowers;
    {
      TreeCache trees(*cache);
      std::vector<TreeCache::Use> uses;
      start = Clock::now();
      lowers = tree_lowers(groups, trees, uses);
      std::printf("%s_trees_cold_s %.6f\n", name.c_str(), since(start));
    }
    {
      TreeCache trees(*cache);  // a new worker: checks each tree once
      std::vector<TreeCache::Use> uses;
      start = Clock::now();
      (void)tree_lowers(groups, trees, uses);
      std::printf("%s_trees_warm_s %.6f\n", name.c_str(), since(start));
      uses.clear();
      start = Clock::now();
      (void)tree_lowers(groups, trees, uses);
      std::printf("%s_trees_hot_s %.6f\n", name.c_str(), since(start));
    }
    scenarios.emplace_back(name, lowers);
  }
  // One tree per dependency, for the ungrouped lookup figure.
  std::vector<std::string> singles;
  {
    TreeCache trees(*cache);
    for (auto k = keys.rbegin(); k != keys.rend(); ++k) {
      auto tree = trees.tree({*k});
      if (!tree) fail(tree.error().to_string());
      singles.push_back(tree->path);
    }
  }
  std::string target = dir + "/mnt";
  if (!make_dirs(target)) fail("mkdir " + target);
  // A read-only overlay needs two layers: the staged tree over an empty one.
  if (!make_dirs(dir + "/empty")) fail("mkdir");
  mount_and_probe("hardlinked", {staged, dir + "/empty"}, target, 1000, false);
  for (const auto& [name, lowers] : scenarios) mount_and_probe(name, lowers, target, 1000, false);
  mount_and_probe("per_dependency", singles, target, 1000, true);

  start = Clock::now();
  if (!remove_tree(staged)) fail("remove " + staged);
  std::printf("hardlink_teardown_s %.6f\n", since(start));
  return 0;
}
