// gang worker: one instance of a gang, exec'd by `gang build` (or by hand,
// or on another machine). It loads the definitions and opens the cache
// itself, resolves every cache key (fetching sources as needed), then runs
// the Worker loop over a BuildBackend, reporting events on --events-fd.
#include <cxxopts.hpp>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>

#include "cache/artifact_cache.hpp"
#include "definitions/cache_key.hpp"
#include "gang/build_backend.hpp"
#include "gang/cli.hpp"
#include "gang/commands.hpp"
#include "gang/event.hpp"
#include "gang/mirror_progress.hpp"
#include "gang/project.hpp"
#include "gang/worker.hpp"
#include "remote/remote_tier.hpp"
#include "sandbox/launcher.hpp"

namespace gang {

namespace {

std::atomic<bool> g_stop{false};
int g_stop_pipe[2] = {-1, -1};

void on_stop_signal(int) {
  g_stop.store(true);
  if (g_stop_pipe[1] >= 0) {
    char byte = 1;
    [[maybe_unused]] ssize_t n = ::write(g_stop_pipe[1], &byte, 1);
  }
}

void install_stop_handlers() {
  if (::pipe2(g_stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) g_stop_pipe[0] = g_stop_pipe[1] = -1;
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART: blocking calls return EINTR
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGHUP, &action, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  // The sandboxes are in sessions of their own: pass ^Z (the frontend's
  // SIGTSTP) and SIGCONT on to them.
  relay_job_control_to_sandboxes();
}

}  // namespace

int cmd_worker(const Args& args) {
  cxxopts::Options options("gang worker", "One gang instance (started by gang build).");
  options.add_options()
      ("target", "", cxxopts::value<std::string>())
      ("arch", "", cxxopts::value<std::string>())
      ("max-jobs", "", cxxopts::value<int>())
      ("cache", "", cxxopts::value<std::string>())
      ("definitions", "", cxxopts::value<std::string>())
      ("base", "", cxxopts::value<std::string>())
      ("offline", "")
      ("remote-cache", "", cxxopts::value<std::string>())
      ("redis", "", cxxopts::value<std::string>())
      ("no-remote-push", "")
      ("strict", "")
      ("verify", "")
      ("retry-failed-before", "", cxxopts::value<std::int64_t>())
      ("instance", "", cxxopts::value<int>()->default_value("1"))
      ("seed", "", cxxopts::value<std::uint64_t>()->default_value("0"))
      ("events-fd", "", cxxopts::value<int>()->default_value("-1"))
      ("gang-id", "", cxxopts::value<std::string>()->default_value(""))
      ("h,help", "");
  options.parse_positional({"target"});
  auto result = parse_options(options, args);
  if (!result) return result.error();
  const cxxopts::ParseResult& parsed = *result;
  if (!parsed.count("target")) {
    std::fputs("gang: error: gang worker needs a TARGET\n", stderr);
    return 2;
  }
  install_stop_handlers();
  int instance = parsed["instance"].as<int>();
  EventWriter events(parsed["events-fd"].as<int>());
  auto say = [&](EventType type, const std::string& component, const std::string& message) {
    Event e;
    e.type = type;
    e.instance = instance;
    e.time_ms = now_ms();
    e.component = component;
    e.message = message;
    events.send(e);
    if (events.fd() < 0) std::fprintf(stderr, "[#%d] [%s] %s\n", instance, component.c_str(), message.c_str());
  };
  auto fatal = [&](const std::string& message) {
    std::fprintf(stderr, "gang: error: %s\n", message.c_str());
    say(EventType::exit, "", "error: " + message);
    events.drain(1000);
    return 1;
  };

  ProjectOptions project_options;
  project_options.target = parsed["target"].as<std::string>();
  if (parsed.count("definitions")) project_options.definitions = parsed["definitions"].as<std::string>();
  if (parsed.count("arch")) project_options.arch = parsed["arch"].as<std::string>();
  if (parsed.count("cache")) project_options.cache_dir = parsed["cache"].as<std::string>();
  project_options.strict = parsed.count("strict") > 0;
  if (parsed.count("base")) project_options.base = parsed["base"].as<std::string>();  // in the keys
  // The frontend has printed the definitions' warnings once already.
  auto project = load_project(project_options, nullptr);
  if (!project) return fatal(project.error().to_string());
  Config& config = project->config;
  if (parsed.count("offline")) config.offline = true;
  if (parsed.count("base")) config.base = parsed["base"].as<std::string>();
  if (parsed.count("max-jobs")) config.max_jobs = parsed["max-jobs"].as<int>();

  if (parsed.count("remote-cache")) {
    auto url = normalise_cache_url(parsed["remote-cache"].as<std::string>());
    if (!url) return fatal("--remote-cache: " + url.error().message);
    config.remote.cache_url = *url;
  }
  if (parsed.count("redis")) config.remote.redis_url = parsed["redis"].as<std::string>();
  if (parsed.count("no-remote-push")) config.remote.push = false;

  auto cache = ArtifactCache::open(config.cache_dir);
  if (!cache) return fatal(cache.error().to_string());
  // The remote tier (its upload thread runs beside the builds; sandboxes are
  // cloned children that make only system calls, so that is safe).
  std::unique_ptr<RemoteTier> remote;
  if (config.remote.any()) {
    auto opened = RemoteTier::open(*cache, config.remote, cache->holder().host);
    if (!opened) return fatal(opened.error().to_string());
    remote = std::move(*opened);
  }
  auto git = open_git_mirrors(*project);
  if (!git) return fatal(git.error().to_string());
  // A worker fetches only what the frontend left missing (a submodule's
  // commit, a ref that appeared since); it says so, as log events.
  MirrorProgress progress(MirrorProgress::repo_names(project->graph, *git),
                          {[&](const std::string& line) { say(EventType::log, "", line); }, {}});
  git->set_fetch_observer(progress.observer());
  GitSourceResolver resolver(*git, GitSourceResolver::Mode::fetch);
  if (auto keyed = compute_keys(project->graph, resolver); !keyed) return fatal(keyed.error().to_string());

  BuildGraph& graph = project->graph;
  // Earlier builds' durations: no history is fine (the order falls back
  // to chain lengths), so an unreadable table is not an error.
  auto history = cache->durations();
  std::vector<WorkItem> items;
  items.reserve(graph.components.size());
  for (const auto& c : graph.components) {
    if (!c.cache_key) return fatal("no cache key for " + c.name + " (its source is unresolved)");
    double estimate_s = 0;
    if (history)
      if (auto it = history->find(c.id); it != history->end())
        estimate_s = static_cast<double>(it->second.count()) / 1000.0;
    items.push_back({c.id, *c.cache_key, c.depends, estimate_s});
  }

  BuildBackendOptions backend_options;
  backend_options.instance = instance;
  backend_options.gang_id = parsed["gang-id"].as<std::string>();
  if (parsed.count("retry-failed-before"))
    backend_options.retry_failed_before_ms = parsed["retry-failed-before"].as<std::int64_t>();
  backend_options.max_jobs = resolve_max_jobs(config.max_jobs);
  backend_options.base = config.base;
  backend_options.verify = parsed.count("verify") ? Verify::yes : Verify::no;
  backend_options.arch = config.arch;
  backend_options.target = graph.target_index;
  backend_options.log = [&](const std::string& component, const std::string& message) {
    say(EventType::log, component, message);
  };
  backend_options.remote = remote.get();
  backend_options.remote_event = [&](EventType type, const std::string& component,
                                     const std::string& message) { say(type, component, message); };
  BuildBackend backend(graph, *cache, *git, g_stop, g_stop_pipe[0], backend_options);
  // What this machine has but the remote may not (built before the remote
  // was configured, or while it was down): instance 1 offers it, in the
  // background.
  if (remote && instance == 1)
    for (const auto& c : graph.components)
      if (c.cache_key && cache->contains(*c.cache_key)) remote->push_if_missing(*c.cache_key);

  WorkerOptions worker_options;
  worker_options.instance = instance;
  worker_options.seed = parsed["seed"].as<std::uint64_t>();
  // Other hosts' progress shows only on the remote: look again sooner.
  if (remote) worker_options.idle_timeout_ms = 250;
  Worker worker(std::move(items), graph.target_index, backend, worker_options,
                [&](const Event& e) {
                  events.send(e);
                  if (events.fd() < 0 && e.type != EventType::cached)
                    std::fprintf(stderr, "[#%d] %s [%s] %s\n", instance,
                                 std::string(event_type_name(e.type)).c_str(), e.component.c_str(),
                                 e.message.c_str());
                });
  int status = worker.run();
  if (remote) {
    // Uploads still queued finish before the worker goes (bounded): another
    // host may be waiting for them.
    // In slices, so that a stop request (which must end the worker within
    // 2 s) cuts the wait short.
    std::size_t left = 0;
    for (int waited = 0; waited < 120000 && !g_stop.load(); waited += 100)
      if ((left = remote->finish(100)) == 0) break;
    if (left > 0 || g_stop.load()) left = remote->finish(0);
    if (left > 0)
      say(EventType::log, "", std::to_string(left) + " uploads to the remote cache left unfinished");
    backend.report_remote();
  }
  events.drain(2000);
  return status;
}

}  // namespace gang
