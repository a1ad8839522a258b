// spec.hpp: what a build sandbox is made of, as a plain value, and the
// Baserock environment contract derived from it. A SandboxSpec is saved as
// `sandbox.spec` in its sandbox directory so that `gang shell` can re-enter a
// failed build with the same mounts and environment.
//
// Concurrency: plain values and pure functions, except save_spec/load_spec,
// which touch one file; save_spec publishes atomically (temporary + rename),
// so a concurrent load_spec sees the old or the new spec, never a mix.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "util/error.hpp"

namespace gang {

// Baserock's build-mode. `staging` and `test` build on the staged
// dependencies (writes outside the build and install directories land in the
// sandbox's own overlay layer and are thrown away); `bootstrap` follows ybd:
// the root is read-only, only /NAME.build, /NAME.inst, /tmp and /dev/shm are
// writable.
enum class SandboxMode { staging, bootstrap, test };

// `none` gives the sandbox a network namespace holding only `lo`; `host`
// shares the host's network (never used for builds; kept for tools).
enum class Network { none, host };

// Which Baserock step a command list belongs to. Only `build` steps get
// MAKEFLAGS=-jN.
enum class StepKind { build, other };

struct SandboxSpec {
  std::string name;           // component name; mounts are /NAME.build and /NAME.inst
  std::string sandbox_dir;    // caller-owned scratch dir (mount point, overlay upper/work, spec)
  std::string base = "host";  // "host", "none", or an absolute sysroot directory
  std::vector<std::string> lower_layers;  // staged dependency trees, top first; read-only
  std::string build_dir;                  // host path mounted read-write at /NAME.build (the cwd)
  std::string install_dir;                // host path mounted read-write at /NAME.inst (DESTDIR)
  std::string prefix = "/usr";
  std::string arch;                               // Baserock arch, e.g. x86_64, armv8l64
  int max_jobs = 1;                               // N in MAKEFLAGS=-jN
  std::optional<std::int64_t> source_date_epoch;  // SOURCE_DATE_EPOCH, when known
  SandboxMode mode = SandboxMode::staging;
  std::map<std::string, std::string> extra_env;  // set last; may override the contract
  std::vector<std::string> extra_path;           // prepended to PATH (e.g. deps' PREFIX/bin)
  Network network = Network::none;
  std::string log_path;  // the component's build log (informational; for gang shell)
  // Where writes outside the build and install directories go. false (the
  // default): a tmpfs mounted in the sandbox's own mount namespace, gone
  // with it (nothing to remove afterwards); a failed run copies them to
  // <sandbox_dir>/kept/<layer> for gang shell. true: on disk, under
  // sandbox_upper_dir(), kept after the run (system assembly merges them).
  bool keep_upper = false;
};

// Where a sandbox run with keep_upper leaves the writes of overlay `layer`
// ("root", or a host directory such as "etc"): <sandbox_dir>/root/overlay/<layer>/upper.
[[nodiscard]] std::string sandbox_upper_dir(const std::string& sandbox_dir, const std::string& layer);

// Where a failed run without keep_upper leaves a copy of those writes
// (directories, regular files, symlinks; deletions are not kept):
// <sandbox_dir>/kept/<layer>. A later run of the same sandbox (gang shell)
// shows them again, as a read-only layer on top.
[[nodiscard]] std::string sandbox_kept_dir(const std::string& sandbox_dir, const std::string& layer);

// The sandbox directory where a failed build of `component` is kept:
// `<cache_dir>/failed/<component>` ('/' in the name becomes '_'). Both the
// build pipeline and `gang shell` use this, so they agree.
[[nodiscard]] std::string kept_sandbox_dir(const std::string& cache_dir,
                                           const std::string& component);

// `<sandbox_dir>/sandbox.spec`.
[[nodiscard]] std::string spec_path(const std::string& sandbox_dir);

// Writes `spec` to `<spec.sandbox_dir>/sandbox.spec` atomically. Paths inside
// the sandbox directory are stored relative to it, so the directory may be
// moved (e.g. to kept_sandbox_dir) and still be loaded.
[[nodiscard]] Result<void> save_spec(const SandboxSpec& spec);

// Reads `<sandbox_dir>/sandbox.spec`; sandbox_dir of the result is
// `sandbox_dir`. Errors name the file and line.
[[nodiscard]] Result<SandboxSpec> load_spec(const std::string& sandbox_dir);

// The GNU triplet for a Baserock arch: x86_64 -> x86_64-baserock-linux-gnu,
// x86_32 -> i686-..., armv7lhf -> armv7lhf-baserock-linux-gnueabi,
// armv8l64 -> aarch64-..., mips64b -> mips64-baserock-linux-gnuabi64.
// `vendor` is "baserock" for TARGET and "bootstrap" for TARGET_STAGE1.
[[nodiscard]] std::string target_triplet(const std::string& arch,
                                         const std::string& vendor = "baserock");

// The complete environment ("KEY=VALUE", sorted) a command in the sandbox
// sees: PATH, PREFIX, DESTDIR, TERM=dumb, LC_ALL=C, HOME=/tmp, TZ=UTC,
// MORPH_ARCH, TARGET, TARGET_STAGE1, SOURCE_DATE_EPOCH (when set),
// MAKEFLAGS=-jN (build steps only), then spec.extra_env. Nothing comes from
// the host's environment.
[[nodiscard]] std::vector<std::string> sandbox_environment(const SandboxSpec& spec, StepKind kind);

// Checks a spec before use: name, sandbox_dir, build_dir and install_dir set
// and absolute where paths; base is host, none or an absolute directory; no
// ':' or ',' in layer paths (overlayfs option syntax).
[[nodiscard]] Result<void> validate_spec(const SandboxSpec& spec);

[[nodiscard]] const char* sandbox_mode_name(SandboxMode mode);
[[nodiscard]] Result<SandboxMode> parse_sandbox_mode(const std::string& text);

}  // namespace gang
