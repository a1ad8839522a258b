// base_identity.hpp: what the sandbox base is, as it enters the cache key
// (BuildGraph::base, definitions/cache_key.md). An artifact built on one
// base is never reused on another, and failure records, being per key,
// never cross bases either.
//
//   none:    kind "none", no identity (nothing but the staged dependencies).
//   host:    kind "host"; the identity names what a build can pick up from
//            the host: the OS release (/etc/os-release ID, VERSION_ID,
//            VERSION_CODENAME, and /etc/debian_version), the first line of
//            `cc --version`, `c++ --version` and `ld --version` (from
//            /usr/bin), `cc -dumpmachine`, and the C library's version.
//            Running the tools costs a few milliseconds, so the result is
//            kept in <cache>/host-identity together with a fingerprint of
//            those files (device, inode, size, mtime); while the fingerprint
//            matches, no tool is run. Two hosts with the same versions share
//            artifacts; an upgrade of any of them changes every key.
//   SYSROOT: kind "sysroot"; the identity is the SHA-256 of a manifest of
//            the tree: every entry's relative path, type, mode, size,
//            mtime and symlink target, sorted by path. Not its location: a
//            copy that keeps mtimes (cp -a, tar) has the same identity.
//
// Every OS touch goes through HostProbe, so tests use a fake.
// Concurrency: identify_base may run in several processes at once; the
// cached file is replaced atomically and a torn or stale one is recomputed.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "definitions/build_graph.hpp"
#include "util/error.hpp"

namespace gang {

class HostProbe {
 public:
  virtual ~HostProbe() = default;
  // A file's contents, or nullopt if it cannot be read.
  [[nodiscard]] virtual std::optional<std::string> read(const std::string& path) = 0;
  // The first line of the standard output of `argv` (run with LC_ALL=C), or
  // nullopt if it cannot be run.
  [[nodiscard]] virtual std::optional<std::string> first_line(
      const std::vector<std::string>& argv) = 0;
  // "dev:ino:size:mtime" of `path` (symlinks followed), or "-" if absent.
  [[nodiscard]] virtual std::string fingerprint(const std::string& path) = 0;
  // The running C library's name and version ("glibc 2.36").
  [[nodiscard]] virtual std::string libc_version() = 0;
};

// The real host, through /etc, /usr/bin and the C library.
class RealHostProbe final : public HostProbe {
 public:
  [[nodiscard]] std::optional<std::string> read(const std::string& path) override;
  [[nodiscard]] std::optional<std::string> first_line(
      const std::vector<std::string>& argv) override;
  [[nodiscard]] std::string fingerprint(const std::string& path) override;
  [[nodiscard]] std::string libc_version() override;
};

// The host's identity text (see above), computed now, without the cache.
[[nodiscard]] std::string probe_host_identity(HostProbe& probe);

// The identity of `base` ("host", "none" or a sysroot directory). The host's
// identity is read from <cache_dir>/host-identity when still valid, else
// probed and stored there if cache_dir exists (never created here). Fails
// for a sysroot that is not a directory.
[[nodiscard]] Result<BaseIdentity> identify_base(const std::string& base,
                                                 const std::string& cache_dir, HostProbe& probe);

// The content identity of a sysroot directory (the manifest hash above).
[[nodiscard]] Result<std::string> sysroot_identity(const std::string& dir);

}  // namespace gang
