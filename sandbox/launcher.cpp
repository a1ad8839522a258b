#include "sandbox/launcher.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string_view>
#include <utility>

#include "sandbox/init_protocol.hpp"
#include "sandbox/sandbox_plan.hpp"
#include "sandbox/netns_factory.hpp"
#include "util/fs.hpp"

extern char** environ;

namespace gang {

namespace {

// The stack the launcher's clone runs on until it execs the init.
constexpr std::size_t k_child_stack_size = 64 * 1024;

using init::Op;
using init::Plan;
using init::Report;

// Moves an fd to 10 or above so that dup2 onto 0..2 in the child cannot
// clobber it.
Result<Fd> high_fd(int fd, const char* what) {
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
  if (moved < 0) return make_errno_error(std::string("cannot duplicate ") + what);
  return Fd(moved);
}

// A pipe between the caller and the init: the caller's end, and the init's
// (moved to a high fd).
struct InitPipe {
  Fd ours;
  Fd init;
};

Result<InitPipe> init_pipe(bool init_reads) {
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) return make_errno_error("cannot create a pipe");
  Fd read(ends[0]), write(ends[1]);
  auto init = high_fd(init_reads ? read.get() : write.get(), "a pipe");
  if (!init) return std::unexpected(init.error());
  return InitPipe{std::move(init_reads ? write : read), std::move(*init)};
}


// Appends what can be read from the non-blocking fd now; false at its end
// (or an error).
bool read_available(int fd, std::string& out) {
  char buffer[1024];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      out.append(buffer, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    return n < 0 && errno == EAGAIN;
  }
}

// Whether the init's reports include the last one (tag 'S').
bool has_final_report(const std::string& text) {
  if (!text.empty() && text.front() == 'E') return false;
  for (std::size_t at = 0; at + sizeof(Report) <= text.size(); at += sizeof(Report))
    if (text[at] == 'S') return true;
  return false;
}

// Inits that reported their end and were left to exit on their own: reaped
// by the next launch, and at the latest when the process exits.
class UnreapedInits {
 public:
  ~UnreapedInits() { reap(true); }
  void add(pid_t pid) {
    std::lock_guard lock(m_mutex);
    m_pids.push_back(pid);
  }
  void reap(bool wait) {
    std::lock_guard lock(m_mutex);
    std::erase_if(m_pids, [wait](pid_t pid) {
      pid_t done;
      do done = ::waitpid(pid, nullptr, wait ? 0 : WNOHANG);
      while (done < 0 && errno == EINTR);
      return done != 0;  // reaped, or not ours (a forked copy of the list)
    });
  }

 private:
  std::mutex m_mutex;
  std::vector<pid_t> m_pids;
};

UnreapedInits& unreaped_inits() {
  static UnreapedInits inits;
  return inits;
}

void defer_reap(pid_t pid) { unreaped_inits().add(pid); }

// Restores the terminal's foreground process group after an interactive
// shell took it over for its job control.
class TerminalGuard {
 public:
  TerminalGuard() {
    if (::isatty(0) == 1) m_foreground = ::tcgetpgrp(0);
    struct sigaction ignore {};
    ignore.sa_handler = SIG_IGN;
    ::sigemptyset(&ignore.sa_mask);
    ::sigaction(SIGINT, &ignore, &m_old_int);
    ::sigaction(SIGQUIT, &ignore, &m_old_quit);
  }
  ~TerminalGuard() {
    if (m_foreground > 0 && ::tcgetpgrp(0) != m_foreground) {
      sigset_t block, old;
      ::sigemptyset(&block);
      ::sigaddset(&block, SIGTTOU);
      ::sigprocmask(SIG_BLOCK, &block, &old);
      ::tcsetpgrp(0, m_foreground);
      ::sigprocmask(SIG_SETMASK, &old, nullptr);
    }
    ::sigaction(SIGINT, &m_old_int, nullptr);
    ::sigaction(SIGQUIT, &m_old_quit, nullptr);
  }
  TerminalGuard(const TerminalGuard&) = delete;
  TerminalGuard& operator=(const TerminalGuard&) = delete;

