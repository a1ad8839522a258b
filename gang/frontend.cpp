#include "gang/frontend.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>

#include "gang/event.hpp"
#include "gang/gang_view.hpp"
#include "gang/status_printer.hpp"

namespace gang {

namespace {

constexpr int k_events_fd = 3;       // the worker's end of its event pipe
constexpr int k_stop_grace_ms = 1500;  // SIGTERM -> SIGKILL, inside the 2 s promise

struct Worker {
  int instance = 0;
  pid_t pid = -1;
  int events_fd = -1;   // read end
  int output_fd = -1;   // read end of stdout+stderr
  std::string events_buffer;
  std::string output_buffer;
  bool exited = false;
  int wait_status = 0;
};

// Forks and execs one worker. Signals are blocked in the parent (for the
// signalfd), so the child unblocks them before exec.
bool spawn(Worker& worker, const std::vector<std::string>& argv) {
  int events[2];
  int output[2];
  if (::pipe2(events, O_CLOEXEC) != 0) return false;
  if (::pipe2(output, O_CLOEXEC) != 0) {
    ::close(events[0]);
    ::close(events[1]);
    return false;
  }
  ::fcntl(events[1], F_SETPIPE_SZ, 1 << 20);  // best effort: room for bursts
  std::vector<char*> cargv;
  for (const auto& arg : argv) cargv.push_back(const_cast<char*>(arg.c_str()));
  cargv.push_back(nullptr);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) return false;
  if (pid == 0) {
    ::setpgid(0, 0);
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGINT, SIGTERM, SIGTSTP, SIGCONT, SIGCHLD, SIGPIPE}) ::signal(sig, SIG_DFL);
    int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, 0);
    ::dup2(output[1], 1);
    ::dup2(output[1], 2);
    ::dup2(events[1], k_events_fd);
    ::execv(cargv[0], cargv.data());
    std::fprintf(stderr, "cannot exec %s: %s\n", cargv[0], std::strerror(errno));
    ::_exit(127);
  }
  ::setpgid(pid, pid);  // also in the parent, to avoid racing the child
  ::close(events[1]);
  ::close(output[1]);
  worker.pid = pid;
  worker.events_fd = events[0];
  worker.output_fd = output[0];
  ::fcntl(worker.events_fd, F_SETFL, O_NONBLOCK);
  ::fcntl(worker.output_fd, F_SETFL, O_NONBLOCK);
  return true;
}

