// build_backend.hpp: the real WorkerBackend. It answers the worker's
// questions from the artifact cache (cached? failed? claim, release, wait for
// a change) and builds one component under a claim: a chunk with the chunk
// builder (chunk_builder.hpp), a stratum, system or cluster with the system
// assembler (system_assembler.hpp). Both report trouble that is the
// component's as `failed` (recorded, so no instance retries it) and trouble
// that is the machine's as `abandoned` (recorded nowhere).
//
// Concurrency: one per worker process; single-threaded. The stop flag is
// set from a signal handler (only an atomic store happens there).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>

#include "cache/artifact_cache.hpp"
#include "cache/git_mirrors.hpp"
#include "definitions/build_graph.hpp"
#include "gang/background_publisher.hpp"
#include "gang/background_remover.hpp"
#include "gang/build_context.hpp"
#include "gang/chunk_builder.hpp"
#include "gang/config.hpp"
#include "gang/worker.hpp"

namespace gang {

class BuildBackend final : public WorkerBackend {
 public:
  BuildBackend(const BuildGraph& graph, ArtifactCache& cache, const GitMirrors& git,
               const std::atomic<bool>& stop, int stop_fd, BuildBackendOptions options);

  // A stratum counts as cached only while its member chunks (bootstrap ones
  // aside) are cached too: one dropped or forgotten is a dependency that is
  // not ready, so the worker rebuilds it before anything that needs the
  // stratum is assembled or staged (rather than failing that assembly). The
  // target itself counts as cached once it exists.
  bool is_cached(const std::string& key) override;
  // is_cached() and failure() for many keys in one read transaction.
  std::vector<KeyState> states(const std::vector<std::string>& keys) override;
  std::optional<std::string> failure(const std::string& key) override;
  std::string failure_log(const std::string& key) override;
  Result<ClaimReply> claim(const std::string& key) override;
  std::optional<ClaimReply> download(const std::string& key) override;
  // Hands the remote tier's messages and upload results on as log lines
  // and events (called on the worker's thread; also by cmd_worker at exit).
  void report_remote();
  void release(const std::string& key) override;
  // A chunk is published in the background (BackgroundPublisher) unless a
  // remote tier is configured (its leases follow one build at a time): it
  // returns `publishing`, and its final report comes through finished().
  BuildReport build(std::size_t index) override { return build(index, {}); }
  BuildReport build(std::size_t index, const std::function<void()>& meanwhile) override;
  // Chunks, without a remote tier (whose leases follow one build at a
  // time), while no stop is requested.
  bool can_prepare(std::size_t index) override;
  void prepare(std::size_t index) override;
  void drop_prepared(std::size_t index) override;
  bool claimed(const std::string& key) override;
  std::vector<std::pair<std::size_t, BuildReport>> finished() override;
  void drain() override { m_publisher.drain(); }
  void wait_for_change(int timeout_ms) override;
  bool stop_requested() override { return m_stop.load(); }

 private:
  [[nodiscard]] Result<ClaimReply> claim_locally(const std::string& key);
  // A recorded failure's reason and who failed it; nullopt when it predates
  // --retry-failed.
  [[nodiscard]] std::optional<std::string> failure_reason(const FailureRecord& record) const;
  [[nodiscard]] bool should_stop();
  [[nodiscard]] BuildContext context(std::size_t index);
  [[nodiscard]] std::string log_path(std::size_t index) const;
  void log(const std::string& component, const std::string& message) {
    if (m_options.log) m_options.log(component, message);
  }

  const BuildGraph& m_graph;
  ArtifactCache& m_cache;
  const GitMirrors& m_git;
  const std::atomic<bool>& m_stop;
  int m_stop_fd;  // readable once a stop was requested (self-pipe), or -1
  BuildBackendOptions m_options;
  // Stratum key -> the member chunks' keys that must be cached with it (not
  // for the target).
  std::unordered_map<std::string, std::vector<std::string>> m_members;
  Holder m_holder;
  std::set<std::string> m_claimed;  // keys this worker holds claims on (renewed while building)
  std::int64_t m_last_renew_ms = 0;
  std::string m_lease_key;  // the key whose Redis lease this worker holds
  std::int64_t m_last_lease_renew_ms = 0;
  std::unordered_map<std::string, std::string> m_names;  // key -> component id, for messages
  TreeCache m_trees;
  BackgroundRemover m_remover;
  BackgroundPublisher m_publisher;  // joined before the remover (its jobs use it)
  // The build prepare() set up, and its item. Last member: a prepared
  // chunk dropped at the end uses the remover and the trees.
  std::size_t m_prepared_index = 0;
  std::unique_ptr<PreparedChunk> m_prepared;
};

}  // namespace gang
