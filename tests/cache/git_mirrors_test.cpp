#include <gtest/gtest.h>

#include "tests/support/run_command.hpp"
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <vector>

#include "cache/git_mirrors.hpp"
#include "gang/config.hpp"
#include "util/fs.hpp"

extern char** environ;

namespace gang {
namespace {

constexpr std::int64_t k_first_time = 1600000000;

// Runs a shell command; returns its trimmed stdout, failing the test on a
// non-zero exit.
std::string sh(const std::string& command) {
  auto [status, out] = testing::run_command(command);
  EXPECT_EQ(status, 0) << "command failed: " << command;
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

std::string git_in(const std::string& dir, const std::string& args) {
  return sh("git -C '" + dir + "' " + args + " 2>&1");
}

class GitMirrorsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ::setenv("GIT_AUTHOR_NAME", "Gang Test", 1);
    ::setenv("GIT_AUTHOR_EMAIL", "test@gang.invalid", 1);
    ::setenv("GIT_COMMITTER_NAME", "Gang Test", 1);
    ::setenv("GIT_COMMITTER_EMAIL", "test@gang.invalid", 1);
    ::setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
    ::setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
  }

  void SetUp() override {
    m_upstream = m_dir.path() + "/upstream";
    m_cache = m_dir.path() + "/cache";
    ASSERT_TRUE(make_dirs(m_upstream));
  }

  void TearDown() override {
    if (HasFailure()) m_dir.keep();
  }

  // A new upstream repository `name` with one commit on master.
  std::string make_repo(const std::string& name, const std::string& content = "one\n") {
    std::string repo = m_upstream + "/" + name;
    sh("git init -q -b master '" + repo + "'");
    commit(repo, "README", content, k_first_time);
    return repo;
  }

  // Writes `file` and commits it at `time`; returns the commit SHA.
  std::string commit(const std::string& repo, const std::string& file, const std::string& content,
                     std::int64_t time) {
    EXPECT_TRUE(write_file_atomic(repo + "/" + file, content));
    std::string date = "'@" + std::to_string(time) + " +0000'";
    git_in(repo, "add -- '" + file + "'");
    sh("GIT_AUTHOR_DATE=" + date + " GIT_COMMITTER_DATE=" + date + " git -C '" + repo +
       "' commit -q -m 'change " + file + "'");
    return git_in(repo, "rev-parse HEAD");
  }

  GitMirrors open(Offline offline = Offline::no) {
    auto mirrors = GitMirrors::open(m_cache, {{"up", m_upstream + "/"}}, offline);
    EXPECT_TRUE(mirrors) << mirrors.error().message;
    return std::move(*mirrors);
  }

  TempDir m_dir{"gang-git-test-"};
  std::string m_upstream;
  std::string m_cache;
};

TEST_F(GitMirrorsTest, ResolvesABranchToItsCommitTreeAndCommitTime) {
  std::string repo = make_repo("a");
  auto mirrors = open();
  auto r = mirrors.resolve("up:a", "master");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->commit, git_in(repo, "rev-parse master"));
  EXPECT_EQ(r->tree, git_in(repo, "rev-parse 'master^{tree}'"));
  EXPECT_EQ(r->commit_time, k_first_time);
  EXPECT_TRUE(path_exists(*mirrors.mirror_path("up:a")));
  EXPECT_TRUE(path_exists(*mirrors.mirror_path("up:a") + ".gang-lock"));
}

TEST_F(GitMirrorsTest, ResolvesAnnotatedAndLightweightTagsAndFullShas) {
  std::string repo = make_repo("a");
  std::string first = git_in(repo, "rev-parse HEAD");
  git_in(repo, "tag -a -m 'release 1' v1.0");
  std::string second = commit(repo, "f", "2\n", k_first_time + 10);
  git_in(repo, "tag light");
  commit(repo, "f", "3\n", k_first_time + 20);
  auto mirrors = open();
  auto annotated = mirrors.resolve("up:a", "v1.0");
  ASSERT_TRUE(annotated) << annotated.error().message;
  EXPECT_EQ(annotated->commit, first);
  auto light = mirrors.resolve("up:a", "light");
  ASSERT_TRUE(light) << light.error().message;
  EXPECT_EQ(light->commit, second);
  EXPECT_EQ(light->commit_time, k_first_time + 10);
  auto sha = mirrors.resolve("up:a", second);
  ASSERT_TRUE(sha) << sha.error().message;
  EXPECT_EQ(sha->commit, second);
  EXPECT_EQ(sha->tree, light->tree);
}

