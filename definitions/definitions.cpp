#include "definitions/definitions.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <filesystem>
#include <thread>
#include <unordered_set>

#include "definitions/deploy_value.hpp"
#include "definitions/suggest.hpp"
#include "definitions/yaml.hpp"
#include "util/fs.hpp"
#include "util/path_name.hpp"

namespace gang {

const std::array<std::string_view, k_step_count> k_step_names = {
    "pre-bootstrap-commands", "bootstrap-commands", "post-bootstrap-commands",
    "pre-configure-commands", "configure-commands", "post-configure-commands",
    "pre-build-commands",     "build-commands",     "post-build-commands",
    "pre-test-commands",      "test-commands",      "post-test-commands",
    "pre-install-commands",   "install-commands",   "post-install-commands",
    "pre-strip-commands",     "strip-commands",     "post-strip-commands",
};

std::optional<std::size_t> step_index(std::string_view name) {
  for (std::size_t i = 0; i < k_step_count; ++i)
    if (k_step_names[i] == name) return i;
  return std::nullopt;
}

std::string_view to_string(Kind kind) {
  switch (kind) {
    case Kind::chunk:
      return "chunk";
    case Kind::stratum:
      return "stratum";
    case Kind::system:
      return "system";
    case Kind::cluster:
      return "cluster";
  }
  return "?";
}

std::string_view to_string(BuildMode mode) {
  switch (mode) {
    case BuildMode::staging:
      return "staging";
    case BuildMode::bootstrap:
      return "bootstrap";
    case BuildMode::test:
      return "test";
  }
  return "?";
}

namespace {

// Known fields, per context. Chunk fields are shared by chunk files and
// stratum chunk entries (an entry may carry anything a chunk file may).
#define GANG_STEP_FIELDS                                                                  \
  "pre-bootstrap-commands", "bootstrap-commands", "post-bootstrap-commands",              \
      "pre-configure-commands", "configure-commands", "post-configure-commands",          \
      "pre-build-commands", "build-commands", "post-build-commands", "pre-test-commands", \
      "test-commands", "post-test-commands", "pre-install-commands", "install-commands",  \
      "post-install-commands", "pre-strip-commands", "strip-commands", "post-strip-commands"

constexpr std::string_view k_chunk_fields[] = {"name",
                                               "kind",
                                               "description",
                                               "build-system",
                                               "max-jobs",
                                               "products",
                                               "system-integration",
                                               "devices",
                                               "prefix",
                                               "build-mode",
                                               "repo",
                                               "ref",
                                               "unpetrify-ref",
                                               "submodules",
                                               "build-depends",
                                               "morph",
                                               "artifacts",
                                               GANG_STEP_FIELDS};
constexpr std::string_view k_stratum_fields[] = {"name",          "kind",   "description",
                                                 "build-depends", "chunks", "products"};
constexpr std::string_view k_stratum_dep_fields[] = {"morph", "name"};
constexpr std::string_view k_system_fields[] = {"name", "kind",   "description",
                                                "arch", "strata", "configuration-extensions"};
constexpr std::string_view k_system_stratum_fields[] = {"name", "morph", "artifacts"};
constexpr std::string_view k_cluster_fields[] = {"name", "kind", "description", "systems"};
constexpr std::string_view k_cluster_system_fields[] = {"morph", "deploy", "deploy-defaults",
                                                        "subsystems"};
constexpr std::string_view k_defaults_fields[] = {"build-systems", "split-rules"};
constexpr std::string_view k_build_system_fields[] = {GANG_STEP_FIELDS};
constexpr std::string_view k_split_rule_fields[] = {"artifact", "include"};
constexpr std::string_view k_kinds[] = {"chunk", "stratum", "system", "cluster"};
constexpr std::string_view k_build_modes[] = {"staging", "bootstrap", "test"};

#undef GANG_STEP_FIELDS

// Chunk fields as written, before merging an entry over its file.
struct ChunkFields {
  std::optional<std::string> name, morph, repo, ref, unpetrify_ref, build_system, prefix;
  std::optional<BuildMode> build_mode;
  std::optional<std::map<std::string, std::string>> submodules, artifacts;
  std::optional<std::vector<std::string>> build_depends;
  std::optional<int> max_jobs;
  OptionalSteps steps;
  std::optional<std::vector<SplitRule>> products;
  std::optional<SystemIntegration> system_integration;
  int line = 0;
};

struct ParsedFile {
  std::string path;
  YamlNode root;
  Kind kind = Kind::chunk;
  std::string name;
};

template <typename T>
void take(std::optional<T>& into, std::optional<T>&& from) {
  if (from) into = std::move(from);
}

class Loader {
 public:
  Loader(Definitions& defs, const LoadOptions& options) : m_defs(defs), m_options(options) {}

  Result<void> load();

