// background_remover.hpp: removes finished build sandboxes off the worker's
// critical path. Deleting a sandbox (its staged hard links, overlay layers
// and skeleton) costs tens of milliseconds on a slow disk; a worker hands the
// directory to this remover and starts its next build at once. Other
// housekeeping (clearing dead workers' sandboxes) can be queued as a job.
//
// Concurrency: add() may be called from the worker's thread while one
// background thread runs the jobs in order. The destructor finishes the job
// in progress and abandons the rest: sandbox names carry the worker's pid,
// so the next worker or `gang cache gc` removes them once it is gone.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace gang {

class BackgroundRemover {
 public:
  // `remove` deletes one directory tree (e.g. sandbox::remove_sandbox).
  explicit BackgroundRemover(std::function<void(const std::string&)> remove);
  ~BackgroundRemover();
  BackgroundRemover(const BackgroundRemover&) = delete;
  BackgroundRemover& operator=(const BackgroundRemover&) = delete;

  // Queues `dir` for removal; the caller must not use it any more.
  void add(std::string dir);

  // Queues any other job.
  void add_job(std::function<void()> job);

  // Blocks until the queue is empty (for tests and orderly shutdown).
  void drain();

 private:
  void run();

  std::function<void(const std::string&)> m_remove;
  std::mutex m_mutex;
  std::condition_variable m_wake;
  std::condition_variable m_idle;
  std::deque<std::function<void()>> m_queue;
  bool m_busy = false;
  bool m_stop = false;
  std::thread m_thread;  // started on the first job
};

}  // namespace gang
