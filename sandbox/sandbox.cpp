#include "sandbox/sandbox.hpp"

#include <fcntl.h>
#include <limits.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstring>
#include <optional>
#include <sstream>
#include <utility>

#include "util/fs.hpp"
#include "util/mounts.hpp"

namespace gang {

namespace {

constexpr off_t k_tail_bytes = 256 * 1024;

std::string signal_name(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev != nullptr ? std::string("SIG") + abbrev : "signal " + std::to_string(sig);
}

}  // namespace

std::string StepResult::describe() const {
  if (ok) return {};
  std::ostringstream out;
  out << "step " << step << " failed: ";
  if (cancelled) {
    out << "cancelled while running `" << command << "`";
  } else if (signal != 0) {
    out << "command `" << command << "` was killed by " << signal_name(signal);
  } else {
    out << "command `" << command << "` exited with status " << exit_status;
  }
  out << '\n';
  if (!last_lines.empty()) {
    out << "last " << last_lines.size() << " lines of the log:\n";
    for (const auto& line : last_lines) out << "  " << line << '\n';
  }
  return out.str();
}

std::vector<std::string> tail_lines(const std::string& path, std::size_t count) {
  std::vector<std::string> lines;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return lines;
  struct stat st {};
  std::string text;
  if (::fstat(fd, &st) == 0) {
    off_t start = std::max<off_t>(0, st.st_size - k_tail_bytes);
    text.resize(static_cast<std::size_t>(st.st_size - start));
    ssize_t n = ::pread(fd, text.data(), text.size(), start);
    text.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    if (start > 0) {  // drop the partial first line
      auto newline = text.find('\n');
      text.erase(0, newline == std::string::npos ? text.size() : newline + 1);
    }
  }
  ::close(fd);
  if (!text.empty() && text.back() == '\n') text.pop_back();
  if (text.empty()) return lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  if (lines.size() > count) lines.erase(lines.begin(), lines.end() - static_cast<long>(count));
  return lines;
}

Result<HeldSteps> hold_steps(const SandboxSpec& spec, const std::vector<Step>& steps,
                             const std::string& log_path, const StepOptions& options) {
  HeldSteps held;
  Invocation what;
  std::optional<std::vector<std::string>> env[2];
  for (const Step& step : steps) {
    if (step.commands.empty()) continue;
    held.m_result.step = step.name;
    auto& kind_env = env[step.kind == StepKind::build ? 0 : 1];
    if (!kind_env) kind_env = sandbox_environment(spec, step.kind);
    for (const auto& command : step.commands) {
      what.commands.push_back({command, step.name, *kind_env});
      held.m_commands.push_back(command);
      held.m_step_of.push_back(step.name);
    }
  }
  if (what.commands.empty()) return held;
  held.m_log_path = log_path;
  held.m_log_fd = Fd(::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
  if (held.m_log_fd.get() < 0) return make_errno_error("cannot open the build log " + log_path);
  what.output_fd = held.m_log_fd.get();
  NamespaceLauncher real;
  Launcher& launcher = options.launcher != nullptr ? *options.launcher : real;
  auto sandbox = launcher.start(spec, what);
  if (!sandbox) return std::unexpected(sandbox.error());
  held.m_sandbox = std::move(*sandbox);
  return held;
}

Result<StepResult> HeldSteps::run(const StepControl& control) {
  if (!m_sandbox) return m_result;
  auto outcome = m_sandbox->run(control);
  m_sandbox.reset();
  m_log_fd.reset();
  if (!outcome) return std::unexpected(outcome.error());
  StepResult result = m_result;
  if (outcome->failed_index < 0 && !outcome->cancelled) return result;

  result.ok = false;
  result.cancelled = outcome->cancelled;
  result.sandbox_killed = outcome->init_killed && !outcome->cancelled;
  std::size_t index = std::min(static_cast<std::size_t>(std::max(0, outcome->failed_index)),
                               m_commands.size() - 1);
  result.step = m_step_of[index];
  result.command = m_commands[index];
  int status = outcome->wait_status;
  if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  } else if (WIFEXITED(status)) {
    result.exit_status = WEXITSTATUS(status);
  }
  result.last_lines = tail_lines(m_log_path, k_failure_log_lines);
  return result;
}

Result<StepResult> run_steps(const SandboxSpec& spec, const std::vector<Step>& steps,
                             const std::string& log_path, const StepOptions& options) {
  auto held = hold_steps(spec, steps, log_path, options);
  if (!held) return std::unexpected(held.error());
  return held->run(options.control);
}

Result<StepResult> run_step(const SandboxSpec& spec, const std::string& step,
                            const std::vector<std::string>& commands, const std::string& log_path,
                            const StepOptions& options) {
  StepKind kind = options.kind.value_or(step == "build" ? StepKind::build : StepKind::other);
  auto result = run_steps(spec, {Step{step, kind, commands}}, log_path, options);
  if (result) result->step = step;
  return result;
}

Result<int> run_interactive(const SandboxSpec& spec, const std::vector<std::string>& argv,
                            Launcher* launcher) {
  Invocation what;
  what.argv = argv.empty() ? std::vector<std::string>{"sh", "-i"} : argv;
  what.env = sandbox_environment(spec, StepKind::build);
  NamespaceLauncher real;
  Launcher& chosen = launcher != nullptr ? *launcher : real;
  auto outcome = chosen.launch(spec, what, {});
  if (!outcome) return std::unexpected(outcome.error());
  int status = outcome->wait_status;
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 1;
}

Result<void> remove_sandbox(const std::string& sandbox_dir) {
  if (!path_exists(sandbox_dir)) return {};
  char resolved[PATH_MAX];
  std::string dir = ::realpath(sandbox_dir.c_str(), resolved) != nullptr ? resolved : sandbox_dir;
  for (const auto& point : mounts_under(dir))
    if (::umount2(point.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
      return make_errno_error("cannot unmount " + point);
  // (overlayfs's mode-000 work directories: remove_tree opens them up.)
  return remove_tree(sandbox_dir);
}

}  // namespace gang
