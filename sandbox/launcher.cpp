#include "sandbox/launcher.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
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
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string_view>
#include <tuple>
#include <utility>

#include "sandbox/etc_mask.hpp"
#include "sandbox/netns_factory.hpp"
#include "util/fs.hpp"

extern char** environ;

namespace gang {

namespace {

// Top-level host directories that make up the `host` base.
constexpr const char* k_host_dirs[] = {"usr",   "bin",   "sbin",   "lib",
                                       "lib32", "lib64", "libx32", "etc"};
// Device nodes bind-mounted from the host into the sandbox's tmpfs /dev
// (`tty` only for gang shell: a build has no terminal).
constexpr const char* k_devices[] = {"null", "zero", "full", "random", "urandom"};
// Parts of /proc that reach the host's kernel (sysctls, the sysrq trigger,
// IRQ and bus settings), made read-only in the sandbox.
constexpr const char* k_proc_read_only[] = {"sys", "sysrq-trigger", "irq", "bus", "fs"};
// overlayfs takes its options in one page.
constexpr std::size_t k_max_mount_data = 4000;
constexpr std::size_t k_child_stack_size = 1 << 20;

// One step of building the sandbox's root, prepared by the parent so that the
// child only makes system calls (it must not allocate: it is a clone of a
// possibly multi-threaded process).
struct Op {
  // whiteout: an overlayfs whiteout (a 0:0 character device) at target.
  enum class Kind { mount, touch, mkdir, symlink, whiteout };
  Kind kind = Kind::mount;
  // mkdir: the mode, and the owner when uid is not -1.
  mode_t mode = 0755;
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  std::string source;  // mount source, or symlink target
  std::string target;  // absolute host path (under the new root)
  std::string fstype;
  std::string data;
  std::string fallback_data;  // retried when `data` is refused with EINVAL (older kernels)
  std::string chdir_to;       // for overlays with relative lowerdirs
  unsigned long flags = 0;
  // Overlays: the same mount through the new mount API, one layer per
  // fsconfig("lowerdir+") call (kernel 6.8 and later: no page limit). Tried
  // first where `overlay_api` allows; a kernel that refuses "lowerdir+"
  // gets `data` (the classic option string) instead.
  // fd_numbers: `lowerdir=` names the layers by fd number, relative to
  // /proc/self/fd (any kernel; no page limit below the 500-layer one).
  enum class Api { classic, lowerdir_plus, lowerdir_plus_only, fd_numbers };
  Api overlay_api = Api::classic;
  // Where the kernel lacks lowerdir+ and the option string does not fit a
  // page even relative to the layers' parent: the fd-number form.
  bool fd_fallback = false;
  // Scratch for the fd-number form, sized by the parent (the child must
  // not allocate): one fd per layer, and the option string.
  mutable std::vector<int> fd_list;
  mutable std::vector<char> fd_data;
  std::vector<std::string> lowers;  // absolute, top first
  std::string upper, work;
  bool volatile_upper = false;
  bool userxattr = false;
};

// Which overlay mount API sandboxes use: GANG_OVERLAY_API=classic forces the
// option string, =lowerdir+ forces the new API (an error where the kernel
// lacks it); otherwise the new API where the kernel has it.
Op::Api overlay_api_from_env() {
  const char* v = std::getenv("GANG_OVERLAY_API");
  if (v == nullptr || *v == '\0') return Op::Api::lowerdir_plus;
  if (std::string_view(v) == "classic") return Op::Api::classic;
  if (std::string_view(v) == "fd") return Op::Api::fd_numbers;
  return Op::Api::lowerdir_plus_only;
}

// Everything the child needs, prepared before clone().
struct Plan {
  bool user_ns = false;
  std::string uid_map;
  std::string gid_map;
  bool loopback_up = false;
  std::vector<Op> ops;
  // The scratch (skeleton, upper and work directories) is a tmpfs mounted
  // on `scratch` by the first op; after a failed command the init copies
  // each overlay's upper directory, <scratch>/overlay/<uppers[i]>/upper,
  // to <sandbox_dir>/kept/<uppers[i]> (skipping empty ones).
  bool scratch_tmpfs = false;
  std::string scratch;
  std::string scratch_overlay;  // <scratch>/overlay
  std::string sandbox_dir;
  std::vector<std::string> uppers;  // overlay names: root, etc, usr, ...
  std::string root;
  std::string cwd;
  bool interactive = false;
  bool die_on_interrupt = true;
  std::vector<std::string> headers;       // command mode: one per command
  std::vector<std::vector<char*>> argvs;  // null-terminated, one per command / the program
  std::vector<std::vector<char*>> envps;  // null-terminated, one per entry of argvs
  int status_fd = -1;                     // write end: error text or a Report
  int keepalive_read = -1;                // parent holds the write end
  int keepalive_write = -1;
  int output_fd = -1;  // command mode
  int null_fd = -1;    // command mode
  int netns_fd = -1;   // a prepared network namespace to enter (NetnsFactory), or -1
  // A held sandbox (Launcher::start): the read end of the pipe its commands
  // wait on, once the sandbox is built. One byte: run them; end of file:
  // the caller dropped the sandbox, exit without running anything. -1: run
  // at once.
  int go_fd = -1;
  // The caller's environment block (/proc/PID/environ reads this range of
  // the init's memory, a copy of the caller's): wiped in the init.
  char* env_start = nullptr;
  char* env_end = nullptr;
};

// Records the init writes to the status pipe: 'C' before command `index`
// starts, 'S' at the end with the failing index (-1: none) and its status.
struct Report {
  char tag;
  int index;
  int status;
};

// ---- child side: async-signal-safe only ----------------------------------

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
  ::_exit(125);
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
  if (op.fd_list.size() < count) return E2BIG;
  for (std::size_t i = 0; i < count; ++i) op.fd_list[i] = -1;
  auto close_all = [&](int err) {
    for (std::size_t i = 0; i < count; ++i)
      if (op.fd_list[i] >= 0) ::close(op.fd_list[i]);
    return err;
  };
  for (std::size_t i = 0; i < count; ++i) {
    op.fd_list[i] = ::open(op.lowers[i].c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (op.fd_list[i] < 0) return close_all(errno);
  }
  char* out = op.fd_data.data();
  std::size_t used = 0, size = op.fd_data.size();
  auto append = [&](const char* text) { child_append(out, used, size, text); };
  append("lowerdir=");
  for (std::size_t i = 0; i < count; ++i) {
    char number[16];
    int n = op.fd_list[i], digits = 0;
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

// Runs plan.argvs[index] (a command or the program) as a child of the init
// and waits for it. Returns its wait status.
int child_run_one(const Plan& plan, std::size_t index) {
  char* const* argv = plan.argvs[index].data();
  char* const* envp = plan.envps[index].data();
  if (!plan.interactive) {
    // The init is a copy of the (possibly big) caller: vfork() shares its
    // memory instead of copying page tables. The child only calls execve and
    // _exit with data prepared before clone(); the init's signal mask is
    // already empty, and its handlers only _exit, which is right for the
    // child too until execve resets them.
    pid_t pid = ::vfork();
    if (pid < 0) child_fail(plan, "cannot vfork", nullptr);
    if (pid == 0) {
      ::execve("/bin/sh", argv, envp);
      ::execve("/usr/bin/sh", argv, envp);
      child_exec_failed("/bin/sh");
    }
    return child_wait_for(pid);
  }
  // The fork system call itself, not glibc's fork(): that runs the
  // process's pthread_atfork handlers and takes glibc's own locks, any of
  // which a thread of the caller (absent here) may have held when the init
  // was cloned, which would block this init for ever.
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
// Best effort: what cannot be read or written is skipped. No allocation.
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

int child_main(void* arg) {
  const Plan& plan = *static_cast<const Plan*>(arg);
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
  if (::poll(&alive, 1, 0) > 0 && (alive.revents & (POLLHUP | POLLERR)) != 0) ::_exit(125);

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

  if (plan.user_ns) {
    // A caller that changed uid without exec is not dumpable, which makes
    // /proc/self/* root-owned and the maps unwritable.
    ::prctl(PR_SET_DUMPABLE, 1);
    if (!child_write_file("/proc/self/setgroups", "deny"))
      child_fail(plan, "cannot write", "/proc/self/setgroups");
    if (!child_write_file("/proc/self/uid_map", plan.uid_map))
      child_fail(plan, "cannot write", "/proc/self/uid_map");
    if (!child_write_file("/proc/self/gid_map", plan.gid_map))
      child_fail(plan, "cannot write", "/proc/self/gid_map");
  }
  // The init is a clone of the caller, and /proc/1/environ shows the
  // caller's environment block: wipe it (clearenv() would not; the block is
  // this copy-on-write clone's own memory).
  if (plan.env_start != nullptr && plan.env_end > plan.env_start)
    std::memset(plan.env_start, 0, static_cast<std::size_t>(plan.env_end - plan.env_start));
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
  if (::poll(&alive, 1, 0) > 0 && (alive.revents & (POLLHUP | POLLERR)) != 0) ::_exit(125);

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
  for (std::size_t i = 0; i < plan.argvs.size(); ++i) {
    Report started{'C', static_cast<int>(i), 0};
    child_write_all(plan.status_fd, reinterpret_cast<const char*>(&started), sizeof started);
    if (!plan.interactive) child_write_all(1, plan.headers[i].data(), plan.headers[i].size());
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

// ---- parent side ----------------------------------------------------------

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : m_fd(fd) {}
  ~Fd() { reset(); }
  Fd(Fd&& other) noexcept : m_fd(other.release()) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      reset();
      m_fd = other.release();
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  [[nodiscard]] int get() const { return m_fd; }
  int release() { return std::exchange(m_fd, -1); }
  void reset() {
    if (m_fd >= 0) ::close(m_fd);
    m_fd = -1;
  }

 private:
  int m_fd = -1;
};

// Moves an fd to 10 or above so that dup2 onto 0..2 in the child cannot
// clobber it.
Result<Fd> high_fd(int fd, const char* what) {
  int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 10);
  if (moved < 0) return make_errno_error(std::string("cannot duplicate ") + what);
  return Fd(moved);
}

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool exists_not_dir(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0 && !S_ISDIR(st.st_mode);
}

// A volatile overlay leaves <work>/work/incompat/volatile/dirty behind and
// refuses to be mounted again over it (it cannot tell a clean unmount from a
// crash). The sandbox's upper layers are scratch, so a remount (gang shell)
// drops the marker. Overlayfs makes these directories mode 000.
void clear_volatile_marker(const std::string& work) {
  std::string incompat = work + "/work/incompat";
  ::chmod((work + "/work").c_str(), 0700);
  if (!is_dir(incompat)) return;
  ::chmod(incompat.c_str(), 0700);
  ::chmod((incompat + "/volatile").c_str(), 0700);
  (void)remove_tree(incompat);
}

std::string common_parent(const std::vector<std::string>& paths) {
  std::string common = paths.front();
  for (const auto& path : paths) {
    std::size_t i = 0;
    while (i < common.size() && i < path.size() && common[i] == path[i]) ++i;
    common.resize(i);
  }
  auto slash = common.rfind('/');
  return slash == std::string::npos || slash == 0 ? "/" : common.substr(0, slash);
}

// An overlay mount op; lowers top first. Falls back to paths relative to
// the common parent of the layers above the bottom one when the absolute
// option string does not fit a page. A writable overlay is `volatile`: its
// upper layer is thrown away with the sandbox, so unmounting it need not
// syncfs() the (shared, on-disk) file system holding it; kernels before 5.10
// get the overlay without it.
Result<Op> overlay_op(const std::vector<std::string>& lowers, const std::string& upper,
                      const std::string& work, const std::string& target, bool read_only,
                      bool user_ns) {
  auto options = [&](const std::string& base) {
    std::string data = "lowerdir=";
    for (std::size_t i = 0; i < lowers.size(); ++i) {
      if (i > 0) data += ':';
      const std::string& lower = lowers[i];
      bool inside = !base.empty() && base != "/" && lower.starts_with(base + "/");
      data += inside ? lower.substr(base.size() + 1) : lower;
    }
    data += ",upperdir=" + upper + ",workdir=" + work;
    if (user_ns) data += ",userxattr";
    return data;
  };
  Op op;
  op.kind = Op::Kind::mount;
  op.source = "overlay";
  op.fstype = "overlay";
  op.target = target;
  op.flags = read_only ? MS_RDONLY : 0;
  op.overlay_api = overlay_api_from_env();
  op.lowers = lowers;
  // As in the option string: an upper layer even when read-only (a single
  // lower layer alone is not an overlay), volatile only when writable.
  op.upper = upper;
  op.work = work;
  op.volatile_upper = !read_only;
  op.userxattr = user_ns;
  op.data = options("");
  auto finish = [&] {
    if (read_only) return;
    op.fallback_data = op.data;
    op.data += ",volatile";
  };
  if (op.data.size() + std::strlen(",volatile") > k_max_mount_data) {
    // The staged layers usually share a parent; the bottom one (the
    // skeleton or the host directory) stays absolute.
    std::vector<std::string> upper_lowers(lowers.begin(), lowers.end() - (lowers.size() > 1));
    std::string base = common_parent(upper_lowers);
    op.data = options(base);
    op.chdir_to = base;
    if (op.data.size() + std::strlen(",volatile") > k_max_mount_data) {
      // No classic string fits: lowerdir+, else lower layers by fd number.
      if (op.overlay_api == Op::Api::classic)
        return make_error("too many or too long lower layers for one overlay on " + target + " (" +
                          std::to_string(lowers.size()) + " layers; GANG_OVERLAY_API=classic)");
      op.fd_fallback = true;
      op.chdir_to.clear();
    }
  }
  finish();
  if (op.overlay_api == Op::Api::fd_numbers || op.fd_fallback) {
    // The init closes the caller's fds first, so the layers' fds are small
    // numbers: at most 4 digits and a ':' each.
    std::size_t need = lowers.size() * 5 + upper.size() + work.size() + 64;
    if (need > k_max_mount_data)
      return make_error("too many lower layers for one overlay on " + target + " (" +
                        std::to_string(lowers.size()) + ")");
    op.fd_list.assign(lowers.size(), -1);
    op.fd_data.assign(need + 64, '\0');
  }
  return op;
}

// With base `host`, the host's multiarch directories come before /usr/lib
// and /usr/include in the compiler's, the linker's, pkg-config's and the
// dynamic loader's search orders, so a staged library in /usr/lib would be
// shadowed by the host's copy of the same name. Each such directory gets an
// overlay of its own whose top layers are the staged layers' counterparts:
// for /usr/lib/<T>, every layer's usr/lib/<T>, usr/lib and usr/local/lib (top
// first), then the host's directory (/usr/local/lib is in ld's own search
// path, but after the -L/usr/lib/<T> gcc passes, and not in the loader's).
// `host_dirs` are the host directories mounted as
// overlays (the multiarch dirs of a symlinked one are reached through the
// symlink). Directories no staged layer provides are not mounted.
struct MultiarchMount {
  std::string target;               // absolute host path, e.g. /usr/lib/x86_64-linux-gnu
  std::vector<std::string> lowers;  // top first; the host's directory last
};

std::vector<MultiarchMount> multiarch_mounts(const SandboxSpec& spec,
                                             const std::vector<std::string>& host_dirs) {
  std::vector<MultiarchMount> out;
  const std::string triplet = host_multiarch_triplet();
  if (triplet.empty()) return out;
  auto mounted = [&](const char* name) {
    return std::find(host_dirs.begin(), host_dirs.end(), name) != host_dirs.end();
  };
  struct Candidate {
    const char* top;     // host top-level directory that must be an overlay
    std::string parent;  // e.g. /usr/lib
    std::string extra;   // another staged directory to show there, or ""
  };
  std::vector<Candidate> candidates = {{"usr", "/usr/lib", "/usr/local/lib"},
                                       {"usr", "/usr/include", ""}};
  if (mounted("lib")) candidates.push_back({"lib", "/lib", ""});  // not merged-/usr
  for (const auto& candidate : candidates) {
    if (!mounted(candidate.top)) continue;
    std::string target = candidate.parent + "/" + triplet;
    if (!is_dir(target)) continue;
    MultiarchMount mount{target, {}};
    for (const auto& layer : spec.lower_layers)
      for (const std::string& source : {layer + target, layer + candidate.parent,
                                        candidate.extra.empty() ? "" : layer + candidate.extra})
        if (!source.empty() && is_dir(source)) mount.lowers.push_back(source);
    if (mount.lowers.empty()) continue;
    mount.lowers.push_back(target);
    out.push_back(std::move(mount));
  }
  return out;
}

// Where the sandbox's scratch (skeleton, /etc mask, overlay upper and work
// directories) lives: a tmpfs of the sandbox's own mount namespace, unless
// the caller keeps the upper layers, or the sandbox is unprivileged on a
// kernel whose tmpfs lacks the user xattrs overlayfs needs (before 6.6).
// GANG_SANDBOX_SCRATCH=disk|tmpfs forces one (tests).
bool scratch_on_tmpfs(const SandboxSpec& spec, bool user_ns) {
  if (spec.keep_upper) return false;
  const char* forced = std::getenv("GANG_SANDBOX_SCRATCH");
  if (forced != nullptr && std::string_view(forced) == "disk") return false;
  if (forced != nullptr && std::string_view(forced) == "tmpfs") return true;
  if (!user_ns) return true;
  struct utsname name {};
  if (::uname(&name) != 0) return false;
  int major = 0, minor = 0;
  if (std::sscanf(name.release, "%d.%d", &major, &minor) != 2) return false;
  return major > 6 || (major == 6 && minor >= 6);
}

// Prepares the sandbox directory and the list of operations the init runs to
// build the root. See sandbox/README.md for the layout. On disk, a run makes
// only <dir>/root (and the build and install directories); everything else
// is made by the init, in the scratch mounted on <dir>/root.
Result<void> prepare(const SandboxSpec& spec, bool user_ns, bool interactive, Plan& plan) {
  const std::string& dir = spec.sandbox_dir;
  const bool host = spec.base == "host" || spec.mode == SandboxMode::bootstrap;
  const bool read_only = spec.mode == SandboxMode::bootstrap;
  const std::string scratch = dir + "/root";
  const std::string root = scratch + "/mnt";
  const std::string skel = scratch + "/base";
  const std::string build_mount = "/" + spec.name + ".build";
  const std::string inst_mount = "/" + spec.name + ".inst";
  for (const std::string& sub : {scratch, spec.build_dir, spec.install_dir})
    if (auto ok = make_dirs(sub); !ok) return ok;
  for (const auto& layer : spec.lower_layers)
    if (!is_dir(layer)) return make_error("sandbox: lower layer " + layer + " is not a directory");
  if (spec.base != "host" && spec.base != "none" && !host && !is_dir(spec.base))
    return make_error("sandbox: sysroot " + spec.base + " is not a directory");

  auto add = [&](Op::Kind kind, const std::string& target, const std::string& source = {},
                 mode_t mode = 0755, uid_t uid = static_cast<uid_t>(-1),
                 gid_t gid = static_cast<gid_t>(-1)) {
    Op op;
    op.kind = kind;
    op.target = target;
    op.source = source;
    op.mode = mode;
    op.uid = uid;
    op.gid = gid;
    plan.ops.push_back(std::move(op));
  };
  auto mount = [&](const std::string& source, const std::string& target, const char* fstype,
                   unsigned long flags, const std::string& data) {
    Op op;
    op.kind = Op::Kind::mount;
    op.source = source;
    op.fstype = fstype;
    op.target = target;
    op.flags = flags;
    op.data = data;
    plan.ops.push_back(std::move(op));
  };
  auto bind = [&](const std::string& source, const std::string& target) {
    mount(source, target, "", MS_BIND, "");
  };
  auto mount_fs = [&](const char* fstype, const std::string& target, unsigned long flags,
                      const std::string& data) { mount(fstype, target, fstype, flags, data); };

  plan.scratch_tmpfs = scratch_on_tmpfs(spec, user_ns);
  if (plan.scratch_tmpfs) {
    mount_fs("tmpfs", scratch, MS_NOSUID, "mode=0755");
    plan.scratch = scratch;
    plan.scratch_overlay = scratch + "/overlay";
    plan.sandbox_dir = dir;
  }
  for (const std::string& sub : {root, skel, skel + "/proc", skel + "/dev", skel + "/tmp",
                                 skel + build_mount, skel + inst_mount, scratch + "/overlay"})
    add(Op::Kind::mkdir, sub);

  std::vector<std::string> host_overlays;
  if (host) {
    for (const char* name : k_host_dirs) {
      std::string host_path = std::string("/") + name;
      struct stat st {};
      if (::lstat(host_path.c_str(), &st) != 0) continue;
      if (S_ISLNK(st.st_mode)) {
        char target[4096];
        ssize_t n = ::readlink(host_path.c_str(), target, sizeof target - 1);
        if (n <= 0) continue;
        add(Op::Kind::symlink, skel + host_path, std::string(target, static_cast<std::size_t>(n)));
      } else if (S_ISDIR(st.st_mode)) {
        bool staged_non_dir = false;
        for (const auto& layer : spec.lower_layers)
          staged_non_dir = staged_non_dir || exists_not_dir(layer + host_path);
        if (staged_non_dir) continue;  // the staged layout wins
        add(Op::Kind::mkdir, skel + host_path);
        host_overlays.push_back(name);
      }
    }
  }

  // An overlay over `lowers` on `target`, its upper and work directories
  // made in the scratch; a failed run's copy of layer `name`'s writes (kept
  // for gang shell) goes on top.
  auto overlay = [&](const std::string& name, std::vector<std::string> lowers,
                     const std::string& target) -> Result<void> {
    std::string kept = sandbox_kept_dir(dir, name);
    if (is_dir(kept)) lowers.insert(lowers.begin(), kept);
    std::string layer_dir = scratch + "/overlay/" + name;
    add(Op::Kind::mkdir, layer_dir);
    add(Op::Kind::mkdir, layer_dir + "/upper");
    add(Op::Kind::mkdir, layer_dir + "/work");
    if (!plan.scratch_tmpfs && !read_only) clear_volatile_marker(layer_dir + "/work");
    auto op = overlay_op(lowers, layer_dir + "/upper", layer_dir + "/work", target, read_only,
                         user_ns);
    if (!op) return std::unexpected(op.error());
    plan.ops.push_back(std::move(*op));
    plan.uppers.push_back(name);
    return {};
  };

  std::vector<std::string> lowers = spec.lower_layers;
  if (!host && spec.base != "none") lowers.push_back(spec.base);
  lowers.push_back(skel);
  if (auto ok = overlay("root", lowers, root); !ok) return ok;

  for (const auto& name : host_overlays) {
    std::string host_path = "/" + name;
    std::vector<std::string> dir_lowers;
    for (const auto& layer : spec.lower_layers)
      if (is_dir(layer + host_path)) dir_lowers.push_back(layer + host_path);
    if (name == "etc" && !user_ns) {
      std::string mask = scratch + "/etc_hidden";
      for (const auto& entry : etc_mask().entries) {
        std::string path = entry.rel.empty() ? mask : mask + "/" + entry.rel;
        add(entry.whiteout ? Op::Kind::whiteout : Op::Kind::mkdir, path, {}, entry.mode,
            entry.uid, entry.gid);
      }
      dir_lowers.push_back(mask);
    }
    dir_lowers.push_back(host_path);
    if (auto ok = overlay(name, dir_lowers, root + host_path); !ok) return ok;
  }
  for (auto& multiarch : multiarch_mounts(spec, host_overlays)) {
    std::string name = multiarch.target;  // /usr/lib/T -> multiarch_usr_lib_T
    std::replace(name.begin(), name.end(), '/', '_');
    if (auto ok = overlay("multiarch" + name, multiarch.lowers, root + multiarch.target); !ok)
      return ok;
  }

  bind(spec.build_dir, root + build_mount);
  bind(spec.install_dir, root + inst_mount);
  mount_fs("proc", root + "/proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "");
  for (const char* entry : k_proc_read_only) {
    std::string path = std::string("/proc/") + entry;
    if (::access(path.c_str(), F_OK) != 0) continue;
    bind(root + path, root + path);
    mount("", root + path, "", MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
          "");
  }
  // nodev: the host's device nodes below are bind mounts, which keep their
  // own mount's flags; a node made in /dev would not work.
  mount_fs("tmpfs", root + "/dev", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0755");
  for (const char* device : k_devices) {
    std::string host_device = std::string("/dev/") + device;
    if (::access(host_device.c_str(), F_OK) != 0) continue;
    add(Op::Kind::touch, root + host_device);
    bind(host_device, root + host_device);
  }
  if (interactive && ::access("/dev/tty", F_OK) == 0) {
    add(Op::Kind::touch, root + "/dev/tty");
    bind("/dev/tty", root + "/dev/tty");
  }
  add(Op::Kind::symlink, root + "/dev/fd", "/proc/self/fd");
  add(Op::Kind::symlink, root + "/dev/stdin", "/proc/self/fd/0");
  add(Op::Kind::symlink, root + "/dev/stdout", "/proc/self/fd/1");
  add(Op::Kind::symlink, root + "/dev/stderr", "/proc/self/fd/2");
  if (interactive && is_dir("/dev/pts")) {
    // The caller's terminal, so that tty(1) and job control work.
    add(Op::Kind::mkdir, root + "/dev/pts");
    bind("/dev/pts", root + "/dev/pts");
    add(Op::Kind::symlink, root + "/dev/ptmx", "pts/ptmx");
  }
  add(Op::Kind::mkdir, root + "/dev/shm");
  mount_fs("tmpfs", root + "/dev/shm", MS_NOSUID | MS_NODEV, "mode=1777");
  mount_fs("tmpfs", root + "/tmp", MS_NOSUID | MS_NODEV, "mode=1777");

  plan.root = root;
  plan.cwd = build_mount;
  plan.loopback_up = spec.network == Network::none;
  return {};
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

// The caller's environment block, [env_start, env_end) of /proc/self/stat
// (fields 50 and 51): what /proc/PID/environ shows. {nullptr, nullptr} when
// unknown.
std::pair<char*, char*> environment_block() {
  std::ifstream in("/proc/self/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = text.rfind(')');
  if (close == std::string::npos) return {nullptr, nullptr};
  std::istringstream fields(text.substr(close + 2));
  std::string field;
  unsigned long long start = 0, end = 0;
  for (int number = 3; fields >> field; ++number) {
    if (number == 50) start = std::strtoull(field.c_str(), nullptr, 10);
    if (number == 51) end = std::strtoull(field.c_str(), nullptr, 10);
  }
  if (start == 0 || end <= start) return {nullptr, nullptr};
  return {reinterpret_cast<char*>(start), reinterpret_cast<char*>(end)};
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

const char* host_multiarch_triplet() {
#if defined(__x86_64__) && defined(__ILP32__)
  return "x86_64-linux-gnux32";
#elif defined(__x86_64__)
  return "x86_64-linux-gnu";
#elif defined(__i386__)
  return "i386-linux-gnu";
#elif defined(__aarch64__)
  return "aarch64-linux-gnu";
#elif defined(__arm__) && defined(__ARM_PCS_VFP)
  return "arm-linux-gnueabihf";
#elif defined(__arm__)
  return "arm-linux-gnueabi";
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  return "powerpc64le-linux-gnu";
#elif defined(__riscv) && __riscv_xlen == 64
  return "riscv64-linux-gnu";
#elif defined(__s390x__)
  return "s390x-linux-gnu";
#else
  return "";
#endif
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

Result<std::unique_ptr<Started>> start_sandbox(const SandboxSpec& spec, const Invocation& what,
                                               bool hold) {
  if (auto ok = validate_spec(spec); !ok) return std::unexpected(ok.error());
  unreaped_inits().reap(false);
  const bool interactive = what.commands.empty();
  if (interactive && what.argv.empty()) return make_error("sandbox: nothing to run");
  if (!interactive && what.output_fd < 0) return make_error("sandbox: no output file");
  if (interactive && hold) return make_error("sandbox: an interactive sandbox cannot be held");

  Plan plan;
  plan.user_ns = ::geteuid() != 0;
  plan.uid_map = "0 " + std::to_string(::geteuid()) + " 1\n";
  plan.gid_map = "0 " + std::to_string(::getegid()) + " 1\n";
  plan.interactive = interactive;
  plan.die_on_interrupt = !interactive;
  // (fixed for the life of the process: read once)
  static const std::pair<char*, char*> env_block = environment_block();
  std::tie(plan.env_start, plan.env_end) = env_block;
  if (auto ok = prepare(spec, plan.user_ns, interactive, plan); !ok)
    return std::unexpected(ok.error());

  // argv/envp arrays point into `what`; the child has its own copy of them
  // (clone without CLONE_VM copies the address space).
  auto pointers = [](const std::vector<std::string>& strings) {
    std::vector<char*> out;
    out.reserve(strings.size() + 1);
    for (const auto& entry : strings) out.push_back(const_cast<char*>(entry.c_str()));
    out.push_back(nullptr);
    return out;
  };
  static char k_sh[] = "sh", k_c[] = "-c", k_e[] = "-e";
  if (interactive) {
    plan.argvs.push_back(pointers(what.argv));
    plan.envps.push_back(pointers(what.env));
  } else {
    for (const auto& command : what.commands) {
      plan.argvs.push_back({k_sh, k_c, k_e, const_cast<char*>(command.text.c_str()), nullptr});
      plan.envps.push_back(pointers(command.env));
      plan.headers.push_back("# [" + command.label + "] " + command.text + "\n");
    }
  }

  auto started = std::make_unique<Started>();
  started->interactive = interactive;
  int status_pipe[2];
  if (::pipe2(status_pipe, O_CLOEXEC) != 0) return make_errno_error("cannot create a pipe");
  started->status_read = Fd(status_pipe[0]);
  auto status_write = high_fd(status_pipe[1], "a pipe");
  ::close(status_pipe[1]);
  if (!status_write) return std::unexpected(status_write.error());
  int alive_pipe[2];
  if (::pipe2(alive_pipe, O_CLOEXEC) != 0) return make_errno_error("cannot create a pipe");
  auto alive_read = high_fd(alive_pipe[0], "a pipe");
  ::close(alive_pipe[0]);
  started->alive_write = Fd(alive_pipe[1]);
  if (!alive_read) return std::unexpected(alive_read.error());
  Fd go_read;
  if (hold) {
    int go_pipe[2];
    if (::pipe2(go_pipe, O_CLOEXEC) != 0) return make_errno_error("cannot create a pipe");
    auto moved = high_fd(go_pipe[0], "a pipe");
    ::close(go_pipe[0]);
    started->go_write = Fd(go_pipe[1]);
    if (!moved) return std::unexpected(moved.error());
    go_read = std::move(*moved);
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
  plan.status_fd = status_write->get();
  plan.keepalive_read = alive_read->get();
  plan.keepalive_write = started->alive_write.get();
  plan.output_fd = output.get();
  plan.null_fd = null.get();
  plan.go_fd = go_read.get();

  Stack stack;
  if (!stack.ok()) return make_errno_error("cannot allocate a stack for the sandbox");
  int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD;
  // As root, a network namespace prepared in advance, else its own.
  Fd netns;
  if (spec.network == Network::none && !plan.user_ns && prepared_netns_allowed())
    netns = Fd(NetnsFactory::instance().take());
  plan.netns_fd = netns.get();
  if (spec.network == Network::none && netns.get() < 0) flags |= CLONE_NEWNET;
  plan.loopback_up = plan.loopback_up && netns.get() < 0;  // a prepared one has lo up
  if (plan.user_ns) flags |= CLONE_NEWUSER;

  if (interactive) started->terminal.emplace();
  pid_t pid = ::clone(child_main, stack.top(), flags, &plan);
  if (pid < 0) {
    int err = errno;
    return make_errno_error(plan.user_ns
                                ? "cannot create the sandbox's namespaces (are unprivileged user "
                                  "namespaces enabled?)"
                                : "cannot create the sandbox's namespaces",
                            err);
  }
  started->pid = pid;
  started->running.emplace(pid);
  started->return_at_report = !interactive && plan.scratch_tmpfs;
  // (status_write, alive_read, go_read, output, null and netns close here:
  // the sandbox holds its own copies, and goes when it ends)
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
  if (what.commands.empty()) return make_error("sandbox: only commands can be held");
  auto started = start_sandbox(spec, what, true);
  if (!started) return std::unexpected(started.error());
  return std::make_unique<HeldNamespaceSandbox>(std::move(*started));
}

}  // namespace gang
