#include "gang/build_backend.hpp"

#include <poll.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "sandbox/sandbox.hpp"
#include "util/fs.hpp"

namespace gang {

namespace {

constexpr std::int64_t k_renew_every_ms = 60'000;

std::string json_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buffer[8];
      std::snprintf(buffer, sizeof buffer, "\\u%04x", c);
      out += buffer;
    } else {
      out += c;
    }
  }
  return out;
}

bool is_build_step(std::string_view step) {
  return step == "pre-build-commands" || step == "build-commands" || step == "post-build-commands";
}

SandboxMode sandbox_mode(BuildMode mode) {
  switch (mode) {
    case BuildMode::bootstrap: return SandboxMode::bootstrap;
    case BuildMode::test: return SandboxMode::test;
    case BuildMode::staging: break;
  }
  return SandboxMode::staging;
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace

BuildBackend::BuildBackend(const BuildGraph& graph, ArtifactCache& cache, const GitMirrors& git,
                           const std::atomic<bool>& stop, int stop_fd, BuildBackendOptions options)
    : m_graph(graph),
      m_cache(cache),
      m_git(git),
      m_stop(stop),
      m_stop_fd(stop_fd),
      m_options(std::move(options)),
      m_holder(cache.holder(m_options.instance, m_options.gang_id)),
      m_remover([](const std::string& dir) { (void)remove_sandbox(dir); }) {
  // Watch for changes from now on, before the worker's first look at the
  // index, so that no change between that look and a wait is missed.
  (void)m_cache.change_fd();
  // Sandboxes of workers killed earlier are cleared in the background.
  m_remover.add_job([&cache] { (void)cache.remove_dead_build_dirs(); });
}

bool BuildBackend::is_cached(const std::string& key) { return m_cache.contains(key); }

std::optional<std::string> BuildBackend::failure(const std::string& key) {
  auto record = m_cache.failure(key);
  if (!record || !*record) return std::nullopt;
  if ((*record)->time_ms < m_options.retry_failed_before_ms) return std::nullopt;
  return (*record)->reason + " (" + (*record)->failed_by.describe() + ")";
}

std::string BuildBackend::failure_log(const std::string& key) {
  auto record = m_cache.failure(key);
  return record && *record ? (*record)->log_path : std::string();
}

Result<ClaimReply> BuildBackend::claim(const std::string& key) {
  auto outcome = m_cache.claim(key, m_holder);
  if (!outcome) return std::unexpected(outcome.error());
  if (outcome->kind == ClaimOutcome::Kind::failed && outcome->failure &&
      outcome->failure->time_ms < m_options.retry_failed_before_ms) {
    // --retry-failed: the failure predates this gang; clear it and try again.
    if (auto cleared = m_cache.clear_failure(key); !cleared)
      return std::unexpected(cleared.error());
    outcome = m_cache.claim(key, m_holder);
    if (!outcome) return std::unexpected(outcome.error());
  }
  switch (outcome->kind) {
    case ClaimOutcome::Kind::won:
      m_building_key = key;
      m_last_renew_ms = now_ms();
      return ClaimReply{ClaimStatus::won, {}};
    case ClaimOutcome::Kind::held_by_other:
      return ClaimReply{ClaimStatus::held_by_other,
                        outcome->holder ? outcome->holder->describe() : "another instance"};
    case ClaimOutcome::Kind::already_cached:
      return ClaimReply{ClaimStatus::already_cached, {}};
    case ClaimOutcome::Kind::failed:
      return ClaimReply{ClaimStatus::failed,
                        outcome->failure ? outcome->failure->failed_by.describe() : ""};
  }
  return ClaimReply{ClaimStatus::held_by_other, {}};
}

void BuildBackend::release(const std::string& key) {
  if (auto released = m_cache.release(key, m_holder); !released)
    log("", "cannot release claim on " + key + ": " + released.error().to_string());
  if (m_building_key == key) m_building_key.clear();
}

void BuildBackend::wait_for_change(int timeout_ms) {
  pollfd fds[2] = {{m_cache.change_fd(), POLLIN, 0}, {m_stop_fd, POLLIN, 0}};
  if (m_stop.load()) return;
  int ready = ::poll(fds, m_stop_fd >= 0 ? 2 : 1, timeout_ms);
  if (ready > 0 && (fds[0].revents & POLLIN)) (void)m_cache.wait_for_change(std::chrono::milliseconds(0));
}

bool BuildBackend::should_stop() {
  if (m_stop.load()) return true;
  const Component& target = m_graph.components[m_options.target];
  if (target.cache_key && m_cache.contains(*target.cache_key)) return true;
  if (!m_building_key.empty() && now_ms() - m_last_renew_ms > k_renew_every_ms) {
    (void)m_cache.renew(m_building_key, m_holder);
    m_last_renew_ms = now_ms();
  }
  return false;
}

ArtifactMeta BuildBackend::meta_for(std::chrono::milliseconds duration) const {
  ArtifactMeta meta;
  meta.build_duration = duration;
  meta.built_by = m_holder;
  return meta;
}

BuildReport BuildBackend::build(std::size_t index) {
  const Component& c = m_graph.components[index];
  auto start = std::chrono::steady_clock::now();
  auto seconds = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  std::string log_path = m_cache.logs_dir() + "/" + *c.cache_key + ".log";
  if (c.kind == Kind::chunk) {
    BuildReport report = build_chunk(index, log_path);
    report.seconds = seconds();
    return report;
  }
  auto published = assemble(index, log_path);
  if (!published)  // a member vanished or the disk failed: not the definition's fault
    return {BuildOutcome::abandoned, seconds(), published.error().to_string(), log_path};
  return {*published == PublishOutcome::inserted ? BuildOutcome::published
                                                 : BuildOutcome::already_present,
          seconds(), {}, log_path};
}

BuildReport BuildBackend::build_chunk(std::size_t index, const std::string& log_path) {
  const Component& c = m_graph.components[index];
  const std::string& key = *c.cache_key;
  auto start = std::chrono::steady_clock::now();
  const SandboxSpec* kept_spec = nullptr;
  // Two kinds of trouble. fail(): the component itself failed (its commands
  // or its source); recorded in the cache so that no instance retries it.
  // abandon(): the machine failed (disk, sandbox set-up, a vanished
  // dependency); nothing is recorded and the worker looks again later.
  auto fail = [&](const std::string& reason, const std::string& sandbox_dir) -> BuildReport {
    if (!sandbox_dir.empty()) {
      if (kept_spec != nullptr) (void)save_spec(*kept_spec);
      // Keep the sandbox for `gang shell`; an older kept one is replaced.
      std::string kept = kept_sandbox_dir(m_cache.root(), c.name);
      (void)remove_sandbox(kept);
      if (make_dirs(m_cache.root() + "/failed") && ::rename(sandbox_dir.c_str(), kept.c_str()) == 0) {
        log(c.name, "Sandbox kept at " + kept + " (gang shell " + c.name + ")");
      } else {
        (void)remove_sandbox(sandbox_dir);
      }
    }
    (void)m_cache.mark_failed(key, log_path, first_line(reason), m_holder);
    return {BuildOutcome::failed, 0, reason, log_path};
  };
  auto abandon = [&](const std::string& reason, const std::string& sandbox_dir) -> BuildReport {
    if (!sandbox_dir.empty()) m_remover.add(sandbox_dir);
    return {BuildOutcome::abandoned, 0, reason, log_path};
  };
  auto cancelled = [&](const std::string& sandbox_dir, const std::string& why) -> BuildReport {
    (void)remove_sandbox(sandbox_dir);  // at once: the worker is about to stop
    return {BuildOutcome::cancelled, 0, why, log_path};
  };

  if (auto made = make_dirs(m_cache.logs_dir()); !made) return abandon(made.error().to_string(), "");
  (void)write_file(log_path, "");  // a fresh log for this attempt
  auto sandbox_dir = m_cache.make_build_dir(c.name);
  if (!sandbox_dir) return abandon(sandbox_dir.error().to_string(), "");
  const std::string& dir = *sandbox_dir;

  SandboxSpec spec;
  spec.name = c.name;
  spec.sandbox_dir = dir;
  spec.base = m_options.base;
  spec.build_dir = dir + "/" + c.name + ".build";
  spec.install_dir = dir + "/" + c.name + ".inst";
  spec.prefix = c.prefix;
  spec.arch = m_options.arch;
  spec.max_jobs = c.max_jobs ? *c.max_jobs : m_options.max_jobs;
  spec.mode = sandbox_mode(c.build_mode);
  spec.log_path = log_path;
  if (c.source) spec.source_date_epoch = c.source->commit_time;

  // Stage the dependencies into one tree, mounted read-only as the top layer.
  std::vector<std::size_t> stage = staging_set(m_graph, index);
  if (!stage.empty()) {
    std::string staging = dir + "/staging";
    log(c.name, "Staging " + std::to_string(stage.size()) + " dependencies");
    for (std::size_t dep : stage) {
      const Component& d = m_graph.components[dep];
      if (auto staged = m_cache.stage(*d.cache_key, staging, StageMode::hardlink, m_options.verify);
          !staged) {
        // A damaged artifact is dropped by stage(), so the worker rebuilds
        // the dependency and comes back.
        return abandon("cannot stage " + d.name + ": " + staged.error().to_string(), dir);
      }
    }
    spec.lower_layers.push_back(staging);
  }
  if (auto made = make_dirs(spec.install_dir); !made) return abandon(made.error().to_string(), dir);
  if (!c.repo.empty()) {
    log(c.name, "Checking out " + c.repo + " " + c.ref +
                    (c.source ? " (" + c.source->commit.substr(0, 12) + ")" : ""));
    auto checked = m_git.checkout(c.repo, c.source->commit, spec.build_dir, c.submodules);
    if (!checked) return fail("checkout failed: " + checked.error().to_string(), dir);
  } else if (auto made = make_dirs(spec.build_dir); !made) {
    return abandon(made.error().to_string(), dir);
  }
  kept_spec = &spec;  // saved for `gang shell` only if the build fails

  StepOptions step_options;
  step_options.control.should_stop = [this] { return should_stop(); };
  // Every step runs in one sandbox (one set of namespaces and mounts).
  std::vector<Step> steps;
  for (std::size_t step = 0; step < k_step_count; ++step) {
    const Commands& commands = c.steps[step];
    if (commands.empty()) continue;
    std::string step_name(k_step_names[step]);
    StepKind kind = is_build_step(step_name) ? StepKind::build : StepKind::other;
    steps.push_back({std::move(step_name), kind, commands});
  }
  if (!steps.empty()) {
    auto result = run_steps(spec, steps, log_path, step_options);
    if (!result) return abandon("cannot start the sandbox: " + result.error().to_string(), dir);
    if (result->cancelled)
      return cancelled(dir, m_stop.load() ? "stop requested" : "the target no longer needs it");
    if (!result->ok) return fail(result->describe(), dir);
  }
  // A build that finished is published even if the target appeared
  // meanwhile (it may serve another target); only a stop request drops it.
  if (m_stop.load()) return cancelled(dir, "stop requested");

  auto duration = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  auto published = m_cache.insert(key, spec.install_dir, meta_for(duration), Ownership::take);
  m_remover.add(dir);
  if (!published) return abandon("cannot publish: " + published.error().to_string(), "");
  return {*published == PublishOutcome::inserted ? BuildOutcome::published
                                                 : BuildOutcome::already_present,
          0, {}, log_path};
}

Result<PublishOutcome> BuildBackend::assemble(std::size_t index, const std::string& log_path) {
  const Component& c = m_graph.components[index];
  auto start = std::chrono::steady_clock::now();
  auto dir = m_cache.make_build_dir(c.name);
  if (!dir) return std::unexpected(dir.error());
  struct Cleanup {
    std::string path;
    ~Cleanup() { (void)remove_tree(path); }
  } cleanup{*dir};

  // The members whose artifacts this one records (and, for systems, holds).
  std::vector<std::size_t> members;
  if (c.kind == Kind::stratum) {
    members = c.chunks;
  } else if (c.kind == Kind::system) {
    for (const auto& s : c.strata)
      for (std::size_t chunk : m_graph.components[s.component].chunks) members.push_back(chunk);
  } else {
    members = c.depends;
  }
  std::string meta = "{\n  \"name\": \"" + json_escape(c.name) + "\",\n  \"kind\": \"" +
                     std::string(to_string(c.kind)) + "\",\n  \"key\": \"" + *c.cache_key +
                     "\",\n  \"members\": [";
  ArtifactMeta artifact_meta;
  for (std::size_t i = 0; i < members.size(); ++i) {
    const Component& m = m_graph.components[members[i]];
    auto info = m_cache.lookup(*m.cache_key);
    if (!info) return std::unexpected(info.error());
    if (!*info) return make_error("member " + m.name + " (" + *m.cache_key + ") is not cached");
    const ArtifactInfo& a = **info;
    meta += std::string(i ? "," : "") + "\n    {\"name\": \"" + json_escape(m.name) +
            "\", \"key\": \"" + a.key + "\", \"size\": " + std::to_string(a.size) +
            ", \"files\": " + std::to_string(a.file_count) +
            ", \"build_ms\": " + std::to_string(a.meta.build_duration.count()) +
            ", \"built_by\": \"" + json_escape(a.meta.built_by.describe()) + "\"}";
    artifact_meta.extra["member." + m.name] = a.key;
    if (c.kind == Kind::system) {
      if (auto staged = m_cache.stage(a.key, *dir, StageMode::hardlink); !staged)
        return std::unexpected(staged.error());
    }
  }
  meta += members.empty() ? "]\n}\n" : "\n  ]\n}\n";
  if (auto made = make_dirs(*dir + "/baserock"); !made) return std::unexpected(made.error());
  if (auto written = write_file(*dir + "/baserock/" + c.name + ".meta", meta); !written)
    return std::unexpected(written.error());
  (void)write_file(log_path, meta);
  auto duration = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  ArtifactMeta full = meta_for(duration);
  full.extra = std::move(artifact_meta.extra);
  return m_cache.insert(*c.cache_key, *dir, full);
}

}  // namespace gang
