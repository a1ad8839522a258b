#include "definitions/cache_key.hpp"

#include <algorithm>
#include <map>
#include <utility>

#include "util/sha256.hpp"

namespace gang {

namespace {

// Writes the canonical serialisation described in cache_key.md: one item per
// line, "tag LEN:bytes" for strings and "tag N" for counts.
class Canon {
 public:
  void text(std::string_view tag, std::string_view value) {
    m_out.append(tag);
    m_out += ' ';
    m_out += std::to_string(value.size());
    m_out += ':';
    m_out.append(value);
    m_out += '\n';
  }
  void number(std::string_view tag, long long value) {
    m_out.append(tag);
    m_out += ' ';
    m_out += std::to_string(value);
    m_out += '\n';
  }
  void strings(std::string_view tag, const std::vector<std::string>& values) {
    number(tag, static_cast<long long>(values.size()));
    for (const auto& v : values) text("-", v);
  }
  void string_map(std::string_view tag, const std::map<std::string, std::string>& values) {
    number(tag, static_cast<long long>(values.size()));
    for (const auto& [k, v] : values) {
      text("key", k);
      text("value", v);
    }
  }
  void split_rules(std::string_view tag, const std::vector<SplitRule>& rules) {
    number(tag, static_cast<long long>(rules.size()));
    for (const auto& rule : rules) {
      text("artifact", rule.artifact);
      strings("include", rule.include);
    }
  }
  std::string take() { return std::move(m_out); }

