// manifest.hpp: the description of one artifact's directory tree, stored as
// a blob. It lists every entry in walk order (a directory before its
// contents, siblings sorted by name): directories and regular files with
// their modes, files with their blob digest and size, symlinks with their
// target, and hard links inside the tree as links to the first path seen
// for that inode. Devices, FIFOs and sockets are refused at import.
//
// The text form is one entry per line, fields separated by spaces, paths
// percent-escaped (bytes <= 0x20, '%' and 0x7f):
//   gang-manifest 1
//   d 0755 usr/bin
//   f 0755 <sha256> 12345 usr/bin/tool
//   l usr/bin/alias tool
//   h usr/bin/other usr/bin/tool
// Version 2 (written since gang records it) adds, after the header, the
// artifact's own key and its index record (records.hpp's encoding), so the
// index can be rebuilt from the blob store alone (`gang cache repair`):
//   gang-manifest 2
//   k <key>
//   m <escaped index record>
// Version 1 manifests (no key) are still read.
// Plain values; thread-safe as such.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "util/error.hpp"

namespace gang {

struct ManifestEntry {
  enum class Type { directory, file, symlink, hardlink };
  Type type = Type::file;
  std::string path;        // relative to the artifact root, no leading '/'
  std::uint32_t mode = 0;  // permission bits (07777) for directories and files
  std::string digest;      // files: blob digest
  std::uint64_t size = 0;  // files: size in bytes
  std::string target;      // symlinks: link target; hard links: the first path
};

struct Manifest {
  std::vector<ManifestEntry> entries;
  std::string key;     // the artifact's cache key; "" in version 1 manifests
  std::string record;  // its index record at publication (encode_artifact); "" in version 1

  [[nodiscard]] std::uint64_t total_size() const;
  [[nodiscard]] std::uint64_t file_count() const;  // regular files, hard links included
  [[nodiscard]] std::string encode() const;
  [[nodiscard]] static Result<Manifest> decode(std::string_view text);
};

// The part of `manifest` at `paths`, in the same order: the entries whose
// path is listed, plus the directories above them (with their recorded
// modes). A kept hard link whose first path is not kept becomes the file
// (same blob and mode) and later kept links of that inode link to it, so
// the selection stages exactly the kept paths, links intact.
[[nodiscard]] Manifest select_paths(const Manifest& manifest,
                                    const std::unordered_set<std::string>& paths);

}  // namespace gang
