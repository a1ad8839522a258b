// End-to-end tests of strata and systems as Baserock assembles them: `gang
// build` (real workers, cache and sandboxes) on the checked-in fixture
// tests/gang/fixtures/assembly, whose DEFAULTS holds the real Baserock split
// rules. Checks products, `artifacts:` selection at stratum and system level,
// system-integration order, and modes, symlinks and hard links kept exactly.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include <filesystem>
#include <map>
#include <set>

#include "cache/artifact_cache.hpp"
#include "definitions/cache_key.hpp"
#include "gang/baserock_meta.hpp"
#include "gang/overlay_upper.hpp"
#include "gang/project.hpp"
#include "gang/system_assembler.hpp"
#include "tests/gang/gang_process.hpp"
#include "tests/gang/stratum_test.hpp"
#include "util/fs.hpp"
#include "util/sha256.hpp"

namespace gang {
namespace {

using testing::count_lines_with;
using testing::run_gang;

// Every chunk's commands, bootstrap chunks' included, as ybd gathers them.
const char* const k_integration_order =
    "00-first\n05-extra\n10-shell\n20-late-extra\n20-late-modes\n30-stage1\n";

class SystemAssembly : public ::testing::Test {
 protected:
  void SetUp() override {
    defs = dir.path() + "/defs";
    cache = dir.path() + "/cache";
    std::filesystem::copy(std::string(GANG_SOURCE_DIR) + "/tests/gang/fixtures/assembly", defs,
                          std::filesystem::copy_options::recursive);
  }
  void TearDown() override {
    if (HasFailure()) dir.keep();
  }
  testing::Run build(const std::string& target, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"build", defs + "/" + target, "--cache", cache, "--instances",
                                  "1",     "--max-jobs",        "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_gang(args, dir.path(), std::chrono::seconds(120));
  }
  // name -> key for every component of target.
  std::map<std::string, std::string> keys(const std::string& target) {
    return testing::component_keys(defs + "/" + target, cache);
  }
  std::map<std::string, ManifestEntry> manifest(const std::string& key) {
    auto opened = ArtifactCache::open(cache);
    EXPECT_TRUE(opened);
    auto m = opened->manifest(key);
    EXPECT_TRUE(m) << key;
    std::map<std::string, ManifestEntry> out;
    if (m)
      for (const auto& e : m->entries) out[e.path] = e;
    return out;
  }
  std::string file_of(const std::string& key, const std::string& path) {
    auto opened = ArtifactCache::open(cache);
    auto text = opened->read_file(key, path);
    EXPECT_TRUE(text && *text) << key << ":" << path;
    return text && *text ? **text : std::string();
  }
  BaserockMeta meta_of(const std::string& key, const std::string& name) {
    auto meta = decode_baserock_meta(file_of(key, baserock_meta_path(name)), name);
    EXPECT_TRUE(meta) << meta.error().to_string();
    return meta ? *meta : BaserockMeta{};
  }
  static std::vector<std::string> artifacts(const BaserockMeta& meta) {
    std::vector<std::string> out;
    for (const auto& p : meta.products) out.push_back(p.artifact);
    return out;
  }
  static std::vector<std::string> components(const BaserockMeta& meta,
                                             const std::string& artifact) {
    for (const auto& p : meta.products)
      if (p.artifact == artifact) return p.components;
    ADD_FAILURE() << "no product " << artifact;
    return {};
  }