 private:
  std::string m_out;
};

}  // namespace

std::optional<std::string> cache_key_input(const BuildGraph& graph, std::size_t index) {
  const Component& c = graph.components.at(index);
  Canon canon;
  canon.text("gang-cache-key", "1");
  canon.number("artifact-version", k_artifact_version);
  canon.text("kind", to_string(c.kind));
  canon.text("name", c.name);
  canon.text("arch", graph.arch);
  canon.text("base", graph.base.kind);
  canon.text("base-identity", graph.base.identity);

  // Dependencies: sorted keys, so list order in the YAML does not matter.
  std::vector<std::string> dep_keys;
  dep_keys.reserve(c.depends.size());
  for (std::size_t dep : c.depends) {
    const auto& key = graph.components[dep].cache_key;
    if (!key) return std::nullopt;
    dep_keys.push_back(*key);
  }
  std::sort(dep_keys.begin(), dep_keys.end());
  dep_keys.erase(std::unique(dep_keys.begin(), dep_keys.end()), dep_keys.end());

  switch (c.kind) {
    case Kind::chunk: {
      if (!c.repo.empty() && !c.source) return std::nullopt;
      canon.text("stratum", c.stratum);
      canon.text("tree", c.repo.empty() ? std::string_view("none") : c.source->tree);
      canon.string_map("submodules", c.submodules);
      canon.text("build-mode", to_string(c.build_mode));
      canon.text("prefix", c.prefix);
      for (std::size_t i = 0; i < k_step_count; ++i) canon.strings(k_step_names[i], c.steps[i]);
      canon.strings("depends", dep_keys);
      if (c.chunk_def != nullptr) {
        canon.split_rules("products", c.chunk_def->products);
        if (graph.split_rules != nullptr)
          canon.split_rules("default-split-rules", graph.split_rules->chunk);
        canon.number("system-integration",
                     static_cast<long long>(c.chunk_def->system_integration.size()));
        for (const auto& [product, steps] : c.chunk_def->system_integration) {
          canon.text("product", product);
          canon.number("steps", static_cast<long long>(steps.size()));
          for (const auto& [step, commands] : steps) {
            canon.text("step", step);
            canon.strings("commands", commands);
          }
        }
      }
      break;
    }
    case Kind::stratum: {
      // Members sorted by key, with their artifact mappings: the order of the
      // chunks list does not matter. The strata this one build-depends on
      // reach the key through every member's key.
      std::vector<const Component*> members;
      for (std::size_t member : c.chunks) members.push_back(&graph.components[member]);
      std::sort(members.begin(), members.end(), [](const Component* a, const Component* b) {
        return *a->cache_key < *b->cache_key;
      });
      canon.number("chunks", static_cast<long long>(members.size()));
      static const std::map<std::string, std::string> k_no_artifacts;
      for (const Component* m : members) {
        canon.text("chunk", *m->cache_key);
        canon.string_map("artifacts",
                         m->chunk_def != nullptr ? m->chunk_def->artifacts : k_no_artifacts);
      }
      if (c.stratum_def != nullptr) canon.split_rules("products", c.stratum_def->products);
      if (graph.split_rules != nullptr)
        canon.split_rules("default-split-rules", graph.split_rules->stratum);
      break;
    }
    case Kind::system: {
      canon.number("strata", static_cast<long long>(c.strata.size()));
      for (const auto& member : c.strata) {
        canon.text("stratum", *graph.components[member.component].cache_key);
        if (member.artifacts)
          canon.strings("artifacts", *member.artifacts);
        else
          canon.text("artifacts", "all");
      }
      if (c.system_def != nullptr)
        canon.strings("configuration-extensions", c.system_def->configuration_extensions);
      break;
    }
    case Kind::cluster: {
      // The systems built for this arch, plus every deployment's settings.
      canon.strings("depends", dep_keys);
      if (c.cluster_def != nullptr) {
        std::vector<const ClusterSystem*> work;
        for (const auto& cs : c.cluster_def->systems) work.push_back(&cs);
        canon.number("deployments", static_cast<long long>(work.size()));
        while (!work.empty()) {
          const ClusterSystem* cs = work.back();
          work.pop_back();
          canon.string_map("deploy-defaults", cs->deploy_defaults);
          canon.number("deploy", static_cast<long long>(cs->deploy.size()));
          for (const auto& d : cs->deploy) {
            canon.text("label", d.label);
            canon.string_map("settings", d.settings);
          }
          canon.number("subsystems", static_cast<long long>(cs->subsystems.size()));
          for (const auto& sub : cs->subsystems) work.push_back(&sub);
        }
      }
      break;
    }
  }
  return canon.take();
}

Result<void> compute_keys(BuildGraph& graph, SourceResolver& resolver, SourceErrors errors) {
  std::map<std::pair<std::string, std::string>, Result<std::optional<ResolvedSource>>> resolved;
  for (std::size_t i = 0; i < graph.components.size(); ++i) {
    Component& c = graph.components[i];
    c.cache_key.reset();
    c.source.reset();
    c.pending_reason.clear();
    if (c.kind == Kind::chunk && !c.repo.empty()) {
      auto key = std::pair{c.repo, c.ref};
      auto it = resolved.find(key);
      if (it == resolved.end()) it = resolved.emplace(key, resolver.resolve(c.repo, c.ref)).first;
      const auto& source = it->second;
      if (!source) {
        Error e = source.error();
        if (e.file.empty() && c.chunk_def != nullptr) {
          e.file = c.chunk_def->where.file;
          e.line = c.chunk_def->where.line;
        }
        e.message = "chunk \"" + c.id + "\": cannot resolve " + c.repo + " " + c.ref + ": " +
                    e.message;
        if (errors == SourceErrors::fail) return std::unexpected(std::move(e));
        c.pending_reason = e.to_string();
        continue;
      }
      if (!*source) {
        c.pending_reason = "source " + c.repo + " " + c.ref + " not fetched yet";
        continue;
      }
      c.source = **source;
    }
    // Name the component whose source holds everything up, not the stratum
    // in between.
    for (std::size_t dep : c.depends) {
      const Component& d = graph.components[dep];
      if (d.cache_key) continue;
      c.pending_reason = d.pending_reason.starts_with("waits for ")
                             ? d.pending_reason
                             : "waits for " + std::string(to_string(d.kind)) + " " + d.id;
      break;
    }
    if (!c.pending_reason.empty()) continue;
    auto input = cache_key_input(graph, i);
    if (input) c.cache_key = c.name + "." + sha256_hex(*input);
  }
  return {};
}

}  // namespace gang
