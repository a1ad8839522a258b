// Loader, target lookup and build-graph semantics, and every load error.
#include "definitions/definitions.hpp"

#include <gtest/gtest.h>

#include <algorithm>

#include "definitions/arch.hpp"
#include "definitions/build_graph.hpp"
#include "definitions/suggest.hpp"
#include "definitions/yaml.hpp"
#include "tests/definitions/test_tree.hpp"

namespace gang {
namespace {

using testing::fixture;
using testing::Tree;

const Component* find(const BuildGraph& g, std::string_view name) {
  for (const auto& c : g.components)
    if (c.name == name) return &c;
  return nullptr;
}

std::size_t index_of(const BuildGraph& g, std::string_view name) {
  for (std::size_t i = 0; i < g.components.size(); ++i)
    if (g.components[i].name == name) return i;
  ADD_FAILURE() << "no component " << name;
  return 0;
}

std::vector<std::string> names(const BuildGraph& g, const std::vector<std::size_t>& indices) {
  std::vector<std::string> out;
  for (auto i : indices) out.push_back(g.components[i].name);
  return out;
}

const std::size_t k_configure = *step_index("configure-commands");
const std::size_t k_pre_configure = *step_index("pre-configure-commands");
const std::size_t k_build = *step_index("build-commands");
const std::size_t k_install = *step_index("install-commands");

class DefinitionsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loaded = load_definitions(fixture("basic"));
    ASSERT_TRUE(loaded) << loaded.error().to_string();
    defs = std::move(*loaded);
  }
  BuildGraph graph(const std::string& target, const std::string& arch = "x86_64") {
    auto g = resolve_graph(defs, target, arch);
    EXPECT_TRUE(g) << g.error().to_string();
    return g ? std::move(*g) : BuildGraph{};
  }
  Definitions defs;
};

// --- loading and semantics ---------------------------------------------------

TEST_F(DefinitionsTest, LoadsEveryMorphFileWithoutWarnings) {
  EXPECT_EQ(defs.version, 8);
  EXPECT_EQ(defs.chunk_files.size(), 2u);
  EXPECT_EQ(defs.strata.size(), 4u);
  EXPECT_EQ(defs.systems.size(), 2u);
  EXPECT_EQ(defs.clusters.size(), 1u);
  EXPECT_TRUE(defs.warnings.empty()) << defs.warnings.front().to_string();
  EXPECT_TRUE(defs.build_systems.contains("cmake"));
  ASSERT_EQ(defs.split_rules.chunk.size(), 2u);
  EXPECT_EQ(defs.split_rules.chunk[0].artifact, "-bins");
  EXPECT_EQ(defs.split_rules.stratum.size(), 2u);
}

TEST_F(DefinitionsTest, FileChunkMergesStratumEntryOverChunkFile) {
  BuildGraph g = graph("systems/minimal-x86_64.morph");
  const Component* foo = find(g, "libfoo");
  ASSERT_NE(foo, nullptr);
  EXPECT_EQ(foo->prefix, "/opt");                                      // from the entry
  EXPECT_EQ(foo->steps[k_pre_configure], Commands{"./bootstrap.sh"});  // from the file
  EXPECT_EQ(foo->path, "strata/core/libfoo.morph");
  ASSERT_NE(foo->chunk_def, nullptr);
  EXPECT_EQ(foo->chunk_def->artifacts.at("libfoo-misc"), "core-devel");
  EXPECT_EQ(foo->chunk_def->products.at(0).artifact, "libfoo-tools");
  EXPECT_EQ(foo->chunk_def->system_integration.at("libfoo-misc").at("00-update-cache"),
            Commands{"foo-update-cache"});
  const Component* gcc = find(g, "stage1-gcc");
  ASSERT_NE(gcc, nullptr);
  EXPECT_EQ(gcc->build_mode, BuildMode::bootstrap);
  EXPECT_EQ(gcc->prefix, "/tools");
  EXPECT_EQ(gcc->max_jobs, 1);
}

