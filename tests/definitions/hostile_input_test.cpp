// Hostile definitions: names that would become unsafe paths, YAML alias
// bombs, and files that are not regular files (issue 10, items 2, 3, 16),
// plus the minimised inputs the fuzz target found.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "definitions/yaml.hpp"
#include "gang/config.hpp"
#include "tests/definitions/test_tree.hpp"
#include "tests/support/run_command.hpp"
#include "util/fs.hpp"

namespace gang {
namespace {

using Clock = std::chrono::steady_clock;
using testing::Tree;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string gang() {
  return std::string("env -u GANG_ARCH -u GANG_STRICT GANG_CACHE=/nonexistent/gang-hostile-test ") +
         GANG_BINARY;
}

std::string stratum_with_chunk(const std::string& name) {
  return "name: s\nkind: stratum\nchunks:\n- name: " + name +
         "\n  repo: upstream:x\n  ref: master\n  build-system: manual\n";
}

// --- item 2: names ---------------------------------------------------------

TEST(HostileNames, DotDotAndSlashChunkNamesFailGangShowAtOnceWithFileAndLine) {
  for (const char* name : {"..", "a/b"}) {
    Tree tree{{"strata/s.morph", stratum_with_chunk(name)}};
    auto start = Clock::now();
    auto r = testing::run_command("timeout 10 " + gang() + " show strata/s.morph --base none " +
                                  "--arch x86_64 --definitions " + tree.root() + " 2>&1");
    EXPECT_LT(seconds_since(start), 1.0) << name;
    EXPECT_NE(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("strata/s.morph:4"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("chunk name: invalid name \"" + std::string(name) + "\""),
              std::string::npos)
        << r.output;
  }
}

TEST(HostileNames, EveryKindOfUnsafeNameBreaksOnlyItsOwnFile) {
  Tree tree{
      {"strata/dot.morph", stratum_with_chunk(".")},
      {"strata/newline.morph", stratum_with_chunk("\"a\\nb\"")},
      {"strata/control.morph", stratum_with_chunk("\"a\\tb\"")},
      {"strata/nul.morph", stratum_with_chunk("\"a\\0b\"")},
      {"strata/up.morph", "name: ../up\nkind: stratum\n"},
      {"systems/slash.morph", "name: a/b\nkind: system\narch: x86_64\n"},
      {"clusters/dots.morph", "name: ..\nkind: cluster\n"},
      {"chunks/c.morph", "name: \"..\"\nkind: chunk\n"},
      {"strata/product.morph",
       "name: product\nkind: stratum\nproducts:\n- artifact: ../evil\n  include: [.*]\n"},
      {"strata/renamed.morph",
       "name: renamed\nkind: stratum\nchunks:\n- name: x\n  repo: u:x\n"
       "  ref: m\n  artifacts: {x-devel: ../y}\n"},
      {"systems/artifacts.morph",
       "name: artifacts\nkind: system\narch: x86_64\nstrata:\n"
       "- morph: strata/good.morph\n  artifacts: [good/runtime]\n"},
      {"strata/good.morph", stratum_with_chunk("libsigc++") +
                                "- name: gstreamer-plugins-base@0.10\n  repo: upstream:y\n"
                                "  ref: master\n  build-depends: [libsigc++]\n"
                                "  artifacts: {gstreamer-plugins-base@0.10-devel: good-devel}\n"},
  };
  auto defs = tree.load();
  ASSERT_TRUE(defs) << defs.error().to_string();
  auto expect_broken = [&](const std::string& path, int line, const std::string& field,
                           const std::string& text) {
    const Error* e = defs->problem(path);
    ASSERT_NE(e, nullptr) << path;
    EXPECT_EQ(e->file, path);
    EXPECT_EQ(e->line, line) << e->to_string();
    EXPECT_EQ(e->field, field) << e->to_string();
    EXPECT_NE(e->message.find(text), std::string::npos) << e->to_string();
  };
  expect_broken("strata/dot.morph", 4, "name", "invalid name \".\"");
  expect_broken("strata/newline.morph", 4, "name", "invalid name \"a\\x0ab\"");
  expect_broken("strata/control.morph", 4, "name", "invalid name \"a\\x09b\"");
  expect_broken("strata/nul.morph", 4, "name", "invalid name \"a\\x00b\"");
  expect_broken("strata/up.morph", 1, "name", "stratum name: invalid name \"../up\"");
  expect_broken("systems/slash.morph", 1, "name", "system name: invalid name \"a/b\"");
  expect_broken("clusters/dots.morph", 1, "name", "cluster name: invalid name \"..\"");
  expect_broken("chunks/c.morph", 1, "name", "chunk name: invalid name \"..\"");
  expect_broken("strata/product.morph", 4, "artifact", "artifact name: invalid name \"../evil\"");
  expect_broken("strata/renamed.morph", 7, "artifacts", "invalid name \"../y\"");
  expect_broken("systems/artifacts.morph", 6, "artifacts", "invalid name \"good/runtime\"");
  // Real Baserock names load; the rest of the tree is unharmed.
  EXPECT_EQ(defs->problem("strata/good.morph"), nullptr)
      << defs->problem("strata/good.morph")->to_string();
  ASSERT_TRUE(defs->by_path.contains("strata/good.morph"));
  const StratumDef& good = defs->strata[defs->by_path.at("strata/good.morph").index];
  ASSERT_EQ(good.chunks.size(), 2u);
  EXPECT_EQ(good.chunks[1].name, "gstreamer-plugins-base@0.10");
}

TEST(HostileNames, AnUnsafeDefaultsArtifactFailsTheLoad) {
  Tree tree{{"DEFAULTS", "split-rules:\n  chunk:\n  - artifact: -x/../../y\n    include: [.*]\n"}};
  auto defs = tree.load();
  ASSERT_FALSE(defs);
  EXPECT_EQ(defs.error().file, "DEFAULTS");
  EXPECT_EQ(defs.error().line, 3);
}

// --- item 3: alias bombs ---------------------------------------------------

// Nine levels of nine aliases: 9^9 (387 million) leaves when expanded.
std::string laughs(const std::string& open, const std::string& close, const std::string& leaf) {
  std::string text = "name: bomb\nkind: chunk\na0: &a0 " + leaf + "\n";
  for (int level = 1; level <= 9; ++level) {
    std::string prev = "*a" + std::to_string(level - 1);
    text += "a" + std::to_string(level) + ": &a" + std::to_string(level) + " " + open;
    for (int i = 0; i < 9; ++i) {
      if (i > 0) text += ", ";
      if (open == "{") text += "k" + std::to_string(i) + ": ";
      text += prev;
    }
    text += close + "\n";
  }
  return text;
}

std::string merge_bomb() {
  std::string text = "name: bomb\nkind: cluster\nm0: &m0 {x: [lol, lol, lol, lol]}\n";
  for (int level = 1; level <= 12; ++level) {
    std::string n = std::to_string(level), p = std::to_string(level - 1);
    text += "m" + n + ": &m" + n + "\n  <<: *m" + p + "\n";
    for (int i = 0; i < 8; ++i) text += "  k" + std::to_string(i) + ": *m" + p + "\n";
  }
  return text;
}

TEST(AliasBombs, EveryShapeFailsAtOnceWithFileAndLine) {
  const std::pair<const char*, std::string> bombs[] = {
      {"nested lists", laughs("[", "]", "lol")},
      {"nested maps", laughs("{", "}", "lol")},
      {"lists of maps", laughs("[", "]", "{a: lol, b: [lol, lol]}")},
      {"merge keys", merge_bomb()},
  };
  for (const auto& [shape, text] : bombs) {
    auto start = Clock::now();
    auto r = parse_yaml(text, "strata/bomb.morph");
    EXPECT_LT(seconds_since(start), 0.5) << shape;
    ASSERT_FALSE(r) << shape;
    EXPECT_EQ(r.error().file, "strata/bomb.morph");
    EXPECT_GT(r.error().line, 2) << shape;
    EXPECT_NE(r.error().message.find("copied nodes"), std::string::npos) << r.error().message;
  }
}

TEST(AliasBombs, DeepNestingIsRefused) {
  std::string deep = "a: " + std::string(100000, '[') + std::string(100000, ']') + "\n";
  auto r = parse_yaml(deep, "deep.morph");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("nested deeper than 256"), std::string::npos);
  EXPECT_EQ(r.error().line, 1);
  EXPECT_TRUE(parse_yaml("a: " + std::string(200, '[') + std::string(200, ']'), "ok.morph"));
}

TEST(AliasBombs, RealAnchorsAndMergesStillWork) {
  auto r = parse_yaml("d: &d {type: rawdisk, SIZE: 4G}\nx:\n  <<: *d\n  SIZE: 8G\ny: *d\n", "c");
  ASSERT_TRUE(r) << r.error().to_string();
  EXPECT_EQ(r->find("x")->find("type")->scalar, "rawdisk");
  EXPECT_EQ(r->find("x")->find("SIZE")->scalar, "8G");
  EXPECT_EQ(r->find("y")->find("SIZE")->scalar, "4G");
}

TEST(AliasBombs, GangShowFailsAtOnceOnABombInADefinition) {
  Tree tree{{"strata/bomb.morph", laughs("[", "]", "lol")}};
  auto start = Clock::now();
  auto r = testing::run_command("timeout 10 " + gang() + " show strata/bomb.morph --base none " +
                                "--arch x86_64 --definitions " + tree.root() + " 2>&1");
  EXPECT_LT(seconds_since(start), 1.0);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("strata/bomb.morph:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("copied nodes"), std::string::npos) << r.output;
}

TEST(AliasBombs, GangConfFailsAtOnceOnABomb) {
  TempDir dir{"gang-hostile-conf-"};
  ASSERT_TRUE(
      write_file(dir.path() + "/gang.conf",
                 laughs("[", "]", "lol").substr(std::string("name: bomb\nkind: chunk\n").size()) +
                     "aliases: *a9\n"));
  auto start = Clock::now();
  auto config = load_config(dir.path());
  EXPECT_LT(seconds_since(start), 0.5);
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().file, dir.path() + "/gang.conf");
  EXPECT_GT(config.error().line, 1);
}

// --- item 16: files that are not regular files -----------------------------

TEST(HostileFiles, AFifoADeviceAndAHugeFileAreRefusedAndTheRestLoads) {
  Tree tree{{"strata/good.morph", stratum_with_chunk("good")},
            {"strata/real.morph", "name: real\nkind: stratum\n"}};
  ASSERT_EQ(::mkfifo((tree.root() + "/strata/fifo.morph").c_str(), 0644), 0);
  ASSERT_EQ(::symlink("/dev/zero", (tree.root() + "/strata/zero.morph").c_str()), 0);
  ASSERT_EQ(::symlink("real.morph", (tree.root() + "/strata/link.morph").c_str()), 0);
  ASSERT_TRUE(write_file(tree.root() + "/strata/huge.morph",
                         "name: huge\nkind: stratum\n#" + std::string(17u << 20, 'x') + "\n"));
  auto start = Clock::now();
  auto defs = tree.load();
  EXPECT_LT(seconds_since(start), 1.0);
  ASSERT_TRUE(defs) << defs.error().to_string();
  auto expect_refused = [&](const std::string& path, const std::string& text) {
    const Error* e = defs->problem(path);
    ASSERT_NE(e, nullptr) << path;
    EXPECT_NE(e->to_string().find(path), std::string::npos) << e->to_string();
    EXPECT_NE(e->to_string().find(text), std::string::npos) << e->to_string();
  };
  expect_refused("strata/fifo.morph", "not a regular file (a FIFO)");
  expect_refused("strata/zero.morph", "not a regular file (a character device)");
  expect_refused("strata/huge.morph", "larger than 16777216 bytes");
  EXPECT_EQ(defs->problem("strata/good.morph"), nullptr);
  EXPECT_EQ(defs->problem("strata/link.morph"), nullptr);  // a symlink to a regular file is fine
}

TEST(HostileFiles, GangShowDoesNotHangOnAFifo) {
  Tree tree{{"strata/good.morph", stratum_with_chunk("good")}};
  ASSERT_EQ(::mkfifo((tree.root() + "/strata/fifo.morph").c_str(), 0644), 0);
  auto start = Clock::now();
  auto r = testing::run_command("timeout 10 " + gang() + " show strata/good.morph --base none " +
                                "--arch x86_64 --definitions " + tree.root() + " 2>&1");
  EXPECT_LT(seconds_since(start), 1.0);
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("strata/fifo.morph: not a regular file (a FIFO)"), std::string::npos)
      << r.output;
}

TEST(HostileFiles, VersionDefaultsAndGangConfMustBeRegularFiles) {
  for (const char* name : {"VERSION", "DEFAULTS"}) {
    Tree tree{{"strata/good.morph", stratum_with_chunk("good")}};
    std::string path = tree.root() + "/" + name;
    ASSERT_EQ(::unlink(path.c_str()), 0);
    ASSERT_EQ(::mkfifo(path.c_str(), 0644), 0);
    auto defs = tree.load();
    ASSERT_FALSE(defs) << name;
    EXPECT_NE(defs.error().to_string().find(path + ": not a regular file (a FIFO)"),
              std::string::npos)
        << defs.error().to_string();
  }
  TempDir dir{"gang-hostile-conf-"};
  ASSERT_EQ(::symlink("/dev/zero", (dir.path() + "/gang.conf").c_str()), 0);
  auto config = load_config(dir.path());
  ASSERT_FALSE(config);
  EXPECT_NE(config.error().to_string().find("not a regular file (a character device)"),
            std::string::npos)
      << config.error().to_string();
}

// --- fuzz regressions --------------------------------------------------------

// Every input in tests/definitions/fuzz_regressions (minimised from
// scripts/fuzz-definitions findings, and the bombs it is seeded with) is
// parsed and loaded as a stratum file, each well within the fuzzer's 1 s.
TEST(FuzzRegressions, EveryKeptInputLoadsQuickly) {
  std::string dir = std::string(GANG_SOURCE_DIR) + "/tests/definitions/fuzz_regressions";
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    auto text = read_file(entry.path().string());
    ASSERT_TRUE(text);
    auto start = Clock::now();
    (void)parse_yaml(*text, "fuzz.morph");
    Tree tree{{"strata/fuzz.morph", *text}};
    auto defs = tree.load();
    if (defs)
      for (const auto& w : defs->warnings) (void)w.to_string();
    EXPECT_LT(seconds_since(start), 1.0) << entry.path();
    ++count;
  }
  EXPECT_GT(count, 0);
}

}  // namespace
}  // namespace gang
