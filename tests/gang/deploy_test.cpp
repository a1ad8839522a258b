// gang deploy end to end: the real binary builds a cluster's system and
// deploys it once as tar and once as sysroot, with a configuration
// extension setting the hostname; an existing location is refused, and a
// failing extension leaves nothing at its location.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "tests/gang/gang_process.hpp"
#include "tests/support/run_command.hpp"
#include "util/fs.hpp"

namespace gang {
namespace {

using testing::run_gang;

class GangDeploy : public ::testing::Test {
 protected:
  void SetUp() override {
    defs = dir.path() + "/defs";
    out = dir.path() + "/out";
    testing::write_tree(defs, {{"a", {}, 0}, {"b", {"a"}, 0}});
    // Split rules that put every file in the stratum's runtime product.
    ASSERT_TRUE(write_file_atomic(defs + "/DEFAULTS",
                                  "build-systems:\n  manual:\n    install-commands: []\n"
                                  "split-rules:\n  chunk:\n  - artifact: -misc\n    include: ['.*']\n"
                                  "  stratum:\n  - artifact: -runtime\n    include: ['.*']\n"));
    ASSERT_TRUE(make_dirs(defs + "/systems"));
    ASSERT_TRUE(make_dirs(defs + "/clusters"));
    ASSERT_TRUE(make_dirs(defs + "/extensions"));
    ASSERT_TRUE(write_file_atomic(defs + "/systems/sys.morph",
                                  "name: sys\nkind: system\narch: " + host_arch() +
                                      "\nstrata:\n- name: s\n  morph: strata/s.morph\n"
                                      "configuration-extensions:\n- set-hostname\n"));
    ASSERT_TRUE(write_file_atomic(defs + "/extensions/set-hostname.configure",
                                  "#!/bin/sh\nset -e\nmkdir -p \"$1/etc\"\n"
                                  "printf '%s\\n' \"$HOSTNAME\" > \"$1/etc/hostname\"\n",
                                  0755));
    ASSERT_TRUE(write_file_atomic(defs + "/extensions/broken.write", "#!/bin/sh\necho half > \"$2\"\nexit 4\n", 0755));
    ASSERT_TRUE(write_file_atomic(
        defs + "/clusters/c.morph",
        "name: c\nkind: cluster\nsystems:\n- morph: systems/sys.morph\n  deploy-defaults:\n"
        "    HOSTNAME: gang-host\n  deploy:\n    as-tar:\n      type: extensions/tar\n"
        "      location: " + out + "/sys.tar\n    as-root:\n      type: sysroot\n"
        "      location: " + out + "/root\n    as-broken:\n      type: broken\n"
        "      location: " + out + "/broken.img\n"));
  }
  void TearDown() override {
    if (HasFailure()) dir.keep();
  }
  static std::string host_arch() {
    auto r = testing::run_command("uname -m");
    std::string arch = r.output.substr(0, r.output.find('\n'));
    return arch;
  }
  std::vector<std::string> deploy_args(std::vector<std::string> extra) {
    std::vector<std::string> args{"deploy", defs + "/clusters/c.morph", "--cache", dir.path() + "/cache",
                                  "--instances", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  TempDir dir{"gang-deploy-test-"};
  std::string defs, out;
};

TEST_F(GangDeploy, TarAndSysrootHoldTheSystemMetaAndHostname) {
  auto run = run_gang(deploy_args({"as-tar", "as-root", "-p", "as-root.HOSTNAME=root $(x);`y`"}),
                      dir.path());
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_NE(run.output.find("Starting deployment of sys to " + out + "/sys.tar"), std::string::npos)
      << run.output;
  EXPECT_TRUE(path_exists(out + "/root/usr/share/gang-test/b")) << run.output;
  EXPECT_EQ(read_file(out + "/root/etc/hostname").value_or(""), "root $(x);`y`\n");
  EXPECT_NE(read_file(out + "/root/baserock/deployment.meta").value_or("").find("\"configuration\""),
            std::string::npos);
  std::string listing = dir.path() + "/listing";
  ASSERT_EQ(std::system(("tar -tf '" + out + "/sys.tar' > '" + listing + "'").c_str()), 0);
  std::string files = read_file(listing).value_or("");
  EXPECT_NE(files.find("./usr/share/gang-test/a"), std::string::npos) << files;
  EXPECT_NE(files.find("./baserock/deployment.meta"), std::string::npos) << files;
  std::string hostname = dir.path() + "/hostname";
  ASSERT_EQ(std::system(("tar -xOf '" + out + "/sys.tar' ./etc/hostname > '" + hostname + "'").c_str()), 0);
  EXPECT_EQ(read_file(hostname).value_or(""), "gang-host\n");

  auto again = run_gang(deploy_args({"as-tar"}), dir.path());
  EXPECT_NE(again.status, 0);
  EXPECT_NE(again.output.find("exists (gang deploy --force replaces it)"), std::string::npos) << again.output;
  EXPECT_EQ(run_gang(deploy_args({"as-tar", "--force"}), dir.path()).status, 0);
}

TEST_F(GangDeploy, AFailingExtensionLeavesNothingAndBadInputFailsBeforeBuilding) {
  auto broken = run_gang(deploy_args({"as-broken"}), dir.path());
  EXPECT_NE(broken.status, 0);
  EXPECT_NE(broken.output.find("broken.write failed with exit status 4"), std::string::npos) << broken.output;
  EXPECT_FALSE(path_exists(out + "/broken.img"));

  auto label = run_gang(deploy_args({"nope"}), dir.path());
  EXPECT_NE(label.status, 0);
  EXPECT_NE(label.output.find("no deployment labelled nope"), std::string::npos) << label.output;
  EXPECT_EQ(label.output.find("Starting build"), std::string::npos) << "checked before building";
  auto param = run_gang(deploy_args({"-p", "HOSTNAME=x"}), dir.path());
  EXPECT_EQ(param.status, 2) << param.output;
}

// The fixture: the assembly fixture's minimal system (split rules,
// system-integration) with the public definitions' own extensions.
TEST(GangDeployFixture, RealExtensionsDeployASplitIntegratedSystemAsTarAndSysroot) {
  TempDir dir{"gang-deploy-fixture-"};
  std::string defs = dir.path() + "/defs", out = dir.path() + "/out";
  const std::string fixtures = std::string(GANG_SOURCE_DIR) + "/tests/gang/fixtures";
  std::filesystem::copy(fixtures + "/assembly", defs, std::filesystem::copy_options::recursive);
  std::filesystem::copy(fixtures + "/deploy", defs, std::filesystem::copy_options::recursive);
  std::string cluster = read_file(defs + "/clusters/deploy.morph").value_or("");
  for (auto at = cluster.find("OUT"); at != std::string::npos; at = cluster.find("OUT"))
    cluster.replace(at, 3, out);
  ASSERT_TRUE(write_file_atomic(defs + "/clusters/deploy.morph", cluster));
  std::string system = read_file(defs + "/systems/minimal-x86_64.morph").value_or("");
  ASSERT_TRUE(write_file_atomic(defs + "/systems/minimal-x86_64.morph",
                                system + "configuration-extensions:\n- set-hostname\n"));
  auto run = run_gang({"deploy", defs + "/clusters/deploy.morph", "--cache", dir.path() + "/cache",
                       "--arch", "x86_64", "--instances", "1"},
                      dir.path(), std::chrono::seconds(180));
  ASSERT_EQ(run.status, 0) << run.output;
  const std::string root = out + "/minimal-root";
  for (const char* kept : {"usr/bin/tool", "usr/include/extra.h", "bin/sh", "integration.log",
                           "baserock/deployment.meta", "boot/full.tar"})
    EXPECT_TRUE(path_exists(root + "/" + kept)) << kept;
  for (const char* left : {"usr/bin/extra", "etc/secret", "usr/include/modes.h"})
    EXPECT_FALSE(path_exists(root + "/" + left)) << left;
  EXPECT_EQ(read_file(root + "/etc/hostname").value_or(""), "gang-sysroot\n");
  std::string listing = dir.path() + "/listing", hostname = dir.path() + "/hostname";
  ASSERT_EQ(std::system(("tar -tf '" + out + "/minimal.tar' > '" + listing + "'").c_str()), 0);
  std::string files = read_file(listing).value_or("");
  for (const char* kept : {"./usr/bin/tool", "./integration.log", "./baserock/deployment.meta",
                           "./boot/full.tar"})
    EXPECT_NE(files.find(kept), std::string::npos) << kept;
  EXPECT_EQ(files.find("./etc/secret"), std::string::npos);
  ASSERT_EQ(std::system(("tar -xOf '" + out + "/minimal.tar' ./etc/hostname > '" + hostname + "'").c_str()), 0);
  EXPECT_EQ(read_file(hostname).value_or(""), "gang-fixture\n");
}

}  // namespace
}  // namespace gang