TEST_F(DefinitionsTest, UnsetStepsComeFromTheBuildSystemInDefaults) {
  BuildGraph g = graph("systems/minimal-x86_64.morph");
  const Component* foo = find(g, "libfoo");  // autotools, overrides configure
  ASSERT_NE(foo, nullptr);
  EXPECT_EQ(foo->steps[k_configure], Commands{"./configure --prefix=\"$PREFIX\" --disable-static"});
  EXPECT_EQ(foo->steps[k_build], Commands{"make"});
  EXPECT_EQ(foo->steps[k_install], Commands{"make DESTDIR=\"$DESTDIR\" install"});
  const Component* bar = find(g, "libbar");  // inline, cmake
  ASSERT_NE(bar, nullptr);
  EXPECT_TRUE(bar->path == "strata/core.morph");
  EXPECT_EQ(bar->steps[k_build], Commands{"make"});
  EXPECT_EQ(bar->steps[k_install].size(), 2u);
  const Component* make = find(g, "make");  // no build-system: manual
  ASSERT_NE(make, nullptr);
  EXPECT_TRUE(make->steps[k_configure].empty());
  EXPECT_TRUE(make->steps[k_build].empty());
  EXPECT_EQ(make->prefix, "/usr");
  EXPECT_EQ(make->build_mode, BuildMode::staging);
}

TEST_F(DefinitionsTest, BuildOrderPutsEveryDependencyFirstIncludingForwardReferences) {
  BuildGraph g = graph("systems/minimal-x86_64.morph");
  ASSERT_EQ(g.components.size(), 10u);
  for (std::size_t i = 0; i < g.components.size(); ++i)
    for (std::size_t dep : g.components[i].depends) EXPECT_LT(dep, i) << g.components[i].name;
  // libfoo is listed before libbar but build-depends on it.
  EXPECT_LT(index_of(g, "libbar"), index_of(g, "libfoo"));
  EXPECT_EQ(g.target_index, g.components.size() - 1);
  auto t = g.totals();
  EXPECT_EQ(t.chunks, 6u);
  EXPECT_EQ(t.strata, 3u);
  EXPECT_EQ(t.systems, 1u);
}

TEST_F(DefinitionsTest, ChunksDependOnTheStrataTheirStratumBuildDependsOn) {
  BuildGraph g = graph("systems/minimal-x86_64.morph");
  const Component* tool = find(g, "tool");
  ASSERT_NE(tool, nullptr);
  EXPECT_EQ(names(g, tool->depends), std::vector<std::string>{"core"});
  const Component* foo = find(g, "libfoo");
  EXPECT_EQ(names(g, foo->depends), (std::vector<std::string>{"build-essential", "libbar"}));
  // tool stages core's chunks and, transitively, build-essential's, but not
  // the bootstrap-mode stage1-gcc.
  auto stage = names(g, staging_set(g, index_of(g, "tool")));
  EXPECT_EQ(stage, (std::vector<std::string>{"gcc-libs", "make", "libbar", "libfoo"}));
}

TEST_F(DefinitionsTest, BootstrapChunksAreStagedOnlyWhenNamedDirectly) {
  BuildGraph g = graph("systems/minimal-x86_64.morph");
  EXPECT_EQ(names(g, staging_set(g, index_of(g, "gcc-libs"))),
            std::vector<std::string>{"stage1-gcc"});
  // make -> gcc-libs -> stage1-gcc: transitive chunk build-depends are staged.
  EXPECT_EQ(names(g, staging_set(g, index_of(g, "make"))),
            (std::vector<std::string>{"stage1-gcc", "gcc-libs"}));
  EXPECT_TRUE(staging_set(g, index_of(g, "core")).empty());
}

TEST_F(DefinitionsTest, SystemsKeepTheirStrataArtifactFilters) {
  BuildGraph g = graph("minimal-x86_64");
  const Component& sys = g.components[g.target_index];
  ASSERT_EQ(sys.kind, Kind::system);
  ASSERT_EQ(sys.strata.size(), 3u);
  ASSERT_TRUE(sys.strata[0].artifacts);
  EXPECT_EQ(*sys.strata[0].artifacts, std::vector<std::string>{"build-essential-runtime"});
  EXPECT_FALSE(sys.strata[1].artifacts);
  EXPECT_EQ(g.components[sys.strata[1].component].name, "core");
}

TEST_F(DefinitionsTest, ClusterTakesOnlySystemsOfTheRequestedArch) {
  BuildGraph x86 = graph("clusters/release.morph", "x86_64");
  EXPECT_NE(find(x86, "minimal-x86_64"), nullptr);
  EXPECT_EQ(find(x86, "minimal-armv8l64"), nullptr);
  BuildGraph arm = graph("clusters/release.morph", "armv8l64");
  EXPECT_EQ(find(arm, "minimal-x86_64"), nullptr);
  EXPECT_NE(find(arm, "minimal-armv8l64"), nullptr);
  EXPECT_EQ(arm.totals().chunks, 3u);
  auto none = resolve_graph(defs, "release", "ppc64");
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("no systems for arch ppc64"), std::string::npos);
}

