// `gang cache ...` end to end, through the real gang binary.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>

#include "cache/artifact_cache.hpp"
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
  CliRun gang(const std::string& args) {
    std::string out = dir.path() + "/out.txt", err = dir.path() + "/err.txt";
    std::string command = std::string(GANG_BINARY) + " cache " + args + " --cache '" + root +
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
  EXPECT_NE(bad.out.find("dropped artifact: a"), std::string::npos) << bad.out;
  EXPECT_NE(bad.err.find("gang: error: "), std::string::npos) << bad.err;
  EXPECT_EQ(gang("verify").status, 0) << "bad entries were dropped";

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

}  // namespace
}  // namespace gang