 private:
  // --- typed field readers; `file` is the current file for messages ---
  Result<void> check_fields(const YamlNode& map, std::span<const std::string_view> known) {
    for (const auto& entry : map.entries) {
      if (std::find(known.begin(), known.end(), entry.key) != known.end()) continue;
      Error e{"unknown field \"" + entry.key + "\"" + did_you_mean(entry.key, known), m_file,
              entry.line, 0, entry.key};
      if (m_options.unknown_fields == Strictness::strict) return std::unexpected(std::move(e));
      m_defs.warnings.push_back(std::move(e));
    }
    return {};
  }

  std::unexpected<Error> type_error(const YamlNode& node, std::string_view field,
                                    std::string_view expected) {
    return make_error_at(m_file, node.line,
                         "\"" + std::string(field) + "\" must be " + std::string(expected) +
                             ", not " + describe(node.type),
                         std::string(field));
  }

  Result<const YamlNode*> need_map(const YamlNode& node, std::string_view what) {
    if (!node.is_map()) return type_error(node, what, "a mapping");
    return &node;
  }

  Result<std::optional<std::string>> opt_string(const YamlNode& map, std::string_view field) {
    const YamlNode* n = map.find(field);
    if (n == nullptr || n->is_null()) return std::optional<std::string>{};
    if (!n->is_scalar()) return type_error(*n, field, "a string");
    return std::optional<std::string>(n->scalar);
  }

  Result<std::string> req_string(const YamlNode& map, std::string_view field, int line) {
    auto value = opt_string(map, field);
    if (!value) return std::unexpected(value.error());
    if (!*value || (*value)->empty())
      return make_error_at(m_file, line, "missing field \"" + std::string(field) + "\"",
                           std::string(field));
    return std::move(**value);
  }

  Result<std::vector<std::string>> string_list(const YamlNode& n, std::string_view field) {
    std::vector<std::string> out;
    if (n.is_null()) return out;
    if (!n.is_sequence()) return type_error(n, field, "a list");
    out.reserve(n.items.size());
    for (const auto& item : n.items) {
      if (!item.is_scalar())
        return make_error_at(
            m_file, item.line,
            "\"" + std::string(field) + "\" items must be strings, not " + describe(item.type),
            std::string(field));
      out.push_back(item.scalar);
    }
    return out;
  }

  Result<std::optional<std::vector<std::string>>> opt_string_list(const YamlNode& map,
                                                                  std::string_view field) {
    const YamlNode* n = map.find(field);
    if (n == nullptr) return std::optional<std::vector<std::string>>{};
    auto list = string_list(*n, field);
    if (!list) return std::unexpected(list.error());
    return std::optional<std::vector<std::string>>(std::move(*list));
  }

  Result<std::map<std::string, std::string>> string_map(const YamlNode& n, std::string_view field) {
    std::map<std::string, std::string> out;
    if (n.is_null()) return out;
    if (!n.is_map()) return type_error(n, field, "a mapping");
    for (const auto& entry : n.entries) {
      if (entry.value.is_null()) {
        out[entry.key];
        continue;
      }
      if (!entry.value.is_scalar()) return type_error(entry.value, entry.key, "a string");
      out[entry.key] = entry.value.scalar;
    }
    return out;
  }

  // Deploy parameters: any YAML value, kept as the text an extension sees.
  Result<std::map<std::string, std::string>> deploy_settings(const YamlNode& n,
                                                             std::string_view field) {
    std::map<std::string, std::string> out;
    if (n.is_null()) return out;
    if (!n.is_map()) return type_error(n, field, "a mapping");
    for (const auto& entry : n.entries) out[entry.key] = render_deploy_value(entry.value);
    return out;
  }

  // Names become file names (artifacts, build directories, cache keys), so
  // each is checked here, once, with where it was written.
  Result<void> check_name_at(std::string_view name, int line, std::string_view field,
                             std::string_view what) {
    if (auto ok = check_name(name); !ok)
      return make_error_at(m_file, line, std::string(what) + ": " + ok.error().message,
                           std::string(field));
    return {};
  }

  // The line of `field` in `map`, else `fallback`.
  static int line_of(const YamlNode& map, std::string_view field, int fallback) {
    const YamlNode* n = map.find(field);
    return n != nullptr ? n->line : fallback;
  }

  Result<std::vector<SplitRule>> split_rules(const YamlNode& n, std::string_view field) {
    std::vector<SplitRule> out;
    if (n.is_null()) return out;
    if (!n.is_sequence()) return type_error(n, field, "a list");
    for (const auto& item : n.items) {
      if (!item.is_map()) return type_error(item, field, "a list of mappings");
      if (auto r = check_fields(item, k_split_rule_fields); !r) return std::unexpected(r.error());
      SplitRule rule;
      auto artifact = req_string(item, "artifact", item.line);
      if (!artifact) return std::unexpected(artifact.error());
      rule.artifact = std::move(*artifact);
      if (auto r = check_name_at(rule.artifact, line_of(item, "artifact", item.line), "artifact",
                                 "artifact name");
          !r)
        return std::unexpected(r.error());
      if (const YamlNode* inc = item.find("include")) {
        auto list = string_list(*inc, "include");
        if (!list) return std::unexpected(list.error());
        rule.include = std::move(*list);
      }
      out.push_back(std::move(rule));
    }
    return out;
  }

