// Deploying a planned system: tar and sysroot end to end with a subsystem
// and a configuration extension, nothing at the location after a failure,
// an existing location refused.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cstdlib>

#include "deploy/deployer.hpp"
#include "util/fs.hpp"

namespace gang {
namespace {

class DeployerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    defs.root = dir.path() + "/defs";
    ASSERT_TRUE(make_dirs(defs.root + "/extensions"));
    ASSERT_TRUE(make_dirs(dir.path() + "/scratch"));
    ASSERT_TRUE(write_file_atomic(defs.root + "/extensions/set-hostname.configure",
                                  "#!/bin/sh\nset -e\nmkdir -p \"$1/etc\"\n"
                                  "printf '%s\\n' \"$HOSTNAME\" > \"$1/etc/hostname\"\n",
                                  0755));
    defs.systems.push_back({"sys", "systems/sys.morph", "x86_64", {}, {"set-hostname"}, {}});
    defs.systems.push_back({"initramfs", "systems/initramfs.morph", "x86_64", {}, {}, {}});
    ctx.definitions_root = defs.root;
    ctx.scratch_parent = dir.path() + "/scratch";
    ctx.stage_system = [](std::size_t system, const std::string& dest) -> Result<void> {
      if (auto made = make_dirs(dest + "/usr/bin"); !made) return made;
      return write_file(dest + "/usr/bin/" + (system == 0 ? "tool" : "init"), "#!/bin/sh\n");
    };
    ctx.log = [this](const std::string& line) { log += line + "\n"; };
  }
  void TearDown() override {
    if (HasFailure()) dir.keep();
  }
  DeploymentStep step(const std::string& type, const std::string& location) {
    DeploymentStep s;
    s.system = 0;
    s.label = "main";
    s.type = type;
    s.location = location;
    s.parameters = {{"type", type}, {"location", location}, {"HOSTNAME", "gang-host"}};
    DeploymentStep sub;
    sub.system = 1;
    sub.label = "initramfs";
    sub.type = "tar";
    sub.location = "boot/initramfs.tar";
    sub.parameters = {{"type", "tar"}, {"location", "/boot/initramfs.tar"}};
    s.subsystems.push_back(sub);
    return s;
  }
  TempDir dir{"gang-deployer-test-"};
  Definitions defs;
  DeployContext ctx;
  std::string log;
};

TEST_F(DeployerTest, SysrootHoldsTheSystemItsSubsystemMetaAndHostname) {
  std::string location = dir.path() + "/out/root";
  ASSERT_TRUE(deploy(defs, step("sysroot", location), ctx)) << log;
  EXPECT_TRUE(path_exists(location + "/usr/bin/tool"));
  EXPECT_EQ(read_file(location + "/etc/hostname").value_or(""), "gang-host\n");
  EXPECT_NE(read_file(location + "/baserock/deployment.meta").value_or("").find("\"HOSTNAME\": \"gang-host\""),
            std::string::npos);
  EXPECT_TRUE(path_exists(location + "/boot/initramfs.tar"));
  EXPECT_NE(log.find("Starting deployment of sys to " + location), std::string::npos) << log;
  EXPECT_NE(log.find("Elapsed time for deployment of sys"), std::string::npos) << log;
}

TEST_F(DeployerTest, TarHoldsTheSameAndAnExistingLocationIsRefused) {
  std::string location = dir.path() + "/out/sys.tar";
  ASSERT_TRUE(deploy(defs, step("tar", location), ctx)) << log;
  std::string listing = dir.path() + "/listing";
  ASSERT_EQ(std::system(("tar -tf '" + location + "' > '" + listing + "'").c_str()), 0);
  std::string files = read_file(listing).value_or("");
  for (const char* path : {"./usr/bin/tool", "./etc/hostname", "./baserock/deployment.meta",
                           "./boot/initramfs.tar"})
    EXPECT_NE(files.find(path), std::string::npos) << path << "\n" << files;
  auto again = deploy(defs, step("tar", location), ctx);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().to_string().find("exists"), std::string::npos);
  ctx.force = true;
  EXPECT_TRUE(deploy(defs, step("tar", location), ctx));
}

TEST_F(DeployerTest, AFailingExtensionLeavesNothingAtTheLocationAndKeepsTheTree) {
  ASSERT_TRUE(write_file_atomic(defs.root + "/extensions/broken.write",
                                "#!/bin/sh\necho partial > \"$2\"\nexit 3\n", 0755));
  std::string location = dir.path() + "/out/broken.img";
  auto failed = deploy(defs, step("broken", location), ctx);
  ASSERT_FALSE(failed);
  std::string why = failed.error().to_string();
  EXPECT_NE(why.find("broken.write failed with exit status 3"), std::string::npos) << why;
  EXPECT_NE(why.find("kept at"), std::string::npos) << why;
  EXPECT_FALSE(path_exists(location));
  // Nothing half-written beside it either.
  EXPECT_EQ(std::system(("test -z \"$(ls -A '" + dir.path() + "/out')\"").c_str()), 0);
}

TEST_F(DeployerTest, RawdiskIsAnExt4ImageOfTheTreeWhereTheHostHasMkfs) {
  if (!path_exists("/usr/sbin/mkfs.ext4") || !path_exists("/usr/sbin/debugfs"))
    GTEST_SKIP() << "e2fsprogs is not installed";
  std::string location = dir.path() + "/out/sys.img";
  DeploymentStep s = step("rawdisk", location);
  s.parameters["DISK_SIZE"] = "16M";
  ASSERT_TRUE(deploy(defs, s, ctx)) << log;
  struct stat st;
  ASSERT_EQ(::stat(location.c_str(), &st), 0);
  EXPECT_EQ(st.st_size, 16 << 20);
  std::string out = dir.path() + "/hostname";
  ASSERT_EQ(std::system(("/usr/sbin/debugfs -R 'cat /etc/hostname' '" + location + "' > '" + out +
                         "' 2>/dev/null").c_str()),
            0);
  EXPECT_EQ(read_file(out).value_or(""), "gang-host\n");
  s.location = dir.path() + "/out/bad.img";
  s.parameters["DISK_SIZE"] = "lots";
  auto bad = deploy(defs, s, ctx);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().to_string().find("DISK_SIZE lots is not a size"), std::string::npos);
}

TEST_F(DeployerTest, AMissingInterpreterFailsBeforeAnythingIsStaged) {
  ASSERT_TRUE(write_file_atomic(defs.root + "/extensions/set-hostname.configure",
                                "#!/usr/bin/python2\nprint 'old'\n", 0755));
  bool staged = false;
  ctx.stage_system = [&](std::size_t, const std::string&) -> Result<void> {
    staged = true;
    return {};
  };
  auto failed = deploy(defs, step("tar", dir.path() + "/out/x.tar"), ctx);
  ASSERT_FALSE(failed);
  EXPECT_NE(failed.error().to_string().find("needs the interpreter /usr/bin/python2"), std::string::npos);
  EXPECT_FALSE(staged);
}

}  // namespace
}  // namespace gang
