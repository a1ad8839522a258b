// The real-format fixture tests/definitions/fixtures/twins: two strata that
// each build a chunk called libwnck (as strata/gnome and strata/xfce of the
// public Baserock definitions do), a cluster with subsystems, systems of two
// arches and a list-valued deploy parameter.
#include <gtest/gtest.h>

#include <algorithm>

#include "definitions/build_graph.hpp"
#include "definitions/cache_key.hpp"
#include "definitions/definitions.hpp"
#include "tests/definitions/test_tree.hpp"

namespace gang {
namespace {

using testing::fixture;

class Twins : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loaded = load_definitions(fixture("twins"));
    ASSERT_TRUE(loaded) << loaded.error().to_string();
    defs = std::move(*loaded);
    ASSERT_TRUE(defs.broken.empty());
  }

  static const Component* find(const BuildGraph& g, const std::string& id) {
    for (const auto& c : g.components)
      if (c.id == id) return &c;
    return nullptr;
  }

  static std::vector<std::string> dep_ids(const BuildGraph& g, const Component& c) {
    std::vector<std::string> out;
    for (std::size_t d : c.depends) out.push_back(g.components[d].id);
    return out;
  }

  Definitions defs;
};

TEST_F(Twins, BothChunksOfOneNameAreBuiltAsDistinctComponents) {
  auto graph = resolve_graph(defs, "systems/desktop-x86_64.morph", "x86_64");
  ASSERT_TRUE(graph) << graph.error().to_string();
  std::size_t named = std::count_if(graph->components.begin(), graph->components.end(),
                                    [](const Component& c) { return c.name == "libwnck"; });
  EXPECT_EQ(named, 2u);
  const Component* gnome = find(*graph, "gnome/libwnck");
  const Component* xfce = find(*graph, "xfce/libwnck");
  ASSERT_NE(gnome, nullptr);
  ASSERT_NE(xfce, nullptr);
  EXPECT_EQ(gnome->name, "libwnck");
  EXPECT_EQ(gnome->stratum, "gnome");
  EXPECT_EQ(gnome->path, "strata/gnome/libwnck.morph");
  EXPECT_EQ(xfce->stratum, "xfce");
  EXPECT_EQ(xfce->path, "strata/xfce.morph");
  // A unique name stays bare.
  EXPECT_NE(find(*graph, "glib"), nullptr);
  EXPECT_NE(find(*graph, "xfwm4"), nullptr);
}

TEST_F(Twins, BuildDependsResolveWithinTheirOwnStratum) {
  auto graph = resolve_graph(defs, "systems/desktop-x86_64.morph", "x86_64");
  ASSERT_TRUE(graph) << graph.error().to_string();
  const Component* gnome = find(*graph, "gnome/libwnck");
  const Component* xfce = find(*graph, "xfce/libwnck");
  const Component* xfwm4 = find(*graph, "xfwm4");
  ASSERT_TRUE(gnome && xfce && xfwm4);
  EXPECT_EQ(dep_ids(*graph, *gnome), (std::vector<std::string>{"base", "glib"}));
  EXPECT_EQ(dep_ids(*graph, *xfce), (std::vector<std::string>{"base", "gtk"}));
  EXPECT_EQ(dep_ids(*graph, *xfwm4), (std::vector<std::string>{"base", "xfce/libwnck"}));
  // Each stratum has its own.
  const Component* gnome_stratum = find(*graph, "gnome");
  ASSERT_NE(gnome_stratum, nullptr);
  auto members = gnome_stratum->chunks;
  EXPECT_NE(std::find(members.begin(), members.end(),
                      static_cast<std::size_t>(gnome - graph->components.data())),
            members.end());
}

