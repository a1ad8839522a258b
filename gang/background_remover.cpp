#include "gang/background_remover.hpp"

namespace gang {

BackgroundRemover::BackgroundRemover(std::function<void(const std::string&)> remove)
    : m_remove(std::move(remove)) {}

BackgroundRemover::~BackgroundRemover() {
  {
    std::lock_guard lock(m_mutex);
    m_stop = true;
  }
  m_wake.notify_all();
  if (m_thread.joinable()) m_thread.join();
}

void BackgroundRemover::add(std::string dir) {
  add_job([this, dir = std::move(dir)] { m_remove(dir); });
}

void BackgroundRemover::add_job(std::function<void()> job) {
  {
    std::lock_guard lock(m_mutex);
    m_queue.push_back(std::move(job));
    if (!m_thread.joinable()) m_thread = std::thread([this] { run(); });
  }
  m_wake.notify_one();
}

void BackgroundRemover::drain() {
  std::unique_lock lock(m_mutex);
  m_idle.wait(lock, [this] { return m_queue.empty() && !m_busy; });
}

void BackgroundRemover::run() {
  std::unique_lock lock(m_mutex);
  for (;;) {
    m_wake.wait(lock, [this] { return m_stop || !m_queue.empty(); });
    if (m_stop) break;
    std::function<void()> job = std::move(m_queue.front());
    m_queue.pop_front();
    m_busy = true;
    lock.unlock();
    job();
    lock.lock();
    m_busy = false;
    if (m_queue.empty()) m_idle.notify_all();
  }
  m_busy = false;
  m_idle.notify_all();
}

}  // namespace gang
