// gang deploy CLUSTER [LABEL...] [-p LABEL.KEY=VALUE ...] [--force] [build options]:
// builds what is missing with the gang (exactly as `gang build CLUSTER`),
// then deploys the cluster's systems of the arch (or only the deployments
// labelled) with the definitions' extensions (deploy/). `gang build CLUSTER`
// only builds.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <set>

#include "cache/artifact_cache.hpp"
#include "definitions/cache_key.hpp"
#include "deploy/deployer.hpp"
#include "gang/commands.hpp"
#include "gang/event.hpp"
#include "gang/gang_view.hpp"
#include "gang/project.hpp"
#include "util/fs.hpp"
#include "util/path_name.hpp"

namespace gang {

namespace {

// gang build's options that take a value (to tell labels from values).
const std::set<std::string> k_valued = {"-a", "--arch", "-i", "--instances", "-j", "--max-jobs",
                                        "--cache", "--definitions", "--seed", "--log", "--base",
                                        "--report", "--cache-from", "--remote-cache", "--redis"};

int deploy_usage() {
  std::fputs("usage: gang deploy CLUSTER [NAME...] [-p LABEL.KEY=VALUE ...] [--force] "
             "[gang build options]\n"
             "  builds what is missing (as gang build CLUSTER), then deploys every system of the\n"
             "  arch, or only the deployments NAME... (labels or system names); -p overrides a\n"
             "  deployment's parameter; --force replaces an existing location\n",
             stderr);
  return 2;
}

}  // namespace

int cmd_deploy(const Args& args) {
  Args build_args;
  std::vector<std::string> labels;
  std::vector<ParameterOverride> overrides;
  std::string cluster, arch, cache_dir, definitions, base;
  bool force = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") return deploy_usage();
    if (a == "--force") {
      force = true;
    } else if (a == "-p" || a == "--param") {
      if (i + 1 >= args.size()) return deploy_usage();
      auto o = parse_override(args[++i]);
      if (!o) {
        std::fprintf(stderr, "gang: error: %s\n", o.error().to_string().c_str());
        return 2;
      }
      overrides.push_back(*o);
    } else if (k_valued.contains(a)) {
      if (i + 1 >= args.size()) return deploy_usage();
      if (a == "-a" || a == "--arch") arch = args[i + 1];
      if (a == "--cache") cache_dir = args[i + 1];
      if (a == "--definitions") definitions = args[i + 1];
      if (a == "--base") base = args[i + 1];  // in the keys: the same as the build's
      build_args.push_back(a);
      build_args.push_back(args[++i]);
    } else if (a.starts_with("-")) {
      build_args.push_back(a);
    } else if (cluster.empty()) {
      cluster = a;
    } else {
      labels.push_back(a);
    }
  }
  if (cluster.empty()) return deploy_usage();
  build_args.insert(build_args.begin(), cluster);

  // Check the deployments before building: a typo in a label or -p fails at once.
  ProjectOptions options;
  options.target = cluster;
  options.arch = arch;
  options.cache_dir = cache_dir;
  options.definitions = definitions;
  options.base = base;
  auto project = load_project(options, nullptr);
  if (!project) {
    std::fprintf(stderr, "gang: error: %s\n", project.error().to_string().c_str());
    return 1;
  }
  const Component& target = project->graph.components[project->graph.target_index];
  if (target.cluster_def == nullptr) {
    std::fprintf(stderr, "gang: error: %s is a %s, not a cluster: gang deploy deploys clusters\n",
                 cluster.c_str(), std::string(to_string(target.kind)).c_str());
    return 2;
  }
  auto plan = plan_deployments(*project->defs, *target.cluster_def, project->config.arch, labels,
                               overrides);
  if (!plan) {
    std::fprintf(stderr, "gang: error: %s\n", plan.error().to_string().c_str());
    return 1;
  }

  int built = cmd_build(build_args);
  if (built != 0) return built;

  // The keys as the build computed them (the mirrors are fresh now).
  auto git = open_git_mirrors(*project);
  if (!git) {
    std::fprintf(stderr, "gang: error: %s\n", git.error().to_string().c_str());
    return 1;
  }
  GitSourceResolver resolver(*git, GitSourceResolver::Mode::fetch);
  if (auto keyed = compute_keys(project->graph, resolver); !keyed) {
    std::fprintf(stderr, "gang: error: %s\n", keyed.error().to_string().c_str());
    return 1;
  }
  auto cache = ArtifactCache::open(project->config.cache_dir);
  if (!cache) {
    std::fprintf(stderr, "gang: error: %s\n", cache.error().to_string().c_str());
    return 1;
  }
  const Definitions& defs = *project->defs;
  const std::int64_t start = now_ms();
  if (auto made = make_dirs(cache->logs_dir()); !made) {
    std::fprintf(stderr, "gang: error: %s\n", made.error().to_string().c_str());
    return 1;
  }
  int failures = 0;
  for (const DeploymentStep& step : *plan) {
    std::string log_path = cache->logs_dir() + "/deploy-" + name_to_leaf(step.label) + ".log";
    int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    DeployContext ctx;
    ctx.definitions_root = project->root;
    ctx.scratch_parent = cache->tmp_dir();
    ctx.force = force;
    ctx.output_fd = log_fd;
    ctx.log = [&](const std::string& line) {
      std::printf("%s [%s] %s\n", format_elapsed(now_ms() - start).c_str(), step.label.c_str(),
                  line.c_str());
      std::fflush(stdout);
    };
    ctx.stage_system = [&](std::size_t system, const std::string& dest) -> Result<void> {
      for (const Component& c : project->graph.components) {
        if (c.system_def != &defs.systems[system]) continue;
        if (!c.cache_key) return make_error(c.name + " has no cache key");
        return cache->stage(*c.cache_key, dest, StageMode::copy);
      }
      return make_error(defs.systems[system].name + " was not built for this cluster");
    };
    (void)make_dirs(ctx.scratch_parent);
    auto done = deploy(defs, step, ctx);
    if (log_fd >= 0) ::close(log_fd);
    if (!done) {
      ++failures;
      std::fprintf(stderr, "gang: error: deployment %s failed: %s\n  log: %s\n", step.label.c_str(),
                   done.error().to_string().c_str(), log_path.c_str());
    }
  }
  std::printf("%s deployed %zu of %zu\n", format_elapsed(now_ms() - start).c_str(),
              plan->size() - static_cast<std::size_t>(failures), plan->size());
  return failures == 0 ? 0 : 1;
}

}  // namespace gang
