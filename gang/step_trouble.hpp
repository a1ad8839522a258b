// step_trouble.hpp: whose trouble a build step's failure is. A component is
// recorded failed only when its own commands fail; a step stopped by
// something outside it is the machine's trouble: the build is `abandoned`
// (nothing recorded) and the worker tries again, at most k_max_abandons
// times (worker.hpp). Outside causes, in the order they are checked:
//   - the sandbox's init was killed before it reported (a user's `kill`,
//     the OOM killer, an interrupt of the whole process group);
//   - the step's command ended by a signal somebody sends (SIGKILL,
//     SIGTERM, SIGINT, SIGHUP, SIGQUIT), or exited 128 + one of those (how
//     a shell reports a command it ran being killed so). A program's own
//     crash (SIGSEGV, SIGABRT, SIGBUS, SIGILL, SIGFPE: a compiler bug, a
//     failing test) is the component's failure;
//   - the kernel's OOM killer killed something while the step ran
//     (/proc/vmstat `oom_kill` grew): `make` reports its killed compiler as
//     an ordinary failure (status 2), so the status alone cannot tell;
//   - the log's last lines name a full or failing file system (ENOSPC,
//     EDQUOT, EIO), or the cache's file system is nearly full (less free
//     than 1% of it, at most 64 MiB and at least 256 KiB, or no inodes).
// The price of a false "outside" (a step that fails with one of these on
// purpose) is two more attempts and an unrecorded give-up, never a wrong
// artifact.
//
// Concurrency: pure functions, plus reads of /proc/vmstat and statvfs.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "sandbox/sandbox.hpp"

namespace gang {

// The system-wide count of OOM kills so far (/proc/vmstat), or nullopt.
[[nodiscard]] std::optional<std::uint64_t> oom_kill_count();

// Why the failed step `result` is not the component's failure, or nullopt
// when it is. oom_kills_before: oom_kill_count() taken before the step ran.
// cache_root: a directory on the cache's file system.
[[nodiscard]] std::optional<std::string> outside_cause(
    const StepResult& result, std::optional<std::uint64_t> oom_kills_before,
    const std::string& cache_root);

// True when an error's text names an I/O fault of the machine rather than
// bad input: a full disk or quota (ENOSPC, EDQUOT), an I/O error (EIO), or
// exhausted memory or descriptors (ENOMEM, EMFILE, ENFILE).
[[nodiscard]] bool is_machine_trouble(const std::string& error_text);

}  // namespace gang
