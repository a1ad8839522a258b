// Runs the real `gang show` binary on the fixture tree.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "tests/definitions/test_tree.hpp"
#include "tests/support/run_command.hpp"
#include "util/fs.hpp"

namespace gang {
namespace {

using testing::run_command;

std::string gang() { return std::string("env -u GANG_ARCH -u GANG_STRICT ") + GANG_BINARY; }

TEST(GangShow, PrintsJsonForASystemFoundByPath) {
  std::string target = testing::fixture("basic") + "/systems/minimal-x86_64.morph";
  TempDir cache;
  testing::CommandResult r = run_command("cd / && " + gang() + " show " + target +
                                         " --json --arch x86_64 --cache " + cache.path());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(r.output.starts_with(
      "{\"target\": \"systems/minimal-x86_64.morph\", \"arch\": \"x86_64\", \"components\": ["))
      << r.output;
  EXPECT_NE(r.output.find("{\"name\": \"stage1-gcc\", \"kind\": \"chunk\", \"stratum\": "
                       "\"build-essential\", \"key\": \"stage1-gcc."
                       "5422de9272137d6209db4f9741d0cffa533e853b3f5ad336f8f7c46ef3f9843c\", "
                       "\"state\": \"missing\", \"build_depends\": []}"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("\"build_depends\": [\"build-essential\", \"libbar\"]"), std::string::npos);
  EXPECT_NE(r.output.find("\"totals\": {\"chunks\": 6, \"strata\": 3, \"systems\": 1}}"),
            std::string::npos)
      << r.output;
  // Build order: make (build-essential) before libfoo (core) before the system.
  EXPECT_LT(r.output.find("\"name\": \"make\""), r.output.find("\"name\": \"libfoo\""));
  EXPECT_LT(r.output.find("\"name\": \"libfoo\""), r.output.find("\"name\": \"minimal-x86_64\""));
}

TEST(GangShow, ReportsPendingKeysForUnresolvedSources) {
  TempDir cache;
  std::string args = " --cache " + cache.path() + " --definitions " + testing::fixture("basic");
  testing::CommandResult r = run_command(gang() + " show sourced --arch x86_64 --json" + args);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("{\"name\": \"fetched\", \"kind\": \"chunk\", \"stratum\": \"sourced\", "
                       "\"key\": null, \"state\": \"pending\""),
            std::string::npos)
      << r.output;
  testing::CommandResult text = run_command(gang() + " show sourced --arch x86_64" + args);
  ASSERT_EQ(text.status, 0) << text.output;
  EXPECT_NE(text.output.find("sourced/fetched"), std::string::npos);
  EXPECT_NE(text.output.find("pending  pending"), std::string::npos) << text.output;
  EXPECT_NE(text.output.find("totals: 7 chunks, 3 strata, 0 systems"), std::string::npos) << text.output;
}

TEST(GangShow, FailsCleanlyOnUnknownTargetsAndStrictWarnings) {
  testing::CommandResult missing =
      run_command("cd " + testing::fixture("basic") + " && " + gang() + " show nosuch 2>&1");
  EXPECT_EQ(missing.status, 1);
  EXPECT_EQ(missing.output, "gang: error: no definition named \"nosuch\"\n");
  testing::Tree tree({{"strata/core.morph",
                       "name: core\nkind: stratum\nchunks:\n- name: a\n"
                       "  bulid-depends: []\n"}});
  TempDir cache;
  testing::CommandResult warn = run_command(gang() + " show core --arch x86_64 --cache " + cache.path() +
                                            " --definitions " + tree.root() + " 2>&1");
  EXPECT_EQ(warn.status, 0) << warn.output;
  EXPECT_NE(warn.output.find("gang: warning: strata/core.morph:5: unknown field \"bulid-depends\" "
                          "(did you mean \"build-depends\"?)"),
            std::string::npos)
      << warn.output;
  testing::CommandResult strict = run_command(gang() + " show core --strict --cache " + cache.path() +
                                              " --definitions " + tree.root() + " 2>&1");
  EXPECT_EQ(strict.status, 1);
  EXPECT_NE(strict.output.find("gang: error: strata/core.morph:5: unknown field"),
            std::string::npos)
      << strict.output;
}

TEST(GenDefinitions, WritesValidTreesOfEveryShape) {
  for (const char* shape : {"wide", "deep", "mixed"}) {
    TempDir dir;
    std::string tree = dir.path() + "/defs";
    testing::CommandResult gen = run_command(std::string(GANG_SOURCE_DIR) + "/scripts/gen-definitions " + tree +
                        " --chunks 60 --strata 3 --seed 7 --arch x86_64 --shape " + shape);
    ASSERT_EQ(gen.status, 0) << gen.output;
    EXPECT_EQ(gen.output, "systems/bench-system-x86_64.morph\n");
    testing::CommandResult show = run_command(gang() + " show --json --strict --cache " + dir.path() +
                                              "/cache " + tree + "/" +
                                              gen.output.substr(0, gen.output.size() - 1));
    ASSERT_EQ(show.status, 0) << shape << ": " << show.output;
    EXPECT_NE(show.output.find("\"totals\": {\"chunks\": 60, \"strata\": 3, \"systems\": 1}"),
              std::string::npos)
        << shape;
    EXPECT_EQ(show.output.find("\"pending\""), std::string::npos)
        << shape;  // no repos: all keys known
  }
  TempDir dir;
  testing::CommandResult gen = run_command(std::string(GANG_SOURCE_DIR) + "/scripts/gen-definitions " + dir.path() +
                      "/defs --chunks 5 --repo --target stratum --sleep 0.5");
  ASSERT_EQ(gen.status, 0) << gen.output;
  EXPECT_EQ(gen.output, "strata/stratum-0000.morph\n");
  testing::CommandResult show = run_command(gang() + " show strata/stratum-0000.morph --cache " +
                                            dir.path() + "/cache --definitions " + dir.path() + "/defs");
  ASSERT_EQ(show.status, 0) << show.output;
  EXPECT_NE(show.output.find("pending  pending"), std::string::npos) << show.output;
}

}  // namespace
}  // namespace gang
