// Many real processes racing for the same keys. The parent forks before it
// opens any LMDB environment; each child opens the cache itself.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <random>
#include <set>
#include <sstream>

#include "cache/artifact_cache.hpp"
#include "util/fs.hpp"

namespace gang {
namespace {

constexpr int k_processes = 8;
constexpr int k_ops = 500;
constexpr int k_keys = 50;

// One child's run: returns its exit code; writes "insert KEY", "present KEY"
// and "won KEY" lines to its results file.
int stress_child(const std::string& root, const std::string& sources, int n,
                 const std::string& results) {
  auto cache = ArtifactCache::open(root);
  if (!cache) return 2;
  std::mt19937 rng(static_cast<unsigned>(n) * 7919u + 1);
  std::ostringstream out;
  Holder me = cache->holder(n, "stress");
  ArtifactMeta meta;
  meta.built_by = me;
  for (int op = 0; op < k_ops; ++op) {
    int k = static_cast<int>(rng() % k_keys);
    std::string src = sources + "/" + std::to_string(k);
    if (op % 2 == 0) {
      std::string key = "insert." + std::to_string(k);
      auto r = cache->insert(key, src, meta);
      if (!r) return 3;
      out << (*r == PublishOutcome::inserted ? "insert " : "present ") << key << "\n";
    } else {
      std::string key = "claim." + std::to_string(k);
      auto c = cache->claims().claim(key, me);
      if (!c) return 4;
      if (c->kind == ClaimOutcome::Kind::won) {
        auto r = cache->insert(key, src, meta);
        if (!r) return 5;
        if (*r != PublishOutcome::inserted) return 6;  // the claim should have excluded others
        if (!cache->claims().release(key, me)) return 7;
        out << "won " << key << "\n";
      } else if (c->kind == ClaimOutcome::Kind::failed) {
        return 8;
      } else {
        out << "present " << key << "\n";
      }
    }
  }
  return write_file_atomic(results, out.str()) ? 0 : 9;
}

TEST(ArtifactCacheStress, RacingProcessesPublishEachKeyExactlyOnce) {
  TempDir dir("gang-cache-stress-");
  std::string root = dir.path() + "/cache", sources = dir.path() + "/src";
  for (int k = 0; k < k_keys; ++k) {
    std::string src = sources + "/" + std::to_string(k);
    ASSERT_TRUE(make_dirs(src + "/sub"));
    ASSERT_TRUE(write_file_atomic(src + "/common", "identical in every artifact"));
    ASSERT_TRUE(write_file_atomic(src + "/sub/own", "key " + std::to_string(k)));
  }
  std::vector<pid_t> children;
  for (int n = 0; n < k_processes; ++n) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0)
      ::_exit(stress_child(root, sources, n, dir.path() + "/results." + std::to_string(n)));
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "child failed with status " << status;
  }
  std::map<std::string, int> winners;
  std::set<std::string> attempted;
  int lines = 0;
  for (int n = 0; n < k_processes; ++n) {
    auto text = read_file(dir.path() + "/results." + std::to_string(n));
    ASSERT_TRUE(text);
    std::istringstream in(*text);
    std::string what, key;
    while (in >> what >> key) {
      ++lines;
      attempted.insert(key);
      if (what != "present") ++winners[key];
    }
  }
  EXPECT_EQ(lines, k_processes * k_ops) << "every attempt either won or saw the artifact present";
  EXPECT_EQ(attempted.size(), std::size_t{2 * k_keys});
  for (const auto& key : attempted) EXPECT_EQ(winners[key], 1) << key;

  auto cache = ArtifactCache::open(root);
  ASSERT_TRUE(cache);
  auto all = cache->list();
  ASSERT_TRUE(all);
  EXPECT_EQ(all->size(), std::size_t{2 * k_keys});
  ASSERT_TRUE(cache->gc());  // losers' manifests are garbage
  auto report = cache->verify();
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->ok());
  // One shared blob, one own blob per key, one manifest per artifact (each
  // records its own key, so insert.K and claim.K have one each).
  EXPECT_EQ(report->blobs_checked, std::size_t{1 + k_keys + 2 * k_keys});
}

}  // namespace
}  // namespace gang
