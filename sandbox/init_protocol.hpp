// init_protocol.hpp: what the launcher (in gang) and the sandbox's init (a
// small static program, sandbox/init/, exec'd as PID 1 of the sandbox)
// share: the plan the init carries out, its encoding, and the reports it
// writes back on the status pipe.
//
// Why a program of its own: an init cloned from the worker shares the
// worker's (big, multi-threaded) address space copy-on-write for as long
// as the build runs, so every page the worker or its threads write
// meanwhile is copied, with a TLB shootdown on every core; cloning also
// copies its page tables. The launcher instead starts the init with
// clone(CLONE_VM | CLONE_VFORK) and execs this program at once: nothing is
// copied, and the worker runs on untouched.
//
// This file must not depend on the rest of gang (it is linked into the
// static init too).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gang::init {

// One step of building the sandbox's root.
struct Op {
  // whiteout: an overlayfs whiteout (a 0:0 character device) at target.
  enum class Kind : std::uint8_t { mount, touch, mkdir, symlink, whiteout };
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
  enum class Api : std::uint8_t { classic, lowerdir_plus, lowerdir_plus_only, fd_numbers };
  Api overlay_api = Api::classic;
  // Where the kernel lacks lowerdir+ and the option string does not fit a
  // page even relative to the layers' parent: the fd-number form.
  bool fd_fallback = false;
  std::vector<std::string> lowers;  // absolute, top first
  std::string upper, work;
  bool volatile_upper = false;
  bool userxattr = false;
};

// One command (command mode) or the program (gang shell).
struct Command {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // the complete environment, "KEY=VALUE"
  std::string header;            // command mode: written to the output first
};

// Everything the init does, in order: enter the prepared network namespace
// (if any), run the ops, bring lo up, pivot_root into `root`, enter a user
// namespace of its own for the commands, wait for the go byte (if held),
// run the commands, report.
struct Plan {
  bool loopback_up = false;
  std::vector<Op> ops;
  // The scratch is a tmpfs mounted by the first op; after a failed command
  // the init copies each overlay's upper directory,
  // <scratch_overlay>/<uppers[i]>/upper, to <sandbox_dir>/kept/<uppers[i]>
  // (skipping empty ones).
  bool scratch_tmpfs = false;
  std::string scratch_overlay;
  std::string sandbox_dir;
  std::vector<std::string> uppers;  // overlay names: root, etc, usr, ...
  std::string root;
  std::string cwd;
  bool interactive = false;
  bool die_on_interrupt = true;
  std::vector<Command> commands;
  // Inherited fds (numbers in the init).
  int status_fd = -1;       // write end: error text or a Report
  int keepalive_read = -1;  // the launcher holds the write end
  int output_fd = -1;       // command mode
  int null_fd = -1;         // command mode
  int netns_fd = -1;        // a prepared network namespace to enter, or -1
  // A held sandbox: the read end of the pipe its commands wait on, once
  // the sandbox is built. One byte: run them; end of file: exit without
  // running anything. -1: run at once.
  int go_fd = -1;
};

// Records the init writes to the status pipe: 'C' before command `index`
// starts, 'S' at the end with the failing index (-1: none) and its status.
// A failure to build the sandbox is 'E' followed by its text instead.
struct Report {
  char tag;
  int index;
  int status;
};

// The exit status of an init that failed before running anything.
inline constexpr int k_init_failed = 125;

[[nodiscard]] std::string encode(const Plan& plan);
// nullopt when `bytes` is not a whole plan.
[[nodiscard]] std::optional<Plan> decode(const std::string& bytes);

// Brings `lo` up in the calling thread's network namespace, best effort.
// System calls only (no allocation).
void bring_loopback_up();

}  // namespace gang::init
