// gang_view.hpp: the frontend's model of a running gang, fed with worker
// events. It turns each event into the log line to print (ybd's shape,
// "[elapsed] [done/todo/total] [#instance] [component] message"), keeps the
// status line (done/total, what is building, elapsed, Bah! count) and
// produces the end-of-run summary. Pure logic, no I/O: the frontend decides
// where the text goes.
//
// Concurrency: single-threaded (the frontend's).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "gang/event.hpp"

namespace gang {

class GangView {
 public:
  explicit GangView(std::int64_t start_ms, int total = 0) : m_start_ms(start_ms), m_total(total) {}

  // Records the event; returns the log line to print for it, if any.
  std::optional<std::string> on_event(const Event& event);

  // A log line for text a worker wrote to its stdout/stderr.
  [[nodiscard]] std::string raw_line(int instance, const std::string& text, std::int64_t now) const;

  // A log line from the frontend itself.
  [[nodiscard]] std::string frontend_line(const std::string& text, std::int64_t now) const;

  // "[done/todo/total] building: a b | 12s | Bah! 3".
  [[nodiscard]] std::string status(std::int64_t now) const;

  // The end-of-run summary, several lines, no trailing newline: counts per
  // instance (built, Bah!, busy seconds), never every component's name, and
  // each failure (this run's, or one recorded earlier) with its log and how
  // to look inside it.
  [[nodiscard]] std::string summary(std::int64_t now) const;

  // The per-component lists the summary leaves out, one line per instance
  // ("instance 1 built: a b c"), for the --log file.
  [[nodiscard]] std::vector<std::string> component_lists() const;

  [[nodiscard]] bool target_done() const { return m_target_done_ms.has_value(); }
  [[nodiscard]] std::optional<std::int64_t> target_done_ms() const { return m_target_done_ms; }
  [[nodiscard]] int bah_count() const { return m_bah_count; }

  // The counter as ybd defines it: `todo` is what this run had to build (not
  // cached when the first worker started), `done` how many of those this run
  // has built or found built by another instance (0 <= done <= todo), `total`
  // the components in the graph.
  [[nodiscard]] int done_this_run() const;
  [[nodiscard]] int todo() const { return m_todo; }
  [[nodiscard]] int total() const { return m_total; }

  // "[done/todo/total]".
  [[nodiscard]] std::string counter() const;
  // True for a failure that was the machine's trouble (a full disk, kills
  // from outside): the worker gave up without recording it, so a plain
  // re-run tries again and no sandbox was kept.
  [[nodiscard]] static bool is_give_up(const std::string& reason) {
    return reason.starts_with("gave up after ");
  }
  struct Failure {
    std::string reason;
    std::string log_path;  // may be empty
  };
  [[nodiscard]] const std::map<std::string, Failure>& failures() const { return m_failures; }

 private:
  struct Instance {
    std::vector<std::string> built;
    std::vector<std::string> lost;  // Bah!
    double build_seconds = 0;
    std::string building;
    std::string seed;
    std::optional<std::string> exit_status;
  };

  [[nodiscard]] std::string prefix(std::int64_t time_ms, int instance,
                                   const std::string& component) const;

  std::int64_t m_start_ms;
  std::map<int, Instance> m_instances;
  int m_cached = 0;  // most components any worker has counted as cached
  int m_todo = 0;    // most components any worker found to build when it started
  int m_total = 0;
  int m_bah_count = 0;
  int m_downloaded = 0;
  double m_downloaded_seconds = 0;
  int m_pushed = 0;
  std::vector<std::pair<std::string, std::string>> m_push_failures;  // component, why
  double m_bah_seconds = 0;
  std::set<std::string> m_built;
  std::map<std::string, Failure> m_failures;  // by component
  std::optional<std::int64_t> m_target_done_ms;
};

// "00:01:05" for 65,000 ms.
[[nodiscard]] std::string format_elapsed(std::int64_t ms);

}  // namespace gang
