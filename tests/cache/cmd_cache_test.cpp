// `gang cache ...` end to end, through the real gang binary.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <sstream>

#include "cache/artifact_cache.hpp"
#include "tests/support/capabilities.hpp"
#include "tests/support/run_command.hpp"
#include "util/fs.hpp"
#include "util/sha256.hpp"

namespace gang {
namespace {

struct CliRun {
  int status = -1;
  std::string out, err;
};

class CmdCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root = dir.path() + "/cache";
    src = dir.path() + "/src";
    ASSERT_TRUE(make_dirs(src + "/bin"));
    ASSERT_TRUE(write_file_atomic(src + "/bin/tool", "tool bytes", 0755));
  }
  void TearDown() override {
    if (HasFailure()) dir.keep();
  }
  // Runs `gang cache ARGS --cache ROOT`, prefixed by `as` (e.g. a setpriv command).
  CliRun gang(const std::string& args, const std::string& as = "") {
    std::string out = dir.path() + "/out.txt", err = dir.path() + "/err.txt";
    std::string command = as + std::string(GANG_BINARY) + " cache " + args + " --cache '" + root +
                          "' >'" + out + "' 2>'" + err + "'";
    int raw = std::system(command.c_str());
    CliRun r;
    r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
    r.out = read_file(out).value_or("");
    r.err = read_file(err).value_or("");
    return r;
  }

  TempDir dir{"gang-cmd-cache-"};
  std::string root, src;
};

TEST_F(CmdCacheTest, InsertLsShowAndForgetAKey) {
  auto inserted = gang("insert tool.0123 '" + src + "'");
  ASSERT_EQ(inserted.status, 0) << inserted.err;
  EXPECT_EQ(gang("insert tool.0123 '" + src + "'").out, "Bah! already present: tool.0123\n");

  auto ls = gang("ls");
  ASSERT_EQ(ls.status, 0) << ls.err;
  EXPECT_NE(ls.out.find("tool.0123"), std::string::npos);
  auto json = gang("ls --json");
  ASSERT_EQ(json.status, 0) << json.err;
  EXPECT_NE(json.out.find("\"key\": \"tool.0123\""), std::string::npos) << json.out;
  EXPECT_NE(json.out.find("\"files\": 1"), std::string::npos) << json.out;

  auto show = gang("show tool.0123");
  ASSERT_EQ(show.status, 0) << show.err;
  EXPECT_NE(show.out.find("files:     1"), std::string::npos) << show.out;

  auto staged = gang("stage tool.0123 '" + dir.path() + "/staged' --copy --verify");
  ASSERT_EQ(staged.status, 0) << staged.err;
  EXPECT_EQ(read_file(dir.path() + "/staged/bin/tool").value_or(""), "tool bytes");

  auto forgot = gang("forget tool.0123");
  ASSERT_EQ(forgot.status, 0) << forgot.err;
  auto missing = gang("show tool.0123");
  EXPECT_NE(missing.status, 0);
  EXPECT_TRUE(missing.err.starts_with("gang: error: ")) << missing.err;
  EXPECT_NE(gang("forget tool.0123").status, 0);
}

TEST_F(CmdCacheTest, StageCopiesByDefaultWithRecordedModesAndLinksOnlyWithLink) {
  ASSERT_TRUE(make_dirs(src + "/etc"));
  ASSERT_TRUE(write_file_atomic(src + "/etc/host_key", "secret", 0600));
  ASSERT_EQ(gang("insert k '" + src + "'").status, 0);
  struct stat root_st;
  ASSERT_EQ(::stat(root.c_str(), &root_st), 0);
  EXPECT_EQ(root_st.st_mode & 07777, 0700u) << "the cache root must be private";

  std::string blob = root + "/objects/" + sha256_hex("tool bytes").substr(0, 2) + "/" +
                     sha256_hex("tool bytes") + ".x";
  struct stat blob_st, staged_st;
  ASSERT_EQ(::stat(blob.c_str(), &blob_st), 0);
  auto staged = gang("stage k '" + dir.path() + "/copy'");
  ASSERT_EQ(staged.status, 0) << staged.err;
  ASSERT_EQ(::stat((dir.path() + "/copy/bin/tool").c_str(), &staged_st), 0);
  EXPECT_NE(staged_st.st_ino, blob_st.st_ino) << "a default stage must not expose the cache's blobs";
  ASSERT_EQ(::stat((dir.path() + "/copy/etc/host_key").c_str(), &staged_st), 0);
  EXPECT_EQ(staged_st.st_mode & 07777, 0600u);
  // An edit to the staged copy leaves the cache alone.
  ASSERT_EQ(::chmod((dir.path() + "/copy/bin/tool").c_str(), 0755), 0);
  FILE* edit = std::fopen((dir.path() + "/copy/bin/tool").c_str(), "w");  // in place
  ASSERT_NE(edit, nullptr);
  std::fputs("edited", edit);
  std::fclose(edit);
  EXPECT_EQ(read_file(blob).value_or(""), "tool bytes");

  ASSERT_EQ(gang("stage k '" + dir.path() + "/link' --link").status, 0);
  ASSERT_EQ(::stat((dir.path() + "/link/bin/tool").c_str(), &staged_st), 0);
  EXPECT_EQ(staged_st.st_ino, blob_st.st_ino);
}

