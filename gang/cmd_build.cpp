// gang build: the frontend. Parses the flags, then starts the gang of
// workers (each `gang worker` with the same flags) and renders their events.
#include <cxxopts.hpp>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>

#include "gang/commands.hpp"
#include "remote/remote_options.hpp"
#include "definitions/cache_key.hpp"
#include "gang/build_request.hpp"
#include "gang/cli.hpp"
#include "gang/config.hpp"
#include "gang/event.hpp"
#include "gang/frontend.hpp"
#include "gang/gang_view.hpp"
#include "gang/mirror_progress.hpp"
#include "gang/project.hpp"
#include "gang/run_report.hpp"
#include "gang/status_printer.hpp"
#include "cache/artifact_cache.hpp"
#include "util/fs.hpp"

namespace gang {

namespace {

// What the graph's sources were resolved to, and the target's key.
SourcePins pins_of(const BuildGraph& graph) {
  SourcePins pins;
  pins.target_key = graph.components[graph.target_index].cache_key.value_or("");
  for (const auto& c : graph.components)
    if (c.source && !c.repo.empty()) pins.sources[{c.repo, c.ref}] = *c.source;
  return pins;
}

// Writes the --report file (atomically: a script never reads half a report).
void write_report(const std::string& path, const std::string& json) {
  if (path.empty()) return;
  if (auto written = write_file_atomic(path, json, 0644); !written)
    std::fprintf(stderr, "gang: error: cannot write the report %s: %s\n", path.c_str(),
                 written.error().to_string().c_str());
}

// The report of a run that ended before its workers started.
std::string early_report(const std::string& target, int status, const std::string& error,
                         std::int64_t start_ms) {
  nlohmann::ordered_json out;
  out["schema_version"] = k_report_schema_version;
  out["target"] = target;
  out["exit_status"] = status;
  out["start_time_ms"] = start_ms;
  out["wall_s"] = static_cast<double>(now_ms() - start_ms) / 1000.0;
  out["error"] = error;
  out["components"] = nlohmann::ordered_json::array();
  return out.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

int build(const Args& args, std::int64_t start_ms, std::string& report_path,
          std::string& target_for_report, std::string& early_error);

}  // namespace

int cmd_build(const Args& args) {
  // The run starts now: mirroring before the workers start counts in the
  // summary's total elapsed.
  const std::int64_t start_ms = now_ms();
  std::string report_path, target, early_error;
  int status = build(args, start_ms, report_path, target, early_error);
  // A run that got as far as its workers wrote its own report.
  if (!report_path.empty() && !early_error.empty())
    write_report(report_path, early_report(target, status, early_error, start_ms));
  return status;
}

namespace {

int build(const Args& args, const std::int64_t start_ms, std::string& report_path,
          std::string& target_for_report, std::string& early_error) {
  auto fail = [&](const std::string& message, int status = 1) {
    std::fprintf(stderr, "gang: error: %s\n", message.c_str());
    early_error = message;
    return status;
  };
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
      ("report", "when the run ends, write a JSON report of it to FILE", cxxopts::value<std::string>())
      ("cache-from", "start from a cheap copy of the cache DIR (--cache must be absent or empty)",
       cxxopts::value<std::string>())
      ("remote-cache", "share artifacts through the Bazel HTTP cache at URL (credentials: "
       "remote-credentials in gang.conf, or .netrc)", cxxopts::value<std::string>())
      ("redis", "take leases across hosts in the Redis server at URL (redis://host:port)",
       cxxopts::value<std::string>())
      ("no-remote-push", "download from the remote cache, never upload to it")
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
  target_for_report = target;
  if (parsed.count("report")) report_path = parsed["report"].as<std::string>();
  if (parsed.count("cache-from") && !parsed.count("cache"))
    return fail("--cache-from needs --cache DIR: the new cache to copy into", 2);

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
  if (!project) return fail(project.error().to_string());
  if (parsed.count("offline")) project->config.offline = true;
  if (parsed.count("remote-cache")) {
    auto url = normalise_cache_url(parsed["remote-cache"].as<std::string>());
    if (!url) return fail("--remote-cache: " + url.error().message, 2);
  }
  if (parsed.count("redis")) {
    auto address = parse_redis_url(parsed["redis"].as<std::string>());
    if (!address) return fail("--redis: " + address.error().message, 2);
  }
  if (parsed.count("cache-from")) {
    // Before anything writes to the new cache (the mirrors come next).
    std::string from = parsed["cache-from"].as<std::string>();
    if (!path_exists(from + "/index/data.mdb"))
      return fail("--cache-from " + from + ": not a gang cache (no index/data.mdb)");
    auto source = ArtifactCache::open(from);
    if (!source) return fail("--cache-from " + from + ": " + source.error().to_string());
    auto copied = source->copy_to(project->config.cache_dir);
    if (!copied) return fail("--cache-from " + from + ": " + copied.error().to_string());
    std::printf("copied the cache %s: %llu artifacts, %llu files linked, %llu copied\n",
                from.c_str(), static_cast<unsigned long long>(copied->artifacts),
                static_cast<unsigned long long>(copied->files_linked),
                static_cast<unsigned long long>(copied->files_copied));
  }
  // Bring branch and tag refs up to date once, here, so that every worker
  // resolves the same commits from the mirrors without fetching again. Each
  // clone or fetch is logged (and shown on the status line while it runs)
  // in the frontend's line shape, and to --log.
  {
    auto git = open_git_mirrors(*project);
    if (!git) return fail(git.error().to_string());
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
    if (!keyed) return fail(keyed.error().to_string());
  }
  std::string instances_text =
      parsed.count("instances") ? parsed["instances"].as<std::string>() : project->config.instances;
  auto instances = resolve_instances(instances_text);
  if (!instances) return fail(instances.error().to_string(), 2);

  std::uint64_t seed = parsed.count("seed") ? parsed["seed"].as<std::uint64_t>()
                                            : std::random_device{}();
  GangOptions gang;
  gang.target = target;
  gang.instances = *instances;
  gang.total = static_cast<int>(project->graph.components.size());
  gang.seed = seed;
  gang.start_ms = start_ms;
  if (parsed.count("log")) gang.log_file = parsed["log"].as<std::string>();
  BuildRequest request;
  request.target = project->target;
  request.definitions = project->root;
  request.arch = project->config.arch;
  request.cache_dir = project->config.cache_dir;
  if (parsed.count("base")) request.base = parsed["base"].as<std::string>();
  if (parsed.count("max-jobs")) request.max_jobs = parsed["max-jobs"].as<int>();
  if (parsed.count("remote-cache")) request.remote_cache = parsed["remote-cache"].as<std::string>();
  if (parsed.count("redis")) request.redis = parsed["redis"].as<std::string>();
  request.offline = parsed.count("offline") > 0;
  request.strict = parsed.count("strict") > 0;
  request.verify = parsed.count("verify") > 0;
  request.no_remote_push = parsed.count("no-remote-push") > 0;
  // Failures recorded before this gang started are retried; failures
  // recorded by this gang's own workers are not retried again.
  if (parsed.count("retry-failed")) request.retry_failed_before_ms = now_ms();
  request.gang_id = "gang-" + std::to_string(::getpid());
  // Every worker builds what this frontend resolved (build_request.hpp): the
  // pins live in a build directory of this process, removed when the gang
  // ends (or, if this process dies, by the next gang's clearing).
  auto cache = ArtifactCache::open(project->config.cache_dir);
  if (!cache) return fail(cache.error().to_string());
  auto pins_dir = cache->build_dirs().make("pins");
  if (!pins_dir) return fail(pins_dir.error().to_string());
  struct RemoveAtEnd {
    std::string dir;
    ~RemoveAtEnd() { (void)remove_tree(dir); }
  } remove_pins{*pins_dir};
  request.pins_file = *pins_dir + "/pins.json";
  if (auto written = write_file(request.pins_file, pins_of(project->graph).encode()); !written)
    return fail(written.error().to_string());
  gang.worker_argv = request.to_argv();
  gang.worker_argv.insert(gang.worker_argv.begin(), {self_executable(), "worker"});
  if (report_path.empty()) return run_gang(gang);

  // The report: what was cached at the start, then every worker event.
  RunInfo info;
  info.target = target;
  info.arch = project->config.arch;
  info.instances = *instances;
  info.max_jobs = parsed.count("max-jobs") ? parsed["max-jobs"].as<int>()
                                           : resolve_max_jobs(project->config.max_jobs);
  info.seed = seed;
  info.start_ms = start_ms;
  const BuildGraph& graph = project->graph;
  info.target_key = graph.components[graph.target_index].cache_key.value_or("");
  for (const auto& c : graph.components) {
    std::string key = c.cache_key.value_or("");
    bool cached = !key.empty() && cache->contains(key);
    info.components.push_back({c.id, std::string(to_string(c.kind)), key, c.depends, cached});
  }
  RunReport report(std::move(info));
  gang.on_event = [&](const Event& e) { report.on_event(e); };
  gang.on_worker_exit = [&](int instance, std::int64_t time_ms, const std::string& how) {
    report.on_worker_exit(instance, time_ms, how);
  };
  int status = run_gang(gang);
  write_report(report_path, report.to_json(status, now_ms()));
  return status;
}

}  // namespace

}  // namespace gang
