// The sandbox's init: PID 1 of a sandbox, exec'd by the launcher
// (launcher.cpp) right after clone(CLONE_VM | CLONE_VFORK) into the
// sandbox's namespaces, with its plan (init_protocol.hpp) in the fd named
// by argv[1] and an empty environment. It builds the root, runs the
// commands or the program, and reports on the status pipe. Linked
// statically: it runs before and after pivot_root, and must not depend on
// the sandbox's own libraries.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "sandbox/init_protocol.hpp"

extern char** environ;

namespace gang::init {

namespace {


void child_append(char* buffer, std::size_t& used, std::size_t size, const char* text) {
  while (*text != '\0' && used + 1 < size) buffer[used++] = *text++;
}

[[noreturn]] void child_fail(const Plan& plan, const char* what, const char* path) {
  int err = errno;
  char buffer[1024];
  std::size_t used = 0;
  child_append(buffer, used, sizeof buffer, "E");
  child_append(buffer, used, sizeof buffer, what);
  if (path != nullptr) {
    child_append(buffer, used, sizeof buffer, " ");
    child_append(buffer, used, sizeof buffer, path);
  }
  child_append(buffer, used, sizeof buffer, ": ");
  const char* desc = ::strerrordesc_np(err);
  child_append(buffer, used, sizeof buffer, desc != nullptr ? desc : "unknown error");
  [[maybe_unused]] auto n = ::write(plan.status_fd, buffer, used);
  ::_exit(k_init_failed);
}

void child_write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

bool child_write_file(const char* path, const std::string& text) {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
}

void init_die(int sig) { ::_exit(128 + sig); }
void init_ignore(int) {}

// Mounts op's overlay with fsopen/fsconfig("lowerdir+")/fsmount/move_mount;
// returns 0, or the errno of the step that failed (EINVAL from the first
// "lowerdir+": the kernel predates it).
int child_mount_overlay_api(const Op& op, bool* unsupported) {
  *unsupported = false;
  int fs = static_cast<int>(::syscall(SYS_fsopen, "overlay", 1 /*FSOPEN_CLOEXEC*/));
  if (fs < 0) {
    *unsupported = errno == ENOSYS || errno == EINVAL;
    return errno;
  }
  auto fail = [&](int err) {
    ::close(fs);
    return err;
  };
  bool first = true;
  for (const auto& lower : op.lowers) {
    if (::syscall(SYS_fsconfig, fs, 1 /*FSCONFIG_SET_STRING*/, "lowerdir+", lower.c_str(), 0) != 0) {
      int err = errno;
      *unsupported = first && err == EINVAL;
      return fail(err);
    }
    first = false;
  }
  if (!op.upper.empty()) {
    if (::syscall(SYS_fsconfig, fs, 1, "upperdir", op.upper.c_str(), 0) != 0 ||
        ::syscall(SYS_fsconfig, fs, 1, "workdir", op.work.c_str(), 0) != 0)
      return fail(errno);
    if (op.volatile_upper)
      (void)::syscall(SYS_fsconfig, fs, 0 /*FSCONFIG_SET_FLAG*/, "volatile", nullptr, 0);
  }
  if (op.userxattr && ::syscall(SYS_fsconfig, fs, 0, "userxattr", nullptr, 0) != 0) return fail(errno);
  if (::syscall(SYS_fsconfig, fs, 6 /*FSCONFIG_CMD_CREATE*/, nullptr, nullptr, 0) != 0) return fail(errno);
  unsigned int attrs = (op.flags & MS_RDONLY) != 0 ? 0x1 /*MOUNT_ATTR_RDONLY*/ : 0;
  int mnt = static_cast<int>(::syscall(SYS_fsmount, fs, 1 /*FSMOUNT_CLOEXEC*/, attrs));
  if (mnt < 0) return fail(errno);
  int moved = static_cast<int>(::syscall(SYS_move_mount, mnt, "", AT_FDCWD, op.target.c_str(),
                                         0x4 /*MOVE_MOUNT_F_EMPTY_PATH*/));
  int err = moved != 0 ? errno : 0;
  ::close(mnt);
  return fail(err);
}

// Mounts op's overlay with `lowerdir=` naming each layer by the number of
// an O_PATH fd opened on it, relative to /proc/self/fd (the init's cwd
// afterwards); upper and work stay absolute. Returns 0 or an errno.
int child_mount_overlay_fds(const Op& op) {
  std::size_t count = op.lowers.size();
  std::vector<int> fds(count, -1);
  auto close_all = [&](int err) {
    for (int fd : fds)
      if (fd >= 0) ::close(fd);
    return err;
  };
  for (std::size_t i = 0; i < count; ++i) {
    fds[i] = ::open(op.lowers[i].c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fds[i] < 0) return close_all(errno);
  }
  // (the init closed the caller's fds first: small numbers, at most 4
  // digits and a ':' each)
  std::vector<char> data(count * 5 + op.upper.size() + op.work.size() + 128, '\0');
  char* out = data.data();
  std::size_t used = 0, size = data.size();
  auto append = [&](const char* text) { child_append(out, used, size, text); };
  append("lowerdir=");
  for (std::size_t i = 0; i < count; ++i) {
    char number[16];
    int n = fds[i], digits = 0;
    char reversed[16];
    do {
      reversed[digits++] = static_cast<char>('0' + n % 10);
      n /= 10;
    } while (n > 0 && digits < 15);
    for (int d = 0; d < digits; ++d) number[d] = reversed[digits - 1 - d];
    number[digits] = '\0';
    if (i > 0) append(":");
    append(number);
  }
  if (!op.upper.empty()) {
    append(",upperdir=");
    append(op.upper.c_str());
    append(",workdir=");
    append(op.work.c_str());
  }
  if (op.userxattr) append(",userxattr");
  std::size_t without_volatile = used;
  if (op.volatile_upper) append(",volatile");
  if (used + 1 >= size) return close_all(E2BIG);
  out[used] = '\0';
  if (::chdir("/proc/self/fd") != 0) return close_all(errno);
  int mounted = ::mount("overlay", op.target.c_str(), "overlay", op.flags, out);
  if (mounted != 0 && errno == EINVAL && op.volatile_upper) {
    out[without_volatile] = '\0';  // kernels before 5.10
    mounted = ::mount("overlay", op.target.c_str(), "overlay", op.flags, out);
  }
  return close_all(mounted != 0 ? errno : 0);
}

void child_run_op(const Plan& plan, const Op& op) {
  switch (op.kind) {
    case Op::Kind::mount: {
      if (op.overlay_api == Op::Api::fd_numbers) {
        if (int err = child_mount_overlay_fds(op); err != 0) {
          errno = err;
          child_fail(plan, "cannot mount (lowerdir fds) on", op.target.c_str());
        }
        return;
      }
      if (op.overlay_api != Op::Api::classic) {
        bool unsupported = false;
        int err = child_mount_overlay_api(op, &unsupported);
        if (err == 0) return;
        if (unsupported && op.fd_fallback) {
          err = child_mount_overlay_fds(op);
          if (err == 0) return;
          errno = err;
          child_fail(plan, "cannot mount (lowerdir fds) on", op.target.c_str());
        }
        if (!unsupported || op.overlay_api == Op::Api::lowerdir_plus_only) {
          errno = err;
          child_fail(plan, "cannot mount (lowerdir+) on", op.target.c_str());
        }
      }
      if (!op.chdir_to.empty() && ::chdir(op.chdir_to.c_str()) != 0)
        child_fail(plan, "cannot enter", op.chdir_to.c_str());
      const char* source = op.source.empty() ? nullptr : op.source.c_str();
      const char* fstype = op.fstype.empty() ? nullptr : op.fstype.c_str();
      const void* data = op.data.empty() ? nullptr : op.data.c_str();
      int mounted = ::mount(source, op.target.c_str(), fstype, op.flags, data);
      if (mounted != 0 && errno == EINVAL && !op.fallback_data.empty())
        mounted = ::mount(source, op.target.c_str(), fstype, op.flags, op.fallback_data.c_str());
      if (mounted != 0)
        child_fail(plan, op.fstype.empty() ? "cannot bind-mount onto" : "cannot mount on",
                   op.target.c_str());
      return;
    }
    case Op::Kind::touch: {
      int fd = ::open(op.target.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
      if (fd < 0) child_fail(plan, "cannot create", op.target.c_str());
      ::close(fd);
      return;
    }
    case Op::Kind::mkdir:
      if (::mkdir(op.target.c_str(), op.mode) != 0) {
        if (errno != EEXIST) child_fail(plan, "cannot create directory", op.target.c_str());
        return;
      }
      if (op.uid != static_cast<uid_t>(-1)) {
        ::chmod(op.target.c_str(), op.mode);  // past the umask
        [[maybe_unused]] int r = ::lchown(op.target.c_str(), op.uid, op.gid);
      }
      return;
    case Op::Kind::whiteout:
      if (::mknod(op.target.c_str(), S_IFCHR | 0, makedev(0, 0)) != 0 && errno != EEXIST)
        child_fail(plan, "cannot create whiteout", op.target.c_str());
      return;
    case Op::Kind::symlink:
      if (::symlink(op.source.c_str(), op.target.c_str()) != 0 && errno != EEXIST)
        child_fail(plan, "cannot create symlink", op.target.c_str());
      return;
  }
}

// Reports that argv[0] could not be executed, on stderr, and exits 127.
[[noreturn]] void child_exec_failed(const char* program) {
  int err = errno;
  char buffer[512];
  std::size_t used = 0;
  child_append(buffer, used, sizeof buffer, "gang sandbox: cannot run ");
  child_append(buffer, used, sizeof buffer, program);
  child_append(buffer, used, sizeof buffer, ": ");
  child_append(buffer, used, sizeof buffer, ::strerrordesc_np(err));
  child_append(buffer, used, sizeof buffer, "\n");
  child_write_all(2, buffer, used);
  ::_exit(127);
}

// Waits for `pid`, reaping any orphan on the way. Returns its wait status.
int child_wait_for(pid_t pid) {
  for (;;) {
    int status = 0;
    pid_t done = ::waitpid(-1, &status, 0);
    if (done == pid) return status;
    if (done < 0 && errno == ECHILD) return 0;
  }
}

// Null-terminated pointers into `strings`.
std::vector<char*> pointers(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const auto& entry : strings) out.push_back(const_cast<char*>(entry.c_str()));
  out.push_back(nullptr);
  return out;
}

// Runs plan.commands[index] (a command or the program) as a child of the
// init and waits for it. Returns its wait status.
int child_run_one(const Plan& plan, std::size_t index) {
  std::vector<char*> argv_list = pointers(plan.commands[index].argv);
  std::vector<char*> envp_list = pointers(plan.commands[index].env);
  char* const* argv = argv_list.data();
  char* const* envp = envp_list.data();
  if (!plan.interactive) {
    // vfork(): the child only calls execve and _exit with data prepared
    // before; the init's signal mask is already empty, and its handlers
    // only _exit, which is right for the child too until execve resets
    // them.
    pid_t pid = ::vfork();
    if (pid < 0) child_fail(plan, "cannot vfork", nullptr);
    if (pid == 0) {
      ::execve("/bin/sh", argv, envp);
      ::execve("/usr/bin/sh", argv, envp);
      child_exec_failed("/bin/sh");
    }
    return child_wait_for(pid);
  }
  // The fork system call itself, not glibc's fork() (no atfork handlers
  // or glibc locks: nothing but execvp follows).
  pid_t pid = static_cast<pid_t>(::syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0));
  if (pid < 0) child_fail(plan, "cannot fork", nullptr);
  if (pid == 0) {
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // Job control: the program leads its own process group (visible inside
    // the PID namespace, unlike the caller's) and owns the terminal.
    if (::isatty(0) == 1) {
      ::setpgid(0, 0);
      ::signal(SIGTTOU, SIG_IGN);
      ::tcsetpgrp(0, ::getpid());
      ::signal(SIGTTOU, SIG_DFL);
    }
    environ = const_cast<char**>(envp);
    ::execvp(argv[0], argv);
    child_exec_failed(argv[0]);
  }
  return child_wait_for(pid);
}

// Closes every fd above 2 except `keep` (unsorted, -1 entries ignored), so
// the sandbox holds none of the caller's files (or its flock()s).
void child_close_other_fds(int* keep, int count) {
  for (int i = 1; i < count; ++i)
    for (int k = i; k > 0 && keep[k] < keep[k - 1]; --k) std::swap(keep[k], keep[k - 1]);
  unsigned int next = 3;
  for (int i = 0; i < count; ++i) {
    if (keep[i] < static_cast<int>(next)) continue;
    if (static_cast<unsigned int>(keep[i]) > next)
      ::close_range(next, static_cast<unsigned int>(keep[i]) - 1, 0);
    next = static_cast<unsigned int>(keep[i]) + 1;
  }
  ::close_range(next, ~0U, 0);
}

// Copies the directory `from` into the directory `to` (both fds): its
// directories, regular files and symlinks, with their modes, and owners
// where allowed; anything else (whiteouts, devices, FIFOs) is left out.
// Best effort: what cannot be read or written is skipped.
char g_copy_buffer[1 << 16];

void child_copy_tree(int from, int to, int depth) {
  if (depth > 32) return;
  alignas(8) char entries[4096];
  for (;;) {
    long got = ::syscall(SYS_getdents64, from, entries, sizeof entries);
    if (got <= 0) return;
    for (long at = 0; at < got;) {
      unsigned short reclen = 0;  // struct linux_dirent64, as in child_dir_empty
      std::memcpy(&reclen, entries + at + 16, sizeof reclen);
      const char* name = entries + at + 19;
      at += reclen;
      if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) continue;
      struct stat st {};
      if (::fstatat(from, name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (S_ISDIR(st.st_mode)) {
        if (::mkdirat(to, name, 0700) != 0 && errno != EEXIST) continue;
        int sub_from = ::openat(from, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int sub_to = ::openat(to, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub_from >= 0 && sub_to >= 0) child_copy_tree(sub_from, sub_to, depth + 1);
        if (sub_from >= 0) ::close(sub_from);
        if (sub_to >= 0) ::close(sub_to);
      } else if (S_ISREG(st.st_mode)) {
        int in = ::openat(from, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (in < 0) continue;
        int out = ::openat(to, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (out >= 0) {
          for (;;) {
            ssize_t n = ::read(in, g_copy_buffer, sizeof g_copy_buffer);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            child_write_all(out, g_copy_buffer, static_cast<std::size_t>(n));
          }
          ::close(out);
        }
        ::close(in);
      } else if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t n = ::readlinkat(from, name, target, sizeof target - 1);
        if (n < 0) continue;
        target[n] = '\0';
        if (::symlinkat(target, to, name) != 0) continue;
      } else {
        continue;
      }
      [[maybe_unused]] int r = ::fchownat(to, name, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
      if (!S_ISLNK(st.st_mode)) ::fchmodat(to, name, st.st_mode & 07777, 0);
    }
  }
}

// True when the directory open at `fd` holds nothing but . and ..; rewinds it.
bool child_dir_empty(int fd) {
  alignas(8) char entries[1024];
  bool empty = true;
  for (long got; empty && (got = ::syscall(SYS_getdents64, fd, entries, sizeof entries)) > 0;) {
    for (long at = 0; at < got;) {
      // struct linux_dirent64: d_ino, d_off, d_reclen, d_type, d_name.
      unsigned short reclen = 0;
      std::memcpy(&reclen, entries + at + 16, sizeof reclen);
      const char* name = entries + at + 19;
      if (std::strcmp(name, ".") != 0 && std::strcmp(name, "..") != 0) empty = false;
      at += reclen;
    }
  }
  ::lseek(fd, 0, SEEK_SET);
  return empty;
}

// After a failed command: keeps what the commands wrote outside the build
// and install directories (the tmpfs upper layers) in <sandbox_dir>/kept,
// for gang shell. `scratch` is the tmpfs's overlay/ directory, `disk` the
// sandbox directory, both opened before pivot_root.
void child_keep_uppers(const Plan& plan, int scratch, int disk) {
  int kept = -1;
  for (const auto& name : plan.uppers) {
    int layer = ::openat(scratch, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (layer < 0) continue;
    int upper = ::openat(layer, "upper", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ::close(layer);
    if (upper < 0) continue;
    if (!child_dir_empty(upper)) {
      if (kept < 0) {
        ::mkdirat(disk, "kept", 0755);
        kept = ::openat(disk, "kept", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      }
      if (kept >= 0 && (::mkdirat(kept, name.c_str(), 0755) == 0 || errno == EEXIST)) {
        int to = ::openat(kept, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (to >= 0) {
          child_copy_tree(upper, to, 0);
          ::close(to);
        }
      }
    }
    ::close(upper);
  }
  if (kept >= 0) ::close(kept);
}

int child_main(const Plan& plan) {
  int keep[] = {plan.status_fd, plan.keepalive_read, plan.output_fd,
                plan.null_fd,   plan.netns_fd,       plan.go_fd};
  child_close_other_fds(keep, 6);
  if (plan.netns_fd >= 0) {
    if (::setns(plan.netns_fd, CLONE_NEWNET) != 0)
      child_fail(plan, "cannot enter the sandbox's network namespace", nullptr);
    ::close(plan.netns_fd);
  }
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  pollfd alive{plan.keepalive_read, POLLIN, 0};
  if (::poll(&alive, 1, 0) > 0 && (alive.revents & (POLLHUP | POLLERR)) != 0) ::_exit(k_init_failed);

  // Signals: start from defaults (the caller may ignore or block some), then
  // make the init die on interrupts (command mode) or survive them
  // (interactive: the shell handles ^C itself).
  for (int sig = 1; sig < NSIG; ++sig) ::signal(sig, SIG_DFL);
  struct sigaction action {};
  ::sigemptyset(&action.sa_mask);
  action.sa_handler = init_die;
  ::sigaction(SIGTERM, &action, nullptr);
  ::sigaction(SIGHUP, &action, nullptr);
  action.sa_handler = plan.die_on_interrupt ? init_die : init_ignore;
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGQUIT, &action, nullptr);
  sigset_t none;
  ::sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);

  // (an unprivileged caller's uid and gid maps were written before the
  // exec, which then kept this init's capabilities in its namespace)
  // A build gets no controlling terminal: a new session (which also keeps
  // a `kill 0` in a build away from the caller's process group).
  if (!plan.interactive && ::setsid() < 0) child_fail(plan, "cannot start a session", nullptr);
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0)
    child_fail(plan, "cannot make mounts private", nullptr);
  for (const Op& op : plan.ops) child_run_op(plan, op);
  int scratch_fd = -1, disk_fd = -1;
  if (plan.scratch_tmpfs && !plan.interactive) {
    scratch_fd = ::open(plan.scratch_overlay.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    disk_fd = ::open(plan.sandbox_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  }

  ::sethostname("gang", 4);
  if (plan.loopback_up) bring_loopback_up();

  if (::chdir(plan.root.c_str()) != 0) child_fail(plan, "cannot enter", plan.root.c_str());
  if (::syscall(SYS_pivot_root, ".", ".") != 0)
    child_fail(plan, "cannot pivot_root to", plan.root.c_str());
  if (::umount2(".", MNT_DETACH) != 0) child_fail(plan, "cannot detach the old root", nullptr);
  if (::chdir(plan.cwd.c_str()) != 0) child_fail(plan, "cannot enter", plan.cwd.c_str());

  // Drop every privilege over the host: the commands run in a user namespace
  // of their own, mapping root to the caller's uid/gid (root to root when
  // gang runs as root), which owns none of the sandbox's other namespaces.
  // Its capabilities reach only what it owns, so it cannot mount, mknod,
  // open_by_handle_at, load modules or change the network; no_new_privs
  // keeps setuid programs from gaining anything.
  if (::unshare(CLONE_NEWUSER) != 0) child_fail(plan, "cannot create a user namespace", nullptr);
  if (!child_write_file("/proc/self/setgroups", "deny"))
    child_fail(plan, "cannot write", "/proc/self/setgroups");
  if (!child_write_file("/proc/self/uid_map", "0 0 1\n"))
    child_fail(plan, "cannot write", "/proc/self/uid_map");
  if (!child_write_file("/proc/self/gid_map", "0 0 1\n"))
    child_fail(plan, "cannot write", "/proc/self/gid_map");
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    child_fail(plan, "cannot set no_new_privs", nullptr);
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::poll(&alive, 1, 0) > 0 && (alive.revents & (POLLHUP | POLLERR)) != 0) ::_exit(k_init_failed);

  if (!plan.interactive) {
    if (::dup2(plan.null_fd, 0) < 0 || ::dup2(plan.output_fd, 1) < 0 ||
        ::dup2(plan.output_fd, 2) < 0)
      child_fail(plan, "cannot set up output", nullptr);
  }
  // Only stdin, stdout and stderr reach the commands.
  ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  if (plan.go_fd >= 0) {
    char go = 0;
    ssize_t got;
    do got = ::read(plan.go_fd, &go, 1);
    while (got < 0 && errno == EINTR);
    if (got != 1) ::_exit(0);  // dropped before it ran anything
    ::close(plan.go_fd);
  }

  Report report{'S', -1, 0};
  for (std::size_t i = 0; i < plan.commands.size(); ++i) {
    Report started{'C', static_cast<int>(i), 0};
    child_write_all(plan.status_fd, reinterpret_cast<const char*>(&started), sizeof started);
    const std::string& header = plan.commands[i].header;
    if (!plan.interactive) child_write_all(1, header.data(), header.size());
    int status = child_run_one(plan, i);
    report.status = status;
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
      report.index = static_cast<int>(i);
      break;
    }
  }
  if (report.index >= 0 && scratch_fd >= 0 && disk_fd >= 0)
    child_keep_uppers(plan, scratch_fd, disk_fd);
  // Nothing of the build outlives this report: every process left in the
  // sandbox (a daemon a command started) is killed and reaped first, so the
  // caller may take the install directory as soon as it reads the report,
  // while this init's exit (the namespaces' teardown) goes on.
  if (!plan.interactive) {
    ::kill(-1, SIGKILL);
    for (;;) {
      pid_t reaped = ::waitpid(-1, nullptr, 0);
      if (reaped > 0 || (reaped < 0 && errno == EINTR)) continue;
      break;
    }
  }
  child_write_all(plan.status_fd, reinterpret_cast<const char*>(&report), sizeof report);
  ::_exit(report.index < 0 ? 0 : 1);
}


}  // namespace

}  // namespace gang::init

int main(int argc, char** argv) {
  using namespace gang::init;
  // (the status pipe's number is in the plan; until it is read, a failure
  // can only be this exit status)
  if (argc != 2) return k_init_failed;
  int plan_fd = std::atoi(argv[1]);
  std::string bytes;
  char buffer[65536];
  for (ssize_t n; (n = ::pread(plan_fd, buffer, sizeof buffer, static_cast<off_t>(bytes.size()))) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      return k_init_failed;
    }
    bytes.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(plan_fd);
  auto plan = decode(bytes);
  if (!plan) return k_init_failed;
  return child_main(*plan);
}
