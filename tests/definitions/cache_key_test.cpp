// Cache keys: stable, dependency-sensitive, insensitive to descriptions and
// YAML key order, pending until sources resolve.
#include "definitions/cache_key.hpp"

#include <gtest/gtest.h>

#include <map>

#include "definitions/build_graph.hpp"
#include "definitions/definitions.hpp"
#include "tests/definitions/test_tree.hpp"

namespace gang {
namespace {

using testing::fixture;
using testing::Tree;

using Keys = std::map<std::string, std::optional<std::string>>;

Keys keys_of(const std::string& root, const std::string& target, SourceResolver& resolver,
             const std::string& arch = "x86_64") {
  auto defs = load_definitions(root);
  EXPECT_TRUE(defs) << defs.error().to_string();
  if (!defs) return {};
  auto graph = resolve_graph(*defs, target, arch);
  EXPECT_TRUE(graph) << graph.error().to_string();
  if (!graph) return {};
  EXPECT_TRUE(compute_keys(*graph, resolver));
  Keys out;
  for (const auto& c : graph->components) out[c.name] = c.cache_key;
  return out;
}

Keys keys_of(const std::string& root, const std::string& target,
             const std::string& arch = "x86_64") {
  UnresolvedSources none;
  return keys_of(root, target, none, arch);
}

// Resolves every (repo, ref) to a tree named by a table, counting calls.
class FakeResolver final : public SourceResolver {
 public:
  Result<std::optional<ResolvedSource>> resolve(const std::string& repo,
                                                const std::string& ref) override {
    ++calls;
    if (fail) return make_error("no such ref");
    auto it = trees.find(repo);
    if (it == trees.end()) return std::optional<ResolvedSource>{};
    return std::optional<ResolvedSource>(ResolvedSource{commit + ref.substr(0, 4), it->second, 42});
  }
  std::map<std::string, std::string> trees;
  std::string commit = "c0ffee";
  int calls = 0;
  bool fail = false;
};

const char* k_stratum = R"(name: s
kind: stratum
description: first
chunks:
- name: base
  morph: strata/s/base.morph
- name: mid
  build-depends: [base]
  install-commands: ['echo mid']
- name: leaf
  build-depends: [mid]
- name: other
)";

const char* k_stratum_reordered = R"(kind: stratum
chunks:
- build-depends: [base]
  install-commands: ['echo mid']
  name: mid
- morph: strata/s/base.morph
  name: base
- name: leaf
  build-depends: [mid]
- name: other
description: second, different
name: s
)";

const char* k_base = "name: base\nkind: chunk\ndescription: one\ninstall-commands: ['echo base']\n";

TEST(CacheKey, IsAStableDocumentedSha256) {
  Keys a = keys_of(fixture("basic"), "systems/minimal-x86_64.morph");
  Keys b = keys_of(fixture("basic"), "systems/minimal-x86_64.morph");
  EXPECT_EQ(a, b);
  ASSERT_TRUE(a.at("make"));
  EXPECT_TRUE(a.at("make")->starts_with("make."));
  EXPECT_EQ(a.at("make")->size(), std::string("make.").size() + 64);
  // Golden value: this key only changes when the documented recipe changes
  // (then bump k_artifact_version and update it here and in cache_key.md).
  EXPECT_EQ(*a.at("stage1-gcc"),
            "stage1-gcc.8b080bc109d2c4ea69c5fdcda4b5106ec9d23e8c50c0526bf2a118f87d7443ac");
}

TEST(CacheKey, DependsOnArch) {
  Keys x86 = keys_of(fixture("basic"), "build-essential", "x86_64");
  Keys arm = keys_of(fixture("basic"), "build-essential", "armv8l64");
  EXPECT_NE(x86.at("stage1-gcc"), arm.at("stage1-gcc"));
}

