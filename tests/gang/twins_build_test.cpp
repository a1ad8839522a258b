// End to end: two strata each build a chunk called "lib". Both are built,
// as two components; logs, the failure summary and `gang shell` name them
// STRATUM/NAME.
#include <gtest/gtest.h>

#include "tests/gang/gang_process.hpp"
#include "util/fs.hpp"

namespace gang {
namespace {

using testing::count_lines_with;
using testing::run_gang;

class TwinsBuild : public ::testing::Test {
 protected:
  void SetUp() override {
    defs = dir.path() + "/defs";
    cache = dir.path() + "/cache";
    write("VERSION", "version: 8\n");
    write("DEFAULTS", "build-systems:\n  manual:\n    install-commands: []\n");
    write("strata/a.morph",
          "name: a\nkind: stratum\nchunks:\n- name: lib\n  install-commands:\n"
          "  - mkdir -p \"$DESTDIR/usr/share\"\n  - echo from-a > \"$DESTDIR/usr/share/a-lib\"\n");
    write("strata/b.morph",
          "name: b\nkind: stratum\nchunks:\n- name: helper\n  install-commands:\n"
          "  - mkdir -p \"$DESTDIR/usr/share\"\n  - echo helper > \"$DESTDIR/usr/share/helper\"\n"
          "- name: lib\n  build-depends: [helper]\n  install-commands:\n"
          "  - test -f /usr/share/helper\n  - echo b-lib-breaks; exit 3\n");
    write("strata/top.morph",
          "name: top\nkind: stratum\nbuild-depends:\n- morph: strata/a.morph\n"
          "- morph: strata/b.morph\nchunks:\n- name: top\n  install-commands: ['true']\n");
  }
  void TearDown() override {
    if (HasFailure()) dir.keep();
  }
  void write(const std::string& path, const std::string& text) {
    std::string full = defs + "/" + path;
    ASSERT_TRUE(make_dirs(full.substr(0, full.rfind('/'))));
    ASSERT_TRUE(write_file_atomic(full, text));
  }

  TempDir dir{"gang-twins-test-"};
  std::string defs, cache;
};

TEST_F(TwinsBuild, BothAreBuiltAndNamedByStratum) {
  auto run = run_gang({"build", defs + "/strata/top.morph", "--cache", cache, "--instances", "1",
                       "--max-jobs", "1"},
                      dir.path());
  EXPECT_EQ(run.status, 1) << run.output;
  EXPECT_EQ(count_lines_with(run.output, "[a/lib] Starting build"), 1) << run.output;
  EXPECT_EQ(count_lines_with(run.output, "[b/lib] Starting build"), 1) << run.output;
  EXPECT_EQ(count_lines_with(run.output, "[a/lib] Elapsed time for build"), 1) << run.output;
  EXPECT_EQ(count_lines_with(run.output, "[helper] Starting build"), 1) << run.output;
  EXPECT_NE(run.output.find("b-lib-breaks"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("gang shell b/lib"), std::string::npos) << run.output;

  // b's lib found its own stratum's helper staged; its sandbox is kept under
  // the STRATUM/NAME it is shown as, with the chunk's own DESTDIR.
  auto shell = run_gang({"shell", "b/lib", "--cache", cache, "--", "sh", "-c",
                         "pwd; echo DESTDIR=$DESTDIR; cat /usr/share/helper"},
                        dir.path());
  EXPECT_EQ(shell.status, 0) << shell.output;
  EXPECT_NE(shell.output.find("/lib.build"), std::string::npos) << shell.output;
  EXPECT_NE(shell.output.find("DESTDIR=/lib.inst"), std::string::npos) << shell.output;
  EXPECT_NE(shell.output.find("helper"), std::string::npos) << shell.output;
  auto bare = run_gang({"shell", "lib", "--cache", cache, "--", "true"}, dir.path());
  EXPECT_NE(bare.status, 0) << "a/lib did not fail; b/lib is not called lib";
}

}  // namespace
}  // namespace gang