// Reads what is available; returns false at EOF (and closes the fd).
bool drain_fd(int& fd, std::string& buffer) {
  char chunk[65536];
  for (;;) {
    ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n > 0) {
      buffer.append(chunk, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;
    ::close(fd);
    fd = -1;
    return false;
  }
}

class Frontend {
 public:
  explicit Frontend(const GangOptions& options)
      : m_options(options),
        m_view(options.start_ms > 0 ? options.start_ms : now_ms(), options.total),
        m_printer(stdout, StatusPrinter::is_smart_terminal(stdout)) {}

  int run();

 private:
  void emit(const std::string& line) {
    m_printer.print_line(line);
    if (m_log) *m_log << line << '\n' << std::flush;
  }
  void log_only(const std::string& line) {
    if (m_log) *m_log << line << '\n' << std::flush;
  }
  void handle_lines(Worker& worker, std::string& buffer, bool events, bool at_eof);
  void handle_signal(int sig);
  void reap();
  void stop_all(int sig) {
    for (auto& w : m_workers)
      if (!w.exited) ::kill(-w.pid, sig);
  }
  [[nodiscard]] bool all_done() const {
    for (const auto& w : m_workers)
      if (!w.exited || w.events_fd >= 0 || w.output_fd >= 0) return false;
    return true;
  }

  const GangOptions& m_options;
  GangView m_view;
  StatusPrinter m_printer;
  std::unique_ptr<std::ofstream> m_log;
  std::vector<Worker> m_workers;
  int m_stop_signal = 0;
  std::int64_t m_kill_deadline = 0;
};

void Frontend::handle_lines(Worker& worker, std::string& buffer, bool events, bool at_eof) {
  std::size_t start = 0;
  for (;;) {
    std::size_t nl = buffer.find('\n', start);
    if (nl == std::string::npos) break;
    std::string line = buffer.substr(start, nl - start);
    start = nl + 1;
    if (events) {
      auto event = parse_event(line);
      if (!event) continue;
      if (m_options.on_event) m_options.on_event(*event);
      auto rendered = m_view.on_event(*event);
      if (rendered) {
        emit(*rendered);
      } else if (event->type == EventType::cached) {
        log_only(m_view.raw_line(event->instance, "[" + event->component + "] found in cache",
                                 event->time_ms));
      }
    } else if (!line.empty()) {
      emit(m_view.raw_line(worker.instance, line, now_ms()));
    }
  }
  buffer.erase(0, start);
  if (at_eof && !buffer.empty() && !events) {
    emit(m_view.raw_line(worker.instance, buffer, now_ms()));
    buffer.clear();
  }
}

void Frontend::reap() {
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (auto& w : m_workers) {
      if (w.pid != pid) continue;
      w.exited = true;
      w.wait_status = status;
      if (m_options.on_worker_exit)
        m_options.on_worker_exit(w.instance, now_ms(),
                                 WIFSIGNALED(status) ? "signal " + std::to_string(WTERMSIG(status))
                                                     : "exit " + std::to_string(WEXITSTATUS(status)));
      if (WIFSIGNALED(status) && m_stop_signal == 0) {
        emit(m_view.frontend_line("worker #" + std::to_string(w.instance) + " was killed by signal " +
                                      std::to_string(WTERMSIG(status)) +
                                      "; the others carry on and reclaim its work",
                                  now_ms()));
      }
    }
  }
}

void Frontend::handle_signal(int sig) {
  switch (sig) {
    case SIGINT:
    case SIGTERM:
      if (m_stop_signal == 0) {
        m_stop_signal = sig;
        m_kill_deadline = now_ms() + k_stop_grace_ms;
        emit(m_view.frontend_line(std::string("caught ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") +
                                      ": stopping every worker",
                                  now_ms()));
      }
      stop_all(SIGTERM);
      break;
    case SIGTSTP:
      stop_all(SIGTSTP);  // each worker stops its sandboxes, then itself
      m_printer.clear_status();
      ::kill(::getpid(), SIGSTOP);  // resumes here on SIGCONT
      stop_all(SIGCONT);
      break;
    case SIGCONT:
      stop_all(SIGCONT);
      break;
    case SIGCHLD:
      reap();
      break;
    default:
      break;
  }
}

