// build_backend.hpp: the real WorkerBackend. It answers the worker's
// questions from the artifact cache (cached? failed? claim, release, wait for
// a change) and builds one component under a claim:
//   chunk:   stage its dependencies (hard links into one tree), check its
//            source out, run its build steps in the sandbox, publish DESTDIR;
//   stratum: publish baserock/<name>.meta recording its chunks' metadata;
//   system:  publish the union of its strata's chunk artifacts plus a .meta
//            (split rules and system integration come with a later issue);
//   cluster: publish a .meta naming its systems (deployment comes later).
// A chunk whose commands or source fail keeps its sandbox at
// kept_sandbox_dir() for `gang shell` and records the failure in the cache,
// so no instance retries it. Trouble that is the machine's, not the
// component's (disk, sandbox set-up, a dependency that vanished), is
// reported as `abandoned` and recorded nowhere.
//
// Concurrency: one per worker process; single-threaded. The stop flag is
// set from a signal handler (only an atomic store happens there).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "cache/artifact_cache.hpp"
#include "cache/git_mirrors.hpp"
#include "definitions/build_graph.hpp"
#include "gang/background_remover.hpp"
#include "gang/config.hpp"
#include "gang/worker.hpp"

namespace gang {

struct BuildBackendOptions {
  int instance = 1;
  std::string gang_id;
  std::int64_t retry_failed_before_ms = 0;  // failures recorded before this are retried
  int max_jobs = 1;
  std::string base = "host";
  Verify verify = Verify::no;               // re-hash blobs when staging dependencies
  std::string arch;
  std::size_t target = 0;                   // index of the target in the graph
  // Progress lines about a component ("Checking out ...").
  std::function<void(const std::string& component, const std::string& message)> log;
};

class BuildBackend final : public WorkerBackend {
 public:
  BuildBackend(const BuildGraph& graph, ArtifactCache& cache, const GitMirrors& git,
               const std::atomic<bool>& stop, int stop_fd, BuildBackendOptions options);

  bool is_cached(const std::string& key) override;
  std::optional<std::string> failure(const std::string& key) override;
  std::string failure_log(const std::string& key) override;
  Result<ClaimReply> claim(const std::string& key) override;
  void release(const std::string& key) override;
  BuildReport build(std::size_t index) override;
  void wait_for_change(int timeout_ms) override;
  bool stop_requested() override { return m_stop.load(); }

 private:
  BuildReport build_chunk(std::size_t index, const std::string& log_path);
  Result<PublishOutcome> assemble(std::size_t index, const std::string& log_path);
  [[nodiscard]] bool should_stop();
  [[nodiscard]] ArtifactMeta meta_for(std::chrono::milliseconds duration) const;
  void log(const std::string& component, const std::string& message) {
    if (m_options.log) m_options.log(component, message);
  }

  const BuildGraph& m_graph;
  ArtifactCache& m_cache;
  const GitMirrors& m_git;
  const std::atomic<bool>& m_stop;
  int m_stop_fd;  // readable once a stop was requested (self-pipe), or -1
  BuildBackendOptions m_options;
  Holder m_holder;
  std::string m_building_key;
  std::int64_t m_last_renew_ms = 0;
  BackgroundRemover m_remover;  // last member: joined first, while the rest still exists
};

}  // namespace gang