TEST_F(GitMirrorsTest, FetchesARefThatAppearedUpstreamAfterTheMirrorWasMade) {
  std::string repo = make_repo("a");
  auto mirrors = open();
  ASSERT_TRUE(mirrors.resolve("up:a", "master"));
  std::string later = commit(repo, "new", "x\n", k_first_time + 100);
  git_in(repo, "branch feature");
  auto stale = mirrors.resolve_local_only("up:a", "feature");
  ASSERT_TRUE(stale);
  EXPECT_FALSE(stale->has_value());
  auto r = mirrors.resolve("up:a", "feature");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->commit, later);
  auto by_sha = mirrors.resolve("up:a", later);
  ASSERT_TRUE(by_sha);
  EXPECT_EQ(by_sha->commit_time, k_first_time + 100);
}

TEST_F(GitMirrorsTest, AMissingRefIsAnErrorNamingRefAndUrl) {
  make_repo("a");
  auto mirrors = open();
  auto r = mirrors.resolve("up:a", "no-such-branch");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("\"no-such-branch\" not found"), std::string::npos) << r.error().message;
  EXPECT_NE(r.error().message.find(m_upstream + "/a"), std::string::npos) << r.error().message;
  auto sha = mirrors.resolve("up:a", std::string(40, 'e'));
  EXPECT_FALSE(sha);
}

TEST_F(GitMirrorsTest, AMissingUpstreamIsAnError) {
  auto mirrors = open();
  auto r = mirrors.resolve("up:nothing-here", "master");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("cannot fetch"), std::string::npos) << r.error().message;
  EXPECT_FALSE(path_exists(*mirrors.mirror_path("up:nothing-here")));
}

// A local upstream that another user owns (a shared mirror directory):
// libgit2 refuses it as git does (CVE-2022-24765), with a message that can
// be beside the point ("config value 'safe.directory' was not found"), so
// gang's error names the owner and says how to trust it. GIT_CONFIG_GLOBAL is /dev/null here, so no safe.directory lets
// it through.
TEST_F(GitMirrorsTest, AnUpstreamOwnedByAnotherUserIsRefusedWithTheWayToTrustIt) {
  std::string repo = make_repo("a");
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the repository to another user";
  ASSERT_EQ(std::system(("chown -R 65534:65534 '" + repo + "'").c_str()), 0);
  auto mirrors = open();
  auto r = mirrors.resolve("up:a", "master");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find(repo + " belongs to uid 65534, not to this user (uid 0)"),
            std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("git config --global --add safe.directory PATH"),
            std::string::npos)
      << r.error().message;
}

TEST_F(GitMirrorsTest, OfflineNeverFetchesAndSaysSo) {
  std::string repo = make_repo("a");
  auto offline = open(Offline::yes);
  auto absent = offline.resolve("up:a", "master");
  ASSERT_FALSE(absent);
  EXPECT_NE(absent.error().message.find("offline"), std::string::npos) << absent.error().message;
  EXPECT_FALSE(path_exists(*offline.mirror_path("up:a")));

  ASSERT_TRUE(open().resolve("up:a", "master"));
  git_in(repo, "tag v2");
  auto known = offline.resolve("up:a", "master");
  ASSERT_TRUE(known) << known.error().message;
  auto missing = offline.resolve("up:a", "v2");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("\"v2\" is not in the mirror"), std::string::npos)
      << missing.error().message;
  EXPECT_NE(missing.error().message.find("offline"), std::string::npos);
  EXPECT_FALSE(offline.update("up:a"));
}

