// Tests for the sandbox's hardening (sandbox/README.md, "Threat model"): a
// build has no terminal, cannot read gang's environment, and, run as root,
// holds no privilege over the host (no mount, mknod, open_by_handle_at,
// module, sysctl) and cannot read /etc's secrets.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "sandbox/sandbox.hpp"
#include "util/fs.hpp"

extern char** environ;

namespace gang {
namespace {

std::string slurp(const std::string& path) {
  auto text = read_file(path);
  return text ? *text : std::string("<missing>");
}

std::string trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// A base-host spec rooted at `root`.
SandboxSpec host_spec(const std::string& root) {
  SandboxSpec spec;
  spec.name = "hello";
  spec.sandbox_dir = root + "/sandbox";
  spec.build_dir = root + "/sandbox/hello.build";
  spec.install_dir = root + "/sandbox/hello.inst";
  spec.lower_layers = {root + "/staged"};
  spec.arch = "x86_64";
  return spec;
}

class SandboxHardeningTest : public ::testing::Test {
 protected:
  void SetUp() override {
    m_root = m_tmp.path();
    ASSERT_TRUE(make_dirs(m_root + "/staged/usr/share/doc"));
    m_spec = host_spec(m_root);
    ASSERT_TRUE(make_dirs(m_spec.build_dir));
  }
  void TearDown() override {
    if (HasFailure()) {
      m_tmp.keep();
      std::fprintf(stderr, "kept %s\n", m_root.c_str());
    }
  }
  Result<StepResult> run(const std::vector<std::string>& commands) {
    return run_step(m_spec, "build", commands, m_root + "/hello.log");
  }
  std::string in_build(const std::string& name) { return m_spec.build_dir + "/" + name; }
  std::string log() { return slurp(m_root + "/hello.log"); }

  // Compiles `source` (C) on the host into the build directory as `name`.
  bool compile(const std::string& name, const std::string& source) {
    std::string c = m_root + "/" + name + ".c";
    if (!write_file_atomic(c, source)) return false;
    std::string command = "cc -O0 -o " + in_build(name) + " " + c + " 2>/dev/null";
    return std::system(command.c_str()) == 0;
  }

  TempDir m_tmp{"gang-hardening-test-"};
  std::string m_root;
  SandboxSpec m_spec;
};

TEST_F(SandboxHardeningTest, ABuildHasNoControllingTerminalEvenWhenGangHasOne) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // A session with a pty as its controlling terminal, as in a shell.
    ::setsid();
    int master = ::posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || ::grantpt(master) != 0 || ::unlockpt(master) != 0) ::_exit(10);
    int slave = ::open(::ptsname(master), O_RDWR);
    if (slave < 0) ::_exit(11);
    ::ioctl(slave, TIOCSCTTY, 0);
    int tty = ::open("/dev/tty", O_RDWR);
    if (tty < 0) ::_exit(12);  // the precondition: gang has a terminal
    ::close(tty);
    ::dup2(slave, 0);
    auto result = run({
        "ls /dev > dev_entries",
        "if (exec 3</dev/tty) 2>/dev/null; then echo opened; else echo none; fi > tty_open",
        "cut -d' ' -f7 /proc/self/stat > tty_nr; cut -d' ' -f6 /proc/self/stat > session",
    });
    ::_exit(result && result->ok ? 0 : 3);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  ASSERT_EQ(WEXITSTATUS(status), 0) << log();
  EXPECT_EQ(trim(slurp(in_build("tty_open"))), "none");
  EXPECT_EQ(trim(slurp(in_build("tty_nr"))), "0") << "no controlling terminal";
  EXPECT_EQ(trim(slurp(in_build("session"))), "1") << "the init leads a session of its own";
  std::string dev = slurp(in_build("dev_entries"));
  EXPECT_EQ(dev.find("tty"), std::string::npos) << dev;
  EXPECT_EQ(dev.find("pts"), std::string::npos) << dev;
  EXPECT_NE(dev.find("null"), std::string::npos) << dev;
}

