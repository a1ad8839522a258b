#include "sandbox/netns_factory.hpp"

#include "sandbox/init_protocol.hpp"

#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <string_view>
#include <thread>

namespace gang {

NetnsFactory& NetnsFactory::instance() {
  static NetnsFactory* factory = [] {
    auto* made = new NetnsFactory;  // never destroyed: its thread outlives main
    // A child forked (without exec) must neither share the parent's
    // prepared namespaces (two sandboxes in one namespace) nor find the
    // mutex held by a thread it does not have: it starts afresh.
    ::pthread_atfork([] { instance().m_mutex.lock(); }, [] { instance().m_mutex.unlock(); },
                     [] {
                       NetnsFactory& self = instance();
                       for (int fd : self.m_ready) ::close(fd);
                       self.m_ready.clear();
                       self.m_started = false;
                       // (its waiter, the factory thread, is not in the child)
                       new (&self.m_room) std::condition_variable;
                       self.m_mutex.unlock();
                     });
    return made;
  }();
  return *factory;
}

int NetnsFactory::take() {
  std::unique_lock lock(m_mutex);
  if (!m_started) {
    m_started = true;
    std::thread([this] { run(); }).detach();
  }
  if (m_ready.empty()) return -1;
  int fd = m_ready.front();
  m_ready.pop_front();
  m_room.notify_one();
  return fd;
}

void NetnsFactory::run() {
  for (;;) {
    {
      std::unique_lock lock(m_mutex);
      m_room.wait(lock, [this] { return m_ready.size() < k_keep_ready; });
    }
    if (::unshare(CLONE_NEWNET) != 0) return;  // not permitted: sandboxes make their own
    init::bring_loopback_up();
    int fd = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    std::lock_guard lock(m_mutex);
    m_ready.push_back(fd);
  }
}

bool prepared_netns_allowed() {
  const char* v = std::getenv("GANG_SANDBOX_NETNS");
  return v == nullptr || std::string_view(v) != "clone";
}

}  // namespace gang