TEST_F(CmdCacheTest, VerifyFailsOnACorruptBlobAndGcHonoursMaxSize) {
  ASSERT_EQ(gang("insert a '" + src + "'").status, 0);
  auto ok = gang("verify");
  EXPECT_EQ(ok.status, 0) << ok.err;
  std::string blob = root + "/objects/" + sha256_hex("tool bytes").substr(0, 2) + "/" +
                     sha256_hex("tool bytes") + ".x";
  ASSERT_TRUE(path_exists(blob));
  ASSERT_TRUE(write_file_atomic(blob, "tampered", 0555));
  auto bad = gang("verify");
  EXPECT_EQ(bad.status, 1);
  EXPECT_EQ(bad.out.find("{"), std::string::npos) << "plain lines without --json";
  EXPECT_NE(bad.out.find("dropped artifact: a"), std::string::npos) << bad.out;
  EXPECT_NE(bad.err.find("gang: error: "), std::string::npos) << bad.err;
  auto again = gang("verify --json");
  EXPECT_EQ(again.status, 0) << "bad entries were dropped";
  EXPECT_NE(again.out.find("\"ok\": true"), std::string::npos) << again.out;
  EXPECT_NE(again.out.find("\"dropped_artifacts\": []"), std::string::npos) << again.out;

  ASSERT_EQ(gang("insert b '" + src + "'").status, 0);
  auto gc = gang("gc --max-size 0");
  ASSERT_EQ(gc.status, 0) << gc.err;
  EXPECT_NE(gc.out.find("evicted b"), std::string::npos) << gc.out;
  auto ls = gang("ls --json");
  EXPECT_EQ(ls.out, "[]\n");
}

TEST_F(CmdCacheTest, BadUsageIsAnError) {
  auto unknown = gang("frobnicate");
  EXPECT_NE(unknown.status, 0);
  EXPECT_TRUE(unknown.err.starts_with("gang: error: unknown cache command")) << unknown.err;
  auto size = gang("gc --max-size banana");
  EXPECT_NE(size.status, 0);
  EXPECT_NE(size.err.find("invalid size"), std::string::npos) << size.err;
  EXPECT_NE(gang("show").status, 0);
}

TEST_F(CmdCacheTest, LsHeadingsLineUpWithTheirColumns) {
  std::string long_key = "hello." + sha256_hex("hello");
  ASSERT_EQ(gang("insert " + long_key + " '" + src + "'").status, 0);
  ASSERT_EQ(gang("insert a.1 '" + src + "'").status, 0);
  auto ls = gang("ls");
  ASSERT_EQ(ls.status, 0) << ls.err;
  std::istringstream lines(ls.out);
  std::string header, row;
  ASSERT_TRUE(std::getline(lines, header));
  for (const char* heading : {"SIZE", "FILES", "BUILD"}) {
    std::size_t end = header.find(heading) + std::string(heading).size();
    std::istringstream rows(ls.out.substr(header.size() + 1));
    int n = 0;
    while (std::getline(rows, row)) {
      ++n;
      // Right-aligned columns: each value ends where its heading ends.
      ASSERT_GT(row.size(), end) << row;
      EXPECT_NE(row[end - 1], ' ') << heading << " in\n" << ls.out;
      EXPECT_EQ(row[end], ' ') << heading << " in\n" << ls.out;
    }
    EXPECT_EQ(n, 2);
  }
  std::size_t last_used = header.find("LAST USED");
  std::istringstream rows(ls.out.substr(header.size() + 1));
  while (std::getline(rows, row)) EXPECT_TRUE(std::isdigit(row[last_used])) << ls.out;
}