// Run by TheCallersEnvironmentIsNotReadableInsideTheSandbox in a process
// started with a planted secret in its initial environment; skipped
// otherwise.
TEST(SandboxHardeningHelper, RunsAStepThatLooksForTheSecret) {
  const char* root = std::getenv("HARDENING_TEST_HELPER_ROOT");
  if (root == nullptr) GTEST_SKIP() << "only run by the environment test";
  // The precondition: the secret is in this process's environment block.
  ASSERT_NE(slurp("/proc/self/environ").find("MY_API_TOKEN="), std::string::npos);
  SandboxSpec spec = host_spec(root);
  auto result = run_step(spec, "build",
                         {"grep -al MY_API_TOKEN /proc/[0-9]*/environ > found || true",
                          "grep -al gang-test-secret /proc/[0-9]*/environ >> found || true",
                          "ls /proc/[0-9]*/environ > looked"},
                         std::string(root) + "/hello.log");
  ASSERT_TRUE(result) << result.error().to_string();
  ASSERT_TRUE(result->ok) << result->describe();
}

TEST_F(SandboxHardeningTest, TheCallersEnvironmentIsNotReadableInsideTheSandbox) {
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::string filter = "--gtest_filter=SandboxHardeningHelper.RunsAStepThatLooksForTheSecret";
    std::string root = "HARDENING_TEST_HELPER_ROOT=" + m_root;
    std::string token = "MY_API_TOKEN=gang-test-secret";
    std::vector<char*> envp;
    for (char** e = environ; *e != nullptr; ++e) envp.push_back(*e);
    envp.push_back(root.data());
    envp.push_back(token.data());
    envp.push_back(nullptr);
    char self[] = "/proc/self/exe";
    char* argv[] = {self, filter.data(), nullptr};
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::execve(self, argv, envp.data());
    ::_exit(127);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << log();
  EXPECT_NE(slurp(in_build("looked")).find("/proc/1/environ"), std::string::npos);
  EXPECT_EQ(slurp(in_build("found")), "") << "the secret is readable inside";
}

// ---- run as root ------------------------------------------------------------

