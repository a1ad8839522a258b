// run_report.hpp: the machine-readable account of one `gang build` run
// (`--report FILE`), for scripts that time gangs. It is fed the same worker
// events as the GangView, plus what the frontend knows before the workers
// start (every component's key and dependencies, and which were cached), and
// renders one JSON object whatever the outcome. The schema is documented in
// the README ("The run report"); bump k_report_schema_version on any change
// a script could notice.
//
// Pure logic, no I/O; single-threaded (the frontend's).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "gang/event.hpp"

namespace gang {

inline constexpr int k_report_schema_version = 1;

struct RunComponent {
  std::string name;  // as events name it (the component's id)
  std::string kind;  // chunk, stratum, system, cluster
  std::string key;
  std::vector<std::size_t> deps;  // indices of earlier components
  bool cached_at_start = false;
};

struct RunInfo {
  std::string target;
  std::string target_key;
  std::string arch;
  int instances = 1;
  int max_jobs = 0;
  std::uint64_t seed = 0;
  std::int64_t start_ms = 0;  // ms since the epoch
  std::vector<RunComponent> components;  // dependency order; the target is one of them
};

class RunReport {
 public:
  explicit RunReport(RunInfo info);

  void on_event(const Event& event);
  // A worker process ended (reaped by the frontend), whether or not it said so.
  void on_worker_exit(int instance, std::int64_t time_ms, const std::string& status);

  // The report as one JSON document (pretty-printed, ending in a newline).
  [[nodiscard]] std::string to_json(int exit_status, std::int64_t end_ms) const;

  // The longest chain through the graph, weighting each component by its
  // build time in this run (0 for what it did not build), in seconds.
  [[nodiscard]] double critical_path_s() const;
  // Seconds of useful work: the build times of what this run published.
  [[nodiscard]] double work_s() const;

 private:
  struct Attempt {  // one build by one instance, whatever its outcome
    std::size_t component = 0;
    std::int64_t start_ms = 0;
    std::int64_t end_ms = 0;
    std::string outcome;  // built, wasted, failed, abandoned, stopped
  };
  struct ComponentRun {
    std::string state;  // cached, built, built_elsewhere, failed, skipped
    int instance = 0;
    std::optional<std::int64_t> start_ms, end_ms;
    double build_s = 0, stage_s = 0, publish_s = 0;
    bool lost_race = false;
    std::string reason;  // failed
  };
  struct InstanceRun {
    std::optional<std::int64_t> hello_ms, exit_ms;
    std::string exit_status;
    double busy_s = 0, wasted_s = 0;
    int built = 0, bah = 0;
    int downloaded = 0, pushed = 0, push_failed = 0;
    std::vector<Attempt> attempts;
    std::vector<std::pair<std::size_t, std::int64_t>> bahs;  // (component, when)
    std::optional<std::size_t> building;  // the component of the open build_start
    std::int64_t building_since_ms = 0;
    std::int64_t busy_until_ms = 0;  // end of the busy time counted so far
  };

  [[nodiscard]] std::optional<std::size_t> find(const Event& event) const;
  // Ends `component`'s attempt at end_ms; it began at its build_start if
  // that is the instance's open build, else `seconds` before end_ms.
  void close_attempt(InstanceRun& instance, std::size_t component, std::int64_t end_ms,
                     const std::string& outcome, double seconds = 0);
  static void add_busy(InstanceRun& instance, std::int64_t end_ms, double seconds);

  RunInfo m_info;
  std::vector<ComponentRun> m_components;
  std::map<int, InstanceRun> m_instances;
  std::map<std::string, std::size_t> m_by_key;
  std::multimap<std::string, std::size_t> m_by_name;
  std::optional<std::int64_t> m_target_done_ms;
};

}  // namespace gang