TEST_F(DefinitionsTest, SystemForAnotherArchIsAnErrorWhenNamedDirectly) {
  auto g = resolve_graph(defs, "systems/minimal-armv8l64.morph", "x86_64");
  ASSERT_FALSE(g);
  EXPECT_EQ(g.error().to_string(),
            "systems/minimal-armv8l64.morph:1: system \"minimal-armv8l64\" is for arch "
            "armv8l64, not x86_64");
}

TEST_F(DefinitionsTest, TargetsMayBeBareNamesPathsOrChunkFiles) {
  auto stratum = find_target(defs, "core");
  ASSERT_TRUE(stratum);
  EXPECT_EQ(stratum->kind, Kind::stratum);
  auto chunk = find_target(defs, "libbar");
  ASSERT_TRUE(chunk);
  EXPECT_EQ(chunk->kind, Kind::chunk);
  EXPECT_EQ(defs.strata[chunk->index].name, "core");
  auto file = find_target(defs, "strata/core/libfoo.morph");
  ASSERT_TRUE(file);
  EXPECT_EQ(defs.strata[file->index].chunks[file->chunk_index].name, "libfoo");
  auto abs = find_target(defs, fixture("basic") + "/systems/minimal-x86_64.morph");
  ASSERT_TRUE(abs) << abs.error().to_string();
  EXPECT_EQ(abs->kind, Kind::system);
  auto dotted = find_target(defs, "./strata/core.morph");
  ASSERT_TRUE(dotted);
  EXPECT_EQ(dotted->kind, Kind::stratum);
  BuildGraph g = graph("libfoo");
  EXPECT_EQ(g.components[g.target_index].name, "libfoo");
  EXPECT_EQ(g.totals().chunks, 5u);  // build-essential's 3, libbar, libfoo
}

TEST_F(DefinitionsTest, UnknownTargetsSuggestANameOrPath) {
  auto typo = find_target(defs, "libfo");
  ASSERT_FALSE(typo);
  EXPECT_EQ(typo.error().message, "no definition named \"libfo\" (did you mean \"libfoo\"?)");
  auto path = find_target(defs, "systems/nope.morph");
  ASSERT_FALSE(path);
  EXPECT_NE(path.error().message.find("systems/nope.morph"), std::string::npos);
}

TEST(DefinitionsTargets, AmbiguousBareNameListsTheCandidates) {
  Tree tree({{"strata/a.morph", "name: a\nkind: stratum\nchunks:\n- name: gcc\n"},
             {"strata/b.morph", "name: b\nkind: stratum\nchunks:\n- name: x\n- name: gcc\n"}});
  auto defs = tree.load();
  ASSERT_TRUE(defs) << defs.error().to_string();
  auto t = find_target(*defs, "gcc");
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().message,
            "\"gcc\" names several definitions; give STRATUM/NAME or a path instead:\n"
            "  chunk a/gcc (strata/a.morph:4)\n"
            "  chunk b/gcc (strata/b.morph:5)");
}

TEST(DefinitionsVersion, AcceptsSevenEightAndNine) {
  for (const char* v : {"7", "8", "9"}) {
    Tree tree({{"VERSION", std::string("version: ") + v + "\n"}});
    auto defs = tree.load();
    ASSERT_TRUE(defs) << defs.error().to_string();
    EXPECT_EQ(defs->version, std::stoi(v));
  }
}

TEST(DefinitionsVersion, RejectsOtherVersionsClearly) {
  Tree tree({{"VERSION", "version: 6\n"}});
  auto defs = tree.load();
  ASSERT_FALSE(defs);
  EXPECT_EQ(defs.error().to_string(),
            "VERSION:1: unsupported definitions version \"6\" (gang reads versions 7, 8 and 9)");
}

TEST(DefinitionsVersion, MissingVersionMeansNotADefinitionsTree) {
  TempDir dir;
  auto defs = load_definitions(dir.path());
  ASSERT_FALSE(defs);
  EXPECT_NE(defs.error().message.find("not a definitions tree"), std::string::npos);
}

