// Runs the real `gang show` binary on the fixture tree.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <string>

#include "tests/definitions/test_tree.hpp"
#include "cache/artifact_cache.hpp"
#include "tests/support/run_command.hpp"
#include "util/fs.hpp"

namespace gang {
namespace {

using testing::run_command;

// Never the default cache: show only reads a cache (and keeps the host identity there).
std::string gang() {
  return std::string("env -u GANG_ARCH -u GANG_STRICT GANG_CACHE=/nonexistent/gang-show-test ") +
         GANG_BINARY;
}

TEST(GangShow, PrintsJsonForASystemFoundByPath) {
  std::string target = testing::fixture("basic") + "/systems/minimal-x86_64.morph";
  TempDir cache;
  testing::CommandResult r = run_command("cd / && " + gang() + " show " + target +
                                         " --json --arch x86_64 --cache " + cache.path() + " --base none");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(r.output.starts_with(
      "{\"target\": \"systems/minimal-x86_64.morph\", \"arch\": \"x86_64\", \"components\": ["))
      << r.output;
  EXPECT_NE(r.output.find("{\"name\": \"stage1-gcc\", \"kind\": \"chunk\", \"stratum\": "
                       "\"build-essential\", \"key\": \"stage1-gcc."
                       "8b080bc109d2c4ea69c5fdcda4b5106ec9d23e8c50c0526bf2a118f87d7443ac\", "
                       "\"state\": \"missing\", \"build_depends\": [], \"id\": \"stage1-gcc\"}"),
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

// The value of `"field": "..."` in the JSON object of component `id`.
std::string field_of(const std::string& json, const std::string& id, const std::string& field) {
  std::size_t end = json.find("\"id\": \"" + id + "\"");
  if (end == std::string::npos) return "<no " + id + ">";
  std::size_t start = json.rfind("{\"name\"", end);
  std::size_t close = json.find("}", end);
  std::string object = json.substr(start, close - start);
  std::string tag = "\"" + field + "\": \"";
  std::size_t at = object.find(tag);
  if (at == std::string::npos) return "<no " + field + ">";
  std::string value;  // as written in the JSON, escapes kept
  for (at += tag.size(); at < object.size() && object[at] != '"'; ++at) {
    if (object[at] == '\\') value += object[at++];
    value += object[at];
  }
  return value;
}

TEST(GangShow, AnUnresolvableSourceIsPendingWithTheReasonAndShowSucceeds) {
  TempDir cache;
  ASSERT_TRUE(make_dirs(cache.path() + "/gits"));  // as after any build
  std::string defs = " --definitions " + testing::fixture("twins") + " --cache " + cache.path();
  testing::CommandResult r = run_command(gang() + " show remote --json --arch x86_64" + defs);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(field_of(r.output, "from-nowhere", "state"), "pending");
  std::string reason = field_of(r.output, "from-nowhere", "pending_reason");
  EXPECT_NE(reason.find("strata/remote.morph:"), std::string::npos) << reason;
  EXPECT_NE(reason.find("unknown repo alias \\\"nosuchalias\\\""), std::string::npos) << reason;
  // upstream: is one of ybd's built-in aliases: not an error, only not fetched.
  EXPECT_EQ(field_of(r.output, "from-upstream", "pending_reason"),
            "source upstream:from-upstream master not fetched yet");
  EXPECT_EQ(field_of(r.output, "remote", "pending_reason"), "waits for chunk from-upstream");
  EXPECT_EQ(field_of(r.output, "toolchain", "state"), "missing");
  EXPECT_EQ(field_of(r.output, "toolchain", "pending_reason"), "<no pending_reason>");

  testing::CommandResult text = run_command(gang() + " show remote --arch x86_64" + defs);
  ASSERT_EQ(text.status, 0) << text.output;
  EXPECT_NE(text.output.find("pending  (strata/remote.morph:"), std::string::npos) << text.output;
  EXPECT_NE(text.output.find("(source upstream:from-upstream master not fetched yet)"),
            std::string::npos)
      << text.output;
}

TEST(GangShow, NamesTwinChunksByStratumAndTakesStratumSlashNameTargets) {
  std::string defs = " --definitions " + testing::fixture("twins") + " --base none";
  testing::CommandResult r = run_command(gang() + " show systems/desktop-x86_64.morph --json" + defs);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_TRUE(field_of(r.output, "gnome/libwnck", "key").starts_with("libwnck."));
  EXPECT_TRUE(field_of(r.output, "xfce/libwnck", "key").starts_with("libwnck."));
  EXPECT_NE(field_of(r.output, "gnome/libwnck", "key"), field_of(r.output, "xfce/libwnck", "key"));
  EXPECT_NE(r.output.find("\"build_depends\": [\"base\", \"xfce/libwnck\"]"), std::string::npos)
      << r.output;
  testing::CommandResult one = run_command(gang() + " show xfce/libwnck --json" + defs);
  ASSERT_EQ(one.status, 0) << one.output;
  EXPECT_EQ(field_of(one.output, "libwnck", "key"), field_of(r.output, "xfce/libwnck", "key"));
  testing::CommandResult ambiguous = run_command(gang() + " show libwnck" + defs + " 2>&1");
  EXPECT_EQ(ambiguous.status, 1);
  EXPECT_NE(ambiguous.output.find("chunk gnome/libwnck (strata/gnome.morph:9)"), std::string::npos)
      << ambiguous.output;
}

TEST(GangShow, AFailureRecordedUnderOneBaseNeverBlocksAnother) {
  TempDir cache;
  TempDir sysroot;
  ASSERT_TRUE(write_file_atomic(sysroot.path() + "/marker", "a sysroot\n"));
  {
    auto opened = ArtifactCache::open(cache.path());
    ASSERT_TRUE(opened) << opened.error().to_string();
  }
  std::string show = gang() + " show strata/base.morph --json --definitions " +
                     testing::fixture("twins") + " --cache " + cache.path();
  testing::CommandResult none = run_command(show + " --base none");
  testing::CommandResult root = run_command(show + " --base " + sysroot.path());
  testing::CommandResult host = run_command(show + " --base host");
  ASSERT_EQ(none.status, 0) << none.output;
  ASSERT_EQ(root.status, 0) << root.output;
  ASSERT_EQ(host.status, 0) << host.output;
  std::string key = field_of(none.output, "toolchain", "key");
  ASSERT_TRUE(key.starts_with("toolchain.")) << none.output;
  EXPECT_NE(key, field_of(root.output, "toolchain", "key"));
  EXPECT_NE(key, field_of(host.output, "toolchain", "key"));
  EXPECT_NE(field_of(root.output, "toolchain", "key"), field_of(host.output, "toolchain", "key"));
  // The host's identity is kept in the cache for the next show.
  auto kept = read_file(cache.path() + "/host-identity");
  ASSERT_TRUE(kept);
  EXPECT_NE(kept->find("\ncc "), std::string::npos) << *kept;

  {
    auto opened = ArtifactCache::open(cache.path());
    ASSERT_TRUE(opened);
    ASSERT_TRUE(opened->failures().record(key, "", "it broke"));
  }
  EXPECT_EQ(field_of(run_command(show + " --base none").output, "toolchain", "state"), "failed");
  EXPECT_EQ(field_of(run_command(show + " --base " + sysroot.path()).output, "toolchain", "state"),
            "missing");
  EXPECT_EQ(field_of(run_command(show + " --base host").output, "toolchain", "state"), "missing");
  // Another sysroot content: another key.
  ASSERT_TRUE(write_file_atomic(sysroot.path() + "/marker", "changed sysroot\n"));
  EXPECT_NE(field_of(run_command(show + " --base " + sysroot.path()).output, "toolchain", "key"),
            field_of(root.output, "toolchain", "key"));
}

}  // namespace
}  // namespace gang
