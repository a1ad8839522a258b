#include "sandbox/sandbox_plan.hpp"

#include <linux/magic.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <utility>

#include "sandbox/etc_mask.hpp"
#include "util/fs.hpp"

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

using init::Op;
using init::Plan;

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
//
// overlayfs refuses lower layers nested in one another ("overlapping
// lowerdir path", ELOOP), and a layer that has both usr/lib and
// usr/lib/<T> (a Perl module's usr/lib/<T>/perl, a library that CMake or
// Meson installed the Debian way) would give two: its usr/lib is then shown
// through a read-only overlay of its own (`through_overlay`), mounted in the
// scratch first, with usr/lib/<T> hidden by a whiteout where the sandbox may
// make one (not in a user namespace, where it shows as <T>/<T>). A layer
// that is itself on an overlayfs (a cache inside a container) cannot nest
// two more (the kernel stacks at most 2): its usr/lib is left out of
// /usr/lib/<T> instead, and shows in /usr/lib alone.
struct MultiarchLower {
  std::string path;
  bool through_overlay = false;
};
struct MultiarchMount {
  std::string target;                  // absolute host path, e.g. /usr/lib/x86_64-linux-gnu
  std::vector<MultiarchLower> lowers;  // top first; the host's directory last
};

bool on_overlayfs(const std::string& path) {
  struct statfs fs {};
  return ::statfs(path.c_str(), &fs) == 0 && fs.f_type == OVERLAYFS_SUPER_MAGIC;
}

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
    for (const auto& layer : spec.lower_layers) {
      const bool own_target = is_dir(layer + target);
      if (own_target) mount.lowers.push_back({layer + target});
      if (is_dir(layer + candidate.parent)) {
        if (!own_target)
          mount.lowers.push_back({layer + candidate.parent});
        else if (!on_overlayfs(layer))
          mount.lowers.push_back({layer + candidate.parent, true});
      }
      if (!candidate.extra.empty() && is_dir(layer + candidate.extra))
        mount.lowers.push_back({layer + candidate.extra});
    }
    if (mount.lowers.empty()) continue;
    mount.lowers.push_back({target});
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

}  // namespace

// Prepares the sandbox directory and the list of operations the init runs to
// build the root. See sandbox/README.md for the layout. On disk, a run makes
// only <dir>/root (and the build and install directories); everything else
// is made by the init, in the scratch mounted on <dir>/root.
Result<void> prepare_plan(const SandboxSpec& spec, bool user_ns, bool interactive, Plan& plan) {
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
  std::size_t nested = 0;
  for (auto& multiarch : multiarch_mounts(spec, host_overlays)) {
    std::string name = multiarch.target;  // /usr/lib/T -> multiarch_usr_lib_T
    std::replace(name.begin(), name.end(), '/', '_');
    std::vector<std::string> lowers;
    for (const auto& lower : multiarch.lowers) {
      if (!lower.through_overlay) {
        lowers.push_back(lower.path);
        continue;
      }
      // A read-only overlay of the layer's parent directory alone, its
      // multiarch subdirectory whited out (see MultiarchMount).
      if (nested == 0) add(Op::Kind::mkdir, scratch + "/nested");
      std::string inner = scratch + "/nested/" + std::to_string(nested++);
      for (const char* sub : {"", "/mask", "/upper", "/work", "/mnt"})
        add(Op::Kind::mkdir, inner + sub);
      std::vector<std::string> inner_lowers;
      if (!user_ns) {
        add(Op::Kind::whiteout, inner + "/mask/" + host_multiarch_triplet());
        inner_lowers.push_back(inner + "/mask");
      }
      inner_lowers.push_back(lower.path);
      auto op = overlay_op(inner_lowers, inner + "/upper", inner + "/work", inner + "/mnt",
                           /*read_only=*/true, user_ns);
      if (!op) return std::unexpected(op.error());
      plan.ops.push_back(std::move(*op));
      lowers.push_back(inner + "/mnt");
    }
    if (auto ok = overlay("multiarch" + name, lowers, root + multiarch.target); !ok) return ok;
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

}  // namespace gang