 private:
  pid_t m_foreground = -1;
  struct sigaction m_old_int {};
  struct sigaction m_old_quit {};
};

class Stack {
 public:
  Stack() {
    void* memory = ::mmap(nullptr, k_child_stack_size, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    m_memory = memory == MAP_FAILED ? nullptr : memory;
  }
  ~Stack() {
    if (m_memory != nullptr) ::munmap(m_memory, k_child_stack_size);
  }
  Stack(const Stack&) = delete;
  Stack& operator=(const Stack&) = delete;
  [[nodiscard]] bool ok() const { return m_memory != nullptr; }
  [[nodiscard]] void* top() const { return static_cast<char*>(m_memory) + k_child_stack_size; }

 private:
  void* m_memory = nullptr;
};

// The inits of this process's running sandboxes (0: free slot), for the
// job-control relay; written by launch(), read by signal handlers.
constexpr std::size_t k_max_running = 64;
std::atomic<pid_t> g_running[k_max_running];

class RunningSandbox {
 public:
  explicit RunningSandbox(pid_t pid) {
    for (auto& slot : g_running) {
      pid_t free = 0;
      if (slot.compare_exchange_strong(free, pid)) {
        m_slot = &slot;
        return;
      }
    }
  }
  ~RunningSandbox() { release(); }
  void release() {
    if (m_slot != nullptr) m_slot->store(0);
    m_slot = nullptr;
  }
  RunningSandbox(const RunningSandbox&) = delete;
  RunningSandbox& operator=(const RunningSandbox&) = delete;

