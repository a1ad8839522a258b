// gang_process.hpp: test helpers that run the real gang binary as a child
// process (output to a file), and write small definition trees whose chunks
// sleep and write files. Header-only; used by the gang end-to-end tests.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "util/fs.hpp"

namespace gang::testing {

struct Child {
  pid_t pid = -1;
  std::string output_path;
  std::chrono::steady_clock::time_point started;
};

// own_group: gang leads a process group of its own (as a shell's job), so
// that a signal to that group reaches gang, its workers and nothing else.
inline Child spawn_gang(const std::vector<std::string>& args, const std::string& output_path,
                        bool own_group = false) {
  std::vector<std::string> argv{GANG_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  Child child{-1, output_path, std::chrono::steady_clock::now()};
  child.pid = ::fork();
  if (child.pid == 0) {
    if (own_group) ::setpgid(0, 0);
    int fd = ::open(output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, 0);
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);
    ::execv(cargv[0], cargv.data());
    ::_exit(127);
  }
  if (own_group && child.pid > 0) ::setpgid(child.pid, child.pid);
  return child;
}

// Waits up to timeout; returns the exit status (128+N for signal N), or -1
// after killing the child on timeout.
inline int wait_child(const Child& child, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t done = ::waitpid(child.pid, &status, WNOHANG);
    if (done == child.pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      return -2;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(child.pid, SIGKILL);
      ::waitpid(child.pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

struct Run {
  int status = 0;
  std::string output;
};

inline std::string slurp(const std::string& path) {
  auto text = read_file(path);
  return text ? *text : std::string();
}

inline Run run_gang(const std::vector<std::string>& args, const std::string& scratch,
                    std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  static int counter = 0;
  std::string out = scratch + "/run-" + std::to_string(++counter) + ".out";
  Child child = spawn_gang(args, out);
  int status = wait_child(child, timeout);
  return {status, slurp(out)};
}

inline int count_lines_with(const std::string& text, const std::string& needle) {
  std::istringstream in(text);
  std::string line;
  int n = 0;
  while (std::getline(in, line)) n += line.find(needle) != std::string::npos;
  return n;
}

// Waits until the file contains `needle`; false on timeout.
inline bool wait_for_text(const std::string& path, const std::string& needle,
                          std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (slurp(path).find(needle) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

// The pids of `parent`'s direct children.
inline std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  std::string text = slurp("/proc/" + std::to_string(parent) + "/task/" + std::to_string(parent) +
                           "/children");
  std::istringstream in(text);
  pid_t pid;
  while (in >> pid) out.push_back(pid);
  return out;
}

// One chunk of a stratum written by write_stratum: its install-commands are
// YAML scalars, written as they are (quote them where YAML needs it).
struct StratumChunk {
  std::string name;
  std::vector<std::string> deps;
  std::vector<std::string> install_commands;
};

// Writes a definitions tree with one stratum `s` of inline chunks without
// repos, each with build-system manual.
inline void write_stratum(const std::string& root, const std::vector<StratumChunk>& chunks) {
  (void)make_dirs(root + "/strata");
  (void)write_file_atomic(root + "/VERSION", "version: 9\n");
  (void)write_file_atomic(root + "/DEFAULTS",
                          "build-systems:\n  manual:\n    install-commands: []\n"
                          "split-rules:\n  chunk: []\n  stratum: []\n");
  std::string morph = "name: s\nkind: stratum\nchunks:\n";
  for (const auto& c : chunks) {
    morph += "- name: " + c.name + "\n  build-system: manual\n";
    if (!c.deps.empty()) {
      morph += "  build-depends:\n";
      for (const auto& d : c.deps) morph += "  - " + d + "\n";
    }
    morph += "  install-commands:\n";
    for (const auto& command : c.install_commands) morph += "  - " + command + "\n";
  }
  (void)write_file_atomic(root + "/strata/s.morph", morph);
}

struct TestChunk {
  std::string name;
  std::vector<std::string> deps;
  double sleep = 0;
  bool fail = false;
};

// Writes a definitions tree with one stratum `s` of inline chunks without
// repos. Each chunk sleeps, then writes share/gang-test/<name>.
inline void write_tree(const std::string& root, const std::vector<TestChunk>& chunks) {
  std::vector<StratumChunk> stratum;
  for (const auto& c : chunks) {
    StratumChunk& s = stratum.emplace_back(StratumChunk{c.name, c.deps, {}});
    if (c.sleep > 0) s.install_commands.push_back("sleep " + std::to_string(c.sleep));
    if (c.fail) s.install_commands.push_back("echo 'deliberate failure' >&2; exit 3");
    s.install_commands.push_back("mkdir -p \"$DESTDIR$PREFIX/share/gang-test\"");
    s.install_commands.push_back("echo " + c.name + " > \"$DESTDIR$PREFIX/share/gang-test/" +
                                 c.name + "\"");
  }
  write_stratum(root, stratum);
}

}  // namespace gang::testing
