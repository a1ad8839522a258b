#include "gang/build_backend.hpp"

#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "gang/chunk_builder.hpp"
#include "gang/system_assembler.hpp"
#include "sandbox/sandbox.hpp"
#include "util/fs.hpp"
#include "util/path_name.hpp"

namespace gang {

namespace {

constexpr std::int64_t k_renew_every_ms = 60'000;

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
      m_trees(cache),
      m_remover([](const std::string& dir) { (void)remove_sandbox(dir); }) {
  // Watch for changes from now on, before the worker's first look at the
  // index, so that no change between that look and a wait is missed.
  (void)m_cache.change_fd();
  for (std::size_t i = 0; i < m_graph.components.size(); ++i) {
    const Component& c = m_graph.components[i];
    // A stratum counts as cached only with its member chunks (bootstrap
    // ones aside); the target itself once it exists, whoever published it.
    if (c.kind == Kind::stratum && c.cache_key && i != m_options.target) {
      std::vector<std::string>& members = m_members[*c.cache_key];
      for (std::size_t member : c.chunks) {
        const Component& m = m_graph.components[member];
        if (m.build_mode != BuildMode::bootstrap && m.cache_key) members.push_back(*m.cache_key);
      }
    }
    if (c.cache_key) m_names.emplace(*c.cache_key, c.id);
  }
  // Sandboxes of workers killed earlier are cleared in the background.
  m_remover.add_job([&cache] { (void)cache.build_dirs().remove_dead(); });
}

bool BuildBackend::is_cached(const std::string& key) {
  if (!m_cache.contains(key)) return false;
  auto members = m_members.find(key);
  if (members == m_members.end()) return true;
  return std::all_of(members->second.begin(), members->second.end(),
                     [&](const std::string& member) { return m_cache.contains(member); });
}

std::optional<std::string> BuildBackend::failure_reason(const FailureRecord& record) const {
  if (record.time_ms < m_options.retry_failed_before_ms) return std::nullopt;
  return record.reason + " (" + record.failed_by.describe() + ")";
}

std::vector<WorkerBackend::KeyState> BuildBackend::states(const std::vector<std::string>& keys) {
  // The keys asked, then the members of the strata among them, in one
  // look at the cache.
  std::vector<std::string> all = keys;
  for (const auto& key : keys)
    if (auto members = m_members.find(key); members != m_members.end())
      all.insert(all.end(), members->second.begin(), members->second.end());
  auto looked = m_cache.states(all);
  if (!looked) return WorkerBackend::states(keys);  // one key at a time, as before
  std::unordered_map<std::string, bool> cached;
  for (std::size_t i = 0; i < all.size(); ++i) cached.emplace(all[i], (*looked)[i].cached);
  std::vector<KeyState> out(keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) {
    const auto& state = (*looked)[i];
    bool is = state.cached;
    if (auto members = m_members.find(keys[i]); is && members != m_members.end())
      for (const auto& member : members->second) is = is && cached.at(member);
    out[i].cached = is;
    if (!is && state.failure) out[i].failure = failure_reason(*state.failure);
  }
  return out;
}

std::optional<std::string> BuildBackend::failure(const std::string& key) {
  auto record = m_cache.failures().of(key);
  if (!record || !*record) return std::nullopt;
  return failure_reason(**record);
}

std::string BuildBackend::failure_log(const std::string& key) {
  auto record = m_cache.failures().of(key);
  return record && *record ? (*record)->log_path : std::string();
}

void BuildBackend::report_remote() {
  RemoteTier* remote = m_options.remote;
  if (remote == nullptr) return;
  for (const auto& line : remote->take_messages()) log("", line);
  if (!m_options.remote_event) return;
  for (const auto& push : remote->take_push_reports()) {
    auto name = m_names.find(push.key);
    std::string component = name != m_names.end() ? name->second : push.key;
    if (push.ok) {
      m_options.remote_event(EventType::pushed, component,
                             std::to_string(push.blobs_uploaded) + " new blobs");
    } else {
      m_options.remote_event(EventType::push_failed, component, push.error);
    }
  }
}

std::optional<ClaimReply> BuildBackend::download(const std::string& key) {
  RemoteTier* remote = m_options.remote;
  if (remote == nullptr || !remote->has_cache() || m_cache.contains(key)) return std::nullopt;
  PullResult pulled = remote->pull(key);
  report_remote();
  if (pulled.kind != PullResult::Kind::downloaded) return std::nullopt;
  return ClaimReply{ClaimStatus::downloaded, "from the remote cache", pulled.seconds};
}

Result<ClaimReply> BuildBackend::claim(const std::string& key) {
  RemoteTier* remote = m_options.remote;
  report_remote();
  // A lease another host holds: it is building this; look again later.
  if (remote != nullptr && remote->has_leases() && !m_cache.contains(key)) {
    if (auto other = remote->peek_lease(key))
      return ClaimReply{ClaimStatus::held_by_other, *other + " (lease)"};
  }
  auto reply = claim_locally(key);
  if (!reply || reply->status != ClaimStatus::won || remote == nullptr) return reply;
  // Won here: the remote may have it already, or another host may be on it.
  if (remote->has_cache()) {
    PullResult pulled = remote->pull(key);
    report_remote();
    if (pulled.kind == PullResult::Kind::downloaded ||
        pulled.kind == PullResult::Kind::already_present) {
      release(key);
      return ClaimReply{ClaimStatus::downloaded, "from the remote cache", pulled.seconds};
    }
  }
  if (remote->has_leases()) {
    LeaseResult lease = remote->take_lease(key);
    report_remote();
    if (lease.kind == LeaseResult::Kind::held) {
      release(key);
      return ClaimReply{ClaimStatus::held_by_other, lease.holder + " (lease)"};
    }
    if (lease.kind == LeaseResult::Kind::won) {
      m_lease_key = key;
      m_last_lease_renew_ms = now_ms();
    }
  }
  return reply;
}

Result<ClaimReply> BuildBackend::claim_locally(const std::string& key) {
  auto outcome = m_cache.claims().claim(key, m_holder);
  if (!outcome) return std::unexpected(outcome.error());
  if (outcome->kind == ClaimOutcome::Kind::failed && outcome->failure &&
      outcome->failure->time_ms < m_options.retry_failed_before_ms) {
    // --retry-failed: the failure predates this gang; clear it and try again.
    if (auto cleared = m_cache.failures().clear(key); !cleared)
      return std::unexpected(cleared.error());
    outcome = m_cache.claims().claim(key, m_holder);
    if (!outcome) return std::unexpected(outcome.error());
  }
  switch (outcome->kind) {
    case ClaimOutcome::Kind::won:
      if (m_claimed.empty()) m_last_renew_ms = now_ms();
      m_claimed.insert(key);
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
  if (auto released = m_cache.claims().release(key, m_holder); !released)
    log("", "cannot release claim on " + key + ": " + released.error().to_string());
  m_claimed.erase(key);
  // A lease still held here was not handed to an upload: give it up now.
  if (m_lease_key == key && m_options.remote != nullptr) m_options.remote->release_lease(key);
  if (m_lease_key == key) m_lease_key.clear();
}

void BuildBackend::wait_for_change(int timeout_ms) {
  // (-1 entries are ignored by poll)
  pollfd fds[3] = {{m_cache.change_fd(), POLLIN, 0}, {m_publisher.fd(), POLLIN, 0},
                   {m_stop_fd, POLLIN, 0}};
  if (m_stop.load()) return;
  int ready = ::poll(fds, 3, timeout_ms);
  if (ready > 0 && (fds[0].revents & POLLIN)) (void)m_cache.wait_for_change(std::chrono::milliseconds(0));
}

std::vector<std::pair<std::size_t, BuildReport>> BuildBackend::finished() {
  // (each job measured its build from start to the end of its publish)
  return m_publisher.take_finished();
}

bool BuildBackend::should_stop() {
  if (m_stop.load()) return true;
  const Component& target = m_graph.components[m_options.target];
  if (target.cache_key && m_cache.contains(*target.cache_key)) return true;
  if (!m_claimed.empty() && now_ms() - m_last_renew_ms > k_renew_every_ms) {
    for (const auto& key : m_claimed) (void)m_cache.claims().renew(key, m_holder);
    m_last_renew_ms = now_ms();
  }
  RemoteTier* remote = m_options.remote;
  if (remote != nullptr && !m_lease_key.empty() &&
      now_ms() - m_last_lease_renew_ms > remote->lease_ms() / 3) {
    m_last_lease_renew_ms = now_ms();
    std::string holder;
    if (!remote->renew_lease(m_lease_key, &holder)) {
      // Correctness never depends on the lease: build on, the cost is
      // duplicate work.
      auto name = m_names.find(m_lease_key);
      log(name != m_names.end() ? name->second : m_lease_key,
          "Bah! the lease expired and " + holder + " took it; building on (duplicate work)");
      m_lease_key.clear();
    }
    report_remote();
  }
  return false;
}

BuildContext BuildBackend::context(std::size_t index) {
  BuildContext ctx{m_graph,  m_cache, m_options, m_holder, m_remover,
                   m_trees,  m_stop,  [this] { return should_stop(); }, nullptr, nullptr};
  if (m_options.remote == nullptr)
    ctx.publish_later = [this, index](std::function<BuildReport()> job) {
      m_publisher.submit(index, std::move(job));
    };
  return ctx;
}

std::string BuildBackend::log_path(std::size_t index) const {
  return m_cache.logs_dir() + "/" + name_to_leaf(*m_graph.components[index].cache_key) + ".log";
}

bool BuildBackend::can_prepare(std::size_t index) {
  return !m_prepared && m_options.remote == nullptr && !m_stop.load() &&
         m_graph.components[index].kind == Kind::chunk;
}

void BuildBackend::prepare(std::size_t index) {
  if (!can_prepare(index)) return;
  auto prepared = prepare_chunk(context(index), m_git, index, log_path(index), false);
  // (one that could not be set up is built the usual way, under its claim)
  if (auto* chunk = std::get_if<std::unique_ptr<PreparedChunk>>(&prepared)) {
    m_prepared_index = index;
    m_prepared = std::move(*chunk);
  }
}

bool BuildBackend::claimed(const std::string& key) {
  auto claim = m_cache.claims().claim_of(key);
  return !claim || claim->has_value();  // (an error: as if held)
}

void BuildBackend::drop_prepared(std::size_t index) {
  if (m_prepared && m_prepared_index == index) m_prepared.reset();
}

BuildReport BuildBackend::build(std::size_t index, const std::function<void()>& meanwhile) {
  const Component& c = m_graph.components[index];
  auto start = std::chrono::steady_clock::now();
  BuildReport report;
  if (m_prepared && m_prepared_index == index) {
    auto prepared = std::move(m_prepared);
    report = prepared->run(meanwhile);
  } else {
    BuildContext ctx = context(index);
    ctx.meanwhile = meanwhile;
    report = c.kind == Kind::chunk ? build_chunk(ctx, m_git, index, log_path(index))
                                   : assemble(ctx, index, log_path(index));
  }
  if (report.outcome == BuildOutcome::publishing) return report;
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // The history the schedulers of later runs estimate this component by is
  // recorded by the publish itself (ArtifactMeta::history), in its commit.
  // Upload what was built here (in the background); the lease goes with
  // the upload, once the artifact is on the remote.
  if (m_options.remote != nullptr &&
      (report.outcome == BuildOutcome::published || report.outcome == BuildOutcome::already_present)) {
    bool leased = m_lease_key == *c.cache_key;
    if (report.outcome == BuildOutcome::published || leased) m_options.remote->push(*c.cache_key);
    if (leased) m_lease_key.clear();
  }
  report_remote();
  return report;
}

}  // namespace gang