// A kept sandbox as a failed build leaves it, with the mode-000 overlayfs
// work directory (not empty, as after a killed build) that plain `rm -rf`
// cannot remove as an unprivileged owner.
void make_kept_sandbox(const std::string& path, uid_t owner, std::int64_t failed_at_s) {
  ASSERT_TRUE(make_dirs(path + "/overlay/0/work/work/#17"));
  ASSERT_TRUE(make_dirs(path + "/overlay/0/upper/usr/bin"));
  ASSERT_TRUE(write_file(path + "/sandbox.spec", "name: x\n"));
  std::string parent = path.substr(0, path.rfind('/'));
  ASSERT_EQ(testing::run_command("chown -R " + std::to_string(owner) + ":" + std::to_string(owner) +
                                 " '" + path + "' && chown " + std::to_string(owner) + " '" + parent + "'")
                .status,
            0);
  ASSERT_EQ(::chmod((path + "/overlay/0/work/work").c_str(), 0), 0);
  struct timespec times[2] = {{failed_at_s, 0}, {failed_at_s, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, (path + "/sandbox.spec").c_str(), times, 0), 0);
}

TEST_F(CmdCacheTest, GcRemovesKeptSandboxesOfFailedBuildsOlderThanKeepFailed) {
  ASSERT_EQ(gang("ls").status, 0);  // creates the cache
  std::int64_t now = std::time(nullptr);
  make_kept_sandbox(root + "/failed/old", ::geteuid(), now - 8 * 24 * 3600);
  make_kept_sandbox(root + "/failed/recent", ::geteuid(), now - 3600);
  auto gc = gang("gc");
  ASSERT_EQ(gc.status, 0) << gc.err;
  EXPECT_NE(gc.out.find("removed 1 kept sandbox of failed builds older than 7d: old\n"), std::string::npos)
      << gc.out;
  EXPECT_FALSE(path_exists(root + "/failed/old"));
  EXPECT_TRUE(path_exists(root + "/failed/recent/sandbox.spec"));
  auto hours = gang("gc --keep-failed 2h");
  EXPECT_NE(hours.out.find("removed 0 kept sandboxes"), std::string::npos) << hours.out;
  EXPECT_TRUE(path_exists(root + "/failed/recent/sandbox.spec"));
  auto all = gang("gc --keep-failed 30m");
  ASSERT_EQ(all.status, 0) << all.err;
  EXPECT_FALSE(path_exists(root + "/failed/recent"));
  auto bad = gang("gc --keep-failed 7x");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("--keep-failed: expected an age like 7d"), std::string::npos) << bad.err;
}

TEST_F(CmdCacheTest, CleanRemovesEverythingAsTheCachesUnprivilegedOwner) {
  // As root, the cache belongs to an unprivileged user who runs gang cache
  // clean (setpriv); otherwise the caller is that user.
  uid_t owner = ::geteuid() == 0 ? testing::k_nobody : ::geteuid();
  std::string as = ::geteuid() == 0 ? "setpriv --reuid=65534 --regid=65534 --clear-groups " : "";
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  std::string home = dir.path() + "/home";
  ASSERT_TRUE(make_dirs(home));
  ASSERT_EQ(::chown(home.c_str(), owner, owner), 0);
  root = home + "/cache";
  ASSERT_EQ(gang("ls", as).status, 0);  // the owner creates the cache
  make_kept_sandbox(root + "/failed/broken", owner, std::time(nullptr));
  ASSERT_TRUE(make_dirs(root + "/tmp/broken.1-2-abcd.XYZ"));
  ASSERT_EQ(::chown((root + "/tmp/broken.1-2-abcd.XYZ").c_str(), owner, owner), 0);
  // The problem being solved: plain rm -rf fails on such a sandbox.
  make_kept_sandbox(home + "/copy", owner, std::time(nullptr));
  auto rm = testing::run_command(as + "rm -rf '" + home + "/copy' 2>&1");
  EXPECT_NE(rm.status, 0) << "rm -rf unexpectedly removed a mode-000 overlay work directory";

  auto clean = gang("clean", as);
  ASSERT_EQ(clean.status, 0) << clean.err;
  EXPECT_EQ(clean.out, "removed the cache at " + root + " (with 1 kept sandbox of failed builds)\n");
  EXPECT_FALSE(path_exists(root));
  auto again = gang("clean", as);
  EXPECT_EQ(again.status, 0) << "nothing to remove is fine";
  EXPECT_EQ(again.out, "no cache at " + root + ": nothing to remove\n");
}

TEST_F(CmdCacheTest, CleanRefusesADirectoryThatIsNotACache) {
  root = dir.path() + "/precious";
  ASSERT_TRUE(make_dirs(root));
  ASSERT_TRUE(write_file(root + "/thesis.tex", "important\n"));
  auto clean = gang("clean");
  EXPECT_NE(clean.status, 0);
  EXPECT_NE(clean.err.find("does not look like a gang cache"), std::string::npos) << clean.err;
  EXPECT_TRUE(path_exists(root + "/thesis.tex"));
}

}  // namespace
}  // namespace gang
