#include "gang/mirror_progress.hpp"

#include <cstdio>

namespace gang {

std::string format_bytes(std::uint64_t bytes) {
  if (bytes < 1024) return std::to_string(bytes) + " B";
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes) / 1024;
  int unit = 0;
  while (value >= 1024 && unit < 3) {
    value /= 1024;
    ++unit;
  }
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.1f %s", value, units[unit]);
  return buffer;
}

MirrorProgress::MirrorProgress(std::map<std::string, std::string> names, Sink sink)
    : m_names(std::move(names)), m_sink(std::move(sink)) {}

std::string MirrorProgress::name_of(const std::string& url) const {
  auto found = m_names.find(url);
  return found == m_names.end() ? url : found->second;
}

FetchObserver MirrorProgress::observer() {
  FetchObserver observer;
  observer.started = [this](const std::string& url, bool cloning) {
    if (m_sink.line)
      m_sink.line(cloning ? "Mirroring " + name_of(url) : "Refreshing mirror for " + name_of(url));
  };
  observer.progress = [this](const std::string& url, std::uint64_t bytes) {
    if (m_sink.status) m_sink.status("Mirroring " + name_of(url) + ": " + format_bytes(bytes));
  };
  observer.finished = [this](const std::string& url, bool cloning, std::uint64_t bytes,
                             double seconds, bool ok) {
    ++m_transfers;
    m_bytes += bytes;
    if (m_sink.status) m_sink.status("");
    if (!m_sink.line) return;
    char took[64];
    std::snprintf(took, sizeof took, "%s in %.1f s", format_bytes(bytes).c_str(), seconds);
    std::string name = name_of(url);
    if (!ok) {
      m_sink.line((cloning ? "Failed to mirror " : "Failed to refresh mirror for ") + name +
                  " after " + took);
    } else {
      m_sink.line((cloning ? "Mirrored " : "Refreshed mirror for ") + name + ": " + took);
    }
  };
  return observer;
}

std::map<std::string, std::string> MirrorProgress::repo_names(const BuildGraph& graph,
                                                              const GitMirrors& git) {
  std::map<std::string, std::string> names;
  auto add = [&](const std::string& repo) {
    if (repo.empty()) return;
    if (auto url = git.expand_url(repo)) names.emplace(*url, repo);
  };
  for (const auto& component : graph.components) {
    add(component.repo);
    for (const auto& [path, url] : component.submodules) add(url);
  }
  return names;
}

}  // namespace gang
