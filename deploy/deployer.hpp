// deployer.hpp: carries out one planned deployment (plan.hpp) as Baserock
// does: unpack the system into a scratch tree, deploy its subsystems into
// that tree, write baserock/deployment.meta, run the system's
// configuration extensions, then TYPE.check and TYPE.write. `tar`,
// `sysroot` and `rawdisk` are built in where the definitions provide no
// write extension; the built-in rawdisk is an ext4 image of the tree made
// by mke2fs -d (Debian's e2fsprogs: no mount, no root), DISK_SIZE bytes
// (4G, 512M; default: the tree plus 30% and 32 MiB), with no partition
// table or boot loader.
//
// Safety: every extension is found and checked runnable (interpreter
// present) before anything runs; an existing location is refused unless
// forced; a local location is written under a temporary name beside it and
// renamed into place only when everything succeeded, so a failure leaves
// nothing at the location, and the scratch tree stays for inspection (its
// path is in the error).
//
// The deployer knows no cache: the caller stages a system's files.
#pragma once

#include <functional>
#include <string>

#include "definitions/definitions.hpp"
#include "deploy/plan.hpp"
#include "util/error.hpp"

namespace gang {

struct DeployContext {
  std::string definitions_root;
  std::string scratch_parent;  // where scratch trees are made (same file system as the cache)
  // Materialises system `index`'s artifact (with its selected files) into dest.
  std::function<Result<void>(std::size_t system, const std::string& dest)> stage_system;
  std::function<void(const std::string& line)> log;  // progress lines
  int output_fd = -1;  // the extensions' output (the deployment's log)
  bool force = false;  // replace an existing location
};

[[nodiscard]] Result<void> deploy(const Definitions& defs, const DeploymentStep& step,
                                  const DeployContext& context);

}  // namespace gang