  TempDir dir{"gang-assembly-test-"};
  std::string defs, cache;
};

TEST_F(SystemAssembly, AChunkRecordsItsProductsInItsArtifact) {
  auto run = build("strata/core.morph");
  ASSERT_EQ(run.status, 0) << run.output;
  auto k = keys("strata/core.morph");
  BaserockMeta modes = meta_of(k["modes"], "modes");
  EXPECT_EQ(modes.cache, k["modes"]);
  // Own products first, then DEFAULTS, each '-' expanded; empty ones too.
  EXPECT_EQ(artifacts(modes),
            (std::vector<std::string>{"modes-tools", "modes-bins", "modes-libs", "modes-devel",
                                      "modes-doc", "modes-locale", "modes-misc"}));
  EXPECT_EQ(components(modes, "modes-tools"),
            (std::vector<std::string>{"opt", "opt/modes", "opt/modes/tool-data"}));
  EXPECT_EQ(components(modes, "modes-bins"),
            (std::vector<std::string>{"usr/bin", "usr/bin/tool", "usr/bin/tool-link"}));
  EXPECT_EQ(components(modes, "modes-libs"),
            (std::vector<std::string>{"usr/lib/libmodes.so", "usr/lib/libmodes.so.1"}));
  EXPECT_EQ(components(modes, "modes-doc"),
            (std::vector<std::string>{"usr/share/doc", "usr/share/doc/modes",
                                      "usr/share/doc/modes/README"}));
  EXPECT_TRUE(components(modes, "modes-locale").empty());
  EXPECT_EQ(components(modes, "modes-misc"),
            (std::vector<std::string>{"etc", "etc/config", "etc/remove-me", "etc/same-a",
                                      "etc/same-b", "etc/secret", "usr", "usr/lib", "usr/share"}));

  // The stratum groups chunk products: its own rule and extra's artifacts
  // map feed core-minimal; the DEFAULTS split the rest.
  BaserockMeta core = meta_of(k["core"], "core");
  EXPECT_EQ(core.cache, k["core"]);
  EXPECT_EQ(artifacts(core),
            (std::vector<std::string>{"core-minimal", "core-devel", "core-runtime"}));
  EXPECT_EQ(components(core, "core-minimal"),
            (std::vector<std::string>{"extra-devel", "modes-bins"}));
  EXPECT_EQ(components(core, "core-devel"),
            (std::vector<std::string>{"extra-devel", "extra-doc", "modes-devel", "modes-doc"}));
  EXPECT_EQ(components(core, "core-runtime"),
            (std::vector<std::string>{"extra-bins", "extra-libs", "extra-locale", "extra-misc",
                                      "modes-libs", "modes-locale", "modes-misc", "modes-tools"}));
  // Bootstrap chunks are left out of strata, as ybd does.
  for (const auto& p : core.products)
    for (const auto& c : p.components) EXPECT_FALSE(c.starts_with("stage1")) << c;
  // A stratum records; it holds no chunk files.
  auto stratum = manifest(k["core"]);
  EXPECT_FALSE(stratum.contains("baserock/stage1.meta"));
  EXPECT_TRUE(stratum.contains("baserock/modes.meta"));
  EXPECT_TRUE(stratum.contains("baserock/extra.meta"));
  EXPECT_FALSE(stratum.contains("usr/bin/tool"));
  // It is published from memory: exactly its own and its members' .meta
  // files (each the member's own bytes), in a directory, modes as written.
  using Type = ManifestEntry::Type;
  EXPECT_EQ(stratum.size(), 4u);
  ASSERT_TRUE(stratum.contains("baserock"));
  EXPECT_EQ(stratum["baserock"].type, Type::directory);
  EXPECT_EQ(stratum["baserock"].mode, 0755u);
  for (const char* member : {"modes", "extra"}) {
    std::string path = std::string("baserock/") + member + ".meta";
    auto own = manifest(k[member]);
    ASSERT_TRUE(own.contains(path)) << member;
    EXPECT_EQ(stratum[path].type, Type::file);
    EXPECT_EQ(stratum[path].mode, 0644u);
    EXPECT_EQ(stratum[path].digest, own[path].digest) << member;
  }
  EXPECT_EQ(stratum["baserock/core.meta"].mode, 0644u);
  EXPECT_EQ(file_of(k["core"], "baserock/modes.meta"), file_of(k["modes"], "baserock/modes.meta"));
  // Staged, it is what a directory of those files would be.
  auto staged = dir.path() + "/staged-core";
  {
    auto opened = ArtifactCache::open(cache);
    ASSERT_TRUE(opened);
    ASSERT_TRUE(opened->stage(k["core"], staged, StageMode::copy));
  }
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(staged + "/baserock"))
    names.insert(entry.path().filename().string());
  EXPECT_EQ(names, (std::set<std::string>{"core.meta", "extra.meta", "modes.meta"}));
}

TEST_F(SystemAssembly, ASystemKeepsModesSymlinksAndHardLinksExactlyAsBuilt) {
  auto run = build("systems/full-x86_64.morph");
  ASSERT_EQ(run.status, 0) << run.output;
  auto k = keys("systems/full-x86_64.morph");
  auto m = manifest(k["full-x86_64"]);
  using Type = ManifestEntry::Type;
  ASSERT_TRUE(m.contains("etc/secret"));
  EXPECT_EQ(m["etc/secret"].type, Type::file);
  EXPECT_EQ(m["etc/secret"].mode, 0600u);
  EXPECT_EQ(m["etc/config"].mode, 0644u);
  EXPECT_EQ(m["usr/bin/tool"].mode, 0755u);
  EXPECT_EQ(m["opt/modes"].type, Type::directory);
  EXPECT_EQ(m["opt/modes"].mode, 0750u);
  EXPECT_EQ(m["usr/bin/tool-link"].type, Type::hardlink) << "the chunk's own hard link survives";
  EXPECT_EQ(m["usr/bin/tool-link"].target, "usr/bin/tool");
  EXPECT_EQ(m["etc/same-a"].type, Type::file);
  EXPECT_EQ(m["etc/same-b"].type, Type::file) << "equal content is not merged into a hard link";
  EXPECT_EQ(m["etc/same-a"].digest, m["etc/same-b"].digest);
  EXPECT_EQ(m["usr/lib/libmodes.so"].type, Type::symlink);
  EXPECT_EQ(m["usr/lib/libmodes.so"].target, "libmodes.so.1");
  for (const char* meta : {"baserock/shell.meta", "baserock/dash.meta", "baserock/core.meta",
                           "baserock/modes.meta", "baserock/extra.meta"})
    EXPECT_TRUE(m.contains(meta)) << meta;
  EXPECT_FALSE(m.contains("usr/bin/stage1-tool")) << "bootstrap chunks are not installed";
  for (const char* scratch : {"full-x86_64.build", "full-x86_64.inst", "proc", "dev", "tmp"})
    EXPECT_FALSE(m.contains(scratch)) << scratch << " is the sandbox's, not the system's";

  // Staged as files, the same holds on disk.
  std::string staged = dir.path() + "/staged";
  auto opened = ArtifactCache::open(cache);
  ASSERT_TRUE(opened->stage(k["full-x86_64"], staged, StageMode::copy));
  struct stat secret, tool, link, a, b;
  ASSERT_EQ(::lstat((staged + "/etc/secret").c_str(), &secret), 0);
  EXPECT_EQ(secret.st_mode & 07777, 0600u);
  ASSERT_EQ(::lstat((staged + "/usr/bin/tool").c_str(), &tool), 0);
  ASSERT_EQ(::lstat((staged + "/usr/bin/tool-link").c_str(), &link), 0);
  EXPECT_EQ(tool.st_ino, link.st_ino);
  ASSERT_EQ(::lstat((staged + "/etc/same-a").c_str(), &a), 0);
  ASSERT_EQ(::lstat((staged + "/etc/same-b").c_str(), &b), 0);
  EXPECT_NE(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_mode & 07777, 0644u);
}

TEST_F(SystemAssembly, IntegrationCommandsRunInTheSystemSortedByNameAcrossIt) {
  auto run = build("systems/full-x86_64.morph");
  ASSERT_EQ(run.status, 0) << run.output;
  auto k = keys("systems/full-x86_64.morph");
  // Declared as 10 (shell/dash), 00 and 20 (core/modes), 05 and 20
  // (core/extra); run sorted by NAME-PRODUCT, with the system as root.
  EXPECT_EQ(file_of(k["full-x86_64"], "integration.log"), k_integration_order);
  auto m = manifest(k["full-x86_64"]);
  EXPECT_EQ(m["integration.log"].mode, 0644u);
  // What the commands changed or removed in the assembled tree is kept.
  EXPECT_EQ(file_of(k["full-x86_64"], "usr/include/extra.h"),
            "extra header\nchanged by integration\n");
  EXPECT_EQ(m["usr/include/extra.h"].mode, 0644u);
  EXPECT_FALSE(m.contains("etc/remove-me"));
  EXPECT_TRUE(m.contains("etc/secret"));
}

TEST_F(SystemAssembly, ASystemHoldsOnlyTheStratumProductsItSelects) {
  auto run = build("systems/minimal-x86_64.morph");
  ASSERT_EQ(run.status, 0) << run.output;
  auto k = keys("systems/minimal-x86_64.morph");
  auto m = manifest(k["minimal-x86_64"]);
  // core-minimal: modes-bins by rule, extra-devel by extra's artifacts map.
  for (const char* kept : {"usr/bin/tool", "usr/bin/tool-link", "usr/include/extra.h", "bin/sh"})
    EXPECT_TRUE(m.contains(kept)) << kept;
  for (const char* left :
       {"usr/bin/extra", "etc/secret", "etc/config", "usr/include/modes.h", "opt/modes/tool-data",
        "usr/share/doc/modes/README", "usr/lib/libmodes.so.1"})
    EXPECT_FALSE(m.contains(left)) << left;
  EXPECT_EQ(m["usr/bin/tool-link"].type, ManifestEntry::Type::hardlink);
  // The metadata records only what was installed.
  EXPECT_EQ(artifacts(meta_of(k["minimal-x86_64"], "core")),
            std::vector<std::string>{"core-minimal"});
  EXPECT_EQ(artifacts(meta_of(k["minimal-x86_64"], "modes")),
            std::vector<std::string>{"modes-bins"});
  EXPECT_EQ(artifacts(meta_of(k["minimal-x86_64"], "extra")),
            std::vector<std::string>{"extra-devel"});
  EXPECT_EQ(artifacts(meta_of(k["minimal-x86_64"], "shell")).size(), 2u);
  // ybd runs every chunk's integration commands, selected or not.
  EXPECT_EQ(file_of(k["minimal-x86_64"], "integration.log"), k_integration_order);
}

TEST_F(SystemAssembly, AFailingIntegrationCommandFailsTheSystem) {
  ASSERT_TRUE(write_file(defs + "/strata/broken.morph", R"(name: broken
kind: stratum
build-depends:
- morph: strata/shell.morph
chunks:
- name: breaker
  build-system: manual
  install-commands:
  - mkdir -p "$DESTDIR/etc" && echo x > "$DESTDIR/etc/breaker"
  system-integration:
    breaker-misc:
      50-break:
      - echo 'integration went wrong' >&2; exit 7
)"));
  ASSERT_TRUE(write_file(defs + "/systems/broken-x86_64.morph", R"(name: broken-x86_64
kind: system
arch: x86_64
strata:
- morph: strata/shell.morph
- morph: strata/broken.morph
)"));
  auto run = build("systems/broken-x86_64.morph");
  EXPECT_EQ(run.status, 1) << run.output;
  EXPECT_NE(run.output.find("integration went wrong"), std::string::npos) << run.output;
  auto k = keys("systems/broken-x86_64.morph");
  auto opened = ArtifactCache::open(cache);
  EXPECT_FALSE(opened->contains(k["broken-x86_64"]));
  auto failure = opened->failures().of(k["broken-x86_64"]);
  ASSERT_TRUE(failure);
  EXPECT_TRUE(failure->has_value()) << "recorded, so that no instance retries it";
}

TEST_F(SystemAssembly, VerifyAppliesToAssemblyACorruptMemberIsRebuilt) {
  ASSERT_EQ(build("systems/full-x86_64.morph").status, 0);
  auto k = keys("systems/full-x86_64.morph");
  std::string digest = sha256_hex("config of modes\n");
  std::string blob = cache + "/objects/" + digest.substr(0, 2) + "/" + digest;
  ASSERT_TRUE(path_exists(blob)) << blob;
  ::chmod(blob.c_str(), 0644);
  ASSERT_TRUE(write_file(blob, "tampered\n"));
  ASSERT_EQ(run_gang({"cache", "forget", k["full-x86_64"], "--cache", cache}, dir.path()).status,
            0);

  auto again = build("systems/full-x86_64.morph", {"--verify"});
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_EQ(count_lines_with(again.output, "[modes] Starting build"), 1)
      << "the damaged chunk was dropped and rebuilt:\n"
      << again.output;
  EXPECT_EQ(file_of(k["full-x86_64"], "etc/config"), "config of modes\n");
}

// --- the pieces, without sandboxes --------------------------------------------

TEST(SystemAssemblyParts, OverlayUpperLayersMergeLikeOverlayfs) {
  TempDir dir("gang-merge-test-");
  std::string tree = dir.path() + "/tree", upper = dir.path() + "/upper";
  for (const char* d : {"/keep", "/gone", "/opaque", "/opaque/old", "/tree-sub"})
    ASSERT_TRUE(make_dirs(tree + d));
  ASSERT_TRUE(write_file(tree + "/keep/a", "old a"));
  ASSERT_TRUE(write_file(tree + "/keep/b", "old b"));
  ASSERT_TRUE(write_file(tree + "/gone/x", "x"));
  ASSERT_TRUE(write_file(tree + "/opaque/old/y", "y"));
  ASSERT_TRUE(make_dirs(upper + "/keep"));
  ASSERT_TRUE(write_file(upper + "/keep/a", "new a", 0600));
  ASSERT_EQ(::mknod((upper + "/gone").c_str(), S_IFCHR | 0000, 0), 0);  // whiteout
  ASSERT_TRUE(make_dirs(upper + "/opaque"));
  ASSERT_EQ(::setxattr((upper + "/opaque").c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
  ASSERT_TRUE(write_file(upper + "/opaque/fresh", "fresh"));
  ASSERT_TRUE(make_dirs(upper + "/proc"));  // a sandbox mount point, not the tree's
  ASSERT_EQ(::symlink("keep/a", (upper + "/link").c_str()), 0);

  ASSERT_TRUE(merge_overlay_upper(upper, tree, {"proc"}));
  EXPECT_EQ(*read_file(tree + "/keep/a"), "new a");
  struct stat st;
  ASSERT_EQ(::stat((tree + "/keep/a").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(*read_file(tree + "/keep/b"), "old b");
  EXPECT_FALSE(path_exists(tree + "/gone"));
  EXPECT_FALSE(path_exists(tree + "/opaque/old")) << "an opaque directory replaces the old one";
  EXPECT_TRUE(path_exists(tree + "/opaque/fresh"));
  EXPECT_FALSE(path_exists(tree + "/proc"));
  EXPECT_EQ(*read_file(tree + "/link"), "new a");
}

}  // namespace
}  // namespace gang