 private:
  std::atomic<pid_t>* m_slot = nullptr;
};

// Sends `sig` to each running sandbox's session (its init leads the
// process group), and to the init itself in case it has not called
// setsid() yet.
void signal_running(int sig) {
  for (auto& slot : g_running) {
    pid_t pid = slot.load();
    if (pid <= 0) continue;
    ::kill(-pid, sig);
    ::kill(pid, sig);
  }
}

void relay_stop(int) {
  int saved = errno;
  signal_running(SIGSTOP);
  ::raise(SIGSTOP);
  errno = saved;
}

void relay_continue(int) {
  int saved = errno;
  signal_running(SIGCONT);
  errno = saved;
}

}  // namespace

void relay_job_control_to_sandboxes() {
  struct sigaction action {};
  ::sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  action.sa_handler = relay_stop;
  ::sigaction(SIGTSTP, &action, nullptr);
  action.sa_handler = relay_continue;
  ::sigaction(SIGCONT, &action, nullptr);
}


namespace {

// A sandbox this process started: what waiting for it and dropping it need.
struct Started {
  pid_t pid = -1;
  Fd status_read;
  Fd alive_write;  // the init dies when it closes (the caller is gone)
  Fd go_write;     // a held sandbox: one byte runs its commands
  std::optional<TerminalGuard> terminal;  // gang shell
  std::optional<RunningSandbox> running;  // in the job-control relay until it ends
  bool interactive = false;
  // A build's init whose upper layers the caller does not read: not waited
  // for once it has reported the end of its last command.
  bool return_at_report = false;
};

// The init program (sandbox/init/), linked into this binary by
// sandbox_init_image.S.
extern "C" const char gang_sandbox_init_image[];
extern "C" const char gang_sandbox_init_image_end[];

// A sealed memfd holding the init program, made once per process (again
// if the fd was closed meanwhile, say by a forked child that closed its
// files); an error if it cannot be made.
Result<int> init_image_fd() {
  static std::mutex mutex;
  static int image = -1;
  const auto size = static_cast<std::size_t>(gang_sandbox_init_image_end - gang_sandbox_init_image);
  std::lock_guard lock(mutex);
  struct stat st {};
  if (image >= 0 && ::fstat(image, &st) == 0 && static_cast<std::size_t>(st.st_size) == size &&
      ::fcntl(image, F_GET_SEALS) == (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL))
    return image;
  constexpr unsigned int k_mfd_exec = 0x10;  // MFD_EXEC (Linux 6.3)
  int fd = ::memfd_create("gang-sandbox-init", MFD_CLOEXEC | MFD_ALLOW_SEALING | k_mfd_exec);
  if (fd < 0 && errno == EINVAL)
    fd = ::memfd_create("gang-sandbox-init", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) return make_errno_error("cannot load the sandbox init");
  if (!write_all(fd, std::string_view(gang_sandbox_init_image, size)) ||
      ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    int err = errno;
    ::close(fd);
    return make_errno_error("cannot load the sandbox init", err);
  }
  image = fd;
  return image;
}

// What the clone needs until it execs the init: prepared beforehand, since
// it runs on the caller's memory (CLONE_VM) and may only make system calls.
struct ExecArgs {
  bool user_ns = false;
  std::string uid_map, gid_map;
  std::vector<int> pass;  // fds the init inherits
  int image_fd = -1;
  int status_fd = -1;
  char* argv[3] = {nullptr, nullptr, nullptr};
  char* envp[1] = {nullptr};
};

bool exec_write_file(const char* path, const char* text, std::size_t size) {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, text, size) == static_cast<ssize_t>(size);
  ::close(fd);
  return ok;
}

[[noreturn]] void exec_fail(const ExecArgs& args, const char* what) {
  int err = errno;
  const char* desc = ::strerrordesc_np(err);
  char buffer[256];
  std::size_t used = 0;
  for (const char* part : {"E", what, ": ", desc != nullptr ? desc : "unknown error"})
    for (; *part != '\0' && used + 1 < sizeof buffer; ++part) buffer[used++] = *part;
  [[maybe_unused]] auto n = ::write(args.status_fd, buffer, used);
  ::_exit(init::k_init_failed);
}

// The clone, in the sandbox's new namespaces: writes an unprivileged
// caller's uid and gid maps (so that the exec keeps the init's
// capabilities in its user namespace), lets the init inherit its fds, and
// execs it.
int exec_init(void* arg) {
  const ExecArgs& args = *static_cast<const ExecArgs*>(arg);
  if (args.user_ns) {
    // A caller that changed uid without exec is not dumpable, which makes
    // /proc/self/* root-owned and the maps unwritable. (The flag belongs to
    // the memory this clone shares with the caller until its exec.)
    ::prctl(PR_SET_DUMPABLE, 1);
    if (!exec_write_file("/proc/self/setgroups", "deny", 4))
      exec_fail(args, "cannot write /proc/self/setgroups");
    if (!exec_write_file("/proc/self/uid_map", args.uid_map.data(), args.uid_map.size()))
      exec_fail(args, "cannot write /proc/self/uid_map");
    if (!exec_write_file("/proc/self/gid_map", args.gid_map.data(), args.gid_map.size()))
      exec_fail(args, "cannot write /proc/self/gid_map");
  }
  for (int fd : args.pass)
    if (fd >= 0 && ::fcntl(fd, F_SETFD, 0) != 0) exec_fail(args, "cannot pass a file to the init");
  ::syscall(SYS_execveat, args.image_fd, "", args.argv, args.envp, AT_EMPTY_PATH);
  exec_fail(args, "cannot start the sandbox init");
}

Result<std::unique_ptr<Started>> start_sandbox(const SandboxSpec& spec, const Invocation& what,
                                               bool hold) {
  if (auto ok = validate_spec(spec); !ok) return std::unexpected(ok.error());
  unreaped_inits().reap(false);
  const bool interactive = what.commands.empty();
  if (interactive && what.argv.empty()) return make_error("sandbox: nothing to run");
  if (!interactive && what.output_fd < 0) return make_error("sandbox: no output file");
  if (interactive && hold) return make_error("sandbox: an interactive sandbox cannot be held");
  auto image = init_image_fd();
  if (!image) return std::unexpected(image.error());

  ExecArgs args;
  args.user_ns = ::geteuid() != 0;
  args.uid_map = "0 " + std::to_string(::geteuid()) + " 1\n";
  args.gid_map = "0 " + std::to_string(::getegid()) + " 1\n";
  args.image_fd = *image;
  Plan plan;
  plan.interactive = interactive;
  plan.die_on_interrupt = !interactive;
  if (auto ok = prepare_plan(spec, args.user_ns, interactive, plan); !ok)
    return std::unexpected(ok.error());
  if (interactive) {
    plan.commands.push_back({what.argv, what.env, {}});
  } else {
    for (const auto& command : what.commands)
      plan.commands.push_back({{"sh", "-c", "-e", command.text},
                               command.env,
                               "# [" + command.label + "] " + command.text + "\n"});
  }

  auto started = std::make_unique<Started>();
  started->interactive = interactive;
  auto status = init_pipe(false);
  if (!status) return std::unexpected(status.error());
  started->status_read = std::move(status->ours);
  auto alive = init_pipe(true);
  if (!alive) return std::unexpected(alive.error());
  started->alive_write = std::move(alive->ours);
  Fd go_read;
  if (hold) {
    auto go = init_pipe(true);
    if (!go) return std::unexpected(go.error());
    started->go_write = std::move(go->ours);
    go_read = std::move(go->init);
  }
  Fd output, null;
  if (!interactive) {
    auto out = high_fd(what.output_fd, "the log");
    if (!out) return std::unexpected(out.error());
    output = std::move(*out);
    int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0) return make_errno_error("cannot open /dev/null");
    auto moved = high_fd(null_fd, "/dev/null");
    ::close(null_fd);
    if (!moved) return std::unexpected(moved.error());
    null = std::move(*moved);
  }
  int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD;
  // As root, a network namespace prepared in advance, else its own.
  Fd netns;
  if (spec.network == Network::none && !args.user_ns && prepared_netns_allowed())
    netns = Fd(NetnsFactory::instance().take());
  if (netns.get() >= 0) {
    auto moved = high_fd(netns.get(), "a network namespace");
    if (!moved) return std::unexpected(moved.error());
    netns = std::move(*moved);
  }
  if (spec.network == Network::none && netns.get() < 0) flags |= CLONE_NEWNET;
  plan.loopback_up = plan.loopback_up && netns.get() < 0;  // a prepared one has lo up
  if (args.user_ns) flags |= CLONE_NEWUSER;

