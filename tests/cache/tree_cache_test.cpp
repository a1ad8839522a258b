// Cached read-only trees: the same files as staging, made once, checked
// before use, rebuilt when damaged, and removed only when nobody uses them.
#include "cache/tree_cache.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>

#include "util/fs.hpp"

namespace gang {
namespace {

// path -> "f:<contents>", "l:<target>" or "d"
std::map<std::string, std::string> snapshot(const std::string& root, const std::string& rel = "") {
  std::map<std::string, std::string> out;
  std::string dir = rel.empty() ? root : root + "/" + rel;
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string path = rel.empty() ? name : rel + "/" + name;
    struct stat st;
    ::lstat((root + "/" + path).c_str(), &st);
    if (S_ISDIR(st.st_mode)) {
      out[path] = "d";
      auto sub = snapshot(root, path);
      out.insert(sub.begin(), sub.end());
    } else if (S_ISLNK(st.st_mode)) {
      char target[256] = {};
      ::readlink((root + "/" + path).c_str(), target, sizeof target - 1);
      out[path] = std::string("l:") + target;
    } else {
      out[path] = "f:" + read_file(root + "/" + path).value_or("?");
    }
  }
  ::closedir(d);
  return out;
}

class TreeCacheTest : public ::testing::Test {
 protected:
  TreeCacheTest() {
    auto c = ArtifactCache::open(dir.path() + "/cache");
    EXPECT_TRUE(c);
    cache.emplace(std::move(*c));
  }
  void publish(const std::string& key, const std::map<std::string, std::string>& files,
               const std::map<std::string, std::string>& links = {}) {
    std::string tree = dir.path() + "/src-" + std::to_string(++n);
    ASSERT_TRUE(make_dirs(tree));
    for (const auto& [path, contents] : files) {
      std::string full = tree + "/" + path;
      ASSERT_TRUE(make_dirs(full.substr(0, full.rfind('/'))));
      ASSERT_TRUE(write_file_atomic(full, contents, 0644));
    }
    for (const auto& [path, target] : links) {
      std::string full = tree + "/" + path;
      ASSERT_TRUE(make_dirs(full.substr(0, full.rfind('/'))));
      ASSERT_EQ(::symlink(target.c_str(), full.c_str()), 0);
    }
    ArtifactMeta meta;
    ASSERT_TRUE(cache->insert(key, tree, meta));
  }
  std::map<std::string, std::string> staged(const std::vector<std::string>& keys) {
    std::string out = dir.path() + "/staged-" + std::to_string(++n);
    for (const auto& k : keys) EXPECT_TRUE(cache->stage(k, out, StageMode::hardlink));
    return snapshot(out);
  }

