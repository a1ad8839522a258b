#include "gang/gang_view.hpp"

#include <map>
#include <vector>

#include <algorithm>
#include <cstdio>

namespace gang {

std::string format_elapsed(std::int64_t ms) {
  if (ms < 0) ms = 0;
  std::int64_t s = ms / 1000;
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%02lld:%02lld:%02lld", static_cast<long long>(s / 3600),
                static_cast<long long>(s / 60 % 60), static_cast<long long>(s % 60));
  return buffer;
}

int GangView::done_this_run() const {
  // What was cached before the first worker started is total - todo; every
  // component cached beyond that was built or found by this run.
  return std::clamp(m_cached - (m_total - m_todo), 0, m_todo);
}

std::string GangView::counter() const {
  return "[" + std::to_string(done_this_run()) + "/" + std::to_string(m_todo) + "/" +
         std::to_string(m_total) + "]";
}

std::string GangView::prefix(std::int64_t time_ms, int instance,
                             const std::string& component) const {
  std::string out = format_elapsed(time_ms - m_start_ms) + " " + counter() + " [#" +
                    std::to_string(instance) + "]";
  if (!component.empty()) out += " [" + component + "]";
  return out + " ";
}

std::optional<std::string> GangView::on_event(const Event& e) {
  Instance& inst = m_instances[e.instance];
  if (e.total > 0) m_total = e.total;
  // The earliest worker saw the most to do; the cache only grows (an
  // abandoned dependency is rebuilt, and counted once).
  m_cached = std::max(m_cached, e.done);
  m_todo = std::max(m_todo, e.todo);
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%.1f", e.seconds);
  switch (e.type) {
    case EventType::hello:
      inst.seed = e.message;
      return prefix(e.time_ms, e.instance, "") + "Worker started, seed " + e.message;
    case EventType::log:
      return prefix(e.time_ms, e.instance, e.component) + e.message;
    case EventType::build_start:
      inst.building = e.component;
      return prefix(e.time_ms, e.instance, e.component) + "Starting build" +
             (e.message.empty() ? "" : " (" + e.message + ")");
    case EventType::build_done:
      inst.building.clear();
      inst.built.push_back(e.component);
      inst.build_seconds += e.seconds;
      m_built.insert(e.component);
      return prefix(e.time_ms, e.instance, e.component) + "Elapsed time for build " +
             format_elapsed(static_cast<std::int64_t>(e.seconds * 1000)) + " (" + seconds + " s)";
    case EventType::bah:
      if (inst.building == e.component) inst.building.clear();
      inst.lost.push_back(e.component);
      ++m_bah_count;
      m_bah_seconds += e.seconds;
      return prefix(e.time_ms, e.instance, e.component) + "Bah! " + e.message;
    case EventType::failed:
      if (inst.building == e.component) inst.building.clear();
      // Every instance reports a failure recorded before it looked; once is enough.
      if (m_failures.contains(e.component))
        return prefix(e.time_ms, e.instance, e.component) + "Skipping: " + e.message;
      m_failures[e.component] = Failure{e.message, e.detail};
      return prefix(e.time_ms, e.instance, e.component) + "ERROR: " + e.message +
             (e.detail.empty() ? "" : "\n    log: " + e.detail);
    case EventType::cached:
      return std::nullopt;
    case EventType::progress:
      return std::nullopt;
    case EventType::target_done:
      if (!m_target_done_ms) m_target_done_ms = e.time_ms;
      return prefix(e.time_ms, e.instance, e.component) + "Target is cached" +
             (e.message.empty() ? "" : ": " + e.message);
    case EventType::downloaded:
      ++m_downloaded;
      m_downloaded_seconds += e.seconds;
      return prefix(e.time_ms, e.instance, e.component) + "Downloaded" +
             (e.message.empty() ? "" : " " + e.message) + " in " + seconds + " s";
    case EventType::pushed:
      ++m_pushed;
      return std::nullopt;  // counted in the summary; one line per upload is noise
    case EventType::push_failed:
      m_push_failures.emplace_back(e.component, e.message);
      return prefix(e.time_ms, e.instance, e.component) + "Upload to the remote cache failed: " +
             e.message;
    case EventType::exit:
      inst.building.clear();
      inst.exit_status = e.message;
      return prefix(e.time_ms, e.instance, "") + "Worker exiting: " + e.message;
  }
  return std::nullopt;
}