TEST(DefinitionsLoader, ChunkWithoutRepoIsLegalAndV7EntriesMayCarryBuildDepends) {
  Tree tree({{"VERSION", "version: 7\n"},
             {"strata/s.morph",
              "name: s\nkind: stratum\nchunks:\n- name: a\n  morph: strata/s/a.morph\n"
              "  build-depends: [b]\n- name: b\n  morph: strata/s/b.morph\n"},
             {"strata/s/a.morph", "name: a\nkind: chunk\n"},
             {"strata/s/b.morph", "name: b\nkind: chunk\nbuild-system: autotools\n"}});
  auto defs = tree.load();
  ASSERT_TRUE(defs) << defs.error().to_string();
  const auto& chunks = defs->strata.at(0).chunks;
  EXPECT_EQ(chunks[0].build_depends, std::vector<std::string>{"b"});
  EXPECT_TRUE(chunks[0].repo.empty());
  EXPECT_EQ(chunks[1].build_system, "autotools");
}

TEST(DefinitionsLoader, KnownRealWorldFieldsDoNotWarn) {
  Tree tree({{"strata/s.morph",
              "name: s\nkind: stratum\ndescription: d\nproducts:\n- artifact: s-runtime\n"
              "  include: ['.*']\nchunks:\n- name: c\n  morph: strata/s/c.morph\n"},
             {"strata/s/c.morph",
              "name: c\nkind: chunk\nmax-jobs: 2\ndevices:\n- type: c\n  filename: /dev/null\n"
              "system-integration:\n  c-misc:\n    00-x:\n    - true\n"},
             {"systems/x.morph",
              "name: x\nkind: system\narch: x86_64\nconfiguration-extensions: [extensions/a]\n"
              "strata:\n- morph: strata/s.morph\n"},
             {"clusters/k.morph",
              "name: k\nkind: cluster\nsystems:\n- morph: systems/x.morph\n"
              "  deploy-defaults: {A: b}\n  deploy:\n    d:\n      type: tar\n"
              "  subsystems:\n  - morph: systems/x.morph\n"}});
  auto defs = tree.load(Strictness::strict);
  ASSERT_TRUE(defs) << defs.error().to_string();
  EXPECT_TRUE(defs->warnings.empty());
  EXPECT_EQ(defs->clusters.at(0).systems.at(0).subsystems.size(), 1u);
}

// --- errors -------------------------------------------------------------------

const char* k_misspelt_stratum =
    "name: core\n"
    "kind: stratum\n"
    "chunks:\n"
    "- name: a\n"
    "  bulid-depends: []\n";

TEST(DefinitionsErrors, UnknownFieldIsAWarningWithDidYouMean) {
  Tree tree({{"strata/core.morph", k_misspelt_stratum}});
  auto defs = tree.load();
  ASSERT_TRUE(defs) << defs.error().to_string();
  ASSERT_EQ(defs->warnings.size(), 1u);
  EXPECT_EQ(defs->warnings[0].to_string(),
            "strata/core.morph:5: unknown field \"bulid-depends\" (did you mean "
            "\"build-depends\"?)");
}

// A broken definition does not fail the load: loading warns about it, and
// resolving a target that needs it fails with the same error, returned here
// as text (or what went differently).
std::string failure(const Tree& tree, const std::string& target,
                    Strictness strictness = Strictness::warn) {
  auto defs = tree.load(strictness);
  if (!defs) return "load failed: " + defs.error().to_string();
  auto graph = resolve_graph(*defs, target, "x86_64");
  if (graph) return "resolved";
  std::string text = graph.error().to_string();
  auto same = [&](const Error& w) { return w.to_string() == text; };
  if (std::count_if(defs->warnings.begin(), defs->warnings.end(), same) != 1)
    return "not warned once: " + text;
  return text;
}

TEST(DefinitionsErrors, UnknownFieldIsAnErrorWhenStrict) {
  Tree tree({{"strata/core.morph", k_misspelt_stratum}});
  EXPECT_EQ(failure(tree, "strata/core.morph", Strictness::strict),
            "strata/core.morph:5: unknown field \"bulid-depends\" (did you mean "
            "\"build-depends\"?)");
}

TEST(DefinitionsErrors, YamlSyntaxErrorHasFileLineAndColumn) {
  Tree tree({{"strata/bad.morph", "name: bad\nkind: stratum\nchunks: [a, b\n"}});
  auto defs = tree.load();
  ASSERT_TRUE(defs) << defs.error().to_string();
  const Error* e = defs->problem("strata/bad.morph");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->file, "strata/bad.morph");
  EXPECT_GE(e->line, 3);
  EXPECT_GT(e->column, 0);
  EXPECT_EQ(failure(tree, "strata/bad.morph"), e->to_string());
}