  plan.status_fd = status->init.get();
  plan.keepalive_read = alive->init.get();
  plan.output_fd = output.get();
  plan.null_fd = null.get();
  plan.netns_fd = netns.get();
  plan.go_fd = go_read.get();
  // The plan, in a memfd the init reads.
  Fd plan_fd(::memfd_create("gang-sandbox-plan", MFD_CLOEXEC));
  if (plan_fd.get() < 0) return make_errno_error("cannot create the sandbox's plan");
  if (auto moved = high_fd(plan_fd.get(), "the sandbox's plan"); moved)
    plan_fd = std::move(*moved);
  else
    return std::unexpected(moved.error());
  std::string encoded = init::encode(plan);
  if (!write_all(plan_fd.get(), encoded))
    return make_errno_error("cannot write the sandbox's plan");
  std::string plan_fd_text = std::to_string(plan_fd.get());
  static char k_argv0[] = "gang-sandbox-init";
  args.argv[0] = k_argv0;
  args.argv[1] = plan_fd_text.data();
  args.status_fd = plan.status_fd;
  args.pass = {plan.status_fd, plan.keepalive_read, plan.output_fd, plan.null_fd,
               plan.netns_fd,  plan.go_fd,          plan_fd.get()};

  Stack stack;
  if (!stack.ok()) return make_errno_error("cannot allocate a stack for the sandbox");
  if (interactive) started->terminal.emplace();
  // No signal handler of this process may run on the clone, which shares
  // its memory until the exec: every signal is blocked meanwhile (the init
  // sets its own mask).
  sigset_t all, old;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = ::clone(exec_init, stack.top(), flags | CLONE_VM | CLONE_VFORK, &args);
  int err = errno;
  ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) {
    return make_errno_error(args.user_ns
                                ? "cannot create the sandbox's namespaces (are unprivileged user "
                                  "namespaces enabled?)"
                                : "cannot create the sandbox's namespaces",
                            err);
  }
  started->pid = pid;
  started->running.emplace(pid);
  started->return_at_report = !interactive && plan.scratch_tmpfs;
  // (the init's pipe ends, output, null, netns and the plan
  // close here: the init holds its own copies, and goes when it ends)
  return started;
}