int Frontend::run() {
  if (!m_options.log_file.empty()) {
    m_log = std::make_unique<std::ofstream>(m_options.log_file, std::ios::app);
    if (!*m_log) {
      std::fprintf(stderr, "gang: error: cannot open log file %s\n", m_options.log_file.c_str());
      return 1;
    }
  }
  sigset_t mask;
  sigemptyset(&mask);
  for (int sig : {SIGINT, SIGTERM, SIGTSTP, SIGCONT, SIGCHLD}) sigaddset(&mask, sig);
  sigset_t old_mask;
  ::sigprocmask(SIG_BLOCK, &mask, &old_mask);
  int sigfd = ::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sigfd < 0) {
    std::perror("gang: error: signalfd");
    return 1;
  }
  ::signal(SIGPIPE, SIG_IGN);

  m_workers.resize(static_cast<std::size_t>(m_options.instances));
  for (int i = 0; i < m_options.instances; ++i) {
    Worker& w = m_workers[static_cast<std::size_t>(i)];
    w.instance = i + 1;
    std::vector<std::string> argv = m_options.worker_argv;
    argv.insert(argv.end(), {"--instance", std::to_string(w.instance), "--seed",
                             std::to_string(m_options.seed + static_cast<std::uint64_t>(i)),
                             "--events-fd", std::to_string(k_events_fd)});
    if (!spawn(w, argv)) {
      std::fprintf(stderr, "gang: error: cannot start worker %d: %s\n", w.instance,
                   std::strerror(errno));
      m_stop_signal = SIGTERM;
      stop_all(SIGTERM);
      w.exited = true;
      break;
    }
  }
  emit(m_view.frontend_line("gang of " + std::to_string(m_options.instances) + " instance" +
                                (m_options.instances == 1 ? "" : "s") + " building " +
                                m_options.target,
                            now_ms()));

  while (!all_done()) {
    std::vector<pollfd> fds;
    std::vector<std::pair<Worker*, bool>> owners;  // (worker, is events fd)
    fds.push_back({sigfd, POLLIN, 0});
    owners.emplace_back(nullptr, false);
    for (auto& w : m_workers) {
      if (w.events_fd >= 0) {
        fds.push_back({w.events_fd, POLLIN, 0});
        owners.emplace_back(&w, true);
      }
      if (w.output_fd >= 0) {
        fds.push_back({w.output_fd, POLLIN, 0});
        owners.emplace_back(&w, false);
      }
    }
    int timeout = m_printer.smart() ? 200 : 1000;
    if (m_stop_signal != 0) timeout = 100;
    int ready = ::poll(fds.data(), fds.size(), timeout);
    if (ready < 0 && errno != EINTR) break;
    for (std::size_t i = 0; i < fds.size() && ready > 0; ++i) {
      if (fds[i].revents == 0) continue;
      if (owners[i].first == nullptr) {
        signalfd_siginfo info;
        while (::read(sigfd, &info, sizeof info) == sizeof info)
          handle_signal(static_cast<int>(info.ssi_signo));
        continue;
      }
      Worker& w = *owners[i].first;
      bool events = owners[i].second;
      int& fd = events ? w.events_fd : w.output_fd;
      std::string& buffer = events ? w.events_buffer : w.output_buffer;
      bool open = drain_fd(fd, buffer);
      handle_lines(w, buffer, events, !open);
    }
    reap();
    if (m_stop_signal != 0 && now_ms() >= m_kill_deadline) {
      stop_all(SIGKILL);
      m_kill_deadline = now_ms() + 1000000;
    }
    m_printer.set_status(m_view.status(now_ms()));
  }
  m_printer.clear_status();
  ::close(sigfd);
  ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);

  std::int64_t end = now_ms();
  emit(m_view.summary(end));
  std::size_t given_up = 0;
  for (const auto& [component, failure] : m_view.failures())
    given_up += GangView::is_give_up(failure.reason) ? 1 : 0;
  if (given_up != 0)
    emit("  " + std::to_string(given_up) + " gave up on the machine's trouble (see why above); "
         "nothing was recorded: once it is fixed, run the same command again.");
  if (m_view.failures().size() > given_up)
    emit("  To build the failed components again: gang build " + m_options.target +
         " --retry-failed (with this run's other options).\n"
         "  A failed build's sandbox is kept: gang shell COMPONENT opens a shell in it.");
  for (const auto& line : m_view.component_lists()) log_only(line);
  if (m_stop_signal != 0) return 128 + m_stop_signal;
  if (!m_view.failures().empty()) return 1;
  bool all_ok = true;
  for (const auto& w : m_workers)
    if (!WIFEXITED(w.wait_status) || WEXITSTATUS(w.wait_status) != 0) all_ok = false;
  if (m_view.target_done()) return 0;
  return all_ok ? 0 : 1;
}

}  // namespace

std::string self_executable() {
  char path[4096];
  ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
  if (n <= 0) return "gang";
  return std::string(path, static_cast<std::size_t>(n));
}

int run_gang(const GangOptions& options) {
  Frontend frontend(options);
  return frontend.run();
}

}  // namespace gang