TEST(DefinitionsErrors, DuplicateYamlKeyIsAnError) {
  Tree tree({{"strata/s.morph", "name: s\nkind: stratum\nname: t\n"}});
  EXPECT_EQ(failure(tree, "strata/s.morph"),
            "strata/s.morph:3:1: duplicate field \"name\" (first at line 1)");
}

TEST(DefinitionsErrors, MissingChunkMorphFile) {
  Tree tree({{"strata/s.morph",
              "name: s\nkind: stratum\nchunks:\n- name: a\n  morph: strata/s/a.morph\n"}});
  EXPECT_EQ(failure(tree, "strata/s.morph"),
            "strata/s.morph:4: chunk entry names missing morph file \"strata/s/a.morph\"");
}

TEST(DefinitionsErrors, MissingStratumAndSystemMorphFiles) {
  Tree strata(
      {{"strata/s.morph", "name: s\nkind: stratum\nbuild-depends:\n- morph: strata/gone.morph\n"}});
  EXPECT_EQ(failure(strata, "strata/s.morph"),
            "strata/s.morph:4: build-depends names missing morph file \"strata/gone.morph\"");
  Tree systems({{"systems/x.morph",
                 "name: x\nkind: system\narch: x86_64\nstrata:\n- morph: strata/gone.morph\n"}});
  EXPECT_EQ(failure(systems, "systems/x.morph"),
            "systems/x.morph:5: strata entry names missing morph file \"strata/gone.morph\"");
}

TEST(DefinitionsErrors, BuildDependsOnUnknownChunk) {
  Tree tree({{"strata/s.morph",
              "name: s\nkind: stratum\nchunks:\n- name: libfoo\n- name: app\n"
              "  build-depends: [libfop]\n"}});
  EXPECT_EQ(failure(tree, "strata/s.morph"),
            "strata/s.morph:5: chunk \"app\" build-depends on unknown chunk \"libfop\" (did you "
            "mean \"libfoo\"?) (not in stratum \"s\")");
}

TEST(DefinitionsErrors, ChunkCycleIsPrintedAsTheCycle) {
  Tree tree({{"strata/s.morph",
              "name: s\nkind: stratum\nchunks:\n"
              "- name: a\n  build-depends: [b]\n"
              "- name: b\n  build-depends: [c]\n"
              "- name: c\n  build-depends: [a]\n"}});
  EXPECT_EQ(failure(tree, "strata/s.morph"),
            "strata/s.morph:4: dependency cycle: a -> b -> c -> a");
}

TEST(DefinitionsErrors, StratumCycleIsPrintedAsTheCycle) {
  Tree tree(
      {{"strata/a.morph", "name: a\nkind: stratum\nbuild-depends:\n- morph: strata/b.morph\n"},
       {"strata/b.morph", "name: b\nkind: stratum\nbuild-depends:\n- morph: strata/a.morph\n"},
       {"strata/c.morph", "name: c\nkind: stratum\nbuild-depends:\n- morph: strata/b.morph\n"}});
  EXPECT_EQ(failure(tree, "strata/a.morph"), "strata/a.morph:1: dependency cycle: a -> b -> a");
  EXPECT_EQ(failure(tree, "strata/b.morph"), "strata/a.morph:1: dependency cycle: a -> b -> a");
  EXPECT_EQ(failure(tree, "strata/c.morph"), "strata/a.morph:1: dependency cycle: a -> b -> a");
}

TEST(DefinitionsErrors, DuplicateChunkNamesBreakTheStratum) {
  Tree chunks({{"strata/s.morph", "name: s\nkind: stratum\nchunks:\n- name: a\n- name: a\n"}});
  EXPECT_EQ(failure(chunks, "strata/s.morph"),
            "strata/s.morph:5: duplicate chunk name \"a\" (first at line 4)");
}

TEST(DefinitionsErrors, DuplicateDefinitionNamesAreWarningsAndMakeBareNamesAmbiguous) {
  Tree strata({{"strata/s.morph", "name: s\nkind: stratum\n"},
               {"strata/t.morph", "kind: stratum\nname: s\n"}});
  auto defs = strata.load();
  ASSERT_TRUE(defs) << defs.error().to_string();
  ASSERT_EQ(defs->warnings.size(), 1u);
  EXPECT_EQ(defs->warnings[0].to_string(),
            "strata/t.morph:2: duplicate stratum name \"s\" (also in strata/s.morph)");
  EXPECT_TRUE(resolve_graph(*defs, "strata/t.morph", "x86_64"));
  auto ambiguous = resolve_graph(*defs, "s", "x86_64");
  ASSERT_FALSE(ambiguous);
  EXPECT_TRUE(ambiguous.error().message.starts_with("\"s\" names several definitions"));
}

