// change_notifier.hpp: lets idle workers sleep until the cache index
// changes. Writers bump a generation file (<root>/generation: its mtime is
// set) after each committed publish, failure record, release or forget;
// readers hold an inotify watch on it, so waiting costs no polling. The
// watch is created on the first call to fd() or wait() (closing an inotify
// instance costs the kernel ~10 ms, so short-lived processes that never wait
// should not pay for one); from then on events are queued, so a worker that
// calls fd() once, then checks the index and waits, cannot miss a change
// made in between. inotify does not see
// writes made by other hosts on network file systems: use a timeout.
//
// Concurrency contract: bump() is safe from any process or thread. One
// ChangeNotifier's fd and wait() belong to one thread at a time.
#pragma once

#include <chrono>
#include <string>

#include "util/error.hpp"

namespace gang {

class ChangeNotifier {
 public:
  // Watches <root>/generation, creating it if needed.
  [[nodiscard]] static Result<ChangeNotifier> open(const std::string& root);
  ChangeNotifier(ChangeNotifier&& other) noexcept;
  ChangeNotifier& operator=(ChangeNotifier&& other) noexcept;
  ChangeNotifier(const ChangeNotifier&) = delete;
  ChangeNotifier& operator=(const ChangeNotifier&) = delete;
  ~ChangeNotifier();

  // Signals every watcher (including this one).
  void bump() const;
  // Waits up to timeout for a change since the watch was created or the last
  // wait; true if there was one (the pending events are consumed), false on
  // timeout.
  [[nodiscard]] Result<bool> wait(std::chrono::milliseconds timeout);
  // A non-blocking fd that becomes readable on a change, for poll()/epoll;
  // call wait(0ms) to consume its events. -1 if inotify is unavailable.
  [[nodiscard]] int fd();

 private:
  [[nodiscard]] Result<void> watch();

  ChangeNotifier() = default;

  std::string m_path;
  int m_fd = -1;
};

}  // namespace gang
