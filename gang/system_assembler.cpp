#include "gang/system_assembler.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_set>

#include "gang/baserock_meta.hpp"
#include "gang/overlay_upper.hpp"
#include "gang/step_trouble.hpp"
#include "sandbox/sandbox.hpp"
#include "util/fs.hpp"
#include "util/path_name.hpp"
#include "util/sha256.hpp"

namespace gang {

namespace {

// Why an assembly did not publish: the definition's fault (failed) or the
// machine's (abandoned), as in the chunk builder.
struct Trouble {
  BuildOutcome outcome;
  std::string reason;
};
template <typename T>
using Outcome = std::expected<T, Trouble>;

std::unexpected<Trouble> abandon(const std::string& reason) {
  return std::unexpected(Trouble{BuildOutcome::abandoned, reason});
}
std::unexpected<Trouble> failed(const std::string& reason) {
  return std::unexpected(Trouble{BuildOutcome::failed, reason});
}

const std::string& definition_name(const Component& c) {
  if (c.chunk_def != nullptr) return c.chunk_def->name;
  if (c.stratum_def != nullptr) return c.stratum_def->name;
  if (c.system_def != nullptr) return c.system_def->name;
  if (c.cluster_def != nullptr) return c.cluster_def->name;
  return c.name;
}

// A member's recorded .meta. A missing artifact is the machine's trouble.
Outcome<BaserockMeta> read_meta(const BuildContext& ctx, const Component& m) {
  std::string path = baserock_meta_path(definition_name(m));
  auto text = ctx.cache.read_file(*m.cache_key, path);
  if (!text) return abandon(m.name + ": " + text.error().to_string());
  if (!*text) return BaserockMeta{{}, m.repo, m.ref, *m.cache_key};  // inserted by hand
  auto meta = decode_baserock_meta(**text, *m.cache_key + ":" + path);
  if (!meta) return abandon(meta.error().to_string());
  return std::move(*meta);
}

Result<void> write_meta(const std::string& root, const std::string& name,
                        const BaserockMeta& meta) {
  if (auto made = make_dirs(root + "/baserock"); !made) return made;
  return write_file(root + "/" + baserock_meta_path(name), encode_baserock_meta(meta));
}

// A stratum's artifact is its members' .meta files and its own, nothing
// else: worked out in memory (path -> contents) and published as a manifest
// of known or new blobs, with no directory written.
using MetaFiles = std::map<std::string, std::string>;

Outcome<MetaFiles> assemble_stratum(const BuildContext& ctx, const Component& c) {
  static const std::vector<SplitRule> k_none;
  auto rules =
      SplitRuleSet::compile(definition_name(c), c.stratum_def ? c.stratum_def->products : k_none,
                            ctx.graph.split_rules ? ctx.graph.split_rules->stratum : k_none);
  if (!rules) return failed(c.path + ": " + rules.error().message);
  MetaFiles files;
  std::vector<ChunkProducts> chunks;
  for (std::size_t member : c.chunks) {
    const Component& m = ctx.graph.components[member];
    if (m.build_mode == BuildMode::bootstrap) continue;
    auto meta = read_meta(ctx, m);
    if (!meta) return std::unexpected(meta.error());
    ChunkProducts products;
    for (const auto& p : meta->products) products.products.push_back(p.artifact);
    if (m.chunk_def != nullptr) products.artifacts = m.chunk_def->artifacts;
    chunks.push_back(std::move(products));
    files[baserock_meta_path(definition_name(m))] = encode_baserock_meta(*meta);
  }
  BaserockMeta meta{split_stratum(*rules, chunks), {}, {}, *c.cache_key};
  files[baserock_meta_path(definition_name(c))] = encode_baserock_meta(meta);
  return files;
}

// The manifest of a tree holding `files` (mode 0644, in directories of mode
// 0755), in walk order; `by_digest` gets each file's contents by digest.
Manifest files_manifest(const MetaFiles& files, std::map<std::string, const std::string*>& by_digest) {
  Manifest manifest;
  std::set<std::string> dirs;
  for (const auto& [path, contents] : files)
    for (auto slash = path.find('/'); slash != std::string::npos; slash = path.find('/', slash + 1))
      dirs.insert(path.substr(0, slash));
  std::map<std::string, const std::string*> entries;  // path -> contents (nullptr: a directory)
  for (const auto& dir : dirs) entries[dir] = nullptr;
  for (const auto& [path, contents] : files) entries[path] = &contents;
  // Walk order: a directory before its contents, siblings sorted by name
  // ('/' sorts before every other byte of a name here).
  std::vector<std::pair<std::string, const std::string*>> ordered(entries.begin(), entries.end());
  auto walk_key = [](const std::string& path) {
    std::string key = path;
    std::replace(key.begin(), key.end(), '/', '\x01');
    return key;
  };
  std::sort(ordered.begin(), ordered.end(),
            [&](const auto& a, const auto& b) { return walk_key(a.first) < walk_key(b.first); });
  for (const auto& [path, contents] : ordered) {
    ManifestEntry e;
    e.path = path;
    if (contents == nullptr) {
      e.type = ManifestEntry::Type::directory;
      e.mode = 0755;
    } else {
      e.type = ManifestEntry::Type::file;
      e.mode = 0644;
      e.digest = sha256_hex(*contents);
      e.size = contents->size();
      by_digest[e.digest] = contents;
    }
    manifest.entries.push_back(std::move(e));
  }
  return manifest;
}

// Publishes `files` as key's artifact, with no directory written: each
// blob the store lacks is written from memory.
Result<PublishOutcome> publish_files(ArtifactCache& cache, const std::string& key,
                                     const MetaFiles& files, const ArtifactMeta& meta) {
  std::map<std::string, const std::string*> by_digest;
  Manifest manifest = files_manifest(files, by_digest);
  return cache.insert_fetched(key, manifest, meta,
                              [&](const BlobId& id, std::uint64_t, int fd) -> Result<void> {
                                auto it = by_digest.find(id.digest);
                                if (it == by_digest.end())
                                  return make_error("no contents for blob " + id.digest);
                                if (!write_all(fd, *it->second))
                                  return make_errno_error("cannot write blob " + id.digest);
                                return {};
                              });
}

// Installs one stratum's selected products into root (see the header).
Outcome<void> install_stratum(const BuildContext& ctx, const Component& system,
                              const SystemMember& member, const std::string& root,
                              const std::string& log_path, StagedCopies& copies) {
  const Component& s = ctx.graph.components[member.component];
  auto stratum_meta = read_meta(ctx, s);
  if (!stratum_meta) return std::unexpected(stratum_meta.error());
  std::set<std::string> selected;
  if (member.artifacts) {
    selected.insert(member.artifacts->begin(), member.artifacts->end());
  } else {
    for (const auto& p : stratum_meta->products) selected.insert(p.artifact);
  }
  BaserockMeta split{{}, {}, {}, *s.cache_key};
  std::unordered_set<std::string> to_keep;  // chunk products
  for (const auto& p : stratum_meta->products) {
    if (!selected.contains(p.artifact)) continue;
    to_keep.insert(p.components.begin(), p.components.end());
    split.products.push_back(p);
  }
  std::string note = "Installing " + definition_name(s) + " artifacts:";
  for (const auto& a : selected) note += " " + a;
  for (const auto& a : selected)
    if (std::none_of(split.products.begin(), split.products.end(),
                     [&](const Product& p) { return p.artifact == a; }))
      note += " (WARNING: " + definition_name(s) + " has no artifact " + a + ")";
  if (std::FILE* log = std::fopen(log_path.c_str(), "a")) {
    std::fprintf(log, "%s\n", note.c_str());
    std::fclose(log);
  }
  ctx.log(system.name, note);

  // A chunk damaged (and so dropped) or gone: the stratum that names it
  // must be built again, which rebuilds the chunk first.
  auto member_trouble = [&](const Component& m, const std::string& reason) {
    if (!ctx.cache.contains(*m.cache_key)) (void)ctx.cache.forget(*s.cache_key);
    return abandon("cannot install " + m.name + ": " + reason);
  };
  for (std::size_t index : s.chunks) {
    const Component& m = ctx.graph.components[index];
    if (m.build_mode == BuildMode::bootstrap) continue;
    if (ctx.should_stop())
      return std::unexpected(
          Trouble{BuildOutcome::cancelled,
                  ctx.stop.load() ? "stop requested" : "the target no longer needs it"});
    auto meta = read_meta(ctx, m);
    if (!meta) return member_trouble(m, meta.error().reason);
    BaserockMeta kept{{}, meta->repo, meta->ref, meta->cache};
    std::unordered_set<std::string> paths;
    for (const auto& p : meta->products) {
      if (!to_keep.contains(p.artifact)) continue;
      paths.insert(p.components.begin(), p.components.end());
      kept.products.push_back(p);
    }
    if (kept.products.empty()) continue;
    auto staged =
        ctx.cache.stage_paths(*m.cache_key, paths, root, StageMode::copy, ctx.options.verify,
                              &copies);
    if (!staged) return member_trouble(m, staged.error().to_string());
    if (auto written = write_meta(root, definition_name(m), kept); !written)
      return abandon(written.error().to_string());
  }
  if (auto written = write_meta(root, definition_name(s), split); !written)
    return abandon(written.error().to_string());
  return {};
}

Outcome<void> run_integration(const BuildContext& ctx, const Component& c, const std::string& root,
                              const std::string& sandbox_dir, const std::string& log_path) {
  Commands commands =
      integration_commands(ctx.graph, static_cast<std::size_t>(&c - ctx.graph.components.data()));
  if (commands.empty()) return {};
  const std::string& name = definition_name(c);
  SandboxSpec spec;
  spec.name = name;
  spec.sandbox_dir = sandbox_dir;
  spec.base = "none";
  spec.lower_layers = {root};
  spec.build_dir = sandbox_dir + "/" + name_to_leaf(name) + ".build";
  spec.install_dir = sandbox_dir + "/" + name_to_leaf(name) + ".inst";
  spec.arch = ctx.options.arch;
  spec.max_jobs = ctx.options.max_jobs;
  spec.log_path = log_path;
  spec.keep_upper = true;  // what the commands wrote is merged into the system below
  ctx.log(c.id, "Running " + std::to_string(commands.size()) + " system-integration commands");
  StepOptions options;
  options.control.should_stop = ctx.should_stop;
  auto oom_kills_before = oom_kill_count();
  auto result =
      run_steps(spec, {{"system-integration", StepKind::other, commands}}, log_path, options);
  if (!result) return abandon("cannot start the sandbox: " + result.error().to_string());
  if (result->cancelled || (!result->ok && ctx.stop.load()))
    return std::unexpected(Trouble{BuildOutcome::cancelled, ctx.stop.load()
                                                                ? "stop requested"
                                                                : "the target no longer needs it"});
  if (!result->ok) {
    if (auto cause = outside_cause(*result, oom_kills_before, ctx.cache.root()))
      return abandon(*cause);
    return failed(result->describe());
  }
  auto merged = merge_overlay_upper(sandbox_upper_dir(sandbox_dir, "root"), root,
                                    {"proc", "dev", "tmp", name + ".build", name + ".inst"});
  if (!merged) {
    std::string why = "system integration: " + merged.error().to_string();
    return is_machine_trouble(why) ? abandon(why) : failed(why);
  }
  return {};
}

Outcome<void> assemble_cluster(const Component& c, const BuildGraph& graph,
                               const std::string& root) {
  nlohmann::ordered_json members = nlohmann::ordered_json::array();
  for (std::size_t dep : c.depends)
    members.push_back(
        {{"name", graph.components[dep].name}, {"cache", *graph.components[dep].cache_key}});
  nlohmann::ordered_json meta{{"systems", members}, {"cache", *c.cache_key}};
  if (auto made = make_dirs(root + "/baserock"); !made) return abandon(made.error().to_string());
  if (auto written =
          write_file(root + "/" + baserock_meta_path(definition_name(c)), meta.dump(2) + "\n");
      !written)
    return abandon(written.error().to_string());
  return {};
}

}  // namespace

Commands integration_commands(const BuildGraph& graph, std::size_t index) {
  std::map<std::string, const Commands*> keyed;
  for (const SystemMember& member : graph.components[index].strata) {
    for (std::size_t chunk : graph.components[member.component].chunks) {
      const ChunkDef* def = graph.components[chunk].chunk_def;
      if (def == nullptr) continue;
      for (const auto& [product, steps] : def->system_integration)
        for (const auto& [name, commands] : steps) keyed[name + "-" + product] = &commands;
    }
  }
  Commands out;
  for (const auto& [key, commands] : keyed)
    out.insert(out.end(), commands->begin(), commands->end());
  return out;
}

BuildReport assemble(const BuildContext& ctx, std::size_t index, const std::string& log_path) {
  const Component& c = ctx.graph.components[index];
  auto start = std::chrono::steady_clock::now();
  // A build directory for everything but a stratum (assembled in memory).
  Result<std::string> dir = std::string();
  if (c.kind != Kind::stratum) dir = ctx.cache.build_dirs().make(c.name);
  if (!dir) return {BuildOutcome::abandoned, 0, dir.error().to_string(), log_path};
  struct Cleanup {
    std::string path;
    ~Cleanup() {
      if (!path.empty()) (void)remove_sandbox(path);
    }
  } cleanup{*dir};
  (void)make_dirs(ctx.cache.logs_dir());
  (void)write_file(log_path, "");

  std::string root = *dir + "/" + std::string(to_string(c.kind));
  double stage_seconds = 0;  // installing the strata into a system
  std::optional<MetaFiles> in_memory;  // a stratum's files, published without a directory
  StagedCopies copies;  // a system's staged files: not hashed again when published
  auto assembled = [&]() -> Outcome<void> {
    switch (c.kind) {
      case Kind::stratum: {
        auto files = assemble_stratum(ctx, c);
        if (!files) return std::unexpected(files.error());
        in_memory = std::move(*files);
        return {};
      }
      case Kind::chunk:
        return abandon("a chunk is built, not assembled");
      case Kind::cluster:
      case Kind::system:
        break;
    }
    if (auto made = make_dirs(root); !made) return abandon(made.error().to_string());
    if (c.kind == Kind::cluster) return assemble_cluster(c, ctx.graph, root);
    auto stage_start = std::chrono::steady_clock::now();
    for (const SystemMember& member : c.strata)
      if (auto installed = install_stratum(ctx, c, member, root, log_path, copies); !installed)
        return installed;
    stage_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - stage_start).count();
    return run_integration(ctx, c, root, *dir + "/sandbox", log_path);
  }();
  if (!assembled) {
    // A stop request is checked before a failure is recorded: a sandbox
    // killed by our own Ctrl-C handling is not the component's failure.
    if (ctx.stop.load()) return {BuildOutcome::cancelled, 0, "stop requested", log_path};
    if (assembled.error().outcome == BuildOutcome::failed)
      (void)ctx.cache.failures().record(*c.cache_key, log_path, assembled.error().reason, ctx.holder);
    return {assembled.error().outcome, 0, assembled.error().reason, log_path};
  }
  auto duration = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  ArtifactMeta meta = ctx.meta_for(duration, c.id);
  for (std::size_t dep : c.depends)
    meta.extra["member." + ctx.graph.components[dep].name] = *ctx.graph.components[dep].cache_key;
  auto publish_start = std::chrono::steady_clock::now();
  auto published = in_memory ? publish_files(ctx.cache, *c.cache_key, *in_memory, meta)
                              : ctx.cache.insert(*c.cache_key, root, meta, Ownership::take, &copies);
  double publish_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - publish_start).count();
  if (!published)
    return {BuildOutcome::abandoned, 0, "cannot publish: " + published.error().to_string(),
            log_path};
  return {*published == PublishOutcome::inserted ? BuildOutcome::published
                                                 : BuildOutcome::already_present,
          0,
          {},
          log_path,
          stage_seconds,
          publish_seconds};
}

}  // namespace gang