TEST_F(GitMirrorsTest, ResolveLocalOnlyNeverFetchesAndReportsUnknown) {
  std::string repo = make_repo("a");
  auto mirrors = open();
  auto none = mirrors.resolve_local_only("up:a", "master");
  ASSERT_TRUE(none) << none.error().message;
  EXPECT_FALSE(none->has_value());
  EXPECT_FALSE(path_exists(*mirrors.mirror_path("up:a")));
  ASSERT_TRUE(mirrors.update("up:a"));
  auto some = mirrors.resolve_local_only("up:a", "master");
  ASSERT_TRUE(some);
  ASSERT_TRUE(some->has_value());
  EXPECT_EQ((*some)->commit, git_in(repo, "rev-parse master"));
  EXPECT_FALSE(mirrors.resolve_local_only("bogus:a", "master"));
}

TEST_F(GitMirrorsTest, CheckoutWritesTheTreeWithAGitDirDetachedAtTheCommit) {
  std::string repo = make_repo("a", "hello\n");
  git_in(repo, "tag -a -m 'v1' v1");
  std::string sha = git_in(repo, "rev-parse HEAD");
  commit(repo, "README", "later\n", k_first_time + 5);
  auto mirrors = open();
  auto r = mirrors.resolve("up:a", "v1");
  ASSERT_TRUE(r);
  std::string dest = m_dir.path() + "/build/a.build";
  auto done = mirrors.checkout("up:a", r->commit, dest);
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_EQ(*read_file(dest + "/README"), "hello\n");
  EXPECT_EQ(git_in(dest, "rev-parse HEAD"), sha);
  EXPECT_EQ(git_in(dest, "describe --tags"), "v1");
  EXPECT_EQ(git_in(dest, "status --porcelain"), "");
}

// Every (device, inode) of the regular files under `root`, with a path each.
std::map<std::pair<dev_t, ino_t>, std::string> inodes_under(const std::string& root) {
  std::map<std::pair<dev_t, ino_t>, std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st;
    if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode))
      out.emplace(std::pair{st.st_dev, st.st_ino}, it->path().string());
  }
  return out;
}

TEST_F(GitMirrorsTest, ACheckoutSharesNoInodeWithTheMirror) {
  // A build step may write anything in its build directory, .git included;
  // no write there may reach the mirror every later checkout reads.
  std::string repo = make_repo("a", "hello\n");
  git_in(repo, "tag -a -m 'v1' v1");
  commit(repo, "more", std::string(200000, 'x'), k_first_time + 5);
  auto mirrors = open();
  auto r = mirrors.resolve("up:a", "master");
  ASSERT_TRUE(r);
  std::string mirror = *mirrors.mirror_path("up:a");
  git_in(mirror, "repack -q -a -d");  // objects in a pack, as after any fetch
  std::string dest = m_dir.path() + "/build/a.build";
  auto done = mirrors.checkout("up:a", r->commit, dest);
  ASSERT_TRUE(done) << done.error().message;
  auto in_mirror = inodes_under(mirror);
  ASSERT_FALSE(in_mirror.empty());
  for (const auto& [inode, path] : inodes_under(dest))
    EXPECT_FALSE(in_mirror.contains(inode))
        << path << " is the mirror's " << in_mirror[inode];
  // Still a whole repository: history and tags, as a build may ask.
  EXPECT_EQ(git_in(dest, "describe --tags"), "v1-1-g" + r->commit.substr(0, 7));
  EXPECT_EQ(git_in(dest, "status --porcelain"), "");
  // A build step that rewrites the pack leaves the mirror intact.
  sh("for f in '" + dest + "'/.git/objects/pack/*; do chmod u+w \"$f\"; : > \"$f\"; done");
  EXPECT_EQ(sh("git -C '" + mirror + "' fsck --no-dangling >/dev/null 2>&1 && echo clean"), "clean");
}