TEST(CacheKey, IgnoresDescriptionsYamlKeyOrderAndChunkListOrder) {
  Tree one({{"strata/s.morph", k_stratum}, {"strata/s/base.morph", k_base}});
  Tree two({{"strata/s.morph", k_stratum_reordered},
            {"strata/s/base.morph",
             "install-commands: ['echo base']\nkind: chunk\nname: base\ndescription: two\n"}});
  Keys a = keys_of(one.root(), "s");
  Keys b = keys_of(two.root(), "s");
  ASSERT_EQ(a.size(), 5u);
  EXPECT_EQ(a, b);
}

TEST(CacheKey, ChangingADependencyChangesEveryDependant) {
  Tree one({{"strata/s.morph", k_stratum}, {"strata/s/base.morph", k_base}});
  Keys before = keys_of(one.root(), "s");
  one.write("strata/s/base.morph",
            "name: base\nkind: chunk\ninstall-commands: ['echo base changed']\n");
  Keys after = keys_of(one.root(), "s");
  EXPECT_NE(before.at("base"), after.at("base"));
  EXPECT_NE(before.at("mid"), after.at("mid"));
  EXPECT_NE(before.at("leaf"), after.at("leaf"));
  EXPECT_NE(before.at("s"), after.at("s"));
  EXPECT_EQ(before.at("other"), after.at("other"));  // not a dependant
}

TEST(CacheKey, DefaultSplitRulesAreInChunkAndStratumKeys) {
  Tree tree({{"strata/s.morph", k_stratum}, {"strata/s/base.morph", k_base}});
  Keys before = keys_of(tree.root(), "s");
  tree.write("DEFAULTS", std::string(testing::k_minimal_defaults) +
                             "  stratum:\n  - artifact: -runtime\n    include: ['.*']\n");
  Keys stratum_rules = keys_of(tree.root(), "s");
  EXPECT_EQ(before.at("base"), stratum_rules.at("base"));
  EXPECT_NE(before.at("s"), stratum_rules.at("s"));
  tree.write("DEFAULTS", std::string(testing::k_minimal_defaults) +
                             "  - artifact: -bins\n    include: ['bin/.*']\n");
  Keys chunk_rules = keys_of(tree.root(), "s");
  EXPECT_NE(before.at("base"), chunk_rules.at("base"));
  EXPECT_NE(before.at("s"), chunk_rules.at("s"));
}

TEST(CacheKey, StratumDependencyChangesTheChunksOfDependentStrata) {
  Tree tree({{"strata/a.morph", "name: a\nkind: stratum\nchunks:\n- name: x\n"},
             {"strata/b.morph",
              "name: b\nkind: stratum\nbuild-depends:\n- morph: strata/a.morph\nchunks:\n"
              "- name: y\n"}});
  Keys before = keys_of(tree.root(), "b");
  tree.write("strata/a.morph", "name: a\nkind: stratum\nchunks:\n- name: x\n  prefix: /opt\n");
  Keys after = keys_of(tree.root(), "b");
  EXPECT_NE(before.at("x"), after.at("x"));
  EXPECT_NE(before.at("a"), after.at("a"));
  EXPECT_NE(before.at("y"), after.at("y"));
  EXPECT_NE(before.at("b"), after.at("b"));
}

TEST(CacheKey, BuildModePrefixAndEveryStepMatter) {
  auto key_with = [](const std::string& extra) {
    Tree tree({{"strata/s.morph", "name: s\nkind: stratum\nchunks:\n- name: c\n" + extra}});
    return keys_of(tree.root(), "c").at("c");
  };
  auto plain = key_with("");
  EXPECT_TRUE(plain);
  EXPECT_NE(plain, key_with("  build-mode: test\n"));
  EXPECT_NE(plain, key_with("  prefix: /tools\n"));
  EXPECT_NE(plain, key_with("  post-strip-commands: [x]\n"));
  EXPECT_NE(plain, key_with("  pre-bootstrap-commands: [x]\n"));
  // An explicit manual build system and an explicitly empty step equal the defaults.
  EXPECT_EQ(plain, key_with("  build-system: manual\n  install-commands: []\n"));
  EXPECT_EQ(plain, key_with("  description: words\n  max-jobs: 1\n"));
}

