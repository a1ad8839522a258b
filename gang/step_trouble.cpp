#include "gang/step_trouble.hpp"

#include <algorithm>

#include <sys/statvfs.h>

#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>

namespace gang {

namespace {

// Signals that are sent to a process by somebody (a user, the OOM killer,
// a terminal), as opposed to raised by the program's own fault.
bool is_sent_signal(int sig) {
  return sig == SIGKILL || sig == SIGTERM || sig == SIGINT || sig == SIGHUP || sig == SIGQUIT;
}

std::string signal_text(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev != nullptr ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

bool mentions_any(const std::string& text, std::initializer_list<int> errnos) {
  for (int err : errnos)
    if (text.find(std::strerror(err)) != std::string::npos) return true;
  return false;
}

}  // namespace

std::optional<std::uint64_t> oom_kill_count() {
  std::ifstream in("/proc/vmstat");
  std::string name;
  std::uint64_t value = 0;
  while (in >> name >> value)
    if (name == "oom_kill") return value;
  return std::nullopt;
}

bool is_machine_trouble(const std::string& error_text) {
  return mentions_any(error_text, {ENOSPC, EDQUOT, EIO, ENOMEM, EMFILE, ENFILE});
}

std::optional<std::string> outside_cause(const StepResult& result,
                                         std::optional<std::uint64_t> oom_kills_before,
                                         const std::string& cache_root) {
  if (result.ok || result.cancelled) return std::nullopt;
  std::string where = "step " + result.step + " (`" + result.command + "`)";
  if (result.sandbox_killed)
    return "the sandbox was killed from outside during " + where;
  if (result.signal != 0 && is_sent_signal(result.signal))
    return where + " was killed by " + signal_text(result.signal) + " from outside";
  if (result.exit_status > 128 && is_sent_signal(result.exit_status - 128))
    return where + " exited with status " + std::to_string(result.exit_status) +
           " (killed by " + signal_text(result.exit_status - 128) + " from outside)";
  if (oom_kills_before) {
    auto now = oom_kill_count();
    if (now && *now > *oom_kills_before)
      return where + " failed while the kernel's OOM killer killed a process";
  }
  std::string tail;
  for (const auto& line : result.last_lines) tail += line + "\n";
  if (mentions_any(tail, {ENOSPC, EDQUOT, EIO}))
    return where + " failed on a full or failing file system (see the log)";
  // Nearly full counts: a tool that met ENOSPC may say only "configure
  // failed", and a few blocks may be free again by the time we look.
  struct statvfs fs {};
  if (!cache_root.empty() && ::statvfs(cache_root.c_str(), &fs) == 0 && fs.f_blocks > 0) {
    const double total = static_cast<double>(fs.f_blocks) * static_cast<double>(fs.f_frsize);
    const double available = static_cast<double>(fs.f_bavail) * static_cast<double>(fs.f_frsize);
    const double nearly_full = std::max(256.0 * 1024, std::min(total / 100, 64.0 * 1024 * 1024));
    if (available < nearly_full || fs.f_favail == 0)
      return where + " failed while the cache's file system is full (" +
             std::to_string(static_cast<long long>(available / 1024)) + " KiB free)";
  }
  return std::nullopt;
}

}  // namespace gang
