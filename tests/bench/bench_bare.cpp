// gang_bench_bare: the baseline of scripts/bench-overhead. What a sandboxed
// trivial build cannot avoid, done by hand in one process, with no cache, no
// definitions and no bookkeeping: per iteration, a fresh directory on disk
// for DESTDIR, clone() into new mount, PID, IPC, UTS and network namespaces,
// a tmpfs scratch holding an overlay root (upper and work on the tmpfs) over
// the host's /usr (or a sysroot), /proc, DESTDIR bind-mounted, pivot_root,
// then each command as `sh -e -c CMD` (fork + exec, as gang's sandbox runs
// them) one after the other.
// With `none` for the base, the floor under any build tool: the same fresh
// DESTDIR and the same `sh -e -c CMD` per command, with no namespace, mount
// or sandbox at all (what the commands themselves cost on this machine).
//
// Usage: gang_bench_bare DIR ITERATIONS SYSROOT|host|none CMD...
// Prints one line: "<iterations> <seconds>". DIR must exist and be empty.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

struct Job {
  std::string scratch;  // DIR/scratch: the tmpfs's mount point (each child's own)
  std::string inst;     // DIR/N.inst
  std::string base;     // "host" or a sysroot
  std::vector<std::string> commands;
};

[[noreturn]] void die(const char* what) {
  std::perror(what);
  ::_exit(120);
}

// Runs each command as `sh -e -c CMD` (fork, exec, wait) with ENV; false
// when one fails.
bool run_commands(const std::vector<std::string>& commands, char** env) {
  static char k_sh[] = "sh", k_e[] = "-e", k_c[] = "-c";
  for (const auto& command : commands) {
    pid_t pid = ::fork();
    if (pid == 0) {
      char* argv[] = {k_sh, k_e, k_c, const_cast<char*>(command.c_str()), nullptr};
      ::execve("/bin/sh", argv, env);
      ::_exit(127);
    }
    int status = 0;
    if (pid < 0 || ::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0)
      return false;
  }
  return true;
}

int child(void* arg) {
  const Job& job = *static_cast<const Job*>(arg);
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) die("private");
  if (::mount("tmpfs", job.scratch.c_str(), "tmpfs", MS_NOSUID, "mode=0755") != 0) die("tmpfs");
  std::string s = job.scratch;
  for (const char* sub : {"/upper", "/work", "/mnt", "/base", "/base/proc", "/base/inst",
                          "/base/tmp", "/base/usr"})
    if (::mkdir((s + sub).c_str(), 0755) != 0) die("mkdir");
  for (const char* link : {"bin", "lib", "lib64", "sbin"})
    if (::symlink((std::string("usr/") + link).c_str(), (s + "/base/" + link).c_str()) != 0)
      die("symlink");
  std::string lower = job.base == "host" ? s + "/base" : job.base + ":" + s + "/base";
  std::string data = "lowerdir=" + lower + ",upperdir=" + s + "/upper,workdir=" + s + "/work";
  if (::mount("overlay", (s + "/mnt").c_str(), "overlay", 0, data.c_str()) != 0) die("overlay");
  if (job.base == "host" &&
      ::mount("/usr", (s + "/mnt/usr").c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
    die("bind /usr");
  if (::mount(job.inst.c_str(), (s + "/mnt/inst").c_str(), nullptr, MS_BIND, nullptr) != 0)
    die("bind inst");
  if (::mount("proc", (s + "/mnt/proc").c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC,
              nullptr) != 0)
    die("proc");
  if (::chdir((s + "/mnt").c_str()) != 0) die("chdir");
  if (::syscall(SYS_pivot_root, ".", ".") != 0) die("pivot_root");
  if (::umount2(".", MNT_DETACH) != 0) die("umount old root");
  if (::chdir("/") != 0) die("chdir /");
  char* env[] = {const_cast<char*>("DESTDIR=/inst"), const_cast<char*>("PREFIX=/usr"),
                 const_cast<char*>("PATH=/usr/bin:/bin"), nullptr};
  if (!run_commands(job.commands, env)) ::_exit(1);
  ::_exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: gang_bench_bare DIR ITERATIONS SYSROOT|host|none CMD...\n");
    return 2;
  }
  std::string dir = argv[1];
  int iterations = std::atoi(argv[2]);
  Job job;
  job.scratch = dir + "/scratch";
  job.base = argv[3];
  for (int i = 4; i < argc; ++i) job.commands.emplace_back(argv[i]);
  if (::mkdir(job.scratch.c_str(), 0755) != 0) die("mkdir scratch");
  std::vector<char> stack(1 << 20);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) {
    job.inst = dir + "/" + std::to_string(i) + ".inst";
    if (::mkdir(job.inst.c_str(), 0755) != 0) die("mkdir inst");
    if (job.base == "none") {
      std::string destdir = "DESTDIR=" + job.inst;
      char* env[] = {destdir.data(), const_cast<char*>("PREFIX=/usr"),
                     const_cast<char*>("PATH=/usr/bin:/bin"), nullptr};
      if (!run_commands(job.commands, env)) {
        std::fprintf(stderr, "gang_bench_bare: iteration %d failed\n", i);
        return 1;
      }
      continue;
    }
    pid_t pid = ::clone(child, stack.data() + stack.size(),
                        CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET |
                            SIGCHLD,
                        &job);
    if (pid < 0) die("clone");
    int status = 0;
    if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      std::fprintf(stderr, "gang_bench_bare: iteration %d failed (status %d)\n", i, status);
      return 1;
    }
  }
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%d %.6f\n", iterations, seconds);
  return 0;
}