  Result<void> steps(const YamlNode& map, OptionalSteps& out) {
    for (const auto& entry : map.entries) {
      if (!entry.key.ends_with("-commands")) continue;
      auto index = step_index(entry.key);
      if (!index) continue;  // reported by check_fields
      auto list = string_list(entry.value, entry.key);
      if (!list) return std::unexpected(list.error());
      out[*index] = std::move(*list);
    }
    return {};
  }

  Result<ChunkFields> chunk_fields(const YamlNode& map);
  Result<void> parse_defaults();
  Result<void> parse_version();
  Result<void> read_head(ParsedFile& file);  // kind and name
  Result<void> parse_stratum(ParsedFile& file, StratumDef& out);
  Result<void> parse_system(ParsedFile& file, SystemDef& out);
  Result<void> parse_cluster_systems(const YamlNode& list, std::vector<ClusterSystem>& out);
  Result<std::size_t> lookup(const std::string& morph, Kind kind, int line, std::string_view what);
  Result<void> check_chunk_cycles(const StratumDef& stratum);
  void break_stratum_cycles();

  // Records `path` as broken with `error`. Its own problems are also
  // warnings; a problem in a broken file it names was warned about there.
  void set_broken(const std::string& path, Error error) {
    if (error.file == path || !m_defs.broken.contains(error.file)) m_defs.warnings.push_back(error);
    m_defs.broken.emplace(path, std::move(error));
  }

