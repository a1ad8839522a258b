#include "deploy/deployer.hpp"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <optional>
#include <vector>

#include "deploy/extension.hpp"
#include "util/fs.hpp"
#include "util/path_name.hpp"

namespace gang {

namespace {

// Runs argv (no shell) with its output to fd; an error unless it exits 0.
Result<void> run_tool(const std::vector<std::string>& argv, int output_fd) {
  std::vector<char*> cargv;
  std::vector<std::string> copy = argv;
  for (auto& a : copy) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return make_errno_error("cannot start " + argv[0]);
  if (pid == 0) {
    if (output_fd >= 0) {
      ::dup2(output_fd, 1);
      ::dup2(output_fd, 2);
    }
    ::execvp(cargv[0], cargv.data());
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return make_errno_error("waiting for " + argv[0]);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    return make_error(argv[0] + " failed" +
                      (WIFEXITED(status) ? " with exit status " + std::to_string(WEXITSTATUS(status))
                                         : std::string(" (killed)")));
  return {};
}

// mkfs.ext4 for the built-in rawdisk ("" if the host lacks e2fsprogs);
// /usr/sbin is not on every user's PATH.
std::string find_mkfs_ext4() {
  for (const char* dir : {"/usr/sbin", "/sbin", "/usr/bin", "/bin"}) {
    std::string candidate = std::string(dir) + "/mkfs.ext4";
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

// The bytes a tree's regular files take, rounded up to blocks.
std::uint64_t tree_bytes(const std::string& root) {
  std::uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st;
    if (::lstat(it->path().c_str(), &st) == 0) total += static_cast<std::uint64_t>(st.st_blocks) * 512;
  }
  return total;
}

// DISK_SIZE as Baserock writes it (4G, 512M, 100K, or bytes).
std::optional<std::uint64_t> parse_size(const std::string& text) {
  if (text.empty()) return std::nullopt;
  std::uint64_t value = 0;
  std::size_t i = 0;
  for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i)
    value = value * 10 + static_cast<std::uint64_t>(text[i] - '0');
  if (i == 0) return std::nullopt;
  std::string unit = text.substr(i);
  if (unit.empty()) return value;
  char u = static_cast<char>(std::toupper(static_cast<unsigned char>(unit[0])));
  if (unit.size() > 1 && !(unit.size() == 2 && (unit[1] == 'B' || unit[1] == 'b'))) return std::nullopt;
  int shift = u == 'K' ? 10 : u == 'M' ? 20 : u == 'G' ? 30 : u == 'T' ? 40 : -1;
  if (shift < 0) return std::nullopt;
  return value << shift;
}

bool is_local(const std::string& location) {
  // user@host:path and URLs are the extension's business.
  return location.find(':') == std::string::npos;
}

struct Resolved {
  std::vector<Extension> configure;
  std::optional<Extension> check;
  std::optional<Extension> write;  // nullopt: built in
};

Result<Resolved> resolve(const Definitions& defs, const DeploymentStep& step, const std::string& root) {
  Resolved r;
  for (const auto& name : defs.systems[step.system].configuration_extensions) {
    auto found = find_extension(root, name, ExtensionStep::configure);
    if (!found) return std::unexpected(found.error());
    if (!*found)
      return make_error(defs.systems[step.system].path + ": no configuration extension " + name +
                        " (extensions/" + name + ".configure)");
    r.configure.push_back(**found);
  }
  auto check = find_extension(root, step.type, ExtensionStep::check);
  if (!check) return std::unexpected(check.error());
  r.check = *check;
  auto write = find_extension(root, step.type, ExtensionStep::write);
  if (!write) return std::unexpected(write.error());
  r.write = *write;
  if (!r.write && step.type != "tar" && step.type != "sysroot" && step.type != "rawdisk")
    return make_error("deployment " + step.label + ": no write extension for type " + step.type +
                      " (extensions/" + step.type + ".write; built in: tar, sysroot, rawdisk)");
  if (!r.write && step.type == "rawdisk") {
    if (find_mkfs_ext4().empty())
      return make_error("deployment " + step.label + ": the built-in rawdisk needs mkfs.ext4 "
                        "(Debian's e2fsprogs), which this machine lacks");
    if (auto size = step.parameters.find("DISK_SIZE");
        size != step.parameters.end() && !parse_size(size->second))
      return make_error("deployment " + step.label + ": DISK_SIZE " + size->second +
                        " is not a size (like 4G, 512M)");
  }
  for (const auto& e : r.configure)
    if (auto ok = check_runnable(e); !ok) return std::unexpected(ok.error());
  for (const auto* e : {&r.check, &r.write})
    if (*e)
      if (auto ok = check_runnable(**e); !ok) return std::unexpected(ok.error());
  return r;
}

// Every extension of the deployment and its subsystems, found and runnable,
// before anything is staged or written.
Result<void> preflight(const Definitions& defs, const DeploymentStep& step, const std::string& root) {
  if (auto resolved = resolve(defs, step, root); !resolved) return std::unexpected(resolved.error());
  for (const DeploymentStep& sub : step.subsystems)
    if (auto ok = preflight(defs, sub, root); !ok) return ok;
  return {};
}

Result<void> deploy_into(const Definitions& defs, const DeploymentStep& step,
                         const DeployContext& ctx, const std::string& location) {
  auto resolved = resolve(defs, step, ctx.definitions_root);
  if (!resolved) return std::unexpected(resolved.error());
  const std::string& system = defs.systems[step.system].name;
  auto scratch = make_temp_dir(ctx.scratch_parent, "deploy-" + name_to_leaf(step.label) + "-");
  if (!scratch) return std::unexpected(scratch.error());
  const std::string root = *scratch + "/root";
  auto kept = [&](const Error& e) {
    return make_error(e.to_string() + " (the deployment's tree is kept at " + root + ")");
  };
  if (ctx.log) ctx.log("Starting deployment of " + system + " to " + location);
  auto started = std::chrono::steady_clock::now();
  if (auto made = make_dirs(root); !made) return std::unexpected(made.error());
  if (auto staged = ctx.stage_system(step.system, root); !staged) return kept(staged.error());
  for (const DeploymentStep& sub : step.subsystems) {
    if (auto done = deploy_into(defs, sub, ctx, root + "/" + sub.location); !done) return kept(done.error());
  }
  if (auto made = make_dirs(root + "/baserock"); !made) return kept(made.error());
  if (auto meta = write_file(root + "/baserock/deployment.meta", deployment_meta(step.parameters)); !meta)
    return kept(meta.error());

  ExtensionCall call;
  call.definitions_root = ctx.definitions_root;
  call.rootdir = root;
  call.location = location;
  call.parameters = step.parameters;
  call.upgrade = step.upgrade;
  call.output_fd = ctx.output_fd;
  for (const Extension& e : resolved->configure) {
    if (ctx.log) ctx.log("Running configure extension " + e.name);
    if (auto ran = run_extension(e, call); !ran) return kept(ran.error());
  }
  if (resolved->check) {
    if (auto ran = run_extension(*resolved->check, call); !ran) return kept(ran.error());
  }
  ::chmod(root.c_str(), 0755);
  // Written under a temporary name beside the location, then renamed.
  std::string final_location = location;
  std::string temporary = location;
  if (is_local(location)) {
    std::string parent = location.substr(0, location.rfind('/') == std::string::npos ? 0 : location.rfind('/'));
    if (parent.empty()) parent = ".";
    if (auto made = make_dirs(parent); !made) return kept(made.error());
    temporary = parent + "/.gang-deploy-" + std::to_string(::getpid()) + "-" + name_to_leaf(step.label);
    (void)remove_tree(temporary);
    call.location = temporary;
  }
  Result<void> written;
  bool moved_tree = false;  // the built-in sysroot moved the scratch tree itself
  if (resolved->write) {
    if (ctx.log) ctx.log("Running write extension " + resolved->write->name);
    written = run_extension(*resolved->write, call);
  } else if (step.type == "tar") {
    written = run_tool({"tar", "--numeric-owner", "-C", root, "-cf", temporary, "."}, ctx.output_fd);
  } else if (step.type == "rawdisk") {
    // An ext4 image of the tree (no partition table, no boot loader),
    // populated by mke2fs itself: no mount, no root needed.
    std::uint64_t size = 0;
    if (auto given = step.parameters.find("DISK_SIZE"); given != step.parameters.end())
      size = parse_size(given->second).value_or(0);
    if (size == 0) size = tree_bytes(root) * 13 / 10 + (std::uint64_t{32} << 20);
    written = run_tool({find_mkfs_ext4(), "-q", "-F", "-t", "ext4", "-L", "baserock", "-E",
                        "root_owner=0:0", "-d", root, temporary, std::to_string(size / 1024) + "k"},
                       ctx.output_fd);
  } else {  // sysroot: the tree itself
    moved_tree = ::rename(root.c_str(), temporary.c_str()) == 0;
    written = moved_tree ? Result<void>{} : run_tool({"cp", "-a", "--", root, temporary}, ctx.output_fd);
  }
  if (!written) {
    (void)remove_tree(temporary);
    return kept(written.error());
  }
  if (temporary != final_location) {
    if (ctx.force) (void)remove_tree(final_location);
    if (::rename(temporary.c_str(), final_location.c_str()) != 0) {
      auto e = make_errno_error("cannot move the deployment into place at " + final_location);
      // The kept scratch tree is the one moved: put it back, so that the
      // error's "kept" is true.
      if (!moved_tree || ::rename(temporary.c_str(), root.c_str()) != 0) (void)remove_tree(temporary);
      return kept(e.error());
    }
  }
  (void)remove_tree(*scratch);
  if (ctx.log) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
    ctx.log("Elapsed time for deployment of " + system + " to " + location + ": " +
            std::to_string(ms / 1000) + "." + std::to_string(ms % 1000 / 100) + " s");
  }
  return {};
}

}  // namespace

Result<void> deploy(const Definitions& defs, const DeploymentStep& step, const DeployContext& context) {
  if (is_local(step.location) && path_exists(step.location) && !context.force)
    return make_error("deployment " + step.label + ": " + step.location +
                      " exists (gang deploy --force replaces it)");
  if (auto ok = preflight(defs, step, context.definitions_root); !ok) return ok;
  return deploy_into(defs, step, context, step.location);
}

}  // namespace gang