TEST_F(SandboxHardeningTest, AsRootABuildHasNoPrivilegeOverTheHost) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  ASSERT_TRUE(compile("probe", R"(
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char** argv) {
  if (strcmp(argv[1], "handle") == 0) {
    /* The CAP_DAC_READ_SEARCH escape: reopen a file by its handle. */
    struct file_handle* handle = malloc(sizeof *handle + MAX_HANDLE_SZ);
    handle->handle_bytes = MAX_HANDLE_SZ;
    int mount_id;
    if (name_to_handle_at(AT_FDCWD, ".", handle, &mount_id, 0) != 0) {
      printf("name_to_handle_at: %s\n", strerrorname_np(errno));
      return 0;
    }
    int fd = open_by_handle_at(AT_FDCWD, handle, O_RDONLY);
    printf("%s\n", fd >= 0 ? "opened" : strerrorname_np(errno));
  } else {
    /* A module: without CAP_SYS_MODULE this is EPERM before anything else. */
    long r = syscall(SYS_init_module, NULL, 0UL, "");
    printf("%s\n", r == 0 ? "loaded" : strerrorname_np(errno));
  }
  return 0;
}
)"));
  struct stat root_fs {};
  ASSERT_EQ(::stat("/", &root_fs), 0);
  std::string block =
      std::to_string(major(root_fs.st_dev)) + " " + std::to_string(minor(root_fs.st_dev));
  std::string sysctl = "/proc/sys/kernel/printk_ratelimit";  // rewritten with its own value
  auto result = run({
      "mkdir -p /tmp/m; if mount -t tmpfs x /tmp/m 2>/dev/null; then echo mounted; fi > escapes",
      // Making the node is the escape (a container's device cgroup may still
      // refuse to open it, so reading it is not the test).
      "if mknod disk b " + block + " 2>/dev/null; then echo mknod-block-device; fi >> escapes",
      "if cat " + sysctl + " > v && cat v > " + sysctl +
          " 2>/dev/null; then echo "
          "wrote-sysctl; fi >> escapes",
      "if test -e /sys/fs/cgroup || test -e /sys/kernel; then echo sysfs; fi >> escapes",
      "./probe handle > handle; ./probe module > module",
      "grep '^CapEff' /proc/self/status > caps; id -u > uid",
      "touch f; install -o root -g root -m 0640 f $DESTDIR/f; chown root:root $DESTDIR/f",
  });
  ASSERT_TRUE(result) << result.error().to_string();
  ASSERT_TRUE(result->ok) << result->describe() << log();
  EXPECT_EQ(slurp(in_build("escapes")), "");
  EXPECT_EQ(trim(slurp(in_build("handle"))), "EPERM");
  // ENOSYS: a kernel built without modules (then nothing can be loaded).
  std::string module = trim(slurp(in_build("module")));
  EXPECT_TRUE(module == "EPERM" || module == "ENOSYS") << module;
  EXPECT_EQ(trim(slurp(in_build("uid"))), "0") << "still root inside, for make install";
  // What the build made is root's, with its modes, as before.
  struct stat st {};
  ASSERT_EQ(::stat((m_spec.install_dir + "/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
}

TEST_F(SandboxHardeningTest, AsRootABuildCannotReadTheHostsSecretsInEtc) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  ASSERT_TRUE(path_exists("/etc/shadow")) << "the host has no /etc/shadow to hide";
  // A world-unreadable file of the host's (its own directory, removed after).
  std::string secret_dir = "/etc/gang-hardening-test-" + std::to_string(::getpid());
  ASSERT_TRUE(make_dirs(secret_dir));
  ASSERT_TRUE(write_file_atomic(secret_dir + "/key", "private"));
  ASSERT_EQ(::chmod((secret_dir + "/key").c_str(), 0600), 0);
  ASSERT_TRUE(write_file_atomic(secret_dir + "/public", "public"));
  ASSERT_EQ(::chmod((secret_dir + "/public").c_str(), 0644), 0);
  auto result = run({
      "for f in /etc/shadow /etc/gshadow /etc/sudoers " + secret_dir +
          "/key; do if cat $f >/dev/null 2>&1 || test -e $f; then echo $f; fi; done > visible",
      "cat /etc/passwd /etc/ld.so.cache " + secret_dir + "/public > /dev/null; ls -ld /etc > etc",
      "ls /etc/ssh 2>/dev/null | grep _key > keys || true",
  });
  (void)remove_tree(secret_dir);
  ASSERT_TRUE(result) << result.error().to_string();
  ASSERT_TRUE(result->ok) << result->describe() << log();
  EXPECT_EQ(slurp(in_build("visible")), "");
  EXPECT_EQ(slurp(in_build("keys")), "");
  EXPECT_EQ(slurp(in_build("etc")).substr(0, 10), "drwxr-xr-x");
}

TEST_F(SandboxHardeningTest, AsRootTheEtcMaskFollowsChangesBetweenSandboxes) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  // The mask is worked out once per process and kept while /etc does not
  // change: a file made private, or a private file added deep in /etc, after
  // a first sandbox ran, must be hidden from the next one at once.
  std::string dir = "/etc/gang-hardening-test-" + std::to_string(::getpid());
  ASSERT_TRUE(make_dirs(dir + "/sub"));
  ASSERT_TRUE(write_file_atomic(dir + "/sub/was-public", "x"));
  ASSERT_EQ(::chmod((dir + "/sub/was-public").c_str(), 0644), 0);
  std::string probe = "for f in " + dir + "/sub/was-public " + dir +
                      "/sub/new-key; do if cat $f >/dev/null 2>&1; then echo $f; fi; done > visible";
  auto first = run({probe});
  ASSERT_TRUE(first && first->ok);
  EXPECT_EQ(slurp(in_build("visible")), dir + "/sub/was-public\n");
  ASSERT_EQ(::chmod((dir + "/sub/was-public").c_str(), 0600), 0);
  ASSERT_TRUE(write_file_atomic(dir + "/sub/new-key", "private"));
  ASSERT_EQ(::chmod((dir + "/sub/new-key").c_str(), 0600), 0);
  auto second = run({probe});
  (void)remove_tree(dir);
  ASSERT_TRUE(second) << second.error().to_string();
  ASSERT_TRUE(second->ok) << second->describe() << log();
  EXPECT_EQ(slurp(in_build("visible")), "");
}

}  // namespace
}  // namespace gang
