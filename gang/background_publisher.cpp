#include "gang/background_publisher.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

namespace gang {

BackgroundPublisher::BackgroundPublisher()
    : m_event_fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

BackgroundPublisher::~BackgroundPublisher() {
  drain();
  {
    std::lock_guard lock(m_mutex);
    m_stop = true;
  }
  m_wake.notify_all();
  if (m_thread.joinable()) m_thread.join();
  if (m_event_fd >= 0) ::close(m_event_fd);
}

void BackgroundPublisher::submit(std::size_t index, Job job) {
  std::unique_lock lock(m_mutex);
  m_changed.wait(lock, [this] { return m_pending < k_max_pending; });
  m_queue.emplace_back(index, std::move(job));
  ++m_pending;
  if (!m_thread.joinable()) m_thread = std::thread([this] { run(); });
  lock.unlock();
  m_wake.notify_one();
}

std::vector<std::pair<std::size_t, BuildReport>> BackgroundPublisher::take_finished() {
  std::vector<std::pair<std::size_t, BuildReport>> out;
  std::lock_guard lock(m_mutex);
  out.swap(m_finished);
  std::uint64_t count = 0;
  if (m_event_fd >= 0) [[maybe_unused]] auto n = ::read(m_event_fd, &count, sizeof count);
  return out;
}

void BackgroundPublisher::drain() {
  std::unique_lock lock(m_mutex);
  m_changed.wait(lock, [this] { return m_pending == 0; });
}

void BackgroundPublisher::run() {
  std::unique_lock lock(m_mutex);
  for (;;) {
    m_wake.wait(lock, [this] { return m_stop || !m_queue.empty(); });
    if (m_queue.empty()) break;  // stopping, nothing left
    auto [index, job] = std::move(m_queue.front());
    m_queue.pop_front();
    lock.unlock();
    BuildReport report = job();
    lock.lock();
    m_finished.emplace_back(index, std::move(report));
    --m_pending;
    std::uint64_t one = 1;
    if (m_event_fd >= 0) [[maybe_unused]] auto n = ::write(m_event_fd, &one, sizeof one);
    m_changed.notify_all();
  }
}

}  // namespace gang