TEST(DefinitionsErrors, WrongTypes) {
  Tree list({{"strata/s.morph",
              "name: s\nkind: stratum\nchunks:\n- name: a\n- name: b\n  build-depends: a\n"}});
  EXPECT_EQ(failure(list, "strata/s.morph"),
            "strata/s.morph:6: \"build-depends\" must be a list, not a string");
  Tree steps({{"strata/s/c.morph", "name: c\nkind: chunk\ninstall-commands:\n  x: y\n"}});
  EXPECT_EQ(failure(steps, "strata/s/c.morph"),
            "strata/s/c.morph:4: \"install-commands\" must be a list, not a mapping");
  Tree jobs({{"strata/s/c.morph", "name: c\nkind: chunk\nmax-jobs: lots\n"}});
  EXPECT_EQ(failure(jobs, "strata/s/c.morph"),
            "strata/s/c.morph:3: \"max-jobs\" must be a positive number");
}

TEST(DefinitionsErrors, UnknownKindBuildModeAndBuildSystemSuggestFixes) {
  Tree kind({{"strata/s.morph", "name: s\nkind: stratun\n"}});
  EXPECT_EQ(failure(kind, "strata/s.morph"),
            "strata/s.morph:2: unknown kind \"stratun\" (did you mean \"stratum\"?)");
  Tree mode(
      {{"strata/s.morph", "name: s\nkind: stratum\nchunks:\n- name: a\n  build-mode: bootstap\n"}});
  EXPECT_EQ(failure(mode, "strata/s.morph"),
            "strata/s.morph:5: unknown build-mode \"bootstap\" (did you mean \"bootstrap\"?) "
            "(expected staging, bootstrap or test)");
  Tree bs(
      {{"strata/s.morph", "name: s\nkind: stratum\nchunks:\n- name: a\n  build-system: cmak\n"}});
  EXPECT_EQ(failure(bs, "strata/s.morph"),
            "strata/s.morph:4: unknown build-system \"cmak\" (did you mean \"cmake\"?)");
}

TEST(DefinitionsErrors, MissingNameAndKind) {
  Tree tree({{"strata/s.morph", "kind: stratum\n"}});
  EXPECT_EQ(failure(tree, "strata/s.morph"), "strata/s.morph:1: missing field \"name\"");
  Tree scalar({{"strata/s.morph", "just a string\n"}});
  EXPECT_EQ(failure(scalar, "strata/s.morph"),
            "strata/s.morph:1: a definition must be a mapping, not a string");
}

