// background_publisher.hpp: publishes finished builds off the worker's
// critical path. Publishing a trivial chunk is mostly waiting for the disk
// (its blobs and their directories made durable, then the index commit:
// about 3 ms on a slow disk); the worker hands the publish to this thread
// and starts its next build at once, so the two overlap. A component counts
// as built only once its publish is collected (take_finished), so nothing
// that needs it is staged before it is in the cache.
//
// Concurrency: submit(), take_finished(), drain() and fd() are called from
// the worker's thread; one background thread runs the jobs in order. At
// most k_max_pending jobs wait or run: submit() blocks beyond that. The
// destructor finishes every job submitted (a finished build is published,
// as it would have been synchronously).
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "gang/worker.hpp"

namespace gang {

class BackgroundPublisher {
 public:
  using Job = std::function<BuildReport()>;
  static constexpr std::size_t k_max_pending = 2;

  BackgroundPublisher();
  ~BackgroundPublisher();
  BackgroundPublisher(const BackgroundPublisher&) = delete;
  BackgroundPublisher& operator=(const BackgroundPublisher&) = delete;

  // Queues item `index`'s publish.
  void submit(std::size_t index, Job job);
  // The publishes finished since the last call, in order.
  [[nodiscard]] std::vector<std::pair<std::size_t, BuildReport>> take_finished();
  // Blocks until every submitted job has finished.
  void drain();
  // Readable while finished publishes wait to be taken (an eventfd), or -1.
  [[nodiscard]] int fd() const { return m_event_fd; }

 private:
  void run();

  int m_event_fd = -1;
  std::mutex m_mutex;
  std::condition_variable m_wake;
  std::condition_variable m_changed;
  std::deque<std::pair<std::size_t, Job>> m_queue;
  std::vector<std::pair<std::size_t, BuildReport>> m_finished;
  std::size_t m_pending = 0;  // queued or running
  bool m_stop = false;
  std::thread m_thread;  // started on the first job
};

}  // namespace gang
