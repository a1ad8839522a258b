// gang build: the frontend. Parses the flags, then starts the gang of
// workers (each `gang worker` with the same flags) and renders their events.
#include <cxxopts.hpp>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>

#include "gang/commands.hpp"
#include "definitions/cache_key.hpp"
#include "gang/cli.hpp"
#include "gang/config.hpp"
#include "gang/event.hpp"
#include "gang/frontend.hpp"
#include "gang/gang_view.hpp"
#include "gang/mirror_progress.hpp"
#include "gang/project.hpp"
#include "gang/status_printer.hpp"

namespace gang {

int cmd_build(const Args& args) {
  // The run starts now: mirroring before the workers start counts in the
  // summary's total elapsed.
  const std::int64_t start_ms = now_ms();
  cxxopts::Options options("gang build", "Build TARGET with a gang of racing worker instances.");
  options.positional_help("TARGET");
  options.add_options()
      ("target", "definition path or bare name", cxxopts::value<std::string>())
      ("a,arch", "architecture (default: the host's)", cxxopts::value<std::string>())
      ("i,instances", "worker instances, or 'auto' (1 + cores/10)", cxxopts::value<std::string>())
      ("j,max-jobs", "parallelism inside each build (MAKEFLAGS=-jN)", cxxopts::value<int>())
      ("cache", "artifact cache directory", cxxopts::value<std::string>())
      ("definitions", "definitions root (default: found from TARGET)", cxxopts::value<std::string>())
      ("seed", "base random seed for the workers' task orders", cxxopts::value<std::uint64_t>())
      ("log", "also write every event line to FILE", cxxopts::value<std::string>())
      ("base", "sandbox base: host, none, or a sysroot directory", cxxopts::value<std::string>())
      ("offline", "never fetch sources")
      ("retry-failed", "rebuild components recorded as failed")
      ("verify", "re-hash every cached file before staging it into a build")
      ("strict", "unknown definition fields are errors")
      ("h,help", "print this help");
  options.parse_positional({"target"});
  auto result = parse_options(options, args);
  if (!result) return result.error();
  const cxxopts::ParseResult& parsed = *result;
  if (!parsed.count("target")) {
    std::fputs("gang: error: gang build needs a TARGET\n", stderr);
    return 2;
  }
  std::string target = parsed["target"].as<std::string>();

  // Load once here, to report definition errors and warnings once, before
  // starting any worker; the workers load the same files themselves.
  ProjectOptions project_options;
  project_options.target = target;
  if (parsed.count("definitions")) project_options.definitions = parsed["definitions"].as<std::string>();
  if (parsed.count("arch")) project_options.arch = parsed["arch"].as<std::string>();
  if (parsed.count("cache")) project_options.cache_dir = parsed["cache"].as<std::string>();
  project_options.strict = parsed.count("strict") > 0;
  if (parsed.count("base")) project_options.base = parsed["base"].as<std::string>();  // in the keys
  auto project = load_project(project_options, [](const Error& w) {
    std::fprintf(stderr, "gang: warning: %s\n", w.to_string().c_str());
  });
  if (!project) {
    std::fprintf(stderr, "gang: error: %s\n", project.error().to_string().c_str());
    return 1;
  }
  if (parsed.count("offline")) project->config.offline = true;
  // Bring branch and tag refs up to date once, here, so that every worker
  // resolves the same commits from the mirrors without fetching again. Each
  // clone or fetch is logged (and shown on the status line while it runs)
  // in the frontend's line shape, and to --log.
  {
    auto git = open_git_mirrors(*project);
    if (!git) {
      std::fprintf(stderr, "gang: error: %s\n", git.error().to_string().c_str());
      return 1;
    }
    GangView view(start_ms, static_cast<int>(project->graph.components.size()));
    StatusPrinter printer(stdout, StatusPrinter::is_smart_terminal(stdout));
    std::ofstream log;
    if (parsed.count("log")) log.open(parsed["log"].as<std::string>(), std::ios::app);
    MirrorProgress progress(
        MirrorProgress::repo_names(project->graph, *git),
        {[&](const std::string& text) {
           std::string line = view.frontend_line(text, now_ms());
           printer.print_line(line);
           if (log) log << line << '\n' << std::flush;
         },
         [&](const std::string& text) {
           if (text.empty()) {
             printer.clear_status();
           } else {
             printer.set_status(text + " | " + format_elapsed(now_ms() - start_ms));
           }
         }});
    git->set_fetch_observer(progress.observer());
    GitSourceResolver resolver(*git, project->config.offline ? GitSourceResolver::Mode::fetch
                                                             : GitSourceResolver::Mode::refresh);
    auto keyed = compute_keys(project->graph, resolver);
    printer.clear_status();
    if (!keyed) {
      std::fprintf(stderr, "gang: error: %s\n", keyed.error().to_string().c_str());
      return 1;
    }
  }
  std::string instances_text =
      parsed.count("instances") ? parsed["instances"].as<std::string>() : project->config.instances;
  auto instances = resolve_instances(instances_text);
  if (!instances) {
    std::fprintf(stderr, "gang: error: %s\n", instances.error().to_string().c_str());
    return 2;
  }

  std::uint64_t seed = parsed.count("seed") ? parsed["seed"].as<std::uint64_t>()
                                            : std::random_device{}();
  GangOptions gang;
  gang.target = target;
  gang.instances = *instances;
  gang.total = static_cast<int>(project->graph.components.size());
  gang.seed = seed;
  gang.start_ms = start_ms;
  if (parsed.count("log")) gang.log_file = parsed["log"].as<std::string>();
  gang.worker_argv = {self_executable(), "worker",   project->target,
                      "--definitions",  project->root, "--arch", project->config.arch,
                      "--cache",        project->config.cache_dir,
                      "--gang-id",      "gang-" + std::to_string(::getpid())};
  if (parsed.count("base")) {
    gang.worker_argv.push_back("--base");
    gang.worker_argv.push_back(parsed["base"].as<std::string>());
  }
  if (parsed.count("max-jobs")) {
    gang.worker_argv.push_back("--max-jobs");
    gang.worker_argv.push_back(std::to_string(parsed["max-jobs"].as<int>()));
  }
  for (const char* flag : {"offline", "strict", "verify"})
    if (parsed.count(flag)) gang.worker_argv.push_back(std::string("--") + flag);
  if (parsed.count("retry-failed")) {
    // Failures recorded before this gang started are retried; failures
    // recorded by this gang's own workers are not retried again.
    gang.worker_argv.push_back("--retry-failed-before");
    gang.worker_argv.push_back(std::to_string(now_ms()));
  }
  return run_gang(gang);
}

}  // namespace gang