  Definitions& m_defs;
  const LoadOptions& m_options;
  std::string m_file;  // current file, relative to the root
  std::unordered_map<std::string, ChunkFields> m_chunk_file_fields;
};

Result<ChunkFields> Loader::chunk_fields(const YamlNode& map) {
  ChunkFields f;
  f.line = map.line;
  if (auto r = check_fields(map, k_chunk_fields); !r) return std::unexpected(r.error());
  auto str = [&](std::string_view field, std::optional<std::string>& into) -> Result<void> {
    auto v = opt_string(map, field);
    if (!v) return std::unexpected(v.error());
    into = std::move(*v);
    return {};
  };
  for (auto [field, into] : {std::pair{"name", &f.name},
                             {"morph", &f.morph},
                             {"repo", &f.repo},
                             {"ref", &f.ref},
                             {"unpetrify-ref", &f.unpetrify_ref},
                             {"build-system", &f.build_system},
                             {"prefix", &f.prefix}}) {
    if (auto r = str(field, *into); !r) return std::unexpected(r.error());
  }
  if (const YamlNode* n = map.find("build-mode"); n != nullptr && !n->is_null()) {
    if (!n->is_scalar()) return type_error(*n, "build-mode", "a string");
    if (n->scalar == "staging")
      f.build_mode = BuildMode::staging;
    else if (n->scalar == "bootstrap")
      f.build_mode = BuildMode::bootstrap;
    else if (n->scalar == "test")
      f.build_mode = BuildMode::test;
    else
      return make_error_at(m_file, n->line,
                           "unknown build-mode \"" + n->scalar + "\"" +
                               did_you_mean(n->scalar, k_build_modes) +
                               " (expected staging, bootstrap or test)",
                           "build-mode");
  }
  if (const YamlNode* n = map.find("max-jobs"); n != nullptr && !n->is_null()) {
    int value = 0;
    const std::string& s = n->is_scalar() ? n->scalar : std::string();
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (!n->is_scalar() || s.empty() || ec != std::errc() || end != s.data() + s.size() ||
        value < 1)
      return make_error_at(m_file, n->line, "\"max-jobs\" must be a positive number", "max-jobs");
    f.max_jobs = value;
  }
  if (auto r = opt_string_list(map, "build-depends"); !r)
    return std::unexpected(r.error());
  else
    f.build_depends = std::move(*r);
  if (const YamlNode* n = map.find("artifacts")) {
    auto m = string_map(*n, "artifacts");
    if (!m) return std::unexpected(m.error());
    f.artifacts = std::move(*m);
  }
  if (const YamlNode* n = map.find("submodules"); n != nullptr) {
    std::map<std::string, std::string> subs;
    if (!n->is_null() && !n->is_map()) return type_error(*n, "submodules", "a mapping");
    for (const auto& entry : n->entries) {
      if (!entry.value.is_map())
        return type_error(entry.value, entry.key, "a mapping with \"url\"");
      auto url = req_string(entry.value, "url", entry.line);
      if (!url) return std::unexpected(url.error());
      subs[entry.key] = std::move(*url);
    }
    f.submodules = std::move(subs);
  }
  if (const YamlNode* n = map.find("products")) {
    auto rules = split_rules(*n, "products");
    if (!rules) return std::unexpected(rules.error());
    f.products = std::move(*rules);
  }
  if (const YamlNode* n = map.find("system-integration"); n != nullptr && !n->is_null()) {
    if (!n->is_map()) return type_error(*n, "system-integration", "a mapping");
    SystemIntegration si;
    for (const auto& product : n->entries) {
      if (product.value.is_null()) continue;
      if (!product.value.is_map()) return type_error(product.value, product.key, "a mapping");
      for (const auto& step : product.value.entries) {
        auto list = string_list(step.value, step.key);
        if (!list) return std::unexpected(list.error());
        si[product.key][step.key] = std::move(*list);
      }
    }
    f.system_integration = std::move(si);
  }
  if (const YamlNode* n = map.find("devices"); n != nullptr && !n->is_null() && !n->is_sequence())
    return type_error(*n, "devices", "a list");
  if (auto r = steps(map, f.steps); !r) return std::unexpected(r.error());
  return f;
}

Result<void> Loader::parse_version() {
  m_file = "VERSION";
  std::string path = m_defs.root + "/VERSION";
  if (!path_exists(path))
    return make_error(m_defs.root + ": not a definitions tree (no VERSION file)");
  auto text = read_regular_file(path);
  if (!text) return std::unexpected(text.error());
  auto root = parse_yaml(*text, m_file);
  if (!root) return std::unexpected(root.error());
  const YamlNode* v = root->is_map() ? root->find("version") : &*root;
  if (v == nullptr || !v->is_scalar())
    return make_error_at(m_file, root->line, "expected \"version: N\"", "version");
  if (root->is_map())
    if (auto r = check_fields(*root, std::array<std::string_view, 1>{"version"}); !r)
      return std::unexpected(r.error());
  int version = 0;
  auto [end, ec] = std::from_chars(v->scalar.data(), v->scalar.data() + v->scalar.size(), version);
  if (ec != std::errc() || end != v->scalar.data() + v->scalar.size() || version < 7 || version > 9)
    return make_error_at(
        m_file, v->line,
        "unsupported definitions version \"" + v->scalar + "\" (gang reads versions 7, 8 and 9)",
        "version");
  m_defs.version = version;
  return {};
}

Result<void> Loader::parse_defaults() {
  m_defs.build_systems["manual"] = OptionalSteps{};
  m_file = "DEFAULTS";
  std::string path = m_defs.root + "/DEFAULTS";
  if (!path_exists(path)) return {};
  auto text = read_regular_file(path);
  if (!text) return std::unexpected(text.error());
  auto root = parse_yaml(*text, m_file);
  if (!root) return std::unexpected(root.error());
  if (root->is_null()) return {};
  if (!root->is_map()) return type_error(*root, "DEFAULTS", "a mapping");
  if (auto r = check_fields(*root, k_defaults_fields); !r) return std::unexpected(r.error());
  if (const YamlNode* bs = root->find("build-systems"); bs != nullptr && !bs->is_null()) {
    if (!bs->is_map()) return type_error(*bs, "build-systems", "a mapping");
    for (const auto& entry : bs->entries) {
      OptionalSteps s;
      if (!entry.value.is_null()) {
        if (!entry.value.is_map()) return type_error(entry.value, entry.key, "a mapping");
        if (auto r = check_fields(entry.value, k_build_system_fields); !r)
          return std::unexpected(r.error());
        if (auto r = steps(entry.value, s); !r) return std::unexpected(r.error());
      }
      m_defs.build_systems[entry.key] = std::move(s);
    }
  }
  if (const YamlNode* sr = root->find("split-rules"); sr != nullptr && !sr->is_null()) {
    if (!sr->is_map()) return type_error(*sr, "split-rules", "a mapping");
    if (auto r = check_fields(*sr, std::array<std::string_view, 2>{"chunk", "stratum"}); !r)
      return std::unexpected(r.error());
    if (const YamlNode* c = sr->find("chunk")) {
      auto rules = split_rules(*c, "chunk");
      if (!rules) return std::unexpected(rules.error());
      m_defs.split_rules.chunk = std::move(*rules);
    }
    if (const YamlNode* s = sr->find("stratum")) {
      auto rules = split_rules(*s, "stratum");
      if (!rules) return std::unexpected(rules.error());
      m_defs.split_rules.stratum = std::move(*rules);
    }
  }
  return {};
}

Result<std::size_t> Loader::lookup(const std::string& morph, Kind kind, int line,
                                   std::string_view what) {
  auto it = m_defs.by_path.find(morph);
  if (it == m_defs.by_path.end()) {
    if (const Error* problem = m_defs.problem(morph)) return std::unexpected(*problem);
    return make_error_at(
        m_file, line, std::string(what) + " names missing morph file \"" + morph + "\"", "morph");
  }
  if (it->second.kind != kind)
    return make_error_at(m_file, line,
                         std::string(what) + " names \"" + morph + "\", which is a " +
                             std::string(to_string(it->second.kind)) + ", not a " +
                             std::string(to_string(kind)),
                         "morph");
  return it->second.index;
}

Result<void> Loader::parse_stratum(ParsedFile& file, StratumDef& out) {
  const YamlNode& root = file.root;
  if (auto r = check_fields(root, k_stratum_fields); !r) return std::unexpected(r.error());
  if (const YamlNode* bd = root.find("build-depends"); bd != nullptr && !bd->is_null()) {
    if (!bd->is_sequence()) return type_error(*bd, "build-depends", "a list");
    for (const auto& item : bd->items) {
      if (!item.is_map()) return type_error(item, "build-depends", "a list of {morph: ...}");
      if (auto r = check_fields(item, k_stratum_dep_fields); !r) return std::unexpected(r.error());
      auto morph = req_string(item, "morph", item.line);
      if (!morph) return std::unexpected(morph.error());
      auto index = lookup(*morph, Kind::stratum, item.line, "build-depends");
      if (!index) return std::unexpected(index.error());
      out.build_depends.push_back(*index);
    }
  }
  if (const YamlNode* p = root.find("products")) {
    auto rules = split_rules(*p, "products");
    if (!rules) return std::unexpected(rules.error());
    out.products = std::move(*rules);
  }
  const YamlNode* chunks = root.find("chunks");
  if (chunks == nullptr || chunks->is_null()) return {};
  if (!chunks->is_sequence()) return type_error(*chunks, "chunks", "a list");
  out.chunks.reserve(chunks->items.size());
  std::unordered_map<std::string, int> seen;  // chunk name -> line
  for (const auto& item : chunks->items) {
    if (!item.is_map()) return type_error(item, "chunks", "a list of mappings");
    auto entry = chunk_fields(item);
    if (!entry) return std::unexpected(entry.error());
    ChunkFields merged;
    if (entry->morph) {
      auto it = m_chunk_file_fields.find(*entry->morph);
      if (it == m_chunk_file_fields.end()) {
        auto index = lookup(*entry->morph, Kind::chunk, item.line, "chunk entry");
        if (!index) return std::unexpected(index.error());
        return std::unexpected(m_defs.broken.at(*entry->morph));  // a chunk file that failed
      } else {
        merged = it->second;
      }
    }
    // Entry fields win over the chunk file's, except that the artifact is
    // named as the file names it (see ChunkDef::artifact_name).
    std::optional<std::string> file_name = merged.name;
    take(merged.name, std::move(entry->name));
    take(merged.morph, std::move(entry->morph));
    take(merged.repo, std::move(entry->repo));
    take(merged.ref, std::move(entry->ref));
    take(merged.unpetrify_ref, std::move(entry->unpetrify_ref));
    take(merged.build_system, std::move(entry->build_system));
    take(merged.prefix, std::move(entry->prefix));
    take(merged.build_mode, std::move(entry->build_mode));
    take(merged.submodules, std::move(entry->submodules));
    take(merged.artifacts, std::move(entry->artifacts));
    take(merged.build_depends, std::move(entry->build_depends));
    take(merged.max_jobs, std::move(entry->max_jobs));
    take(merged.products, std::move(entry->products));
    take(merged.system_integration, std::move(entry->system_integration));
    for (std::size_t i = 0; i < k_step_count; ++i)
      if (entry->steps[i]) merged.steps[i] = std::move(entry->steps[i]);

    ChunkDef chunk;
    if (!merged.name || merged.name->empty())
      return make_error_at(m_file, item.line, "chunk entry has no \"name\"", "name");
    chunk.name = std::move(*merged.name);
    if (auto r = check_name_at(chunk.name, line_of(item, "name", item.line), "name", "chunk name");
        !r)
      return std::unexpected(r.error());
    chunk.artifact_name = file_name && !file_name->empty() ? *file_name : chunk.name;
    if (auto [it, fresh] = seen.emplace(chunk.name, item.line); !fresh)
      return make_error_at(m_file, item.line,
                           "duplicate chunk name \"" + chunk.name + "\" (first at line " +
                               std::to_string(it->second) + ")",
                           "name");
    chunk.morph = merged.morph.value_or("");
    chunk.repo = merged.repo.value_or("");
    chunk.ref = merged.ref.value_or("");
    chunk.unpetrify_ref = merged.unpetrify_ref.value_or("");
    if (!chunk.repo.empty() && chunk.ref.empty())
      return make_error_at(m_file, item.line, "chunk \"" + chunk.name + "\" has a repo but no ref",
                           "ref");
    if (merged.build_system) {
      if (!m_defs.build_systems.contains(*merged.build_system)) {
        std::vector<std::string_view> names;
        for (const auto& [name, _] : m_defs.build_systems) names.push_back(name);
        return make_error_at(m_file, item.line,
                             "unknown build-system \"" + *merged.build_system + "\"" +
                                 did_you_mean(*merged.build_system, names),
                             "build-system");
      }
      chunk.build_system = std::move(*merged.build_system);
    }
    if (merged.build_mode) chunk.build_mode = *merged.build_mode;
    if (merged.prefix) chunk.prefix = std::move(*merged.prefix);
    if (merged.submodules) chunk.submodules = std::move(*merged.submodules);
    if (merged.artifacts) chunk.artifacts = std::move(*merged.artifacts);
    for (const auto& [from, to] : chunk.artifacts)
      for (const std::string& name : {from, to})
        if (auto r = check_name_at(name, line_of(item, "artifacts", item.line), "artifacts",
                                   "artifact name");
            !r)
          return std::unexpected(r.error());
    if (merged.build_depends) chunk.build_depends = std::move(*merged.build_depends);
    chunk.max_jobs = merged.max_jobs;
    chunk.steps = std::move(merged.steps);
    if (merged.products) chunk.products = std::move(*merged.products);
    if (merged.system_integration) chunk.system_integration = std::move(*merged.system_integration);
    chunk.where = Location{m_file, item.line};
    out.chunks.push_back(std::move(chunk));
  }
  for (const auto& chunk : out.chunks) {
    for (const auto& dep : chunk.build_depends) {
      if (seen.contains(dep)) continue;
      std::vector<std::string_view> names;
      for (const auto& c : out.chunks) names.push_back(c.name);
      return make_error_at(m_file, chunk.where.line,
                           "chunk \"" + chunk.name + "\" build-depends on unknown chunk \"" + dep +
                               "\"" + did_you_mean(dep, names) + " (not in stratum \"" + out.name +
                               "\")",
                           "build-depends");
    }
  }
  return check_chunk_cycles(out);
}

// Finds a cycle among nodes 0..n-1 (edges from `next`): its nodes in order.
template <typename Next>
std::optional<std::vector<std::size_t>> find_cycle(std::size_t n, Next next) {
  enum : char { white, grey, black };
  std::vector<char> colour(n, white);
  std::vector<std::size_t> path;
  std::vector<std::pair<std::size_t, std::size_t>> stack;  // node, next edge
  for (std::size_t start = 0; start < n; ++start) {
    if (colour[start] != white) continue;
    stack.push_back({start, 0});
    colour[start] = grey;
    path.push_back(start);
    while (!stack.empty()) {
      auto& [node, edge] = stack.back();
      const auto& edges = next(node);
      if (edge == edges.size()) {
        colour[node] = black;
        path.pop_back();
        stack.pop_back();
        continue;
      }
      std::size_t to = edges[edge++];
      if (colour[to] == grey)
        return std::vector<std::size_t>(std::find(path.begin(), path.end(), to), path.end());
      if (colour[to] == white) {
        colour[to] = grey;
        path.push_back(to);
        stack.push_back({to, 0});
      }
    }
  }
  return std::nullopt;
}

// "dependency cycle: a -> b -> a".
template <typename Name>
std::string cycle_message(const std::vector<std::size_t>& cycle, Name name) {
  std::string text = "dependency cycle: ";
  for (std::size_t node : cycle) text += name(node) + " -> ";
  return text + name(cycle.front());
}

Result<void> Loader::check_chunk_cycles(const StratumDef& stratum) {
  std::unordered_map<std::string_view, std::size_t> index;
  for (std::size_t i = 0; i < stratum.chunks.size(); ++i) index[stratum.chunks[i].name] = i;
  std::vector<std::vector<std::size_t>> edges(stratum.chunks.size());
  for (std::size_t i = 0; i < stratum.chunks.size(); ++i)
    for (const auto& dep : stratum.chunks[i].build_depends) edges[i].push_back(index[dep]);
  auto cycle = find_cycle(
      edges.size(), [&](std::size_t i) -> const std::vector<std::size_t>& { return edges[i]; });
  if (!cycle) return {};
  return make_error_at(stratum.path, stratum.chunks[cycle->front()].where.line,
                       cycle_message(*cycle, [&](std::size_t i) { return stratum.chunks[i].name; }),
                       "build-depends");
}

// Every stratum on a cycle is broken; their edges are dropped so that the
// graph never walks a cycle and the search ends.
void Loader::break_stratum_cycles() {
  auto& strata = m_defs.strata;
  while (auto cycle =
             find_cycle(strata.size(), [&](std::size_t i) -> const std::vector<std::size_t>& {
               return strata[i].build_depends;
             })) {
    const StratumDef& first = strata[cycle->front()];
    Error error{cycle_message(*cycle, [&](std::size_t i) { return strata[i].name; }), first.path,
                first.where.line, 0, "build-depends"};
    for (std::size_t i : *cycle) {
      set_broken(strata[i].path, error);
      strata[i].build_depends.clear();
    }
  }
}

Result<void> Loader::parse_system(ParsedFile& file, SystemDef& out) {
  const YamlNode& root = file.root;
  if (auto r = check_fields(root, k_system_fields); !r) return std::unexpected(r.error());
  auto arch = req_string(root, "arch", root.line);
  if (!arch) return std::unexpected(arch.error());
  out.arch = std::move(*arch);
  if (auto r = opt_string_list(root, "configuration-extensions"); !r)
    return std::unexpected(r.error());
  else if (*r)
    out.configuration_extensions = std::move(**r);
  const YamlNode* strata = root.find("strata");
  if (strata == nullptr || strata->is_null()) return {};
  if (!strata->is_sequence()) return type_error(*strata, "strata", "a list");
  for (const auto& item : strata->items) {
    if (!item.is_map()) return type_error(item, "strata", "a list of mappings");
    if (auto r = check_fields(item, k_system_stratum_fields); !r) return std::unexpected(r.error());
    auto morph = req_string(item, "morph", item.line);
    if (!morph) return std::unexpected(morph.error());
    auto index = lookup(*morph, Kind::stratum, item.line, "strata entry");
    if (!index) return std::unexpected(index.error());
    SystemStratum s;
    s.stratum = *index;
    s.where = Location{m_file, item.line};
    auto artifacts = opt_string_list(item, "artifacts");
    if (!artifacts) return std::unexpected(artifacts.error());
    s.artifacts = std::move(*artifacts);
    if (s.artifacts)
      for (const auto& name : *s.artifacts)
        if (auto r = check_name_at(name, line_of(item, "artifacts", item.line), "artifacts",
                                   "artifact name");
            !r)
          return std::unexpected(r.error());
    for (const auto& other : out.strata)
      if (other.stratum == s.stratum)
        return make_error_at(m_file, item.line, "stratum \"" + *morph + "\" listed twice", "morph");
    out.strata.push_back(std::move(s));
  }
  return {};
}

Result<void> Loader::parse_cluster_systems(const YamlNode& list, std::vector<ClusterSystem>& out) {
  if (list.is_null()) return {};
  if (!list.is_sequence()) return type_error(list, "systems", "a list");
  for (const auto& item : list.items) {
    if (!item.is_map()) return type_error(item, "systems", "a list of mappings");
    if (auto r = check_fields(item, k_cluster_system_fields); !r) return std::unexpected(r.error());
    auto morph = req_string(item, "morph", item.line);
    if (!morph) return std::unexpected(morph.error());
    auto index = lookup(*morph, Kind::system, item.line, "systems entry");
    if (!index) return std::unexpected(index.error());
    ClusterSystem cs;
    cs.system = *index;
    cs.where = Location{m_file, item.line};
    if (const YamlNode* dd = item.find("deploy-defaults")) {
      auto m = deploy_settings(*dd, "deploy-defaults");
      if (!m) return std::unexpected(m.error());
      cs.deploy_defaults = std::move(*m);
    }
    if (const YamlNode* d = item.find("deploy"); d != nullptr && !d->is_null()) {
      if (!d->is_map()) return type_error(*d, "deploy", "a mapping");
      for (const auto& entry : d->entries) {
        auto settings = deploy_settings(entry.value, entry.key);
        if (!settings) return std::unexpected(settings.error());
        cs.deploy.push_back(Deployment{entry.key, std::move(*settings)});
      }
    }
    if (const YamlNode* subs = item.find("subsystems"))
      if (auto r = parse_cluster_systems(*subs, cs.subsystems); !r) return r;
    out.push_back(std::move(cs));
  }
  return {};
}

Result<void> Loader::load() {
  if (auto r = parse_version(); !r) return r;
  if (auto r = parse_defaults(); !r) return r;

  // Every *.morph file under the root, in a stable order.
  std::vector<std::string> paths;
  std::error_code ec;
  namespace fs = std::filesystem;
  fs::path root(m_defs.root);
  for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    std::string leaf = p.filename().string();
    if (it->is_directory(ec)) {
      if (leaf.starts_with(".")) it.disable_recursion_pending();
      continue;
    }
    if (p.extension() == ".morph" && !leaf.starts_with("."))
      paths.push_back(p.lexically_relative(root).generic_string());
  }
  if (ec) return make_error(m_defs.root + ": cannot list definitions: " + ec.message());
  std::sort(paths.begin(), paths.end());

