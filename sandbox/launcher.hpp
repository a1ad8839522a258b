// launcher.hpp: the OS side of the sandbox. A Launcher starts one sandbox
// process tree for a SandboxSpec, runs either a list of shell commands (one
// after the other, `sh -c -e CMD`, stopping at the first failure) or one
// program with the terminal attached, and reports how it ended. The
// interface lets the step logic above it (sandbox.hpp) be tested with a fake;
// NamespaceLauncher is the real one, built on Linux namespaces and overlayfs
// (the mechanism is described in sandbox/README.md).
//
// Process tree: the caller (a gang worker) -> the sandbox init, PID 1 of a new
// PID namespace, a small static program exec'd right after
// clone(CLONE_VM | CLONE_VFORK) (sandbox/init/, init_protocol.hpp: nothing of
// the caller's memory is copied or shared) -> `sh` (vfork + execve). In command mode the init starts a
// session of its own, so builds have no controlling terminal; in program
// mode (gang shell) it stays in the caller's session and the program gets
// the terminal. The init
// reaps orphans, dies with its parent (PR_SET_PDEATHSIG=SIGKILL) and, in
// command mode, on SIGINT/SIGTERM/SIGHUP/SIGQUIT; when it dies the kernel
// kills everything else in the namespace. A caller that calls
// relay_job_control_to_sandboxes() passes SIGTSTP/SIGCONT on to its
// sandboxes, which stop and resume the commands.
//
// Concurrency: launch() blocks the calling thread until the sandbox is gone
// (start() returns once the init exists; its run() blocks as launch() does).
// Several threads or processes may launch sandboxes at once as long as their
// sandbox directories differ; lower layers may be shared. Because
// PR_SET_PDEATHSIG follows the parent *thread*, the calling thread must not
// exit while launch() runs (it cannot: launch() blocks it).
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sandbox/spec.hpp"
#include "util/error.hpp"

namespace gang {

// How a caller watches and stops a running sandbox.
struct StepControl {
  // Polled about every k_stop_poll_interval while the sandbox runs (the
  // sandbox's end wakes the caller at once, not at the next poll); returning
  // true kills the whole sandbox (SIGKILL to its init) and the launch
  // reports `cancelled`.
  std::function<bool()> should_stop;
  // Called once with the init's pid (in the caller's PID namespace) right
  // after it starts; e.g. to forward signals to it.
  std::function<void(pid_t)> on_start;
};

// How often StepControl::should_stop is polled.
inline constexpr int k_stop_poll_interval_ms = 200;

// One command of command mode: run as `sh -c -e TEXT` with cwd /NAME.build
// and exactly the environment `env` ("KEY=VALUE"), after "# [label] TEXT" is
// written to the output.
struct ShellCommand {
  std::string text;
  std::string label;
  std::vector<std::string> env;
};

// What to run inside the sandbox.
struct Invocation {
  // Command mode: each runs in order until one fails. Output goes to
  // `output_fd`.
  std::vector<ShellCommand> commands;
  // Program mode (when commands is empty): argv[0] is looked up on the
  // sandbox's PATH; stdin/stdout/stderr are inherited (the terminal).
  std::vector<std::string> argv;
  std::vector<std::string> env;  // program mode: the complete environment, "KEY=VALUE"
  int output_fd = -1;            // command mode: stdout+stderr; stdin is /dev/null
};

struct LaunchOutcome {
  int failed_index = -1;   // command mode: index of the failing command, -1 if none
  int wait_status = 0;     // waitpid status of the failing command / the program
  bool cancelled = false;  // stopped through StepControl::should_stop
  // The init died before it reported how the commands ended: the whole
  // sandbox was killed from outside (a user's kill, the OOM killer, an
  // interrupt); wait_status is then the init's own.
  bool init_killed = false;
};

// A sandbox started by Launcher::start whose commands wait for run().
// Destroying it without run() kills it: nothing of its commands runs.
class HeldSandbox {
 public:
  virtual ~HeldSandbox() = default;
  // Lets the commands run and waits for them, as Launcher::launch does
  // (an error there may also be one of building the sandbox). Once only.
  [[nodiscard]] virtual Result<LaunchOutcome> run(const StepControl& control) = 0;
};

class Launcher {
 public:
  virtual ~Launcher() = default;
  // Runs `what` in a sandbox made from `spec` and waits for it. Errors are
  // failures to build the sandbox (a mount refused, clone not permitted),
  // never a command's failure, which is reported in the outcome.
  [[nodiscard]] virtual Result<LaunchOutcome> launch(const SandboxSpec& spec,
                                                     const Invocation& what,
                                                     const StepControl& control) = 0;
  // Command mode only: starts building the sandbox and returns without
  // waiting; the commands start when the result's run() is called, so a
  // caller can build the next sandbox while the current one's commands run.
  // The default keeps copies of `spec` and `what` and launches them in
  // run(); the launcher must outlive the result.
  [[nodiscard]] virtual Result<std::unique_ptr<HeldSandbox>> start(const SandboxSpec& spec,
                                                                   const Invocation& what);
};

// Installs SIGTSTP and SIGCONT handlers in the calling process: SIGTSTP
// stops (SIGSTOP) every command-mode sandbox this process is running, then
// the process itself; SIGCONT resumes them. A build's sandbox is in a
// session of its own, so a stop sent to the caller's process group would
// not reach it otherwise. Replaces any handlers of those signals.
void relay_job_control_to_sandboxes();

// The real launcher: mount, PID, IPC, UTS and network namespaces, plus a user
// namespace (mapping the caller's uid/gid to root) when not running as root;
// the commands then run in a second user namespace that owns none of those,
// with no_new_privs, so they hold no privilege over the host even when gang
// runs as root (sandbox/README.md, "Threat model").
class NamespaceLauncher final : public Launcher {
 public:
  [[nodiscard]] Result<LaunchOutcome> launch(const SandboxSpec& spec, const Invocation& what,
                                             const StepControl& control) override;
  // The init builds the root (mounts, pivot_root, the commands' user
  // namespace) at once, then waits on a pipe. The result does not refer to
  // this launcher. The calling thread must also be the one that calls
  // run(), and must not exit before (PR_SET_PDEATHSIG follows it).
  [[nodiscard]] Result<std::unique_ptr<HeldSandbox>> start(const SandboxSpec& spec,
                                                           const Invocation& what) override;
};

}  // namespace gang