  int n = 0;
  TempDir dir{"gang-tree-test-"};
  std::optional<ArtifactCache> cache;
};

TEST_F(TreeCacheTest, ATreeHoldsWhatStagingGivesMadeOnce) {
  publish("a.1", {{"usr/bin/a", "tool a"}, {"usr/include/x.h", "x from a"}, {"usr/d/inner", "in a"}});
  publish("b.1", {{"usr/include/x.h", "x from b"}}, {{"usr/d", "elsewhere"}});
  TreeCache trees(*cache);
  for (std::vector<std::string> keys : {std::vector<std::string>{"a.1"},
                                        std::vector<std::string>{"a.1", "b.1"},
                                        std::vector<std::string>{"b.1", "a.1"}}) {
    auto tree = trees.tree(keys);
    ASSERT_TRUE(tree) << tree.error().to_string();
    EXPECT_EQ(snapshot(tree->path), staged(keys)) << keys.size();
  }
  auto ab = trees.tree({"a.1", "b.1"});
  EXPECT_EQ(snapshot(ab->path).at("usr/d"), "l:elsewhere");  // b replaced a's directory
  EXPECT_EQ(snapshot(trees.tree({"b.1", "a.1"})->path).at("usr/d/inner"), "f:in a");
  // Made once: a second TreeCache (another worker) finds the same inodes,
  // which are the blobs' own.
  struct stat first, again;
  ASSERT_EQ(::stat((ab->path + "/usr/bin/a").c_str(), &first), 0);
  TreeCache other(*cache);
  auto ab2 = other.tree({"a.1", "b.1"});
  ASSERT_TRUE(ab2);
  EXPECT_EQ(ab2->path, ab->path);
  ASSERT_EQ(::stat((ab2->path + "/usr/bin/a").c_str(), &again), 0);
  EXPECT_EQ(first.st_ino, again.st_ino);
  EXPECT_GE(first.st_nlink, 2u);
  EXPECT_EQ(first.st_mode & 0222, 0u);  // read-only, as the blob
  EXPECT_EQ(TreeCache::tree_id({"a.1", "b.1"}).size(), 20u);
  EXPECT_NE(TreeCache::tree_id({"a.1", "b.1"}), TreeCache::tree_id({"b.1", "a.1"}));
}

TEST_F(TreeCacheTest, ADamagedTreeIsMadeAgainNeverHandedOutWrong) {
  publish("a.1", {{"usr/lib/liba.so", "lib a"}, {"usr/include/a.h", "header a"}});
  std::string path;
  {
    TreeCache trees(*cache);
    auto tree = trees.tree({"a.1"});
    ASSERT_TRUE(tree);
    path = tree->path;
  }
  // A file removed: its directory's mtime moves, and a new user (a new
  // worker) sees it.
  ASSERT_EQ(::unlink((path + "/usr/include/a.h").c_str()), 0);
  {
    TreeCache trees(*cache);
    auto tree = trees.tree({"a.1"});
    ASSERT_TRUE(tree);
    EXPECT_EQ(snapshot(tree->path), staged({"a.1"}));
  }
  // A file added deep down.
  ASSERT_TRUE(write_file_atomic(path + "/usr/lib/intruder", "x", 0644));
  {
    TreeCache trees(*cache);
    auto tree = trees.tree({"a.1"});
    ASSERT_TRUE(tree);
    EXPECT_FALSE(path_exists(tree->path + "/usr/lib/intruder"));
  }
  // A file edited in place (the same size): its inode is its blob's, so the
  // blob is damaged too; the tree is refused, the artifact dropped (to be
  // built again), nothing wrong is handed out.
  {
    std::string header = path + "/usr/include/a.h";
    ASSERT_EQ(::chmod(header.c_str(), 0644), 0);
    int fd = ::open(header.c_str(), O_WRONLY | O_TRUNC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, "header b", 8), 8);
    ::close(fd);
    TreeCache trees(*cache);
    auto tree = trees.tree({"a.1"});
    EXPECT_FALSE(tree);
    EXPECT_FALSE(cache->contains("a.1"));
    publish("a.1", {{"usr/lib/liba.so", "lib a"}, {"usr/include/a.h", "header a"}});
    auto again = trees.tree({"a.1"});
    ASSERT_TRUE(again) << again.error().to_string();
    EXPECT_EQ(*read_file(again->path + "/usr/include/a.h"), "header a");
    path = again->path;
  }
  // Tampering that hides from the cheap check (the directory's stamp put
  // back) is found by check_all, which gang cache verify runs.
  std::string lib = path + "/usr/lib/liba.so";
  ASSERT_EQ(::unlink(lib.c_str()), 0);
  ASSERT_TRUE(write_file_atomic(lib, "evil", 0444));
  const timespec stamp[2] = {{0, UTIME_OMIT}, {k_blob_mtime, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (path + "/usr/lib").c_str(), stamp, 0), 0);
  TreeCache trees(*cache);
  auto report = trees.check_all();
  ASSERT_TRUE(report);
  EXPECT_EQ(report->trees, 1u);
  ASSERT_EQ(report->damaged.size(), 1u);
  auto tree = trees.tree({"a.1"});
  ASSERT_TRUE(tree);
  EXPECT_EQ(*read_file(tree->path + "/usr/lib/liba.so"), "lib a");
  auto clean = trees.check_all();
  ASSERT_TRUE(clean);
  EXPECT_TRUE(clean->damaged.empty());
}

