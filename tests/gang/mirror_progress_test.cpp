// Tests for gang/mirror_progress: the lines users see while gang mirrors git
// repositories, from real clones and fetches of real local repositories, and
// end to end through `gang build` on a fresh cache.
#include "gang/mirror_progress.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <regex>

#include "tests/gang/gang_process.hpp"
#include "tests/support/run_command.hpp"
#include "util/fs.hpp"

namespace gang {
namespace {

const std::string k_git_env =
    "GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t ";

// A git repository at `path` with one commit holding `blob_bytes` of random
// data (which does not compress) and a small file.
bool make_repo(const std::string& path, std::size_t blob_bytes) {
  return testing::run_command("set -e; mkdir -p " + path + "; cd " + path +
                              "; git init -q -b master; head -c " + std::to_string(blob_bytes) +
                              " /dev/urandom > blob; echo one > file; git add .; " + k_git_env +
                              "git commit -q -m one 2>&1")
             .status == 0;
}

class MirrorProgressTest : public ::testing::Test {
 protected:
  void SetUp() override { root = dir.path(); }
  void TearDown() override {
    if (HasFailure()) dir.keep();
  }
  TempDir dir{"gang-mirror-progress-test-"};
  std::string root;
};

TEST(FormatBytes, UsesBinaryUnitsWithOneDecimal) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(12ull * 1024 * 1024 + 300 * 1024), "12.3 MiB");
  EXPECT_EQ(format_bytes(3ull << 30), "3.0 GiB");
}

TEST_F(MirrorProgressTest, ACloneAndARefreshAreLoggedPerRepositoryWithBytesAndTime) {
  ASSERT_TRUE(make_repo(root + "/repos/lib", 512 * 1024));
  auto git = GitMirrors::open(root + "/cache", {{"test", root + "/repos/"}}, Offline::no);
  ASSERT_TRUE(git) << git.error().to_string();
  std::vector<std::string> lines;
  auto url = git->expand_url("test:lib");
  ASSERT_TRUE(url);
  std::vector<std::string> statuses;
  MirrorProgress progress({{*url, "test:lib"}},
                          {[&](const std::string& line) { lines.push_back(line); },
                           [&](const std::string& status) { statuses.push_back(status); }});
  git->set_fetch_observer(progress.observer());

  auto resolved = git->resolve("test:lib", "master");
  ASSERT_TRUE(resolved) << resolved.error().to_string();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "Mirroring test:lib");
  EXPECT_TRUE(std::regex_match(lines[1],
                               std::regex(R"(Mirrored test:lib: [0-9.]+ KiB in [0-9]+\.[0-9] s)")))
      << lines[1];
  EXPECT_GE(progress.bytes(), 512u * 1024) << "the random blob was transferred";
  // The status line shows the bytes so far while it runs, and is cleared at the end.
  ASSERT_FALSE(statuses.empty());
  EXPECT_EQ(statuses.back(), "");
  for (std::size_t i = 0; i + 1 < statuses.size(); ++i)
    EXPECT_TRUE(statuses[i].starts_with("Mirroring test:lib: ")) << statuses[i];

  // Resolving again needs no fetch and logs nothing.
  ASSERT_TRUE(git->resolve("test:lib", "master"));
  EXPECT_EQ(lines.size(), 2u);

  // A refresh of an up-to-date mirror says so, with what it received.
  ASSERT_TRUE(git->update("test:lib"));
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[2], "Refreshing mirror for test:lib");
  EXPECT_TRUE(lines[3].starts_with("Refreshed mirror for test:lib: ")) << lines[3];
  EXPECT_EQ(progress.transfers(), 2);
}