TEST_F(GitMirrorsTest, CheckoutIncludesSubmodulesAtTheirGitlinkCommits) {
  std::string sub = make_repo("sub", "sub one\n");
  std::string pinned = git_in(sub, "rev-parse HEAD");
  commit(sub, "README", "sub two\n", k_first_time + 50);  // upstream moves on; the gitlink does not
  std::string super = make_repo("super");
  ASSERT_TRUE(write_file_atomic(super + "/.gitmodules",
                                "[submodule \"libsub\"]\n\tpath = third_party/sub\n\turl = ../sub\n"));
  git_in(super, "update-index --add --cacheinfo 160000," + pinned + ",third_party/sub");
  commit(super, ".gitmodules", *read_file(super + "/.gitmodules"), k_first_time + 60);

  auto mirrors = open();
  auto r = mirrors.resolve("up:super", "master");
  ASSERT_TRUE(r) << r.error().message;
  std::string dest = m_dir.path() + "/co";
  auto done = mirrors.checkout("up:super", r->commit, dest);
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_EQ(*read_file(dest + "/third_party/sub/README"), "sub one\n");
  EXPECT_EQ(git_in(dest + "/third_party/sub", "rev-parse HEAD"), pinned);
  EXPECT_TRUE(path_exists(*mirrors.mirror_path("up:sub")));
}

// Every entry below `root` (symlinks themselves, `.git` entries but not
// their contents) with an mtime other than k_checkout_mtime, as
// "path=mtime" lines; also counts the entries seen.
std::string entries_with_other_mtimes(const std::string& root, int& seen) {
  namespace fs = std::filesystem;
  std::string wrong;
  auto check = [&](const fs::path& path) {
    struct stat st {};
    ++seen;
    if (::lstat(path.c_str(), &st) != 0) {
      wrong += path.string() + "=unreadable\n";
      return;
    }
    if (st.st_mtim.tv_sec != k_checkout_mtime || st.st_mtim.tv_nsec != 0)
      wrong += path.string() + "=" + std::to_string(st.st_mtim.tv_sec) + "\n";
  };
  check(root);
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    check(it->path());
    if (it->path().filename() == ".git") it.disable_recursion_pending();
  }
  return wrong;
}