// Waits for a started sandbox to end, or (a build whose upper layers the
// caller does not read) to report the end of its last command.
Result<LaunchOutcome> wait_sandbox(Started& started, const StepControl& control) {
  const pid_t pid = started.pid;
  auto& running = *started.running;
  Fd& status_read = started.status_read;
  if (control.on_start) control.on_start(pid);

  // The pidfd turns readable when the init is gone, which wakes the caller
  // at once; should_stop is checked between waits. Without pidfds (Linux <
  // 5.3), poll waitpid. A build's init (not gang shell's, nor one whose
  // upper layers the caller reads) is not waited for once it has reported
  // the end of its last command: its exit, the teardown of the sandbox's
  // namespaces and mounts, runs on while the caller goes on, and it is
  // reaped by a later launch or when this process exits (UnreapedInits).
  Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  const int timeout_ms = control.should_stop ? k_stop_poll_interval_ms : -1;
  ::fcntl(status_read.get(), F_SETFL, O_NONBLOCK);
  std::string text;
  bool status_open = true;
  LaunchOutcome outcome;
  int init_status = 0;
  for (;;) {
    if (!outcome.cancelled && control.should_stop && control.should_stop()) {
      ::kill(pid, SIGKILL);
      outcome.cancelled = true;
    }
    pollfd watch[2];
    nfds_t count = 0;
    if (pidfd.get() >= 0) watch[count++] = {pidfd.get(), POLLIN, 0};
    if (status_open) watch[count++] = {status_read.get(), POLLIN, 0};
    int wait_ms = pidfd.get() < 0 ? 20 : (outcome.cancelled ? -1 : timeout_ms);
    int ready = count == 0 ? (::usleep(20'000), 0) : ::poll(watch, count, wait_ms);
    if (ready < 0 && errno != EINTR) return make_errno_error("cannot wait for the sandbox");
    if (status_open) {
      status_open = read_available(status_read.get(), text);
      if (started.return_at_report && !outcome.cancelled && has_final_report(text)) {
        running.release();
        defer_reap(pid);
        break;
      }
    }
    if (pidfd.get() >= 0 && (ready <= 0 || (watch[0].revents & (POLLIN | POLLHUP)) == 0)) continue;
    // Leave the init a zombie until it is unregistered, so that its pid
    // (and process group id) cannot be reused under the job-control relay.
    siginfo_t exited{};
    int waited = ::waitid(P_PID, static_cast<id_t>(pid), &exited, WEXITED | WNOWAIT | WNOHANG);
    if (waited == 0 && exited.si_pid == pid) {
      running.release();
      if (::waitpid(pid, &init_status, 0) == pid) break;
    }
    if (waited < 0 && errno != EINTR) return make_errno_error("cannot wait for the sandbox");
  }
  started.pid = -1;  // reaped, or left to UnreapedInits
  (void)read_available(status_read.get(), text);  // what came after the last wake-up
  if (!text.empty() && text.front() == 'E') return make_error("sandbox: " + text.substr(1));
  int current = -1;
  for (std::size_t at = 0; at + sizeof(Report) <= text.size(); at += sizeof(Report)) {
    Report report{};
    std::memcpy(&report, text.data() + at, sizeof report);
    if (report.tag == 'C') current = report.index;
    if (report.tag == 'S') {
      outcome.failed_index = report.index;
      outcome.wait_status = report.status;
      return outcome;
    }
  }
  // The init died before reporting: killed (cancelled, interrupted, parent
  // gone). Attribute it to the command that was running.
  outcome.failed_index = current < 0 ? 0 : current;
  outcome.wait_status = init_status;
  outcome.init_killed = true;
  if (WIFEXITED(init_status) && WEXITSTATUS(init_status) == 125 && !outcome.cancelled)
    return make_error("sandbox: the sandbox init failed before running anything");
  return outcome;
}

// A held NamespaceLauncher sandbox.
class HeldNamespaceSandbox final : public HeldSandbox {
 public:
  explicit HeldNamespaceSandbox(std::unique_ptr<Started> started)
      : m_started(std::move(started)) {}
  ~HeldNamespaceSandbox() override {
    if (m_started->pid <= 0) return;
    // Dropped before it ran: the init reads the end of the go pipe and
    // exits; killed too, in case it is still building the root.
    m_started->go_write.reset();
    ::kill(m_started->pid, SIGKILL);
    m_started->running.reset();
    defer_reap(m_started->pid);
  }
  HeldNamespaceSandbox(const HeldNamespaceSandbox&) = delete;
  HeldNamespaceSandbox& operator=(const HeldNamespaceSandbox&) = delete;

  Result<LaunchOutcome> run(const StepControl& control) override {
    if (m_started->pid <= 0) return make_error("sandbox: already run");
    char go = 1;
    ssize_t wrote;
    do wrote = ::write(m_started->go_write.get(), &go, 1);
    while (wrote < 0 && errno == EINTR);
    m_started->go_write.reset();
    // (a failed write means the init is gone: the wait reports how it ended)
    return wait_sandbox(*m_started, control);
  }

 private:
  std::unique_ptr<Started> m_started;
};

// The default Launcher::start: copies of the spec and commands, launched
// in full by run().
class DeferredLaunch final : public HeldSandbox {
 public:
  DeferredLaunch(Launcher& launcher, SandboxSpec spec, Invocation what)
      : m_launcher(launcher), m_spec(std::move(spec)), m_what(std::move(what)) {}
  Result<LaunchOutcome> run(const StepControl& control) override {
    return m_launcher.launch(m_spec, m_what, control);
  }

 private:
  Launcher& m_launcher;
  SandboxSpec m_spec;
  Invocation m_what;
};

}  // namespace

Result<std::unique_ptr<HeldSandbox>> Launcher::start(const SandboxSpec& spec,
                                                     const Invocation& what) {
  if (what.commands.empty()) return make_error("sandbox: only commands can be held");
  return std::make_unique<DeferredLaunch>(*this, spec, what);
}

Result<LaunchOutcome> NamespaceLauncher::launch(const SandboxSpec& spec, const Invocation& what,
                                                const StepControl& control) {
  auto started = start_sandbox(spec, what, false);
  if (!started) return std::unexpected(started.error());
  return wait_sandbox(**started, control);
}

Result<std::unique_ptr<HeldSandbox>> NamespaceLauncher::start(const SandboxSpec& spec,
                                                              const Invocation& what) {
  auto started = start_sandbox(spec, what, true);
  if (!started) return std::unexpected(started.error());
  return std::make_unique<HeldNamespaceSandbox>(std::move(*started));
}

}  // namespace gang