// A real set always holds some broken files; they must not stop a target
// that does not need them, and must still stop one that does, with their
// own error rather than a "missing file" one.
TEST(DefinitionsErrors, BrokenFilesFailOnlyTheTargetsThatNeedThem) {
  const std::string system =
      "name: x\nkind: system\narch: x86_64\nstrata:\n- morph: strata/good.morph\n";
  Tree tree(
      {{"strata/good.morph",
        "name: good\nkind: stratum\nchunks:\n- name: a\n  morph: strata/good/a.morph\n"},
       {"strata/good/a.morph", "name: a\nkind: chunk\nbuild-system: autotools\n"},
       {"strata/bad.morph",
        "name: bad\nkind: stratum\nchunks:\n- name: b\n  morph: strata/bad/gone.morph\n"},
       {"strata/uses-bad-chunk.morph",
        "name: uses-bad-chunk\nkind: stratum\nchunks:\n- name: c\n  morph: strata/bad/c.morph\n"},
       {"strata/bad/c.morph", "name: c\nkind: chunk\nmax-jobs: many\n"},
       {"strata/uses-bad.morph",
        "name: uses-bad\nkind: stratum\nbuild-depends:\n- morph: strata/bad.morph\n"},
       {"strata/uses-unparsable.morph",
        "name: uses-unparsable\nkind: stratum\nbuild-depends:\n- morph: strata/yaml.morph\n"},
       {"strata/yaml.morph", "name: [\n"},
       {"systems/x.morph", system},
       {"systems/arm.morph",
        "name: arm\nkind: system\narch: armv8l64\nstrata:\n- morph: strata/gone.morph\n"},
       {"systems/no-arch.morph", "name: no-arch\nkind: system\narch: [x86_64]\n"},
       {"clusters/k.morph",
        "name: k\nkind: cluster\nsystems:\n- morph: systems/x.morph\n"
        "- morph: systems/arm.morph\n"},
       {"clusters/k2.morph",
        "name: k2\nkind: cluster\nsystems:\n- morph: systems/x.morph\n"
        "- morph: systems/no-arch.morph\n"},
       {"clusters/gone.morph",
        "name: gone\nkind: cluster\nsystems:\n- morph: systems/gone.morph\n"}});
  auto defs = tree.load();
  ASSERT_TRUE(defs) << defs.error().to_string();
  EXPECT_EQ(defs->warnings.size(), 6u);  // bad, bad/c, yaml, arm, no-arch, clusters/gone
  auto x = resolve_graph(*defs, "x", "x86_64");
  ASSERT_TRUE(x) << x.error().to_string();
  EXPECT_EQ(x->totals().chunks, 1u);
  // A cluster skips a broken system of another arch.
  auto k = resolve_graph(*defs, "clusters/k.morph", "x86_64");
  ASSERT_TRUE(k) << k.error().to_string();
  EXPECT_EQ(k->totals().systems, 1u);
  EXPECT_EQ(resolve_graph(*defs, "k", "armv8l64").error().to_string(),
            "systems/arm.morph:5: strata entry names missing morph file \"strata/gone.morph\"");
  // ... but not one whose arch is unknown.
  EXPECT_EQ(resolve_graph(*defs, "k2", "x86_64").error().to_string(),
            "systems/no-arch.morph:3: \"arch\" must be a string, not a list");
  EXPECT_EQ(failure(tree, "clusters/gone.morph"),
            "clusters/gone.morph:4: systems entry names missing morph file "
            "\"systems/gone.morph\"");
  // The first broken definition on the way is the one reported.
  EXPECT_EQ(failure(tree, "uses-bad"),
            "strata/bad.morph:4: chunk entry names missing morph file \"strata/bad/gone.morph\"");
  EXPECT_EQ(failure(tree, "uses-bad-chunk"),
            "strata/bad/c.morph:3: \"max-jobs\" must be a positive number");
  const Error* yaml = defs->problem("strata/yaml.morph");
  ASSERT_NE(yaml, nullptr);
  EXPECT_EQ(failure(tree, "uses-unparsable"), yaml->to_string());
}

// --- small pieces ---------------------------------------------------------------

TEST(Suggest, TranspositionIsOneEdit) {
  EXPECT_EQ(edit_distance("bulid", "build"), 1u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  std::string_view candidates[] = {"build-depends", "build-system", "chunks"};
  EXPECT_EQ(closest_match("bulid-depends", candidates), "build-depends");
  EXPECT_EQ(closest_match("zzzzzz", candidates), "");
}

TEST(Yaml, KeepsLinesAliasesAndNulls) {
  auto doc = parse_yaml("a: &x [1, 2]\nb: *x\nc:\nd: 'q'\n", "f");
  ASSERT_TRUE(doc) << doc.error().to_string();
  ASSERT_TRUE(doc->is_map());
  EXPECT_EQ(doc->find("b")->items.size(), 2u);
  EXPECT_TRUE(doc->find("c")->is_null());
  EXPECT_EQ(doc->find("d")->scalar, "q");
  EXPECT_EQ(doc->entries[3].line, 4);
  auto bad = parse_yaml("a: [\n", "f");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().file, "f");
  auto unclosed = parse_yaml("x: 1\na: [b\n- c: d\n", "f");
  ASSERT_FALSE(unclosed);
  EXPECT_EQ(unclosed.error().to_string(),
            "f:3:4: while parsing a flow sequence started at line 2: did not find expected ',' or "
            "']'");
}