TEST_F(GitMirrorsTest, CheckoutGivesEveryEntrySubmodulesAndSymlinksIncludedTheMagicMtime) {
  std::string sub = make_repo("sub", "sub\n");
  ASSERT_TRUE(make_dirs(sub + "/deep/er"));
  commit(sub, "deep/er/file.c", "int x;\n", k_first_time + 1);
  std::string pinned = git_in(sub, "rev-parse HEAD");
  std::string super = make_repo("super");
  ASSERT_TRUE(make_dirs(super + "/src/lib/inner"));
  commit(super, "src/lib/inner/a.c", "int a;\n", k_first_time + 2);
  ASSERT_EQ(::symlink("lib/inner/a.c", (super + "/src/link.c").c_str()), 0);
  ASSERT_EQ(::symlink("/nonexistent/dangling", (super + "/dangling").c_str()), 0);
  git_in(super, "add src/link.c dangling");
  ASSERT_TRUE(write_file_atomic(super + "/.gitmodules", "[submodule \"s\"]\n\tpath = third/s\n\turl = ../sub\n"));
  git_in(super, "update-index --add --cacheinfo 160000," + pinned + ",third/s");
  commit(super, ".gitmodules", *read_file(super + "/.gitmodules"), k_first_time + 3);

  auto mirrors = open();
  auto r = mirrors.resolve("up:super", "master");
  ASSERT_TRUE(r) << r.error().message;
  std::string dest = m_dir.path() + "/co";
  auto done = mirrors.checkout("up:super", r->commit, dest);
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_EQ(k_checkout_mtime, 1321009871);  // 2011-11-11 11:11:11 UTC, as ybd and morph

  struct stat st {};
  ASSERT_EQ(::lstat((dest + "/src/link.c").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  ASSERT_EQ(::lstat((dest + "/third/s/deep/er/file.c").c_str(), &st), 0);
  int seen = 0;
  EXPECT_EQ(entries_with_other_mtimes(dest, seen), "");
  EXPECT_GE(seen, 15);  // root, .git, README, .gitmodules, src/..., dangling, third/s/...
  // Nothing inside the mirror (whose objects a checkout hard-links) was touched.
  ASSERT_EQ(::stat((*mirrors.mirror_path("up:super") + "/HEAD").c_str(), &st), 0);
  EXPECT_NE(st.st_mtim.tv_sec, k_checkout_mtime);
  EXPECT_EQ(git_in(dest, "status --porcelain"), "");
  // SOURCE_DATE_EPOCH stays the commit time.
  EXPECT_EQ(r->commit_time, k_first_time + 3);
}

// An autotools-shaped tree: generated files (configure, aclocal.m4) come
// before their sources (configure.ac, m4/*.m4) in path order, so a checkout
// that writes files one by one makes the sources newer unless it gives them
// all one mtime. The many files in between make sure the writes span more
// than the file system's timestamp granularity.
TEST_F(GitMirrorsTest, CheckedOutGeneratedFilesAreNotOlderThanTheirSourcesForMake) {
  std::string repo = make_repo("auto");
  ASSERT_TRUE(write_file_atomic(repo + "/Makefile",
                                "configure: configure.ac aclocal.m4\n\ttouch regenerated && touch configure\n"
                                "aclocal.m4: configure.ac m4/ax.m4\n\ttouch regenerated && touch aclocal.m4\n"));
  ASSERT_TRUE(write_file_atomic(repo + "/aclocal.m4", "dnl generated\n"));
  ASSERT_TRUE(write_file_atomic(repo + "/configure", "#!/bin/sh\n"));
  sh("mkdir '" + repo + "/configure.a' && cd '" + repo + "/configure.a' && i=0 && while [ $i -lt 300 ]; do " +
     "echo $i >f$i; i=$((i + 1)); done");
  ASSERT_TRUE(write_file_atomic(repo + "/configure.ac", "AC_INIT\n"));
  ASSERT_TRUE(make_dirs(repo + "/m4"));
  ASSERT_TRUE(write_file_atomic(repo + "/m4/ax.m4", "dnl source\n"));
  git_in(repo, "add -A");
  commit(repo, "Makefile", *read_file(repo + "/Makefile"), k_first_time + 9);

  auto mirrors = open();
  auto r = mirrors.resolve("up:auto", "master");
  ASSERT_TRUE(r) << r.error().message;
  std::string dest = m_dir.path() + "/auto.build";
  auto done = mirrors.checkout("up:auto", r->commit, dest);
  ASSERT_TRUE(done) << done.error().message;
  auto [status, out] = testing::run_command("make -C '" + dest + "' configure 2>&1");
  EXPECT_EQ(status, 0) << out;
  EXPECT_NE(out.find("is up to date"), std::string::npos) << out;
  EXPECT_FALSE(path_exists(dest + "/regenerated")) << out;
}

TEST_F(GitMirrorsTest, DefinitionSubmoduleUrlsOverrideGitmodules) {
  std::string sub = make_repo("real-sub", "overridden\n");
  std::string pinned = git_in(sub, "rev-parse HEAD");
  std::string super = make_repo("super");
  ASSERT_TRUE(write_file_atomic(super + "/.gitmodules",
                                "[submodule \"s\"]\n\tpath = s\n\turl = file:///nonexistent/gone\n"));
  git_in(super, "update-index --add --cacheinfo 160000," + pinned + ",s");
  commit(super, ".gitmodules", *read_file(super + "/.gitmodules"), k_first_time + 60);
  auto mirrors = open();
  auto r = mirrors.resolve("up:super", "master");
  ASSERT_TRUE(r);

  auto broken = mirrors.checkout("up:super", r->commit, m_dir.path() + "/broken");
  ASSERT_FALSE(broken);
  EXPECT_NE(broken.error().message.find("submodule s"), std::string::npos) << broken.error().message;

  std::string dest = m_dir.path() + "/co";
  auto done = mirrors.checkout("up:super", r->commit, dest, {{"s", "up:real-sub"}});
  ASSERT_TRUE(done) << done.error().message;
  EXPECT_EQ(*read_file(dest + "/s/README"), "overridden\n");
}

TEST_F(GitMirrorsTest, AStaleGitLockLeftInTheMirrorDoesNotBlockFetchesForever) {
  std::string repo = make_repo("a");
  auto mirrors = open();
  ASSERT_TRUE(mirrors.resolve("up:a", "master"));
  std::string mirror = *mirrors.mirror_path("up:a");
  ASSERT_TRUE(write_file_atomic(mirror + "/refs/heads/master.lock", ""));  // a writer died here
  std::string later = commit(repo, "f", "new\n", k_first_time + 7);
  git_in(repo, "tag after-crash");
  auto r = mirrors.resolve("up:a", "after-crash");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->commit, later);
  EXPECT_EQ(git_in(mirror, "rev-parse master"), later);
  EXPECT_FALSE(path_exists(mirror + "/refs/heads/master.lock"));
}

// Not a test on its own: the body each racing process runs (exec'd by
// TwoProcessesRacingOnOneMirrorBothSucceed with the parameters in the
// environment), so that no child inherits libgit2 state across fork().
TEST(GitMirrorsRaceHelper, DISABLED_ResolveAndCheckOutFromEnvironment) {
  const char* cache = std::getenv("GANG_GIT_RACE_CACHE");
  const char* upstream = std::getenv("GANG_GIT_RACE_UPSTREAM");
  const char* ref = std::getenv("GANG_GIT_RACE_REF");
  const char* dest = std::getenv("GANG_GIT_RACE_DEST");
  ASSERT_TRUE(cache && upstream && ref && dest);
  auto mirrors = GitMirrors::open(cache, {{"up", std::string(upstream) + "/"}}, Offline::no);
  ASSERT_TRUE(mirrors) << mirrors.error().message;
  auto r = mirrors->resolve("up:a", ref);
  ASSERT_TRUE(r) << r.error().message;
  auto done = mirrors->checkout("up:a", r->commit, dest);
  ASSERT_TRUE(done) << done.error().message;
}

// Spawns one racer per environment, each logging to `<log_dir>/racer-N.log`;
// returns how many failed.
int run_racers(const std::vector<std::vector<std::string>>& envs, const std::string& log_dir) {
  std::vector<pid_t> pids;
  for (const auto& extra : envs) {
    std::vector<std::string> storage(extra);
    for (char** e = environ; *e != nullptr; ++e) storage.emplace_back(*e);
    std::vector<char*> envp;
    for (auto& s : storage) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string exe = "/proc/self/exe";
    std::string filter = "--gtest_filter=GitMirrorsRaceHelper.*";
    std::string disabled = "--gtest_also_run_disabled_tests";
    std::string brief = "--gtest_brief=1";
    char* argv[] = {exe.data(), filter.data(), disabled.data(), brief.data(), nullptr};
    std::string log = log_dir + "/racer-" + std::to_string(pids.size()) + ".log";
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    pid_t pid = 0;
    int rc = ::posix_spawn(&pid, "/proc/self/exe", &actions, nullptr, argv, envp.data());
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) return -1;
    pids.push_back(pid);
  }
  int failures = 0;
  for (std::size_t i = 0; i < pids.size(); ++i) {
    int status = 0;
    if (::waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      ++failures;
      auto log = read_file(log_dir + "/racer-" + std::to_string(i) + ".log");
      ADD_FAILURE() << "racer " << i << " failed:\n" << (log ? *log : log.error().message);
    }
  }
  return failures;
}

