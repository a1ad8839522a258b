// Runs the real `gang show` binary on the fixture tree.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "tests/definitions/test_tree.hpp"
#include "util/fs.hpp"

namespace gang {
namespace {

struct RunResult {
  int status = -1;
  std::string out;
};

// Runs a shell command line, capturing stdout (stderr folded in if asked).
RunResult run(const std::string& command) {
  RunResult r;
  std::FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return r;
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.out.append(buf, n);
  int status = ::pclose(pipe);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string gang() { return std::string("env -u GANG_ARCH -u GANG_STRICT ") + GANG_BINARY; }

TEST(GangShow, PrintsJsonForASystemFoundByPath) {
  std::string target = testing::fixture("basic") + "/systems/minimal-x86_64.morph";
  RunResult r = run("cd / && " + gang() + " show " + target + " --json --arch x86_64");
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_TRUE(r.out.starts_with(
      "{\"target\": \"systems/minimal-x86_64.morph\", \"arch\": \"x86_64\", \"components\": ["))
      << r.out;
  EXPECT_NE(r.out.find("{\"name\": \"stage1-gcc\", \"kind\": \"chunk\", \"stratum\": "
                       "\"build-essential\", \"key\": \"stage1-gcc."
                       "5422de9272137d6209db4f9741d0cffa533e853b3f5ad336f8f7c46ef3f9843c\", "
                       "\"state\": \"missing\", \"build_depends\": []}"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("\"build_depends\": [\"build-essential\", \"libbar\"]"), std::string::npos);
  EXPECT_NE(r.out.find("\"totals\": {\"chunks\": 6, \"strata\": 3, \"systems\": 1}}"),
            std::string::npos)
      << r.out;
  // Build order: make (build-essential) before libfoo (core) before the system.
  EXPECT_LT(r.out.find("\"name\": \"make\""), r.out.find("\"name\": \"libfoo\""));
  EXPECT_LT(r.out.find("\"name\": \"libfoo\""), r.out.find("\"name\": \"minimal-x86_64\""));
}

TEST(GangShow, ReportsPendingKeysForUnresolvedSources) {
  RunResult r =
      run(gang() + " show sourced --arch x86_64 --json --definitions " + testing::fixture("basic"));
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_NE(r.out.find("{\"name\": \"fetched\", \"kind\": \"chunk\", \"stratum\": \"sourced\", "
                       "\"key\": null, \"state\": \"pending\""),
            std::string::npos)
      << r.out;
  RunResult text =
      run(gang() + " show sourced --arch x86_64 --definitions " + testing::fixture("basic"));
  ASSERT_EQ(text.status, 0) << text.out;
  EXPECT_NE(text.out.find("sourced/fetched"), std::string::npos);
  EXPECT_NE(text.out.find("pending  pending"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("totals: 7 chunks, 3 strata, 0 systems"), std::string::npos) << text.out;
}

TEST(GangShow, FailsCleanlyOnUnknownTargetsAndStrictWarnings) {
  RunResult missing =
      run("cd " + testing::fixture("basic") + " && " + gang() + " show nosuch 2>&1");
  EXPECT_EQ(missing.status, 1);
  EXPECT_EQ(missing.out, "gang: error: no definition named \"nosuch\"\n");
  testing::Tree tree({{"strata/core.morph",
                       "name: core\nkind: stratum\nchunks:\n- name: a\n"
                       "  bulid-depends: []\n"}});
  RunResult warn = run(gang() + " show core --arch x86_64 --definitions " + tree.root() + " 2>&1");
  EXPECT_EQ(warn.status, 0) << warn.out;
  EXPECT_NE(warn.out.find("gang: warning: strata/core.morph:5: unknown field \"bulid-depends\" "
                          "(did you mean \"build-depends\"?)"),
            std::string::npos)
      << warn.out;
  RunResult strict = run(gang() + " show core --strict --definitions " + tree.root() + " 2>&1");
  EXPECT_EQ(strict.status, 1);
  EXPECT_TRUE(strict.out.starts_with("gang: error: strata/core.morph:5: unknown field"))
      << strict.out;
}

TEST(GenDefinitions, WritesValidTreesOfEveryShape) {
  for (const char* shape : {"wide", "deep", "mixed"}) {
    TempDir dir;
    std::string tree = dir.path() + "/defs";
    RunResult gen = run(std::string(GANG_SOURCE_DIR) + "/scripts/gen-definitions " + tree +
                        " --chunks 60 --strata 3 --seed 7 --arch x86_64 --shape " + shape);
    ASSERT_EQ(gen.status, 0) << gen.out;
    EXPECT_EQ(gen.out, "systems/bench-system-x86_64.morph\n");
    RunResult show =
        run(gang() + " show --json --strict " + tree + "/" + gen.out.substr(0, gen.out.size() - 1));
    ASSERT_EQ(show.status, 0) << shape << ": " << show.out;
    EXPECT_NE(show.out.find("\"totals\": {\"chunks\": 60, \"strata\": 3, \"systems\": 1}"),
              std::string::npos)
        << shape;
    EXPECT_EQ(show.out.find("\"pending\""), std::string::npos)
        << shape;  // no repos: all keys known
  }
  TempDir dir;
  RunResult gen = run(std::string(GANG_SOURCE_DIR) + "/scripts/gen-definitions " + dir.path() +
                      "/defs --chunks 5 --repo --target stratum --sleep 0.5");
  ASSERT_EQ(gen.status, 0) << gen.out;
  EXPECT_EQ(gen.out, "strata/stratum-0000.morph\n");
  RunResult show =
      run(gang() + " show strata/stratum-0000.morph --definitions " + dir.path() + "/defs");
  ASSERT_EQ(show.status, 0) << show.out;
  EXPECT_NE(show.out.find("pending  pending"), std::string::npos) << show.out;
}

}  // namespace
}  // namespace gang