TEST_F(Twins, AChunkFileRenamedByItsStratumIsNamedAsTheFileNamesIt) {
  // ybd names the component after the file; the stratum's build-depends
  // still use the entry's name.
  auto graph = resolve_graph(defs, "systems/desktop-x86_64.morph", "x86_64");
  ASSERT_TRUE(graph) << graph.error().to_string();
  const Component* extras = find(*graph, "wnck-extras-2");
  ASSERT_NE(extras, nullptr);
  EXPECT_EQ(extras->name, "wnck-extras-2");
  EXPECT_EQ(extras->chunk_def->name, "wnck-extras@2");
  const Component* panel = find(*graph, "panel");
  ASSERT_NE(panel, nullptr);
  EXPECT_EQ(dep_ids(*graph, *panel), (std::vector<std::string>{"base", "wnck-extras-2"}));
  for (const char* target : {"wnck-extras@2", "wnck-extras-2", "gnome/wnck-extras@2"}) {
    auto found = find_target(defs, target);
    ASSERT_TRUE(found) << target << ": " << found.error().to_string();
    EXPECT_EQ(defs.strata[found->index].chunks[found->chunk_index].artifact_name, "wnck-extras-2");
  }
  UnresolvedSources none;
  ASSERT_TRUE(compute_keys(*graph, none));
  EXPECT_TRUE(extras->cache_key->starts_with("wnck-extras-2."));
}

TEST_F(Twins, KeysTellTheTwinsApartAndStaySafeFileNames) {
  auto graph = resolve_graph(defs, "systems/desktop-x86_64.morph", "x86_64");
  ASSERT_TRUE(graph);
  UnresolvedSources none;
  ASSERT_TRUE(compute_keys(*graph, none));
  const Component* gnome = find(*graph, "gnome/libwnck");
  const Component* xfce = find(*graph, "xfce/libwnck");
  ASSERT_TRUE(gnome->cache_key && xfce->cache_key);
  EXPECT_NE(*gnome->cache_key, *xfce->cache_key);
  EXPECT_TRUE(gnome->cache_key->starts_with("libwnck."));
  EXPECT_TRUE(xfce->cache_key->starts_with("libwnck."));
  for (const auto& c : graph->components) {
    ASSERT_TRUE(c.cache_key) << c.id;
    EXPECT_EQ(c.cache_key->find('/'), std::string::npos) << *c.cache_key;
  }
}

TEST_F(Twins, TwinsWithTheSameRecipeAndDependenciesStillGetTwoKeys) {
  testing::Tree tree({{"strata/a.morph", "name: a\nkind: stratum\nchunks:\n- name: twin\n"},
                      {"strata/b.morph", "name: b\nkind: stratum\nchunks:\n- name: twin\n"},
                      {"systems/s.morph",
                       "name: s\nkind: system\narch: x86_64\nstrata:\n- morph: strata/a.morph\n"
                       "- morph: strata/b.morph\n"}});
  auto loaded = tree.load();
  ASSERT_TRUE(loaded);
  auto graph = resolve_graph(*loaded, "systems/s.morph", "x86_64");
  ASSERT_TRUE(graph) << graph.error().to_string();
  UnresolvedSources none;
  ASSERT_TRUE(compute_keys(*graph, none));
  const Component* a = find(*graph, "a/twin");
  const Component* b = find(*graph, "b/twin");
  ASSERT_TRUE(a && b);
  EXPECT_NE(*a->cache_key, *b->cache_key);
}

TEST_F(Twins, ABareAmbiguousNameListsStratumSlashNameCandidates) {
  auto t = find_target(defs, "libwnck");
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().message,
            "\"libwnck\" names several definitions; give STRATUM/NAME or a path instead:\n"
            "  chunk gnome/libwnck (strata/gnome.morph:9)\n"
            "  chunk xfce/libwnck (strata/xfce.morph:9)");
}

TEST_F(Twins, StratumSlashNameIsATarget) {
  for (const char* target : {"xfce/libwnck", "strata/xfce/libwnck"}) {
    auto graph = resolve_graph(defs, target, "x86_64");
    ASSERT_TRUE(graph) << target << ": " << graph.error().to_string();
    const Component& c = graph->components[graph->target_index];
    EXPECT_EQ(c.name, "libwnck");
    EXPECT_EQ(c.stratum, "xfce");
    EXPECT_EQ(c.id, "libwnck");  // alone in this build
    EXPECT_NE(find(*graph, "gtk"), nullptr);
    EXPECT_EQ(find(*graph, "glib"), nullptr);
  }
  auto gnome = resolve_graph(defs, "gnome/libwnck", "x86_64");
  ASSERT_TRUE(gnome) << gnome.error().to_string();
  EXPECT_EQ(gnome->components[gnome->target_index].stratum, "gnome");
  auto missing = find_target(defs, "xfce/nosuch");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("xfce/nosuch"), std::string::npos);
}

