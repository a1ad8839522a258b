// frontend.hpp: the `gang build` process. It builds nothing itself: it
// starts N worker processes by exec (`gang worker ...`), reads their events
// and output over pipes, renders them through the StatusPrinter, forwards
// signals (SIGINT/SIGTERM stop the gang within 2 s; SIGTSTP/SIGCONT suspend
// and resume it, running builds included) and prints the summary.
//
// Each worker runs in its own process group, so a terminal's job-control
// signals reach only the frontend, which relays them to every group; a
// worker's sandbox lives in its worker's group. Workers die with the
// frontend (PR_SET_PDEATHSIG). Workers never wait on the frontend: their
// event pipes are non-blocking and enlarged, and the frontend only reads.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gang/event.hpp"

namespace gang {

struct GangOptions {
  // The worker command line minus "--instance I --seed S --events-fd 3";
  // argv[0] is the gang executable.
  std::vector<std::string> worker_argv;
  int instances = 1;
  std::uint64_t seed = 0;   // worker I (1-based) gets seed + I - 1
  std::string log_file;     // when set, every event's line also goes here
  std::string target;       // for messages only
  int total = 0;            // components in the graph, until workers report
  std::int64_t start_ms = 0;  // when the run started (ms since the epoch); 0: now
  // Observers (the run report): every worker event, and every worker's end
  // (time, and how it ended: "exit 0", "signal 9").
  std::function<void(const Event&)> on_event;
  std::function<void(int instance, std::int64_t time_ms, const std::string& how)> on_worker_exit;
};

// Runs the gang to completion and returns the process exit status: 0 when
// the target was built, 1 when something failed, 130/143 after SIGINT/SIGTERM.
[[nodiscard]] int run_gang(const GangOptions& options);

// The path of the running executable (/proc/self/exe).
[[nodiscard]] std::string self_executable();

}  // namespace gang