TEST_F(GitMirrorsTest, ProcessesRacingToCreateAndFetchOneMirrorAllSucceed) {
  std::string repo = make_repo("a");
  for (int i = 0; i < 30; ++i) commit(repo, "f" + std::to_string(i), std::string(1000 + i, 'x'), k_first_time + i);
  constexpr int k_racers = 4;
  auto envs_for = [&](const std::string& ref, const std::string& round) {
    std::vector<std::vector<std::string>> envs;
    for (int i = 0; i < k_racers; ++i)
      envs.push_back({"GANG_GIT_RACE_CACHE=" + m_cache, "GANG_GIT_RACE_UPSTREAM=" + m_upstream,
                      "GANG_GIT_RACE_REF=" + ref,
                      "GANG_GIT_RACE_DEST=" + m_dir.path() + "/" + round + std::to_string(i)});
    return envs;
  };
  EXPECT_EQ(run_racers(envs_for("master", "clone"), m_dir.path()), 0);  // all race to create the mirror
  std::string later = commit(repo, "late", "late\n", k_first_time + 1000);
  git_in(repo, "tag -a -m late v-late");
  EXPECT_EQ(run_racers(envs_for("v-late", "fetch"), m_dir.path()), 0);  // all race to fetch the new tag
  for (int i = 0; i < k_racers; ++i)
    EXPECT_EQ(*read_file(m_dir.path() + "/fetch" + std::to_string(i) + "/late"), "late\n");

  auto mirrors = open(Offline::yes);
  auto r = mirrors.resolve("up:a", "v-late");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(r->commit, later);
  std::string listing = sh("ls -a '" + m_cache + "/gits'");
  EXPECT_EQ(listing.find(".tmp-"), std::string::npos) << listing;
  sh("git --git-dir='" + *mirrors.mirror_path("up:a") + "' fsck --no-progress --strict 2>&1");
}