TEST(CacheKey, PendingUntilTheSourceResolvesAndPendingPropagates) {
  Keys keys = keys_of(fixture("basic"), "sourced");
  EXPECT_FALSE(keys.at("fetched"));
  EXPECT_FALSE(keys.at("after-fetched"));
  EXPECT_FALSE(keys.at("sourced"));
  EXPECT_TRUE(keys.at("libfoo"));  // dependencies without repos are computable offline
}

TEST(CacheKey, UsesTheTreeNotTheCommit) {
  FakeResolver resolver;
  resolver.trees["upstream:fetched"] = "1111";
  Keys a = keys_of(fixture("basic"), "sourced", resolver);
  ASSERT_TRUE(a.at("fetched"));
  ASSERT_TRUE(a.at("sourced"));
  EXPECT_EQ(resolver.calls, 1);
  resolver.commit = "another-commit";
  Keys same_tree = keys_of(fixture("basic"), "sourced", resolver);
  EXPECT_EQ(a, same_tree);
  resolver.trees["upstream:fetched"] = "2222";
  Keys new_tree = keys_of(fixture("basic"), "sourced", resolver);
  EXPECT_NE(a.at("fetched"), new_tree.at("fetched"));
  EXPECT_NE(a.at("after-fetched"), new_tree.at("after-fetched"));
}

TEST(CacheKey, ResolverIsAskedOncePerRepoAndRef) {
  Tree tree({{"strata/s.morph",
              "name: s\nkind: stratum\nchunks:\n- name: a\n  repo: r\n  ref: v1\n"
              "- name: b\n  repo: r\n  ref: v1\n- name: c\n  repo: r\n  ref: v2\n"}});
  FakeResolver resolver;
  resolver.trees["r"] = "abcd";
  Keys keys = keys_of(tree.root(), "s", resolver);
  EXPECT_EQ(resolver.calls, 2);
  EXPECT_TRUE(keys.at("s"));
  EXPECT_NE(keys.at("a"), keys.at("b"));  // names differ
}

TEST(CacheKey, ResolverFailureIsAnErrorNamingTheChunk) {
  auto defs = load_definitions(fixture("basic"));
  ASSERT_TRUE(defs);
  auto graph = resolve_graph(*defs, "sourced", "x86_64");
  ASSERT_TRUE(graph);
  FakeResolver resolver;
  resolver.fail = true;
  auto r = compute_keys(*graph, resolver);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().to_string(),
            "strata/sourced.morph:6: chunk \"fetched\": cannot resolve upstream:fetched "
            "0123456789abcdef0123456789abcdef01234567: no such ref");
}

TEST(CacheKey, InputTextIsCanonicalAndReadable) {
  auto defs = load_definitions(fixture("basic"));
  ASSERT_TRUE(defs);
  auto graph = resolve_graph(*defs, "stage1-gcc", "x86_64");
  ASSERT_TRUE(graph);
  UnresolvedSources none;
  ASSERT_TRUE(compute_keys(*graph, none));
  auto text = cache_key_input(*graph, graph->target_index);
  ASSERT_TRUE(text);
  EXPECT_TRUE(
      text->starts_with("gang-cache-key 1:1\nartifact-version 2\nkind 5:chunk\n"
                        "name 10:stage1-gcc\narch 6:x86_64\nbase 4:none\nbase-identity 0:\n"
                        "stratum 15:build-essential\ntree 4:none\n"))
      << *text;
  EXPECT_NE(text->find("prefix 6:/tools\n"), std::string::npos);
}