TEST(Yaml, ReadsAnAnchoredBlockScalarInABlockSequence) {
  // Baserock's DEFAULTS anchors a strip command this way; yaml-cpp 0.7 (once
  // gang's parser) rejected it unless the text was indented past the anchor.
  const char* text =
      "strip-commands:\n"
      "  # comment\n"
      "  - &strip |\n"
      "    find . \\\n"
      "      -type f\n"
      "\n"
      "    echo \"$1\"\n"
      "  - !!str >-\n"
      "    folded\n"
      "    text\n"
      "other:\n"
      "- - &x |\n"
      "    nested\n"
      "- *strip\n"
      "last: *x\n";
  auto doc = parse_yaml(text, "DEFAULTS");
  ASSERT_TRUE(doc) << doc.error().to_string();
  const YamlNode* strip = doc->find("strip-commands");
  ASSERT_EQ(strip->items.size(), 2u);
  EXPECT_EQ(strip->items[0].scalar, "find . \\\n  -type f\n\necho \"$1\"\n");
  EXPECT_EQ(strip->items[1].scalar, "folded text");
  const YamlNode* other = doc->find("other");
  EXPECT_EQ(other->items[0].items[0].scalar, "nested\n");
  EXPECT_EQ(other->items[1].scalar, strip->items[0].scalar);
  EXPECT_EQ(doc->find("last")->scalar, "nested\n");
  EXPECT_EQ(doc->entries[2].line, 15);
  // A real error in such a file still reports where it is.
  auto bad = parse_yaml("a:\n- &x |\n  foo\nb: [\n", "f");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().file, "f");
}

TEST(Yaml, MergeKeysMergeMappingsAndOwnKeysWin) {
  const char* text =
      "base: &base\n"
      "  type: rawdisk\n"
      "  location: a.img\n"
      "more: &more {EXTRA: 'yes', type: tar}\n"
      "one:\n"
      "  location: b.img\n"
      "  <<: *base\n"
      "two:\n"
      "  <<: [*more, *base]\n"
      "  HOSTNAME: h\n"
      "three:\n"
      "  '<<': quoted keys are plain keys\n";
  auto doc = parse_yaml(text, "c");
  ASSERT_TRUE(doc) << doc.error().to_string();
  const YamlNode* one = doc->find("one");
  ASSERT_EQ(one->entries.size(), 2u);
  EXPECT_EQ(one->find("location")->scalar, "b.img");
  EXPECT_EQ(one->find("type")->scalar, "rawdisk");
  const YamlNode* two = doc->find("two");
  ASSERT_EQ(two->entries.size(), 4u);
  EXPECT_EQ(two->find("type")->scalar, "tar");
  EXPECT_EQ(two->find("EXTRA")->scalar, "yes");
  EXPECT_EQ(two->find("location")->scalar, "a.img");
  EXPECT_EQ(two->find("location")->line, 3);
  EXPECT_EQ(doc->find("three")->entries.at(0).key, "<<");
  auto bad = parse_yaml("a:\n  <<: scalar\n", "c");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().to_string(),
            "c:2:7: \"<<\" must merge a mapping or a list of mappings, not a string");
}

TEST(Arch, MapsKernelMachinesToBaserockNames) {
  EXPECT_EQ(baserock_arch("x86_64"), "x86_64");
  EXPECT_EQ(baserock_arch("i686"), "x86_32");
  EXPECT_EQ(baserock_arch("aarch64"), "armv8l64");
  EXPECT_EQ(baserock_arch("armv7l"), "armv7lhf");
  EXPECT_EQ(baserock_arch("ppc64"), "ppc64");
  EXPECT_FALSE(host_arch().empty());
}

}  // namespace
}  // namespace gang

namespace gang {
namespace {

TEST(DefinitionsErrors, DuplicateNamesWithinOneBuildAreAnError) {
  Tree tree({{"strata/one.morph", "name: core\nkind: stratum\nchunks:\n- name: a\n  build-system: manual\n"},
             {"strata/two.morph", "name: core\nkind: stratum\nchunks:\n- name: b\n  build-system: manual\n"},
             {"systems/both.morph",
              "name: both\nkind: system\narch: x86_64\nstrata:\n- morph: strata/one.morph\n"
              "- morph: strata/two.morph\n"}});
  auto defs = tree.load();
  ASSERT_TRUE(defs) << defs.error().to_string();
  EXPECT_FALSE(defs->warnings.empty()) << "the duplicate is reported at load";
  EXPECT_TRUE(resolve_graph(*defs, "strata/one.morph", "x86_64")) << "one of them alone is fine";
  auto both = resolve_graph(*defs, "systems/both.morph", "x86_64");
  ASSERT_FALSE(both);
  EXPECT_EQ(both.error().file, "strata/two.morph");
  EXPECT_NE(both.error().message.find("duplicate stratum name \"core\" in this build (also strata/one.morph"),
            std::string::npos)
      << both.error().to_string();
}

}  // namespace
}  // namespace gang
