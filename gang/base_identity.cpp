#include "gang/base_identity.hpp"

#include <fcntl.h>
#include <gnu/libc-version.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "util/fs.hpp"
#include "util/sha256.hpp"

namespace gang {

namespace {

// The files whose change may change the host's identity.
const std::vector<std::string> k_host_files = {"/etc/os-release", "/etc/debian_version",
                                               "/usr/bin/cc", "/usr/bin/c++", "/usr/bin/ld"};

constexpr std::string_view k_cache_header = "gang-host-identity 1";

std::string os_release_fields(const std::string& text) {
  std::vector<std::string> kept;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    for (const char* field : {"ID=", "VERSION_ID=", "VERSION_CODENAME="})
      if (line.starts_with(field)) kept.push_back(line);
    start = end + 1;
  }
  std::sort(kept.begin(), kept.end());
  std::string out;
  for (const auto& line : kept) out += (out.empty() ? "" : " ") + line;
  return out;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

}  // namespace

std::optional<std::string> RealHostProbe::read(const std::string& path) {
  auto text = read_file(path);
  if (!text) return std::nullopt;
  return std::move(*text);
}

std::optional<std::string> RealHostProbe::first_line(const std::vector<std::string>& argv) {
  if (argv.empty() || ::access(argv[0].c_str(), X_OK) != 0) return std::nullopt;
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return std::nullopt;
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return std::nullopt;
  }
  if (pid == 0) {
    ::dup2(fds[1], 1);
    int null = ::open("/dev/null", O_RDWR);
    if (null >= 0) {
      ::dup2(null, 0);
      ::dup2(null, 2);
    }
    ::setenv("LC_ALL", "C", 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return std::nullopt;
  return trimmed(out.substr(0, out.find('\n')));
}

std::string RealHostProbe::fingerprint(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "-";
  return std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino) + ":" +
         std::to_string(st.st_size) + ":" + std::to_string(st.st_mtim.tv_sec) + "." +
         std::to_string(st.st_mtim.tv_nsec);
}

std::string RealHostProbe::libc_version() {
  return std::string("glibc ") + ::gnu_get_libc_version() + " " + ::gnu_get_libc_release();
}

std::string probe_host_identity(HostProbe& probe) {
  std::string out = "os " + os_release_fields(probe.read("/etc/os-release").value_or("")) + "\n";
  if (auto debian = probe.read("/etc/debian_version")) out += "debian " + trimmed(*debian) + "\n";
  auto tool = [&](const char* label, std::vector<std::string> argv) {
    out += std::string(label) + " " + probe.first_line(argv).value_or("none") + "\n";
  };
  tool("cc", {"/usr/bin/cc", "--version"});
  tool("cc-machine", {"/usr/bin/cc", "-dumpmachine"});
  tool("c++", {"/usr/bin/c++", "--version"});
  tool("ld", {"/usr/bin/ld", "--version"});
  return out;
}

Result<BaseIdentity> identify_base(const std::string& base, const std::string& cache_dir,
                                   HostProbe& probe) {
  if (base == "none" || base.empty()) return BaseIdentity{"none", ""};
  if (base != "host") {
    auto id = sysroot_identity(base);
    if (!id) return std::unexpected(id.error());
    return BaseIdentity{"sysroot", std::move(*id)};
  }
  std::string fingerprint;
  for (const auto& file : k_host_files) fingerprint += file + " " + probe.fingerprint(file) + "\n";
  std::string header = std::string(k_cache_header) + "\n" + fingerprint + "--\n";
  std::string cached_path = cache_dir.empty() ? std::string() : cache_dir + "/host-identity";
  std::string identity;
  if (auto cached = cached_path.empty() ? std::nullopt : probe.read(cached_path);
      cached && cached->starts_with(header) && cached->ends_with("\n")) {
    identity = cached->substr(header.size());
  } else {
    identity = probe_host_identity(probe);
    if (!cached_path.empty() && path_exists(cache_dir))
      (void)write_file_atomic(cached_path, header + identity);  // only a shortcut
  }
  return BaseIdentity{"host", identity + "libc " + probe.libc_version() + "\n"};
}

Result<std::string> sysroot_identity(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return make_error("sandbox base \"" + dir +
                      "\" is not a directory (expected host, none or a sysroot)");
  std::vector<std::string> lines;
  fs::path root(dir);
  for (fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec),
       end;
       !ec && it != end; it.increment(ec)) {
    std::string path = it->path().string();
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) continue;  // vanished: not part of it
    std::string line = it->path().lexically_relative(root).generic_string() + " " +
                       std::to_string(st.st_mode) + " " + std::to_string(st.st_size) + " " +
                       std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
    if (S_ISLNK(st.st_mode)) line += " -> " + fs::read_symlink(it->path(), ec).string();
    ec.clear();
    lines.push_back(std::move(line));
  }
  if (ec) return make_error("cannot read sandbox base " + dir + ": " + ec.message());
  std::sort(lines.begin(), lines.end());
  Sha256 hash;
  for (const auto& line : lines) {
    hash.update(line);
    hash.update("\n");
  }
  return "sha256:" + hash.hex_digest() + " entries " + std::to_string(lines.size());
}

}  // namespace gang
