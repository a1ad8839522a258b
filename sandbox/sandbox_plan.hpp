// sandbox_plan.hpp: what a sandbox's root holds, worked out before its init
// starts, as the list of operations the init runs (init_protocol.hpp's
// Plan): the scratch (a tmpfs of the sandbox's own mount namespace, or on
// disk where the upper layers are kept or the kernel's tmpfs cannot hold an
// unprivileged overlay's xattrs), the overlay root over the staged layers and
// the base, base host's directories and multiarch overlays (the staged
// layers on top), the /etc mask, the build and install directories, /proc
// (the parts that reach the host's kernel read-only), a tmpfs /dev with the
// host's device nodes, /dev/shm and /tmp. The layout is in sandbox/README.md.
// The launcher (launcher.hpp) starts the init that carries it out.
//
// Thread-safe: it reads the spec and the host's directories, and makes only
// the sandbox's own directories.
#pragma once

#include "sandbox/init_protocol.hpp"
#include "sandbox/spec.hpp"
#include "util/error.hpp"

namespace gang {

// Makes <sandbox_dir>/root, the build and the install directories, and fills
// `plan` with the operations that build the root. user_ns: the sandbox runs
// in a user namespace of its own (unprivileged); interactive: gang shell
// (the terminal's devices). An error names what is missing (a lower layer,
// the sysroot) or what does not fit.
[[nodiscard]] Result<void> prepare_plan(const SandboxSpec& spec, bool user_ns, bool interactive,
                                        init::Plan& plan);

// The host's Debian-style multiarch triplet (e.g. "x86_64-linux-gnu"), the
// name of /usr/lib/<triplet> and /usr/include/<triplet>; "" when gang does
// not know it for this architecture. With base `host`, the staged /usr/lib
// and /usr/include are also mounted on top of those directories (see
// sandbox/README.md, "Staged dependencies win over the host").
[[nodiscard]] const char* host_multiarch_triplet();

}  // namespace gang
