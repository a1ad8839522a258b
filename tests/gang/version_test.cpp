// gang --version: the project version and the commit it was built from,
// from git at build time or, in a `git archive` tarball, from
// cmake/commit.txt (see cmake/version.cmake).
#include <gtest/gtest.h>

#include <string>

#include "gang/version.hpp"
#include "tests/support/run_command.hpp"
#include "util/fs.hpp"

namespace gang {
namespace {

using testing::run_command;

std::string trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

TEST(GangVersion, PrintsTheVersionAndTheCommitItWasBuiltFrom) {
  auto r = run_command(std::string(GANG_BINARY) + " --version");
  ASSERT_EQ(r.status, 0) << r.output;
  // The binary and this test were built together.
  EXPECT_EQ(trim(r.output), std::string(version_string()));
  std::size_t at = r.output.find("(commit ");
  ASSERT_TRUE(r.output.starts_with("gang ") && at != std::string::npos) << r.output;
  std::string commit = r.output.substr(at + 8, 12);
  // In a git checkout, it names a real commit of this repository.
  if (run_command("git -C " + std::string(GANG_SOURCE_DIR) + " rev-parse --git-dir >/dev/null 2>&1").status == 0) {
    EXPECT_EQ(run_command("git -C " + std::string(GANG_SOURCE_DIR) + " cat-file -e " + commit +
                          "^{commit} 2>&1").status,
              0)
        << r.output;
  }
}

// Writes what cmake/version.cmake generates for a source tree `src` without .git.
std::string generate(const std::string& src, const std::string& out) {
  auto r = run_command("cmake -DSRC=" + src + " -DOUT=" + out + " -DVERSION=1.2.3 -P " +
                       std::string(GANG_SOURCE_DIR) + "/cmake/version.cmake 2>&1");
  EXPECT_EQ(r.status, 0) << r.output;
  return read_file(out).value_or("");
}

TEST(GangVersion, ATarballWithoutGitTakesTheCommitGitArchiveWrote) {
  TempDir dir;
  ASSERT_TRUE(make_dirs(dir.path() + "/src/cmake"));
  ASSERT_TRUE(write_file(dir.path() + "/src/cmake/commit.txt", "0123456789ab\n"));
  EXPECT_NE(generate(dir.path() + "/src", dir.path() + "/v.cpp").find("\"gang 1.2.3 (commit 0123456789ab)\""),
            std::string::npos);
  // Not made by git archive: the placeholder is still there.
  ASSERT_TRUE(write_file(dir.path() + "/src/cmake/commit.txt", "$Format:%h$\n"));
  EXPECT_NE(generate(dir.path() + "/src", dir.path() + "/w.cpp").find("\"gang 1.2.3 (commit unknown)\""),
            std::string::npos);
}

}  // namespace
}  // namespace gang