TEST_F(MirrorProgressTest, AFailedCloneIsLoggedAndAnUnknownUrlIsShownAsItIs) {
  auto git = GitMirrors::open(root + "/cache", {{"test", root + "/repos/"}}, Offline::no);
  ASSERT_TRUE(git);
  std::vector<std::string> lines;
  MirrorProgress progress({}, {[&](const std::string& line) { lines.push_back(line); }, {}});
  git->set_fetch_observer(progress.observer());
  EXPECT_FALSE(git->resolve("test:missing", "master"));
  auto url = git->expand_url("test:missing");
  ASSERT_TRUE(url);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0], "Mirroring " + *url);
  EXPECT_TRUE(lines[1].starts_with("Failed to mirror " + *url + " after ")) << lines[1];
}

// `gang build` on a fresh cache mirrors the repository before starting the
// workers: it says so (repository, bytes, time), to the terminal and to
// --log, and the summary's total elapsed includes that time.
TEST_F(MirrorProgressTest, GangBuildLogsMirroringAndCountsItInTheTotalElapsed) {
  const std::string repos = root + "/repos";
  ASSERT_TRUE(make_repo(repos + "/big", 8 * 1024 * 1024));
  const std::string defs = root + "/defs";
  ASSERT_TRUE(make_dirs(defs + "/strata"));
  ASSERT_TRUE(write_file_atomic(defs + "/VERSION", "version: 9\n"));
  ASSERT_TRUE(write_file_atomic(defs + "/DEFAULTS", "build-systems:\n  manual: {}\n"));
  ASSERT_TRUE(write_file_atomic(defs + "/gang.conf", "aliases:\n  test: " + repos + "/\n"));
  ASSERT_TRUE(write_file_atomic(
      defs + "/strata/s.morph",
      "name: s\nkind: stratum\nchunks:\n"
      "- name: big\n  repo: test:big\n  ref: master\n"
      "  install-commands:\n"
      "  - mkdir -p \"$DESTDIR$PREFIX/share\" && cp file \"$DESTDIR$PREFIX/share/\"\n"));
  const std::string log = root + "/gang.log";
  auto run = testing::run_gang({"build", defs + "/strata/s.morph", "--cache", root + "/cache",
                                "--instances", "1", "--max-jobs", "1", "--log", log},
                               root);
  ASSERT_EQ(run.status, 0) << run.output;
  std::smatch mirrored;
  ASSERT_TRUE(std::regex_search(
      run.output, mirrored, std::regex(R"(\] Mirrored test:big: ([0-9.]+) MiB in ([0-9.]+) s)")))
      << run.output;
  EXPECT_GE(std::stod(mirrored[1]), 8.0);
  const double mirror_seconds = std::stod(mirrored[2]);
  auto mirroring_at = run.output.find("] Mirroring test:big\n");
  ASSERT_NE(mirroring_at, std::string::npos) << run.output;
  EXPECT_LT(mirroring_at, run.output.find("Worker started")) << "mirrored before the workers start";
  std::smatch total, built;
  ASSERT_TRUE(
      std::regex_search(run.output, total, std::regex(R"(total elapsed \S+ \(([0-9.]+) s\))")))
      << run.output;
  ASSERT_TRUE(std::regex_search(
      run.output, built, std::regex(R"(instance 1: built [0-9]+, Bah! [0-9]+, busy ([0-9.]+) s)")))
      << run.output;
  // Mirroring and building happened one after the other within the run
  // (each figure is rounded to 0.1 s).
  EXPECT_GE(std::stod(total[1]) + 0.15, mirror_seconds + std::stod(built[1])) << run.output;
  std::string logged = testing::slurp(log);
  EXPECT_NE(logged.find("] Mirroring test:big\n"), std::string::npos) << logged;
  EXPECT_NE(logged.find("] Mirrored test:big: "), std::string::npos) << logged;

  // Next time the mirror is refreshed, and says so.
  auto again = testing::run_gang({"build", defs + "/strata/s.morph", "--cache", root + "/cache",
                                  "--instances", "1", "--max-jobs", "1"},
                                 root);
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_EQ(testing::count_lines_with(again.output, "] Refreshing mirror for test:big"), 1)
      << again.output;
  EXPECT_EQ(testing::count_lines_with(again.output, "Mirroring"), 0) << again.output;
}

}  // namespace
}  // namespace gang