TEST(CacheKey, TheSandboxBaseKindAndIdentityEnterEveryKey) {
  auto defs = load_definitions(fixture("basic"));
  ASSERT_TRUE(defs);
  auto keys_for = [&](BaseIdentity base) {
    auto graph = resolve_graph(*defs, "systems/minimal-x86_64.morph", "x86_64");
    EXPECT_TRUE(graph);
    graph->base = std::move(base);
    UnresolvedSources none;
    EXPECT_TRUE(compute_keys(*graph, none));
    std::map<std::string, std::string> out;
    for (const auto& c : graph->components) out[c.id] = c.cache_key.value_or("pending");
    return out;
  };
  auto none = keys_for({"none", ""});
  auto host_a = keys_for({"host", "os ID=debian VERSION_ID=\"12\"\ncc gcc 12.2.0\n"});
  auto host_b = keys_for({"host", "os ID=debian VERSION_ID=\"12\"\ncc gcc 12.3.0\n"});
  auto sysroot = keys_for({"sysroot", "sha256:00 entries 3"});
  EXPECT_EQ(none, keys_for({"none", ""}));
  EXPECT_EQ(host_a, keys_for({"host", "os ID=debian VERSION_ID=\"12\"\ncc gcc 12.2.0\n"}));
  ASSERT_FALSE(none.empty());
  for (const auto& [id, key] : none) {
    EXPECT_NE(key, host_a.at(id)) << id;
    EXPECT_NE(host_a.at(id), host_b.at(id)) << id;  // another compiler: another artifact
    EXPECT_NE(key, sysroot.at(id)) << id;
    EXPECT_NE(host_a.at(id), sysroot.at(id)) << id;
  }
}

TEST(CacheKey, PendingComponentsSayWhy) {
  auto defs = load_definitions(fixture("basic"));
  ASSERT_TRUE(defs);
  auto graph = resolve_graph(*defs, "sourced", "x86_64");
  ASSERT_TRUE(graph);
  FakeResolver resolver;
  resolver.fail = true;
  ASSERT_TRUE(compute_keys(*graph, resolver, SourceErrors::pending));
  for (const auto& c : graph->components) {
    if (c.name == "fetched") {
      EXPECT_FALSE(c.cache_key);
      EXPECT_EQ(c.pending_reason,
                "strata/sourced.morph:6: chunk \"fetched\": cannot resolve upstream:fetched "
                "0123456789abcdef0123456789abcdef01234567: no such ref");
    } else if (c.name == "after-fetched" || c.name == "sourced") {
      EXPECT_FALSE(c.cache_key);
      EXPECT_EQ(c.pending_reason, "waits for chunk fetched") << c.name;
    } else {
      EXPECT_TRUE(c.cache_key) << c.name;
      EXPECT_EQ(c.pending_reason, "") << c.name;
    }
  }
  resolver.fail = false;  // not fetched yet: pending, no error
  ASSERT_TRUE(compute_keys(*graph, resolver));
  EXPECT_EQ(graph->components[graph->target_index].pending_reason, "waits for chunk fetched");
}

TEST(CacheKey, DependantsNameThePendingSourceNotTheStratumBetween) {
  auto defs = load_definitions(fixture("twins"));
  ASSERT_TRUE(defs);
  auto graph = resolve_graph(*defs, "remote", "x86_64");
  ASSERT_TRUE(graph);
  // A system over remote: its stratum waits, and so the system waits for
  // the chunk.
  UnresolvedSources none;
  ASSERT_TRUE(compute_keys(*graph, none));
  EXPECT_EQ(graph->components[graph->target_index].pending_reason,
            "waits for chunk from-upstream");
  testing::Tree tree({{"strata/s.morph",
                       "name: s\nkind: stratum\nchunks:\n- name: c\n  repo: upstream:c\n"
                       "  ref: master\n"},
                      {"systems/x.morph",
                       "name: x\nkind: system\narch: x86_64\nstrata:\n- morph: strata/s.morph\n"}});
  auto loaded = tree.load();
  ASSERT_TRUE(loaded);
  auto system = resolve_graph(*loaded, "systems/x.morph", "x86_64");
  ASSERT_TRUE(system);
  ASSERT_TRUE(compute_keys(*system, none));
  EXPECT_EQ(system->components[system->target_index].pending_reason, "waits for chunk c");
}

}  // namespace
}  // namespace gang
