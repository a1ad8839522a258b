// etc_mask.hpp: what a build run as root with base `host` must not read of
// the host's /etc, as the list of entries the sandbox makes into a layer of
// overlayfs whiteouts (see launcher.cpp). Worked out once per process and
// again whenever inotify reports a change in /etc.
//
// Concurrency: etc_mask() may be called from any thread (a mutex guards the
// cached list).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace gang {

// /etc entries never shown to a build run as root with base `host`, even
// when the host makes them world-readable.
inline constexpr const char* k_etc_secrets[] = {
    "shadow",    "shadow-", "gshadow",     "gshadow-",         "sudoers",
    "sudoers.d", "ssh",     "ssl/private", "security/opasswd", "krb5.keytab"};

// What a build run as root must not read of the host's /etc: every entry
// that an unprivileged local user could not read either (not readable, or a
// directory not searchable, by others; so 0600 keys and 0640 shadow files),
// and k_etc_secrets whatever their modes. The sandbox makes it, in its
// scratch, a layer of overlayfs whiteouts placed above the host's /etc: one
// whiteout (a 0:0 character device) per hidden entry, inside directories
// that copy the host's modes and owners (the topmost layer's directory is
// what the build sees). Creating whiteouts needs root, which is the only
// case where this is needed: otherwise the user namespace already shows such
// files as not readable.
struct EtcMask {
  struct Entry {
    std::string rel;  // relative to /etc; "" is /etc itself
    bool whiteout = false;
    mode_t mode = 0;
    uid_t uid = 0;
    gid_t gid = 0;
  };
  std::vector<Entry> entries;  // parents before children
  bool watched = false;        // every directory walked is watched by inotify
};

// The mask, walked once per process and again only when inotify reports a
// change anywhere in /etc (an entry added, removed or renamed, a mode or
// owner changed: IN_ATTRIB on a directory covers its entries). A walk costs
// milliseconds: it was the biggest part of a trivial build's overhead.
// Without inotify (or past its watch limit), /etc is walked at every launch.
[[nodiscard]] EtcMask etc_mask();

}  // namespace gang
