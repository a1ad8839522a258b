// gang worker: one instance of a gang, exec'd by `gang build` (or by hand,
// or on another machine). Its command line is a BuildRequest
// (build_request.hpp). It loads the definitions and opens the cache itself,
// resolves every cache key (through its gang's --pins when given, else from
// the mirrors, fetching sources as needed), then runs the Worker loop over
// a BuildBackend, reporting events on --events-fd.
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>

#include "cache/artifact_cache.hpp"
#include "definitions/cache_key.hpp"
#include "gang/build_backend.hpp"
#include "gang/build_request.hpp"
#include "gang/commands.hpp"
#include "gang/event.hpp"
#include "gang/mirror_progress.hpp"
#include "gang/project.hpp"
#include "gang/worker.hpp"
#include "remote/remote_tier.hpp"
#include "sandbox/launcher.hpp"
#include "util/fs.hpp"

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
  auto request = BuildRequest::parse(args);
  if (!request) return request.error();
  const BuildRequest& r = *request;
  install_stop_handlers();
  int instance = r.instance;
  EventWriter events(r.events_fd);
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
  project_options.target = r.target;
  project_options.definitions = r.definitions;
  project_options.arch = r.arch;
  project_options.cache_dir = r.cache_dir;
  project_options.strict = r.strict;
  if (r.base) project_options.base = *r.base;  // in the keys
  // The frontend has printed the definitions' warnings once already.
  auto project = load_project(project_options, nullptr);
  if (!project) return fatal(project.error().to_string());
  Config& config = project->config;
  if (r.offline) config.offline = true;
  if (r.base) config.base = *r.base;
  if (r.max_jobs) config.max_jobs = *r.max_jobs;

  if (!r.remote_cache.empty()) {
    auto url = normalise_cache_url(r.remote_cache);
    if (!url) return fatal("--remote-cache: " + url.error().message);
    config.remote.cache_url = *url;
  }
  if (!r.redis.empty()) config.remote.redis_url = r.redis;
  if (r.no_remote_push) config.remote.push = false;
  std::optional<SourcePins> pins;
  if (!r.pins_file.empty()) {
    auto text = read_regular_file(r.pins_file);
    if (!text) return fatal("--pins: " + text.error().to_string());
    auto decoded = SourcePins::decode(*text, r.pins_file);
    if (!decoded) return fatal("--pins: " + decoded.error().to_string());
    pins = std::move(*decoded);
  }

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
  GitSourceResolver mirrors(*git, GitSourceResolver::Mode::fetch);
  std::optional<PinnedSourceResolver> pinned;
  if (pins) pinned.emplace(*pins, mirrors);
  SourceResolver& resolver = pinned ? static_cast<SourceResolver&>(*pinned) : mirrors;
  if (auto keyed = compute_keys(project->graph, resolver); !keyed) return fatal(keyed.error().to_string());
  if (pins && !pins->target_key.empty()) {
    const auto& target = project->graph.components[project->graph.target_index];
    if (target.cache_key.value_or("") != pins->target_key)
      return fatal("the definitions changed since this gang started: " + target.id +
                   " has the cache key " + target.cache_key.value_or("(none)") +
                   " here, the gang's is " + pins->target_key + " (run gang build again)");
  }

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
  backend_options.gang_id = r.gang_id;
  if (r.retry_failed_before_ms) backend_options.retry_failed_before_ms = *r.retry_failed_before_ms;
  backend_options.max_jobs = resolve_max_jobs(config.max_jobs);
  backend_options.base = config.base;
  backend_options.verify = r.verify ? Verify::yes : Verify::no;
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
  worker_options.seed = r.seed;
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
