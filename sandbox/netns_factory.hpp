// netns_factory.hpp: network namespaces for sandboxes, made in advance.
//
// Concurrency: NetnsFactory::instance() and take() may be called from any
// thread; one background thread of the process makes the namespaces.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>

namespace gang {

// Network namespaces made ahead of time, off the critical path. Creating
// one (its loopback device, its sysctl tables) is a large part of a
// sandbox's start-up, paid inside clone(); as root, a thread of the worker
// makes the next one or two in advance (unshare(CLONE_NEWNET) applies to the
// calling thread only), brings its `lo` up and keeps an fd to it; a sandbox
// enters a fresh one with setns(). Each is used by one sandbox only, so no
// state (a port in TIME_WAIT, a socket) passes from one build to the next.
// GANG_SANDBOX_NETNS=clone makes every sandbox create its own in clone().
class NetnsFactory {
 public:
  static NetnsFactory& instance();
  // A prepared namespace's fd (the caller closes it), or -1 when none is
  // ready yet (the sandbox then makes its own).
  [[nodiscard]] int take();

 private:
  static constexpr std::size_t k_keep_ready = 2;
  void run();

  std::mutex m_mutex;
  std::condition_variable m_room;
  std::deque<int> m_ready;
  bool m_started = false;
};

// False when GANG_SANDBOX_NETNS=clone asks every sandbox to make its own.
[[nodiscard]] bool prepared_netns_allowed();

}  // namespace gang