TEST_F(Twins, AClusterBuildsEverySystemItListsForTheArchSubsystemsIncluded) {
  auto x86 = resolve_graph(defs, "clusters/storage.morph", "x86_64");
  ASSERT_TRUE(x86) << x86.error().to_string();
  const Component& cluster = x86->components[x86->target_index];
  EXPECT_EQ(dep_ids(*x86, cluster),
            (std::vector<std::string>{"desktop-x86_64", "installer-x86_64"}));
  EXPECT_EQ(find(*x86, "desktop-armv8l64"), nullptr);
  auto arm = resolve_graph(defs, "clusters/storage.morph", "armv8l64");
  ASSERT_TRUE(arm) << arm.error().to_string();
  EXPECT_EQ(dep_ids(*arm, arm->components[arm->target_index]),
            (std::vector<std::string>{"desktop-armv8l64"}));
  EXPECT_EQ(find(*arm, "gnome/libwnck"), nullptr);
  EXPECT_NE(find(*arm, "libwnck"), nullptr);  // only xfce's in this build
  auto none = resolve_graph(defs, "clusters/storage.morph", "ppc64");
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("has no systems for arch ppc64"), std::string::npos);
}

TEST_F(Twins, DeployParametersMayBeAnyYamlValue) {
  const ClusterDef& cluster = defs.clusters.at(defs.by_path.at("clusters/storage.morph").index);
  ASSERT_EQ(cluster.systems.size(), 2u);
  const ClusterSystem& desktop = cluster.systems[0];
  EXPECT_EQ(desktop.deploy_defaults.at("RAM_SIZE"), "1G");
  ASSERT_EQ(desktop.deploy.size(), 1u);
  const auto& settings = desktop.deploy[0].settings;
  EXPECT_EQ(desktop.deploy[0].label, "storage-node");
  EXPECT_EQ(settings.at("SWIFT_STORAGE_DEVICES"),
            "[{'ip': '10.0.0.1', 'device': 'sdb', 'weight': 100}, "
            "{'ip': '10.0.0.2', 'device': 'sdc', 'weight': 1.5, 'enabled': True, 'spare': None}]");
  EXPECT_EQ(settings.at("AUTOSTART"), "yes");  // a top-level scalar stays as written
  EXPECT_EQ(settings.at("NOTE"), "it's");
  EXPECT_EQ(settings.at("type"), "extensions/rawdisk");
  ASSERT_EQ(desktop.subsystems.size(), 1u);
  EXPECT_EQ(desktop.subsystems[0].deploy.at(0).settings.at("location"), "installer.tar");
}

TEST_F(Twins, AListValuedDeployParameterEntersTheClusterKey) {
  testing::Tree tree({{"strata/s.morph", "name: s\nkind: stratum\nchunks:\n- name: c\n"},
                      {"systems/x.morph",
                       "name: x\nkind: system\narch: x86_64\nstrata:\n- morph: strata/s.morph\n"},
                      {"clusters/c.morph",
                       "name: c\nkind: cluster\nsystems:\n- morph: systems/x.morph\n  deploy:\n"
                       "    n:\n      DEVICES: [sdb, sdc]\n"}});
  auto key = [&]() {
    auto loaded = tree.load();
    EXPECT_TRUE(loaded) << loaded.error().to_string();
    auto graph = resolve_graph(*loaded, "clusters/c.morph", "x86_64");
    EXPECT_TRUE(graph) << graph.error().to_string();
    UnresolvedSources none;
    EXPECT_TRUE(compute_keys(*graph, none));
    return graph->components[graph->target_index].cache_key.value_or("");
  };
  std::string before = key();
  tree.write("clusters/c.morph",
             "name: c\nkind: cluster\nsystems:\n- morph: systems/x.morph\n  deploy:\n"
             "    n:\n      DEVICES: [sdb, sdd]\n");
  EXPECT_NE(key(), before);
}

}  // namespace
}  // namespace gang