TEST_F(GitMirrorsTest, DemoReposResolveThroughTheRelativeAliasInGangConf) {
  std::string definitions = std::string(GANG_SOURCE_DIR) + "/examples/definitions";
  auto config = load_config(definitions);
  ASSERT_TRUE(config) << config.error().message;
  ASSERT_EQ(config->aliases.count("demo"), 1u);
  // The alias is relative to the definitions directory: put the demo
  // repositories beside a stand-in definitions directory in the scratch area.
  std::string fake_definitions = m_dir.path() + "/examples/definitions";
  std::string script = std::string(GANG_SOURCE_DIR) + "/scripts/make-demo-repos";
  sh("GANG_DEMO_GITS='" + m_dir.path() + "/examples/git' '" + script + "' >/dev/null");
  auto mirrors = GitMirrors::open(m_cache, config->aliases, Offline::no, fake_definitions);
  ASSERT_TRUE(mirrors);
  EXPECT_EQ(*mirrors->expand_url("demo:hello"), m_dir.path() + "/examples/git/hello");
  for (const char* chunk : {"libgreet", "libcount", "hello", "wordcount", "banner"}) {
    auto r = mirrors->resolve(std::string("demo:") + chunk, "master");
    ASSERT_TRUE(r) << chunk << ": " << r.error().message;
    EXPECT_GE(r->commit_time, 1704067200) << chunk;  // make-demo-repos' fixed dates
  }
  auto hello = mirrors->resolve("demo:hello", "master");
  std::string dest = m_dir.path() + "/hello.build";
  ASSERT_TRUE(mirrors->checkout("demo:hello", hello->commit, dest));
  EXPECT_EQ(*read_file(dest + "/hello.c"),
            *read_file(std::string(GANG_SOURCE_DIR) + "/examples/sources/hello/hello.c"));
  EXPECT_EQ(::access((dest + "/configure").c_str(), X_OK), 0);
  // A second run of the script changes nothing.
  sh("GANG_DEMO_GITS='" + m_dir.path() + "/examples/git' '" + script + "' >/dev/null");
  EXPECT_EQ(git_in(m_dir.path() + "/examples/git/hello", "rev-parse master"), hello->commit);
}

}  // namespace
}  // namespace gang
