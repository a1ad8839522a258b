// Specs for the build directories under <cache>/tmp (cache/build_dirs.hpp):
// their names carry their creator; remove_dead() removes a dead creator's
// directory, keeps a live one's, and never enters or removes what is mounted
// in one. Real directories, real processes and (where it can) a real mount.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>
#include <string>
#include <vector>

#include "cache/build_dirs.hpp"
#include "tests/support/capabilities.hpp"
#include "util/fs.hpp"
#include "util/mounts.hpp"

namespace gang {
namespace {

class BuildDirsTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure()) dir.keep();
  }
  BuildDirs dirs() {
    return BuildDirs(dir.path() + "/tmp", real_system(), 24 * 3600,
                     [this](const std::string& message) { warnings.push_back(message); });
  }
  // A build directory made by a process that has exited since.
  std::string made_by_a_dead_process(const std::string& name) {
    int report[2];
    EXPECT_EQ(::pipe(report), 0);
    pid_t child = ::fork();
    if (child == 0) {
      auto made = dirs().make(name);
      std::string path = made ? *made : std::string();
      (void)!::write(report[1], path.data(), path.size());
      ::_exit(made ? 0 : 1);
    }
    ::close(report[1]);
    std::string path;
    char buffer[4096];
    for (ssize_t n; (n = ::read(report[0], buffer, sizeof buffer)) > 0;) path.append(buffer, n);
    ::close(report[0]);
    int status = 0;
    ::waitpid(child, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return path;
  }

  TempDir dir{"gang-build-dirs-test-"};
  std::vector<std::string> warnings;
};

TEST_F(BuildDirsTest, NamesCarryTheCreatorAndAreOneSafeComponent) {
  auto made = dirs().make("../evil/name");
  ASSERT_TRUE(made) << made.error().to_string();
  // Right below tmp/, whatever the name held.
  EXPECT_EQ(made->substr(0, made->rfind('/')), dir.path() + "/tmp") << *made;
  std::string leaf = made->substr(made->rfind('/') + 1);
  EXPECT_NE(leaf.find("." + std::to_string(::getpid()) + "-"), std::string::npos) << leaf;
  EXPECT_TRUE(path_exists(*made));
}

TEST_F(BuildDirsTest, ADeadCreatorsDirectoryGoesAndALiveOnesStays) {
  auto live = dirs().make("live");
  ASSERT_TRUE(live);
  std::string dead = made_by_a_dead_process("dead");
  ASSERT_FALSE(dead.empty());
  ASSERT_TRUE(make_dirs(dead + "/deep/er"));
  ASSERT_TRUE(write_file(dead + "/deep/er/file", "x"));
  EXPECT_EQ(dirs().remove_dead(), 1u);
  EXPECT_FALSE(path_exists(dead));
  EXPECT_TRUE(path_exists(*live));
  EXPECT_TRUE(warnings.empty());
}

TEST_F(BuildDirsTest, WhatIsMountedInADeadCreatorsDirectoryIsLeftAlone) {
  std::string dead = made_by_a_dead_process("dead");
  ASSERT_FALSE(dead.empty());
  const std::string mnt = dead + "/root/mnt";
  ASSERT_TRUE(make_dirs(mnt));
  int status = testing::in_own_mount_namespace([&] {
    if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "mode=0755") != 0) return 77;
    if (!write_file(mnt + "/precious", "keep")) return 10;
    std::vector<std::string> seen;
    BuildDirs here(dir.path() + "/tmp", real_system(), 24 * 3600,
                   [&](const std::string& message) { seen.push_back(message); });
    if (here.remove_dead() != 0) return 11;
    if (seen.size() != 1 || seen[0].find("mounted") == std::string::npos) return 12;
    if (read_file(mnt + "/precious").value_or("") != "keep") return 13;
    // Unmounted, it goes.
    if (::umount2(mnt.c_str(), MNT_DETACH) != 0) return 14;
    if (here.remove_dead() != 1 || path_exists(dead)) return 15;
    return 0;
  });
  if (status == -1) GTEST_SKIP() << "no mount namespace can be made here";
  EXPECT_EQ(status, 0);
}

}  // namespace
}  // namespace gang