TEST_F(TreeCacheTest, AnArtifactPublishedAgainMakesItsOldTreesStale) {
  publish("a.1", {{"usr/share/a", "first build"}});
  TreeCache trees(*cache);  // one worker, all along
  auto first = trees.tree({"a.1"});
  ASSERT_TRUE(first);
  EXPECT_EQ(*read_file(first->path + "/usr/share/a"), "first build");
  *first = TreeCache::Use{};
  // Dropped (say, a damaged blob) and built again under the same key.
  ASSERT_TRUE(cache->forget("a.1"));
  EXPECT_FALSE(trees.tree({"a.1"}));
  publish("a.1", {{"usr/share/a", "second build"}});
  auto second = trees.tree({"a.1"});
  ASSERT_TRUE(second) << second.error().to_string();
  EXPECT_EQ(*read_file(second->path + "/usr/share/a"), "second build");
  TreeCache other(*cache);  // and a new worker agrees
  EXPECT_EQ(*read_file(other.tree({"a.1"})->path + "/usr/share/a"), "second build");
}

TEST_F(TreeCacheTest, PruneRemovesTreesOfForgottenArtifactsButNotOnesInUse) {
  publish("a.1", {{"a", "a"}});
  publish("b.1", {{"b", "b"}});
  TreeCache trees(*cache);
  auto a = trees.tree({"a.1"});
  auto ab = trees.tree({"a.1", "b.1"});
  auto b = trees.tree({"b.1"});
  ASSERT_TRUE(a && ab && b);
  std::string a_path = a->path, ab_path = ab->path, b_path = b->path;
  ASSERT_TRUE(cache->forget("a.1"));
  // ab is in use (a sandbox has it mounted): kept.
  *a = TreeCache::Use{};
  auto pruned = trees.prune();
  ASSERT_TRUE(pruned);
  EXPECT_EQ(pruned->removed, 1u);
  EXPECT_EQ(pruned->kept_in_use, 1u);
  EXPECT_FALSE(path_exists(a_path));
  EXPECT_TRUE(path_exists(ab_path + "/a"));
  EXPECT_TRUE(path_exists(b_path + "/b"));  // its artifact is still there
  // A kept failed sandbox that names it keeps it too.
  *ab = TreeCache::Use{};
  ASSERT_TRUE(make_dirs(cache->root() + "/failed/x"));
  ASSERT_TRUE(write_file_atomic(cache->root() + "/failed/x/sandbox.spec",
                                "lower " + ab_path + "\n", 0644));
  pruned = trees.prune();
  ASSERT_TRUE(pruned);
  EXPECT_TRUE(path_exists(ab_path + "/a"));
  ASSERT_EQ(::unlink((cache->root() + "/failed/x/sandbox.spec").c_str()), 0);
  pruned = trees.prune();
  ASSERT_TRUE(pruned);
  EXPECT_FALSE(path_exists(ab_path));
  // Trees no build used for long go too (their lock file's mtime).
  *b = TreeCache::Use{};
  {
    auto fresh = trees.tree({"b.1"});
    ASSERT_TRUE(fresh);
    std::string id = TreeCache::tree_id({"b.1"});
    *fresh = TreeCache::Use{};
    ASSERT_TRUE(trees.prune(false, 3600));
    EXPECT_TRUE(path_exists(b_path + "/b"));  // used just now
    const timespec old[2] = {{0, UTIME_OMIT}, {::time(nullptr) - 7200, 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, (cache->root() + "/locks/tree-" + id).c_str(), old, 0), 0);
    auto unused = trees.prune(false, 3600);
    ASSERT_TRUE(unused);
    EXPECT_EQ(unused->removed, 1u);
    EXPECT_FALSE(path_exists(b_path));
    ASSERT_TRUE(trees.tree({"b.1"}));  // made again when needed
  }
  // everything: all trees not in use.
  ASSERT_TRUE(trees.prune(true));
  EXPECT_FALSE(path_exists(b_path));
  // A tree of a missing artifact is an error, not an empty tree.
  EXPECT_FALSE(trees.tree({"a.1"}));
}

}  // namespace
}  // namespace gang
