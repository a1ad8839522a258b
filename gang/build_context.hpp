// build_context.hpp: what the chunk builder and the system assembler share
// while a worker builds one component under its claim: the graph, the
// cache, the build options, this worker's identity as a builder, and how to
// log, to check for a stop and to remove a sandbox in the background.
//
// Concurrency: one per worker process; single-threaded.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "cache/artifact_cache.hpp"
#include "cache/tree_cache.hpp"
#include "definitions/build_graph.hpp"
#include "gang/background_remover.hpp"
#include "gang/event.hpp"
#include "gang/worker.hpp"
#include "remote/remote_tier.hpp"

namespace gang {

struct BuildBackendOptions {
  int instance = 1;
  std::string gang_id;
  std::int64_t retry_failed_before_ms = 0;  // failures recorded before this are retried
  int max_jobs = 1;
  std::string base = "host";
  Verify verify = Verify::no;  // re-hash blobs when staging dependencies and members
  std::string arch;
  std::size_t target = 0;  // index of the target in the graph
  // Progress lines about a component ("Checking out ...").
  std::function<void(const std::string& component, const std::string& message)> log;
  // The remote cache and leases (null: none); owned by the caller.
  RemoteTier* remote = nullptr;
  // Events the remote tier causes (pushed, push_failed) about a component.
  std::function<void(EventType type, const std::string& component, const std::string& message)>
      remote_event;
};

struct BuildContext {
  const BuildGraph& graph;
  ArtifactCache& cache;
  const BuildBackendOptions& options;
  const Holder& holder;
  BackgroundRemover& remover;
  TreeCache& trees;                   // dependencies as cached read-only trees
  const std::atomic<bool>& stop;      // a stop was requested (signal)
  std::function<bool()> should_stop;  // stop, or the target appeared; renews the claim
  // Where set, a chunk builder hands its publish (a job returning the final
  // report) to this and returns `publishing`; the job must only touch what
  // it captures by value, the cache and the remover.
  std::function<void(std::function<BuildReport()>)> publish_later;
  // Where set, called once while a chunk's commands run (the worker sets
  // its next build up meanwhile: pipelining).
  std::function<void()> meanwhile;

  void log(const std::string& component, const std::string& message) const {
    if (options.log) options.log(component, message);
  }
  // component: its id, whose build-time history the publish records.
  [[nodiscard]] ArtifactMeta meta_for(std::chrono::milliseconds duration,
                                      const std::string& component) const {
    ArtifactMeta meta;
    meta.build_duration = duration;
    meta.built_by = holder;
    meta.history = component;
    return meta;
  }
};

}  // namespace gang
