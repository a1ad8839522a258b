// capabilities.hpp: probes that decide whether a test can run here, by
// trying the capability itself in a child process (never by looking at a
// side effect of the code under test): can a given user create a user
// namespace and mount an overlayfs inside it, as gang's sandbox does when
// it is not root? Header-only test support.
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <string>

namespace gang::testing {

inline constexpr uid_t k_nobody = 65534;

namespace detail {

inline bool write_proc(const char* path, const std::string& text) {
  int fd = ::open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
}

}  // namespace detail

// Tries, in a child running as `uid` (switched to when the caller is root
// and uid differs), to create a user and mount namespace and mount an
// overlayfs in `dir` (a directory that user may write). Returns "" when that
// works, else what failed ("unshare(CLONE_NEWUSER): Operation not
// permitted"). Leaves nothing mounted; the probe's files stay in `dir`.
inline std::string probe_user_namespace_overlay(const std::string& dir, uid_t uid = ::geteuid()) {
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return "pipe failed";
  pid_t child = ::fork();
  if (child < 0) return "fork failed";
  if (child == 0) {
    ::close(report[0]);
    auto fail = [&](const char* what) {
      std::string message = std::string(what) + ": " + std::strerror(errno);
      (void)!::write(report[1], message.data(), message.size());
      ::_exit(1);
    };
    if (uid != ::geteuid()) {
      if (::setgroups(0, nullptr) != 0) fail("setgroups");
      if (::setresgid(uid, uid, uid) != 0) fail("setresgid");
      if (::setresuid(uid, uid, uid) != 0) fail("setresuid");
      ::prctl(PR_SET_DUMPABLE, 1);  // a credential change cleared it; /proc/self is ours again
    }
    gid_t gid = ::getegid();
    if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) fail("unshare(CLONE_NEWUSER)");
    detail::write_proc("/proc/self/setgroups", "deny");
    if (!detail::write_proc("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1\n"))
      fail("writing uid_map");
    if (!detail::write_proc("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1\n"))
      fail("writing gid_map");
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) fail("making / private");
    std::string base = dir + "/probe-" + std::to_string(::getpid());
    for (const char* sub : {"", "/lower", "/upper", "/work", "/merged"})
      if (::mkdir((base + sub).c_str(), 0755) != 0) fail("mkdir");
    std::string options =
        "lowerdir=" + base + "/lower,upperdir=" + base + "/upper,workdir=" + base + "/work";
    if (::mount("overlay", (base + "/merged").c_str(), "overlay", 0, options.c_str()) != 0)
      fail("mounting an overlayfs in a user namespace");
    ::_exit(0);
  }
  ::close(report[1]);
  char buffer[256];
  std::string message;
  ssize_t n = 0;
  while ((n = ::read(report[0], buffer, sizeof buffer)) > 0) message.append(buffer, static_cast<std::size_t>(n));
  ::close(report[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  return message.empty() ? "the probe died" : message;
}

// Runs `body` in a forked child with a mount namespace of its own (as root,
// or inside a user namespace of its own mapping the caller to root), "/"
// made private there, so that what it mounts is gone when it exits. Returns
// body's result (the child's exit status), -1 when no such namespace can be
// made here (skip then), or 1 if the child died.
inline int in_own_mount_namespace(const std::function<int()>& body) {
  uid_t uid = ::geteuid();
  gid_t gid = ::getegid();
  pid_t child = ::fork();
  if (child == 0) {
    if (::unshare(CLONE_NEWNS) != 0) {
      if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) ::_exit(77);
      (void)detail::write_proc("/proc/self/setgroups", "deny");
      if (!detail::write_proc("/proc/self/uid_map", "0 " + std::to_string(uid) + " 1\n") ||
          !detail::write_proc("/proc/self/gid_map", "0 " + std::to_string(gid) + " 1\n"))
        ::_exit(77);
    }
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(77);
    ::_exit(body());
  }
  int status = 0;
  if (child < 0 || ::waitpid(child, &status, 0) != child || !WIFEXITED(status)) return 1;
  return WEXITSTATUS(status) == 77 ? -1 : WEXITSTATUS(status);
}

}  // namespace gang::testing
