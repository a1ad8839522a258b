#include "definitions/build_graph.hpp"

#include <algorithm>
#include <filesystem>
#include <map>
#include <unordered_map>

#include "definitions/suggest.hpp"

namespace gang {

BuildGraph::Totals BuildGraph::totals() const {
  Totals t;
  for (const auto& c : components) {
    switch (c.kind) {
      case Kind::chunk:
        ++t.chunks;
        break;
      case Kind::stratum:
        ++t.strata;
        break;
      case Kind::system:
        ++t.systems;
        break;
      case Kind::cluster:
        ++t.clusters;
        break;
    }
  }
  return t;
}

std::vector<std::size_t> staging_set(const BuildGraph& graph, std::size_t component) {
  const auto& comps = graph.components;
  std::vector<std::size_t> out;
  if (component >= comps.size() || comps[component].kind != Kind::chunk) return out;
  std::vector<char> seen(comps.size(), 0);
  std::vector<std::size_t> work{component};
  seen[component] = 1;
  while (!work.empty()) {
    std::size_t i = work.back();
    work.pop_back();
    const Component& c = comps[i];
    for (std::size_t dep : c.depends) {
      if (seen[dep] != 0) continue;
      const Component& d = comps[dep];
      if (c.kind == Kind::chunk && d.kind == Kind::chunk) {
        // Named through chunk build-depends: staged whatever its mode.
        seen[dep] = 1;
        out.push_back(dep);
        work.push_back(dep);
      } else if (d.kind == Kind::stratum) {
        seen[dep] = 1;
        for (std::size_t member : d.chunks) {
          if (seen[member] != 0 || comps[member].build_mode == BuildMode::bootstrap) continue;
          seen[member] = 1;
          out.push_back(member);
        }
        work.push_back(dep);  // its build-depends strata, transitively
      }
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

namespace {

std::string relative_target(const Definitions& defs, std::string target) {
  namespace fs = std::filesystem;
  while (target.starts_with("./")) target.erase(0, 2);
  std::error_code ec;
  fs::path abs_root = fs::absolute(defs.root, ec).lexically_normal();
  fs::path t(target);
  if (t.is_absolute()) {
    fs::path rel = t.lexically_normal().lexically_relative(abs_root);
    if (!rel.empty() && !rel.string().starts_with("..")) return rel.generic_string();
    return target;
  }
  // A path that starts with the root as given ("defs/systems/x.morph").
  std::string prefix = defs.root + "/";
  if (defs.root != "." && target.starts_with(prefix)) return target.substr(prefix.size());
  return fs::path(target).lexically_normal().generic_string();
}

std::string describe_candidates(const Definitions& defs, const std::vector<TargetRef>& refs) {
  std::string out;
  for (const auto& r : refs) {
    out += "\n  ";
    switch (r.kind) {
      case Kind::chunk: {
        const StratumDef& s = defs.strata[r.index];
        const ChunkDef& c = s.chunks[r.chunk_index];
        out += "chunk " + s.name + "/" + c.name + " (" + s.path + ":" +
               std::to_string(c.where.line) + ")";
        break;
      }
      case Kind::stratum:
        out += "stratum " + defs.strata[r.index].path;
        break;
      case Kind::system:
        out += "system " + defs.systems[r.index].path;
        break;
      case Kind::cluster:
        out += "cluster " + defs.clusters[r.index].path;
        break;
    }
  }
  return out;
}

// "STRATUM/NAME": a chunk of the stratum named STRATUM, or of the stratum
// file STRATUM.morph (ybd's "strata/xfce/libwnck").
std::optional<TargetRef> find_stratum_chunk(const Definitions& defs, const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos || path.ends_with(".morph")) return std::nullopt;
  std::string stratum = path.substr(0, slash);
  std::string name = path.substr(slash + 1);
  std::optional<std::size_t> index;
  if (auto it = defs.by_path.find(stratum + ".morph");
      it != defs.by_path.end() && it->second.kind == Kind::stratum) {
    index = it->second.index;
  } else {
    for (std::size_t i = 0; i < defs.strata.size(); ++i) {
      if (defs.strata[i].name != stratum) continue;
      if (index) return std::nullopt;  // two strata of that name: give the path
      index = i;
    }
  }
  if (!index) return std::nullopt;
  const auto& chunks = defs.strata[*index].chunks;
  for (std::size_t c = 0; c < chunks.size(); ++c)
    if (chunks[c].name == name || chunks[c].artifact_name == name)
      return TargetRef{Kind::chunk, *index, c};
  return std::nullopt;
}

class GraphBuilder {
 public:
  GraphBuilder(const Definitions& defs, BuildGraph& graph) : m_defs(defs), m_graph(graph) {}

  Result<std::size_t> add(const TargetRef& ref) {
    switch (ref.kind) {
      case Kind::chunk:
        return add_chunk(ref.index, ref.chunk_index);
      case Kind::stratum:
        return add_stratum(ref.index);
      case Kind::system: {
        const SystemDef& s = m_defs.systems[ref.index];
        if (s.arch != m_graph.arch)
          return make_error_at(
              s.path, s.where.line,
              "system \"" + s.name + "\" is for arch " + s.arch + ", not " + m_graph.arch, "arch");
        return add_system(ref.index);
      }
      case Kind::cluster:
        return add_cluster(ref.index);
    }
    return make_error("unknown kind");
  }

 private:
  std::size_t push(Component c) {
    m_graph.components.push_back(std::move(c));
    return m_graph.components.size() - 1;
  }

  const std::unordered_map<std::string_view, std::size_t>& chunk_names(std::size_t stratum) {
    auto [it, fresh] = m_chunk_names.try_emplace(stratum);
    if (fresh) {
      const auto& chunks = m_defs.strata[stratum].chunks;
      it->second.reserve(chunks.size());
      for (std::size_t i = 0; i < chunks.size(); ++i) it->second.emplace(chunks[i].name, i);
    }
    return it->second;
  }

  Result<std::size_t> add_chunk(std::size_t stratum, std::size_t chunk) {
    std::uint64_t memo_key = (static_cast<std::uint64_t>(stratum) << 32) | chunk;
    if (auto it = m_chunks.find(memo_key); it != m_chunks.end()) return it->second;
    const StratumDef& s = m_defs.strata[stratum];
    if (const Error* problem = m_defs.problem(s.path)) return std::unexpected(*problem);
    const ChunkDef& def = s.chunks[chunk];
    Component c;
    for (std::size_t bd : s.build_depends) {
      auto dep = add_stratum(bd);
      if (!dep) return dep;
      c.depends.push_back(*dep);
    }
    const auto& names = chunk_names(stratum);
    for (const auto& name : def.build_depends) {
      auto dep = add_chunk(stratum, names.at(name));  // checked by the loader
      if (!dep) return dep;
      c.depends.push_back(*dep);
    }
    c.name = def.artifact_name;
    c.kind = Kind::chunk;
    c.stratum = s.name;
    c.path = def.morph.empty() ? s.path : def.morph;
    const OptionalSteps& system_steps = m_defs.build_systems.at(def.build_system);
    for (std::size_t i = 0; i < k_step_count; ++i) {
      if (def.steps[i])
        c.steps[i] = *def.steps[i];
      else if (system_steps[i])
        c.steps[i] = *system_steps[i];
    }
    c.build_mode = def.build_mode;
    c.prefix = def.prefix;
    c.repo = def.repo;
    c.ref = def.ref;
    c.unpetrify_ref = def.unpetrify_ref;
    c.submodules = def.submodules;
    c.max_jobs = def.max_jobs;
    c.chunk_def = &def;
    std::size_t index = push(std::move(c));
    m_chunks.emplace(memo_key, index);
    return index;
  }

  Result<std::size_t> add_stratum(std::size_t stratum) {
    if (auto it = m_strata.find(stratum); it != m_strata.end()) return it->second;
    const StratumDef& s = m_defs.strata[stratum];
    if (const Error* problem = m_defs.problem(s.path)) return std::unexpected(*problem);
    Component c;
    for (std::size_t bd : s.build_depends) {
      auto dep = add_stratum(bd);
      if (!dep) return dep;
      c.depends.push_back(*dep);
    }
    for (std::size_t i = 0; i < s.chunks.size(); ++i) {
      auto dep = add_chunk(stratum, i);
      if (!dep) return dep;
      c.depends.push_back(*dep);
      c.chunks.push_back(*dep);
    }
    c.name = s.name;
    c.kind = Kind::stratum;
    c.path = s.path;
    c.stratum_def = &s;
    std::size_t index = push(std::move(c));
    m_strata.emplace(stratum, index);
    return index;
  }

  Result<std::size_t> add_system(std::size_t system) {
    if (auto it = m_systems.find(system); it != m_systems.end()) return it->second;
    const SystemDef& s = m_defs.systems[system];
    if (const Error* problem = m_defs.problem(s.path)) return std::unexpected(*problem);
    Component c;
    for (const auto& member : s.strata) {
      auto dep = add_stratum(member.stratum);
      if (!dep) return dep;
      c.depends.push_back(*dep);
      c.strata.push_back(SystemMember{*dep, member.artifacts});
    }
    c.name = s.name;
    c.kind = Kind::system;
    c.path = s.path;
    c.system_def = &s;
    std::size_t index = push(std::move(c));
    m_systems.emplace(system, index);
    return index;
  }

  Result<void> add_cluster_systems(const std::vector<ClusterSystem>& systems, Component& c) {
    for (const auto& cs : systems) {
      const SystemDef& s = m_defs.systems[cs.system];
      // A broken system whose arch is unknown may be one this build needs.
      if (s.arch == m_graph.arch || (s.arch.empty() && m_defs.problem(s.path) != nullptr)) {
        auto dep = add_system(cs.system);
        if (!dep) return std::unexpected(dep.error());
        if (std::find(c.depends.begin(), c.depends.end(), *dep) == c.depends.end())
          c.depends.push_back(*dep);
      }
      if (auto r = add_cluster_systems(cs.subsystems, c); !r) return r;
    }
    return {};
  }

  Result<std::size_t> add_cluster(std::size_t cluster) {
    const ClusterDef& def = m_defs.clusters[cluster];
    if (const Error* problem = m_defs.problem(def.path)) return std::unexpected(*problem);
    Component c;
    if (auto r = add_cluster_systems(def.systems, c); !r) return std::unexpected(r.error());
    if (c.depends.empty())
      return make_error_at(def.path, def.where.line,
                           "cluster \"" + def.name + "\" has no systems for arch " + m_graph.arch);
    c.name = def.name;
    c.kind = Kind::cluster;
    c.path = def.path;
    c.cluster_def = &def;
    return push(std::move(c));
  }

  const Definitions& m_defs;
  BuildGraph& m_graph;
  std::unordered_map<std::uint64_t, std::size_t> m_chunks;
  std::unordered_map<std::size_t, std::size_t> m_strata;
  std::unordered_map<std::size_t, std::size_t> m_systems;
  std::unordered_map<std::size_t, std::unordered_map<std::string_view, std::size_t>> m_chunk_names;
};

}  // namespace

Result<TargetRef> find_target(const Definitions& defs, const std::string& target) {
  if (target.empty()) return make_error("no target given");
  bool is_path = target.find('/') != std::string::npos || target.ends_with(".morph");
  if (is_path) {
    std::string path = relative_target(defs, target);
    auto it = defs.by_path.find(path);
    if (it == defs.by_path.end()) {
      if (const Error* problem = defs.problem(path)) return std::unexpected(*problem);
      if (auto chunk = find_stratum_chunk(defs, path)) return *chunk;
      return make_error("no definition file \"" + path + "\" in " + defs.root);
    }
    if (const Error* problem = defs.problem(path)) return std::unexpected(*problem);
    const auto& ref = it->second;
    if (ref.kind != Kind::chunk) return TargetRef{ref.kind, ref.index, 0};
    std::vector<TargetRef> users;
    for (std::size_t s = 0; s < defs.strata.size(); ++s)
      for (std::size_t c = 0; c < defs.strata[s].chunks.size(); ++c)
        if (defs.strata[s].chunks[c].morph == path) users.push_back({Kind::chunk, s, c});
    if (users.empty()) return make_error("chunk file \"" + path + "\" is not used by any stratum");
    if (users.size() > 1)
      return make_error("chunk file \"" + path + "\" is used by several strata; name one of:" +
                        describe_candidates(defs, users));
    return users.front();
  }
  std::vector<TargetRef> found;
  for (std::size_t i = 0; i < defs.strata.size(); ++i) {
    if (defs.strata[i].name == target) found.push_back({Kind::stratum, i, 0});
    for (std::size_t c = 0; c < defs.strata[i].chunks.size(); ++c)
      if (defs.strata[i].chunks[c].name == target ||
          defs.strata[i].chunks[c].artifact_name == target)
        found.push_back({Kind::chunk, i, c});
  }
  for (std::size_t i = 0; i < defs.systems.size(); ++i)
    if (defs.systems[i].name == target) found.push_back({Kind::system, i, 0});
  for (std::size_t i = 0; i < defs.clusters.size(); ++i)
    if (defs.clusters[i].name == target) found.push_back({Kind::cluster, i, 0});
  if (found.size() == 1) return found.front();
  if (found.size() > 1)
    return make_error("\"" + target +
                      "\" names several definitions; give STRATUM/NAME or a path instead:" +
                      describe_candidates(defs, found));
  std::vector<std::string_view> names;
  for (const auto& s : defs.strata) {
    names.push_back(s.name);
    for (const auto& c : s.chunks) names.push_back(c.name);
  }
  for (const auto& s : defs.systems) names.push_back(s.name);
  for (const auto& c : defs.clusters) names.push_back(c.name);
  return make_error("no definition named \"" + target + "\"" + did_you_mean(target, names));
}

Result<BuildGraph> resolve_graph(const Definitions& defs, const std::string& target,
                                 const std::string& arch) {
  auto ref = find_target(defs, target);
  if (!ref) return std::unexpected(ref.error());
  BuildGraph graph;
  graph.arch = arch;
  graph.split_rules = &defs.split_rules;
  switch (ref->kind) {
    case Kind::chunk: {
      const StratumDef& s = defs.strata[ref->index];
      const ChunkDef& c = s.chunks[ref->chunk_index];
      graph.target = c.morph.empty() ? s.path + "#" + c.name : c.morph;
      break;
    }
    case Kind::stratum:
      graph.target = defs.strata[ref->index].path;
      break;
    case Kind::system:
      graph.target = defs.systems[ref->index].path;
      break;
    case Kind::cluster:
      graph.target = defs.clusters[ref->index].path;
      break;
  }
  GraphBuilder builder(defs, graph);
  auto index = builder.add(*ref);
  if (!index) return std::unexpected(index.error());
  graph.target_index = *index;
  // Ids name components in logs, events and `gang shell`. Chunks of one name
  // in two strata are told apart as STRATUM/NAME; two strata, systems or
  // clusters of one name in one build are an error.
  std::unordered_map<std::string_view, std::size_t> chunk_names;
  for (const Component& c : graph.components)
    if (c.kind == Kind::chunk) ++chunk_names[c.name];
  std::map<std::pair<Kind, std::string_view>, const Component*> seen;
  for (Component& c : graph.components) {
    c.id = c.kind == Kind::chunk && chunk_names[c.name] > 1 ? c.stratum + "/" + c.name : c.name;
    if (c.kind == Kind::chunk) continue;
    auto [it, fresh] = seen.emplace(std::pair{c.kind, std::string_view(c.name)}, &c);
    if (fresh) continue;
    auto where = [](const Component& x) {
      if (x.chunk_def) return x.chunk_def->where;
      if (x.stratum_def) return x.stratum_def->where;
      if (x.system_def) return x.system_def->where;
      return x.cluster_def->where;
    };
    Location here = where(c);
    Location there = where(*it->second);
    return make_error_at(here.file, here.line,
                         "duplicate " + std::string(to_string(c.kind)) + " name \"" + c.name +
                             "\" in this build (also " + there.file + ":" +
                             std::to_string(there.line) + ")",
                         "name");
  }
  return graph;
}

}  // namespace gang
