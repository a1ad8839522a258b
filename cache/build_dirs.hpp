// build_dirs.hpp: the scratch directories builds run in, under <cache>/tmp
// (on the blob store's file system, so that a build's output is adopted by
// link). Each name records its creator,
//   "<name>.<pid>-<start time>-<host tag>[-<boot tag>].XXXXXX"
// (host/boot tag: 8 hex digits of the SHA-256 of the host name / its boot
// id; older gangs wrote no boot tag), so that any later gang can tell the
// directory of a dead creator (killed, crashed, rebooted) from one in use,
// and remove it.
//
// Concurrency: make() and remove_dead() may run in any thread and process at
// once; remove_dead() only removes directories whose creator is dead (or,
// where that cannot be known, that are older than an age), and never enters
// anything mounted below them.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "cache/system.hpp"
#include "util/error.hpp"

namespace gang {

class BuildDirs {
 public:
  using Warn = std::function<void(const std::string&)>;

  // tmp: the directory they live in (made when first needed). orphan_age_s:
  // the age past which a directory whose creator cannot be checked (another
  // host's, or a name without a creator) counts as dead. warn: where a
  // directory that cannot be removed is reported.
  BuildDirs(std::string tmp, std::shared_ptr<System> system, std::int64_t orphan_age_s, Warn warn);

  [[nodiscard]] const std::string& dir() const { return m_tmp; }

  // A fresh directory named after `name` (made safe as one path component)
  // and this process. The caller owns its removal.
  [[nodiscard]] Result<std::string> make(const std::string& name) const;

  // Removes the directories whose creators died (same host: pid gone or
  // reused, or another boot; never for age alone while the creator lives),
  // or, where liveness cannot be known, that are older than orphan_age_s.
  // Returns how many went; one that cannot be removed (something still
  // mounted in it, say) is a warning.
  std::uint64_t remove_dead() const;

 private:
  std::string m_tmp;
  std::shared_ptr<System> m_system;
  std::int64_t m_orphan_age_s;
  Warn m_warn;
};

}  // namespace gang