std::string GangView::raw_line(int instance, const std::string& text, std::int64_t now) const {
  return prefix(now, instance, "") + text;
}

std::string GangView::frontend_line(const std::string& text, std::int64_t now) const {
  return format_elapsed(now - m_start_ms) + " " + counter() + " " + text;
}

std::string GangView::status(std::int64_t now) const {
  std::string out = counter();
  std::string building;
  for (const auto& [number, inst] : m_instances) {
    if (inst.building.empty()) continue;
    building += " " + inst.building + "(#" + std::to_string(number) + ")";
  }
  out += building.empty() ? " idle" : " building:" + building;
  out += " | " + format_elapsed(now - m_start_ms);
  out += " | Bah! " + std::to_string(m_bah_count);
  return out;
}

std::string GangView::summary(std::int64_t now) const {
  char line[256];
  std::string out;
  std::snprintf(line, sizeof line, "Summary: total elapsed %s (%.1f s)",
                format_elapsed(now - m_start_ms).c_str(), (now - m_start_ms) / 1000.0);
  out += line;
  for (const auto& [number, inst] : m_instances) {
    std::snprintf(line, sizeof line, "\n  instance %d: built %zu, Bah! %zu, busy %.1f s", number,
                  inst.built.size(), inst.lost.size(), inst.build_seconds);
    out += line;
    if (!inst.seed.empty()) out += ", seed " + inst.seed;
  }
  std::snprintf(line, sizeof line, "\n  Bah! %d lost race%s, %.1f s of work wasted", m_bah_count,
                m_bah_count == 1 ? "" : "s", m_bah_seconds);
  out += line;
  if (m_downloaded > 0 || m_pushed > 0 || !m_push_failures.empty()) {
    std::snprintf(line, sizeof line,
                  "\n  remote cache: downloaded %d (%.1f s), uploaded %d, uploads failed %zu",
                  m_downloaded, m_downloaded_seconds, m_pushed, m_push_failures.size());
    out += line;
    std::size_t shown = 0;
    for (const auto& [component, why] : m_push_failures) {
      if (++shown > 5) {
        out += "\n    ... and " + std::to_string(m_push_failures.size() - 5) + " more";
        break;
      }
      out += "\n    upload of " + component + " failed: " + why;
    }
  }
  // Workers that stopped on an error of their own (not a build's): the
  // cause of a gang that ended without its target, e.g. a damaged index.
  std::map<std::string, std::vector<int>> stopped;
  for (const auto& [number, inst] : m_instances) {
    const auto& status = inst.exit_status;
    if (status && (status->starts_with("error:") || status->starts_with("cannot claim")))
      stopped[*status].push_back(number);
  }
  for (const auto& [status, numbers] : stopped) {
    std::string which;
    for (int n : numbers) which += (which.empty() ? "" : ", ") + std::to_string(n);
    out += "\n  instance" + std::string(numbers.size() == 1 ? " " : "s ") + which + " stopped: " + status;
  }
  if (m_failures.empty()) {
    out += "\n  failures: none";
  } else {
    out += "\n  failures: " + std::to_string(m_failures.size());
    for (const auto& [component, failure] : m_failures) {
      // The first line: the log's tail was shown when it failed, and is in the log.
      out += "\n    " + component + ": " + failure.reason.substr(0, failure.reason.find('\n'));
      if (!failure.log_path.empty()) out += "\n      log:   " + failure.log_path;
      if (!is_give_up(failure.reason)) out += "\n      shell: gang shell " + component;
    }
  }
  return out;
}

std::vector<std::string> GangView::component_lists() const {
  std::vector<std::string> out;
  auto join = [](const std::vector<std::string>& names) {
    std::string text;
    for (const auto& name : names) text += " " + name;
    return text.empty() ? std::string(" (none)") : text;
  };
  for (const auto& [number, inst] : m_instances) {
    out.push_back("instance " + std::to_string(number) + " built:" + join(inst.built));
    if (!inst.lost.empty())
      out.push_back("instance " + std::to_string(number) + " lost (Bah!):" + join(inst.lost));
  }
  return out;
}

}  // namespace gang
