#include "gang/project.hpp"

#include <filesystem>

#include "definitions/arch.hpp"
#include "gang/base_identity.hpp"
#include "util/fs.hpp"

namespace gang {

std::string find_definitions_root(std::string& target, const std::string& definitions) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (target.find('/') != std::string::npos || target.ends_with(".morph")) {
    fs::path candidate(target);
    if (!definitions.empty() && candidate.is_relative() && !fs::exists(candidate, ec))
      candidate = fs::path(definitions) / candidate;
    if (fs::is_regular_file(candidate, ec)) {
      fs::path file = fs::absolute(candidate, ec).lexically_normal();
      for (fs::path dir = file.parent_path(); !dir.empty(); dir = dir.parent_path()) {
        if (fs::exists(dir / "VERSION", ec)) {
          target = file.lexically_relative(dir).generic_string();
          return dir.string();
        }
        if (dir == dir.root_path()) break;
      }
    }
  }
  std::string root = definitions.empty() ? "." : definitions;
  return fs::absolute(root, ec).lexically_normal().string();
}

Result<Project> load_project(const ProjectOptions& options,
                             const std::function<void(const Error&)>& warn) {
  Project project;
  project.target = options.target;
  project.root = find_definitions_root(project.target, options.definitions);
  bool looks_like_path =
      project.target.find('/') != std::string::npos || project.target.ends_with(".morph");
  if (looks_like_path && !path_exists(project.root + "/VERSION") &&
      !path_exists(project.root + "/" + project.target))
    return make_error(options.target + ": no such definition file" +
                      (options.definitions.empty() ? "" : " (under " + options.definitions + ")"));
  auto config = load_config(project.root);
  if (!config) return std::unexpected(config.error());
  project.config = std::move(*config);
  if (!options.cache_dir.empty())
    project.config.cache_dir = std::filesystem::absolute(options.cache_dir).string();
  if (!options.arch.empty()) project.config.arch = options.arch;
  if (project.config.arch.empty()) project.config.arch = host_arch();
  if (options.strict) project.config.strict = true;
  if (!options.base.empty()) project.config.base = options.base;

  LoadOptions load_options;
  load_options.unknown_fields = project.config.strict ? Strictness::strict : Strictness::warn;
  auto defs = load_definitions(project.root, load_options);
  if (!defs) return std::unexpected(defs.error());
  project.defs = std::make_unique<Definitions>(std::move(*defs));
  auto graph = resolve_graph(*project.defs, project.target, project.config.arch);
  // Warnings after resolving, so that a broken file the target needs is
  // reported once, as the error, not also as a warning.
  if (warn) {
    std::string fatal = graph ? std::string() : graph.error().to_string();
    for (const auto& w : project.defs->warnings)
      if (w.to_string() != fatal) warn(w);
  }
  if (!graph) return std::unexpected(graph.error());
  project.graph = std::move(*graph);
  RealHostProbe probe;
  auto base = identify_base(project.config.base, project.config.cache_dir, probe);
  if (!base) return std::unexpected(base.error());
  project.graph.base = std::move(*base);
  return project;
}

Result<std::optional<ResolvedSource>> GitSourceResolver::resolve(const std::string& repo,
                                                                 const std::string& ref) {
  auto to_source = [](const Resolution& r) {
    return ResolvedSource{r.commit, r.tree, r.commit_time};
  };
  if (m_mode == Mode::local_only) {
    auto found = m_git.resolve_local_only(repo, ref);
    if (!found) return std::unexpected(found.error());
    if (!*found) return std::optional<ResolvedSource>{};
    return std::optional<ResolvedSource>{to_source(**found)};
  }
  bool is_sha = ref.size() == 40 && ref.find_first_not_of("0123456789abcdef") == std::string::npos;
  if (m_mode == Mode::refresh && !is_sha && m_refreshed.insert(repo).second) {
    auto local = m_git.resolve_local_only(repo, ref);
    if (local && *local) {  // present: bring the branch or tag up to date
      if (auto updated = m_git.update(repo); !updated) return std::unexpected(updated.error());
    }
  }
  auto found = m_git.resolve(repo, ref);
  if (!found) return std::unexpected(found.error());
  return std::optional<ResolvedSource>{to_source(*found)};
}

Result<GitMirrors> open_git_mirrors(const Project& project) {
  return GitMirrors::open(project.config.cache_dir, project.config.aliases,
                          project.config.offline ? Offline::yes : Offline::no, project.root);
}

}  // namespace gang
