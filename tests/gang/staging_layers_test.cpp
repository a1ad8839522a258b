// Staging dependencies as cached trees stacked as overlay layers: grouping
// (unit), and end to end, a build on a three-stratum stack with overlapping
// paths sees exactly the files that staging its dependencies one after the
// other into one directory gives, file for file.
#include "gang/staging_layers.hpp"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "tests/gang/gang_process.hpp"
#include "util/fs.hpp"

namespace gang {
namespace {

// A graph of strata s0..s(n-1), each with `per` chunks, in build order
// (a stratum's chunks, then the stratum).
BuildGraph stack(int strata, int per) {
  BuildGraph graph;
  for (int s = 0; s < strata; ++s) {
    std::vector<std::size_t> chunks;
    for (int c = 0; c < per; ++c) {
      Component chunk;
      chunk.name = "c" + std::to_string(s) + "-" + std::to_string(c);
      chunk.kind = Kind::chunk;
      chunk.stratum = "s" + std::to_string(s);
      chunks.push_back(graph.components.size());
      graph.components.push_back(chunk);
    }
    Component stratum;
    stratum.name = "s" + std::to_string(s);
    stratum.kind = Kind::stratum;
    stratum.chunks = chunks;
    graph.components.push_back(stratum);
  }
  return graph;
}

std::vector<std::size_t> chunks_of(const BuildGraph& g, const std::string& stratum) {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < g.components.size(); ++i)
    if (g.components[i].kind == Kind::chunk && g.components[i].stratum == stratum) out.push_back(i);
  return out;
}

TEST(LayerGroups, WholeStrataAreOneLayerTheRestOneEachUpToTheLimit) {
  BuildGraph g = stack(4, 30);
  std::vector<std::size_t> stage;
  for (const char* s : {"s0", "s1", "s2"})
    for (std::size_t i : chunks_of(g, s)) stage.push_back(i);
  auto s3 = chunks_of(g, "s3");
  stage.insert(stage.end(), s3.begin(), s3.begin() + 5);  // in-stratum build-depends
  auto groups = layer_groups(g, stage);
  ASSERT_EQ(groups.size(), 1u + 5u);
  std::vector<std::size_t> below = chunks_of(g, "s0");  // the strata below, as one tree
  for (const char* s : {"s1", "s2"})
    for (std::size_t i : chunks_of(g, s)) below.push_back(i);
  EXPECT_EQ(groups[0], below);
  EXPECT_EQ(groups[1], std::vector<std::size_t>{s3[0]});
  // A whole stratum after other dependencies stays a group of its own.
  std::vector<std::size_t> mixed{s3[0]};
  for (std::size_t i : chunks_of(g, "s1")) mixed.push_back(i);
  auto mixed_groups = layer_groups(g, mixed);
  ASSERT_EQ(mixed_groups.size(), 2u);
  EXPECT_EQ(mixed_groups[1], chunks_of(g, "s1"));
  // Concatenated, the groups are the staging order.
  std::vector<std::size_t> flat;
  for (const auto& group : groups) flat.insert(flat.end(), group.begin(), group.end());
  EXPECT_EQ(flat, stage);

  // 300 dependencies of one stratum, none a whole stratum: never more than
  // the limit, order kept.
  BuildGraph big = stack(1, 301);
  auto all = chunks_of(big, "s0");
  std::vector<std::size_t> most(all.begin(), all.end() - 1);
  auto limited = layer_groups(big, most);
  EXPECT_LE(limited.size(), k_max_staging_layers);
  EXPECT_GE(limited.size(), k_max_staging_layers - 1);
  flat.clear();
  for (const auto& group : limited) flat.insert(flat.end(), group.begin(), group.end());
  EXPECT_EQ(flat, most);
  EXPECT_EQ(layer_groups(big, most, 1).size(), 1u);
  EXPECT_TRUE(layer_groups(big, {}).empty());
}

TEST(LayerGroups, ABuildSeesWhatSequentialStagingGivesFileForFile) {
  if (std::system("find --version >/dev/null 2>&1") != 0) GTEST_SKIP() << "needs GNU find";
  TempDir dir("gang-layers-test-");
  const std::string defs = dir.path() + "/defs";
  ASSERT_TRUE(make_dirs(defs + "/strata"));
  ASSERT_TRUE(write_file_atomic(defs + "/VERSION", "version: 9\n"));
  ASSERT_TRUE(write_file_atomic(defs + "/DEFAULTS", "build-systems:\n  manual: {}\n"));
  auto chunk = [](const std::string& name, const std::string& commands) {
    return "- name: " + name + "\n  build-system: manual\n  install-commands:\n" + commands;
  };
  const std::string ov = "    - mkdir -p \"$DESTDIR/usr/share/ov/d\"\n";
  ASSERT_TRUE(write_file_atomic(defs + "/strata/one.morph",
      "name: one\nkind: stratum\nchunks:\n" +
      chunk("a1", ov + "    - echo a1 > \"$DESTDIR/usr/share/ov/x\"\n"
                       "    - echo a1 > \"$DESTDIR/usr/share/ov/d/inner\"\n"
                       "    - echo a1 > \"$DESTDIR/usr/share/ov/only-a1\"\n"
                       "    - mkdir -p \"$DESTDIR/usr/share/ov/l\" && echo a1 > \"$DESTDIR/usr/share/ov/l/f\"\n") +
      chunk("a2", ov + "    - echo a2 > \"$DESTDIR/usr/share/ov/x\"\n"
                       "    - echo a2 > \"$DESTDIR/usr/share/ov/d/second\"\n")));
  ASSERT_TRUE(write_file_atomic(defs + "/strata/two.morph",
      "name: two\nkind: stratum\nbuild-depends:\n- morph: strata/one.morph\nchunks:\n" +
      chunk("b1", "    - mkdir -p \"$DESTDIR/usr/share/ov\"\n"
                  "    - echo b1 > \"$DESTDIR/usr/share/ov/x\"\n"
                  "    - ln -s elsewhere \"$DESTDIR/usr/share/ov/d\"\n") +
      chunk("b2", "    - mkdir -p \"$DESTDIR/usr/share/ov/l\"\n"
                  "    - echo b2 > \"$DESTDIR/usr/share/ov/y\"\n"
                  "    - echo b2 > \"$DESTDIR/usr/share/ov/l/g\"\n")));
  const std::string listing =
      "cd /usr/share/ov && find . -printf '%p %y %l\\n' | LC_ALL=C sort && "
      "for f in $(find . -type f | LC_ALL=C sort); do echo \"$f: $(cat $f)\"; done";
  ASSERT_TRUE(write_file_atomic(defs + "/strata/three.morph",
      "name: three\nkind: stratum\nbuild-depends:\n- morph: strata/two.morph\nchunks:\n" +
      chunk("c1", "    - echo c1 > c1.txt\n") +
      "- name: probe\n  build-system: manual\n  build-depends: [c1]\n  install-commands:\n"
      "    - mkdir -p \"$DESTDIR/usr/share\"\n"
      "    - |\n      (" + listing + ") > \"$DESTDIR/usr/share/probe.txt\"\n"
      // A build may still overwrite and delete what it was given (copy-up);
      // the trees and blobs below never change.
      "    - echo mine > /usr/share/ov/x && rm /usr/share/ov/y && rm -r /usr/share/ov/l\n"
      "    - test \"$(cat /usr/share/ov/x)\" = mine && test ! -e /usr/share/ov/y\n"));
  const std::string cache = dir.path() + "/cache";
  auto run = testing::run_gang({"build", defs + "/strata/three.morph", "--cache", cache,
                                "--instances", "1"},
                               dir.path());
  ASSERT_EQ(run.status, 0) << run.output;
  // The strata below (one and two) as one tree, c1 as another.
  EXPECT_NE(run.output.find("5 dependencies as 2 layers"), std::string::npos) << run.output;
  auto key = [&](const std::string& name) {
    auto at = run.output.find("[" + name + "] Starting build (");
    if (at == std::string::npos) return std::string();
    at = run.output.find('(', at) + 1;
    return run.output.substr(at, run.output.find(')', at) - at);
  };
  // What staging the probe's dependencies one after the other gives.
  const std::string staged = dir.path() + "/staged";
  for (const char* dep : {"a1", "a2", "b1", "b2", "c1"}) {
    auto stage = testing::run_gang({"cache", "stage", key(dep), staged, "--link", "--cache", cache},
                                   dir.path());
    ASSERT_EQ(stage.status, 0) << stage.output;
  }
  const std::string out = dir.path() + "/probe";
  ASSERT_EQ(testing::run_gang({"cache", "stage", key("probe"), out, "--cache", cache}, dir.path()).status, 0);
  std::string expected_cmd = "cd " + staged + " && (" +
                             std::string(listing).replace(0, std::string("cd /usr/share/ov").size(),
                                                          "cd usr/share/ov") +
                             ") > " + dir.path() + "/expected.txt";
  ASSERT_EQ(std::system(expected_cmd.c_str()), 0);
  std::string seen = testing::slurp(out + "/usr/share/probe.txt");
  EXPECT_EQ(seen, testing::slurp(dir.path() + "/expected.txt"));
  // And what that is: b1's x and symlink d over a1's directory, b2's y, the
  // l directories of a1 and b2 merged.
  EXPECT_NE(seen.find("./d l elsewhere"), std::string::npos) << seen;
  EXPECT_NE(seen.find("./x: b1"), std::string::npos) << seen;
  EXPECT_NE(seen.find("./l/f: a1"), std::string::npos) << seen;
  EXPECT_NE(seen.find("./l/g: b2"), std::string::npos) << seen;
  EXPECT_EQ(seen.find("inner"), std::string::npos) << seen;
  auto verified = testing::run_gang({"cache", "verify", "--cache", cache, "--json"}, dir.path());
  EXPECT_EQ(verified.status, 0) << verified.output;
  EXPECT_NE(verified.output.find("\"damaged_trees\": []"), std::string::npos) << verified.output;
  // The same through the classic mount option string (kernels before 6.8),
  // and through lower layers named by fd number (kernels before 6.8 whose
  // option string would not fit a page).
  for (const char* api : {"classic", "fd"}) {
    ::setenv("GANG_OVERLAY_API", api, 1);
    auto forgot = testing::run_gang({"cache", "forget", key("probe"), "--cache", cache}, dir.path());
    auto again = testing::run_gang({"build", "probe", "--definitions", defs, "--cache", cache,
                                    "--instances", "1"}, dir.path());
    ::unsetenv("GANG_OVERLAY_API");
    ASSERT_EQ(forgot.status, 0) << api << ": " << forgot.output;
    ASSERT_EQ(again.status, 0) << api << ": " << again.output;
    const std::string staged_again = dir.path() + "/probe-" + api;
    ASSERT_EQ(testing::run_gang({"cache", "stage", key("probe"), staged_again, "--cache", cache},
                                dir.path()).status, 0);
    EXPECT_EQ(testing::slurp(staged_again + "/usr/share/probe.txt"), seen) << api;
  }
  // Forgetting an artifact removes the trees made of it (the strata tree
  // holds a1), and only those.
  auto count_trees = [&] {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(cache + "/trees"))
      n += e.is_directory() && e.path().filename().string().size() == 20;
    return n;
  };
  int before = count_trees();
  ASSERT_EQ(before, 3);  // one (for two's chunks); one and two merged; c1
  auto forget = testing::run_gang({"cache", "forget", key("a1"), "--cache", cache}, dir.path());
  ASSERT_EQ(forget.status, 0) << forget.output;
  EXPECT_EQ(count_trees(), 1);
  if (HasFailure()) dir.keep();
}

}  // namespace
}  // namespace gang
