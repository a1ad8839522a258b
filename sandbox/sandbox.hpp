// sandbox/: runs build commands isolated from the host. A component's steps
// run in one sandbox: new mount, PID, network (only a down-then-up `lo`), IPC
// and UTS namespaces, plus a user namespace when gang is not root. The root is an overlayfs whose
// lower layers are the staged dependency trees over a base (the host's /usr,
// /bin, /lib*, /etc; nothing; or a sysroot); the build and install
// directories are bind-mounted read-write at /NAME.build and /NAME.inst. The
// folder knows nothing about definitions or the cache: callers hand it paths.
// See sandbox/README.md for the mechanism.
//
// sandbox.hpp: the entry points the build pipeline, the worker and
// `gang shell` use: run a component's steps (or one step's commands),
// re-enter a sandbox interactively, remove a sandbox directory.
//
// Concurrency: every function blocks its calling thread. Different sandbox
// directories may be used concurrently from any threads or processes; one
// sandbox directory must be used by one run at a time.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sandbox/launcher.hpp"
#include "sandbox/spec.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

namespace gang {

// How many log lines a failed step reports.
inline constexpr std::size_t k_failure_log_lines = 40;

// The outcome of one step. A failure names the step, the command, how it
// ended and the tail of the log; describe() renders that for the user.
struct StepResult {
  std::string step;
  bool ok = true;
  std::string command;                  // the failing command (empty when ok)
  int exit_status = 0;                  // its exit status, when it exited
  int signal = 0;                       // the signal that killed it, when killed
  bool cancelled = false;               // stopped through StepControl::should_stop
  bool sandbox_killed = false;          // the sandbox's init was killed from outside
  std::vector<std::string> last_lines;  // last k_failure_log_lines of the log

  // "step build failed: command `make` exited with status 2" plus the log
  // tail, one line each, indented; "" when ok.
  [[nodiscard]] std::string describe() const;
};

// One step of a component, for run_steps.
struct Step {
  std::string name;                   // e.g. "configure-commands"; labels its log lines
  StepKind kind = StepKind::other;    // StepKind::build commands get MAKEFLAGS
  std::vector<std::string> commands;  // each run as `sh -c -e CMD`
};

struct StepOptions {
  StepControl control;
  // run_step only: MAKEFLAGS is set for StepKind::build; by default a step
  // named "build" is a build step and every other step is not.
  std::optional<StepKind> kind;
  // Defaults to a NamespaceLauncher; tests may pass a fake.
  Launcher* launcher = nullptr;
};

// Runs every command of `steps`, in order, in ONE sandbox built from `spec`
// (so a component pays for one set of namespaces and mounts, not one per
// step): each as `sh -c -e CMD` with cwd /NAME.build and the environment of
// its step's kind, preceded in `log_path` (created if missing, appended to)
// by "# [STEP] CMD". Stops at the first failing command; the StepResult then
// names its step and command. When all succeed, `step` is the last step's
// name. An error means the sandbox could not be built or the log not opened.
// Steps without commands are skipped; none at all succeeds without starting
// a sandbox. options.kind is ignored.
[[nodiscard]] Result<StepResult> run_steps(const SandboxSpec& spec, const std::vector<Step>& steps,
                                           const std::string& log_path,
                                           const StepOptions& options = {});

// run_steps in two halves, so that a caller can build the next sandbox
// while the current one's commands run: hold_steps() opens the log and
// starts building the sandbox (Launcher::start); run() lets the commands
// run and reports as run_steps() does. Destroyed without run(), the
// sandbox is dropped with nothing run. options.control is ignored (run()
// takes its own).
class HeldSteps {
 public:
  [[nodiscard]] Result<StepResult> run(const StepControl& control);
  // The caller renamed the log to `path` (a failure's tail is read there).
  void log_moved_to(std::string path) { m_log_path = std::move(path); }

 private:
  friend Result<HeldSteps> hold_steps(const SandboxSpec&, const std::vector<Step>&,
                                      const std::string&, const StepOptions&);
  StepResult m_result;  // when every command succeeds
  std::vector<std::string> m_commands;
  std::vector<std::string> m_step_of;  // the step of each command
  std::string m_log_path;
  // (the sandbox before the log: dropped first, its init killed before
  // the log closes)
  Fd m_log_fd;
  std::unique_ptr<HeldSandbox> m_sandbox;  // null: no commands
};

[[nodiscard]] Result<HeldSteps> hold_steps(const SandboxSpec& spec, const std::vector<Step>& steps,
                                           const std::string& log_path,
                                           const StepOptions& options = {});

// Runs `commands` in order, each as `sh -c -e CMD` with cwd /NAME.build, in
// one sandbox built from `spec` (run_steps with one step), appending their stdout+stderr to `log_path`
// (created if missing; each command is preceded by a "# [step] CMD" line).
// Stops at the first failing command. An error means the sandbox could not be
// built or the log not opened; a command's failure is a StepResult with ok ==
// false. An empty command list succeeds without starting a sandbox.
[[nodiscard]] Result<StepResult> run_step(const SandboxSpec& spec, const std::string& step,
                                          const std::vector<std::string>& commands,
                                          const std::string& log_path,
                                          const StepOptions& options = {});

// Runs `argv` (default: `sh -i`) in a sandbox built from `spec` with the
// caller's stdin/stdout/stderr attached, the build-step environment (with
// MAKEFLAGS) and cwd /NAME.build; returns its exit status (128 + N when killed
// by signal N). The caller ignores SIGINT/SIGQUIT meanwhile, like system().
[[nodiscard]] Result<int> run_interactive(const SandboxSpec& spec,
                                          const std::vector<std::string>& argv,
                                          Launcher* launcher = nullptr);

// Unmounts anything still mounted under `sandbox_dir` (normally nothing: the
// mounts live in the sandbox's own mount namespace) and removes the tree.
[[nodiscard]] Result<void> remove_sandbox(const std::string& sandbox_dir);

// The last `count` lines of the file at `path` (reads at most its last 256
// KiB). Missing file: empty.
[[nodiscard]] std::vector<std::string> tail_lines(const std::string& path, std::size_t count);

}  // namespace gang