  // Reading and parsing dominate loading; yaml-cpp parsers are independent,
  // so files are parsed on a few threads. Errors are reported in path order.
  std::vector<Result<YamlNode>> parsed(paths.size(), make_error("not parsed"));
  {
    std::atomic<std::size_t> next{0};
    auto work = [&] {
      for (std::size_t i = next++; i < paths.size(); i = next++) {
        auto text = read_regular_file(m_defs.root + "/" + paths[i]);
        parsed[i] = text ? parse_yaml(*text, paths[i]) : std::unexpected(text.error());
      }
    };
    std::size_t threads = std::min<std::size_t>(
        {std::max(1u, std::thread::hardware_concurrency()), 8, paths.size() / 64 + 1});
    std::vector<std::jthread> pool;
    for (std::size_t t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
  }

  std::vector<ParsedFile> files;
  files.reserve(paths.size());
  m_defs.by_path.reserve(paths.size());
  for (std::size_t i = 0; i < paths.size(); ++i) {
    std::string& path = paths[i];
    m_file = path;
    if (!parsed[i]) {
      Error& e = parsed[i].error();
      if (e.file.empty()) e.file = path;  // unreadable
      set_broken(path, std::move(e));
      continue;
    }
    ParsedFile file{std::move(path), std::move(*parsed[i]), Kind::chunk, {}};
    auto head = read_head(file);
    if (!head) {
      set_broken(file.path, std::move(head.error()));
      continue;
    }
    files.push_back(std::move(file));
  }

  // Register every file. Duplicate names only make bare names ambiguous
  // (find_target lists the candidates), so they are warnings.
  std::unordered_map<std::string, std::string> seen[4];  // per kind: name -> path
  for (auto& file : files) {
    auto& table = seen[static_cast<int>(file.kind)];
    std::size_t index = 0;
    switch (file.kind) {
      case Kind::chunk:
        index = m_defs.chunk_files.size();
        m_defs.chunk_files.push_back(ChunkFile{file.name, file.path});
        break;
      case Kind::stratum:
        index = m_defs.strata.size();
        m_defs.strata.push_back(
            StratumDef{file.name, file.path, {}, {}, {}, Location{file.path, file.root.line}});
        break;
      case Kind::system:
        index = m_defs.systems.size();
        m_defs.systems.push_back(
            SystemDef{file.name, file.path, {}, {}, {}, Location{file.path, file.root.line}});
        break;
      case Kind::cluster:
        index = m_defs.clusters.size();
        m_defs.clusters.push_back(
            ClusterDef{file.name, file.path, {}, Location{file.path, file.root.line}});
        break;
    }
    if (file.kind != Kind::chunk) {
      if (auto [it, fresh] = table.emplace(file.name, file.path); !fresh) {
        const YamlNode* name = file.root.find("name");
        m_defs.warnings.push_back(Error{"duplicate " + std::string(to_string(file.kind)) +
                                            " name \"" + file.name + "\" (also in " + it->second +
                                            ")",
                                        file.path, name->line, 0, "name"});
      }
    }
    m_defs.by_path.emplace(file.path, Definitions::Ref{file.kind, index});
  }

  // Chunk files first: strata merge their entries over them. A file that
  // fails is broken, and so is whatever names it; the rest loads.
  for (auto& file : files) {
    if (file.kind != Kind::chunk) continue;
    m_file = file.path;
    auto fields = chunk_fields(file.root);
    if (!fields)
      set_broken(file.path, std::move(fields.error()));
    else
      m_chunk_file_fields.emplace(file.path, std::move(*fields));
  }
  for (auto& file : files) {
    if (file.kind != Kind::stratum) continue;
    m_file = file.path;
    if (auto r = parse_stratum(file, m_defs.strata[m_defs.by_path[file.path].index]); !r)
      set_broken(file.path, std::move(r.error()));
  }
  break_stratum_cycles();
  for (auto& file : files) {
    if (file.kind != Kind::system) continue;
    m_file = file.path;
    if (auto r = parse_system(file, m_defs.systems[m_defs.by_path[file.path].index]); !r)
      set_broken(file.path, std::move(r.error()));
  }
  for (auto& file : files) {
    if (file.kind != Kind::cluster) continue;
    m_file = file.path;
    auto r = check_fields(file.root, k_cluster_fields);
    if (const YamlNode* systems = file.root.find("systems"); r && systems != nullptr)
      r = parse_cluster_systems(*systems, m_defs.clusters[m_defs.by_path[file.path].index].systems);
    if (!r) set_broken(file.path, std::move(r.error()));
  }
  return {};
}

Result<void> Loader::read_head(ParsedFile& file) {
  if (!file.root.is_map())
    return make_error_at(
        m_file, file.root.line,
        std::string("a definition must be a mapping, not ") + describe(file.root.type));
  auto kind = req_string(file.root, "kind", file.root.line);
  if (!kind) return std::unexpected(kind.error());
  if (*kind == "chunk")
    file.kind = Kind::chunk;
  else if (*kind == "stratum")
    file.kind = Kind::stratum;
  else if (*kind == "system")
    file.kind = Kind::system;
  else if (*kind == "cluster")
    file.kind = Kind::cluster;
  else
    return make_error_at(m_file, file.root.find("kind")->line,
                         "unknown kind \"" + *kind + "\"" + did_you_mean(*kind, k_kinds), "kind");
  auto name = req_string(file.root, "name", file.root.line);
  if (!name) return std::unexpected(name.error());
  file.name = std::move(*name);
  return check_name_at(file.name, line_of(file.root, "name", file.root.line), "name",
                       std::string(to_string(file.kind)) + " name");
}

}  // namespace

const Error* Definitions::problem(const std::string& path) const {
  auto it = broken.find(path);
  return it == broken.end() ? nullptr : &it->second;
}

Result<Definitions> load_definitions(const std::string& root, const LoadOptions& options) {
  Definitions defs;
  defs.root = root.empty() ? "." : root;
  while (defs.root.size() > 1 && defs.root.back() == '/') defs.root.pop_back();
  Loader loader(defs, options);
  if (auto r = loader.load(); !r) return std::unexpected(r.error());
  return defs;
}

}  // namespace gang
