// Tests for sandbox/: the spec, the environment contract, and real
// namespaces (isolation, logging, failures, cancellation, job control).
#include "sandbox/sandbox.hpp"
#include "sandbox/sandbox_plan.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "tests/support/capabilities.hpp"
#include "util/fs.hpp"

namespace gang {
namespace {

using namespace std::chrono_literals;

std::string slurp(const std::string& path) {
  auto text = read_file(path);
  return text ? *text : std::string("<missing>");
}

std::string trim(std::string text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  return text;
}

// Fills `layer` with /bin/sh (the host's) and the libraries it needs, so a
// `none`-based sandbox has a shell. Returns false when that is not possible.
bool make_shell_layer(const std::string& layer) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path shell = fs::canonical("/bin/sh", ec);
  if (ec) return false;
  std::vector<fs::path> files = {shell};
  FILE* ldd = ::popen(("ldd " + shell.string() + " 2>/dev/null").c_str(), "r");
  if (ldd == nullptr) return false;
  char line[1024];
  while (std::fgets(line, sizeof line, ldd) != nullptr) {
    std::istringstream words(line);
    for (std::string word; words >> word;)
      if (word.starts_with("/")) files.emplace_back(word);
  }
  ::pclose(ldd);
  for (const auto& file : files) {
    fs::path target = layer + (file == shell ? std::string("/usr/bin/sh") : file.string());
    fs::create_directories(target.parent_path(), ec);
    fs::copy_file(fs::canonical(file, ec), target, fs::copy_options::overwrite_existing, ec);
    if (ec) return false;
    // Libraries may be asked for through /lib64 or /lib on merged-/usr hosts.
    for (const char* top : {"/lib", "/lib64", "/bin"}) {
      fs::path link = layer + top;
      if (!fs::exists(link, ec) && fs::exists(layer + std::string("/usr") + top, ec))
        fs::create_directory_symlink(std::string("usr") + top, link, ec);
    }
  }
  return true;
}

// This process's children (every thread's), zombies included.
std::set<pid_t> child_pids() {
  std::set<pid_t> out;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream in(task.path() / "children");
    for (pid_t pid; in >> pid;) out.insert(pid);
  }
  return out;
}

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    m_root = m_tmp.path();
    ASSERT_TRUE(make_dirs(m_root + "/staged/usr/share/doc"));
    ASSERT_TRUE(make_dirs(m_root + "/cache"));
    m_spec.name = "hello";
    m_spec.sandbox_dir = m_root + "/sandbox";
    m_spec.build_dir = m_root + "/sandbox/hello.build";
    m_spec.install_dir = m_root + "/sandbox/hello.inst";
    m_spec.lower_layers = {m_root + "/staged"};
    m_spec.arch = "x86_64";
    m_spec.max_jobs = 3;
    m_spec.source_date_epoch = 1234567890;
    m_log = m_root + "/hello.log";
  }
  void TearDown() override {
    if (HasFailure()) {
      m_tmp.keep();
      std::fprintf(stderr, "kept %s\n", m_root.c_str());
    }
  }

  Result<StepResult> run(const std::vector<std::string>& commands,
                         const std::string& step = "configure", StepOptions options = {}) {
    return run_step(m_spec, step, commands, m_log, options);
  }

  std::string in_build(const std::string& name) { return m_spec.build_dir + "/" + name; }

  TempDir m_tmp{"gang-sandbox-test-"};
  std::string m_root;
  SandboxSpec m_spec;
  std::string m_log;
};

// ---- pure parts ------------------------------------------------------------

TEST(SandboxSpec, SavesAndLoadsEveryFieldRelativeToAMovedDirectory) {
  TempDir tmp;
  SandboxSpec spec;
  spec.name = "gcc";
  spec.sandbox_dir = tmp.path() + "/a";
  spec.base = "none";
  spec.lower_layers = {"/cache/staged/one", tmp.path() + "/a/deps"};
  spec.build_dir = tmp.path() + "/a/gcc.build";
  spec.install_dir = tmp.path() + "/a/gcc.inst";
  spec.prefix = "/tools";
  spec.arch = "armv8l64";
  spec.max_jobs = 8;
  spec.source_date_epoch = 42;
  spec.mode = SandboxMode::bootstrap;
  spec.extra_env = {{"CFLAGS", "-O2 -g\nweird"}, {"X", "a=b"}};
  spec.extra_path = {"/tools/bin"};
  spec.log_path = tmp.path() + "/a/build.log";
  ASSERT_TRUE(make_dirs(spec.sandbox_dir));
  ASSERT_TRUE(save_spec(spec));
  ASSERT_EQ(::rename(spec.sandbox_dir.c_str(), (tmp.path() + "/b").c_str()), 0);

  auto loaded = load_spec(tmp.path() + "/b");
  ASSERT_TRUE(loaded) << loaded.error().to_string();
  EXPECT_EQ(loaded->name, "gcc");
  EXPECT_EQ(loaded->sandbox_dir, tmp.path() + "/b");
  EXPECT_EQ(loaded->base, "none");
  EXPECT_EQ(loaded->lower_layers,
            (std::vector<std::string>{"/cache/staged/one", tmp.path() + "/b/deps"}));
  EXPECT_EQ(loaded->build_dir, tmp.path() + "/b/gcc.build");
  EXPECT_EQ(loaded->install_dir, tmp.path() + "/b/gcc.inst");
  EXPECT_EQ(loaded->prefix, "/tools");
  EXPECT_EQ(loaded->arch, "armv8l64");
  EXPECT_EQ(loaded->max_jobs, 8);
  EXPECT_EQ(loaded->source_date_epoch, 42);
  EXPECT_EQ(loaded->mode, SandboxMode::bootstrap);
  EXPECT_EQ(loaded->extra_env, spec.extra_env);
  EXPECT_EQ(loaded->extra_path, spec.extra_path);
  EXPECT_EQ(loaded->network, Network::none);
  EXPECT_EQ(loaded->log_path, tmp.path() + "/b/build.log");
}

TEST(SandboxSpec, LoadRejectsUnknownKeysWithFileAndLine) {
  TempDir tmp;
  ASSERT_TRUE(
      write_file_atomic(spec_path(tmp.path()), "gang-sandbox-spec 1\nname x\nbulid-dir /x\n"));
  auto loaded = load_spec(tmp.path());
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().line, 3);
  EXPECT_NE(loaded.error().to_string().find("unknown key \"bulid-dir\""), std::string::npos);
  EXPECT_FALSE(load_spec(tmp.path() + "/missing"));
}

TEST(SandboxSpec, KeptSandboxDirLivesUnderFailed) {
  EXPECT_EQ(kept_sandbox_dir("/c", "glibc"), "/c/failed/glibc");
  EXPECT_EQ(kept_sandbox_dir("/c", "a/b"), "/c/failed/a_b");
}

TEST(SandboxEnvironment, IsTheBaserockContractWithMakeflagsOnlyOnBuildSteps) {
  SandboxSpec spec;
  spec.name = "zlib";
  spec.arch = "x86_64";
  spec.max_jobs = 4;
  spec.source_date_epoch = 7;
  spec.extra_path = {"/tools/bin"};
  std::vector<std::string> expected = {
      "DESTDIR=/zlib.inst",
      "HOME=/tmp",
      "LC_ALL=C",
      "MAKEFLAGS=-j4",
      "MORPH_ARCH=x86_64",
      "PATH=/tools/bin:/usr/bin:/bin:/usr/sbin:/sbin",
      "PREFIX=/usr",
      "SOURCE_DATE_EPOCH=7",
      "TARGET=x86_64-baserock-linux-gnu",
      "TARGET_STAGE1=x86_64-bootstrap-linux-gnu",
      "TERM=dumb",
      "TZ=UTC",
  };
  EXPECT_EQ(sandbox_environment(spec, StepKind::build), expected);
  expected.erase(expected.begin() + 3);
  EXPECT_EQ(sandbox_environment(spec, StepKind::other), expected);
}

TEST(SandboxEnvironment, TargetTripletsFollowBaserockArches) {
  EXPECT_EQ(target_triplet("x86_32"), "i686-baserock-linux-gnu");
  EXPECT_EQ(target_triplet("armv8l64"), "aarch64-baserock-linux-gnu");
  EXPECT_EQ(target_triplet("armv7lhf"), "armv7lhf-baserock-linux-gnueabi");
  EXPECT_EQ(target_triplet("mips64b", "bootstrap"), "mips64-bootstrap-linux-gnuabi64");
}

TEST(SandboxTail, ReturnsTheLastLines) {
  TempDir tmp;
  std::string text;
  for (int i = 1; i <= 100; ++i) text += "line " + std::to_string(i) + "\n";
  ASSERT_TRUE(write_file_atomic(tmp.path() + "/log", text));
  auto lines = tail_lines(tmp.path() + "/log", 40);
  ASSERT_EQ(lines.size(), 40u);
  EXPECT_EQ(lines.front(), "line 61");
  EXPECT_EQ(lines.back(), "line 100");
  EXPECT_TRUE(tail_lines(tmp.path() + "/none", 40).empty());
}

// A launcher that records what it was asked and fails the second command.
class FakeLauncher : public Launcher {
 public:
  Result<LaunchOutcome> launch(const SandboxSpec&, const Invocation& what,
                               const StepControl&) override {
    m_seen = what;
    [[maybe_unused]] auto n = ::write(what.output_fd, "fake output\n", 12);
    LaunchOutcome outcome;
    outcome.failed_index = 1;
    outcome.wait_status = 2 << 8;  // exited with 2
    return outcome;
  }
  Invocation m_seen;
};

TEST_F(SandboxTest, RunStepReportsTheFailingCommandFromTheLauncher) {
  FakeLauncher fake;
  StepOptions options;
  options.launcher = &fake;
  auto result = run({"true", "make", "never"}, "build", options);
  ASSERT_TRUE(result);
  EXPECT_FALSE(result->ok);
  EXPECT_EQ(result->command, "make");
  EXPECT_EQ(result->exit_status, 2);
  EXPECT_EQ(result->last_lines, std::vector<std::string>{"fake output"});
  ASSERT_EQ(fake.m_seen.commands.size(), 3u);
  const ShellCommand& make = fake.m_seen.commands[1];
  EXPECT_EQ(make.text, "make");
  EXPECT_EQ(make.label, "build");
  EXPECT_NE(std::find(make.env.begin(), make.env.end(), "MAKEFLAGS=-j3"), make.env.end());
  EXPECT_NE(result->describe().find("step build failed: command `make` exited with status 2"),
            std::string::npos);
}

TEST_F(SandboxTest, RunStepsHandsTheLauncherEveryCommandWithItsStepsLabelAndEnvironment) {
  FakeLauncher fake;
  StepOptions options;
  options.launcher = &fake;
  auto result = run_steps(m_spec,
                          {{"configure-commands", StepKind::other, {"./configure"}},
                           {"pre-build-commands", StepKind::build, {}},
                           {"build-commands", StepKind::build, {"make", "never"}}},
                          m_log, options);
  ASSERT_TRUE(result) << result.error().to_string();
  ASSERT_EQ(fake.m_seen.commands.size(), 3u);
  EXPECT_EQ(fake.m_seen.commands[0].label, "configure-commands");
  EXPECT_EQ(fake.m_seen.commands[0].env, sandbox_environment(m_spec, StepKind::other));
  EXPECT_EQ(fake.m_seen.commands[1].label, "build-commands");
  EXPECT_EQ(fake.m_seen.commands[1].env, sandbox_environment(m_spec, StepKind::build));
  // The fake fails command 1: the build step's first command.
  EXPECT_FALSE(result->ok);
  EXPECT_EQ(result->step, "build-commands");
  EXPECT_EQ(result->command, "make");
}

TEST_F(SandboxTest, RunStepsWithNoCommandsSucceedsWithoutALauncher) {
  FakeLauncher fake;
  StepOptions options;
  options.launcher = &fake;
  auto result = run_steps(m_spec, {{"configure-commands", StepKind::other, {}}}, m_log, options);
  ASSERT_TRUE(result) << result.error().to_string();
  EXPECT_TRUE(result->ok);
  EXPECT_TRUE(fake.m_seen.commands.empty());
  EXPECT_FALSE(path_exists(m_log));
}

// ---- real namespaces ---------------------------------------------------------

TEST_F(SandboxTest, RunStepsRunsEveryStepInOneSandboxWithItsOwnEnvironment) {
  const char* dump = "env | grep -v -e '^PWD=' -e '^OLDPWD=' -e '^SHLVL=' -e '^_=' | sort > ";
  auto result = run_steps(
      m_spec,
      {{"configure-commands", StepKind::other,
        {std::string(dump) + "env.configure", "echo $PPID > init.configure",
         "echo scratch > /etc/gang-steps"}},
       {"build-commands", StepKind::build,
        {std::string(dump) + "env.build", "echo $PPID > init.build", "cat /etc/gang-steps > seen"}},
       {"install-commands", StepKind::other,
        {std::string(dump) + "env.install", "echo installed > $DESTDIR/f"}}},
      m_log);
  ASSERT_TRUE(result) << result.error().to_string();
  ASSERT_TRUE(result->ok) << result->describe();
  EXPECT_EQ(result->step, "install-commands");
  auto lines = [](const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  };
  EXPECT_EQ(lines(slurp(in_build("env.configure"))), sandbox_environment(m_spec, StepKind::other));
  EXPECT_EQ(lines(slurp(in_build("env.build"))), sandbox_environment(m_spec, StepKind::build));
  EXPECT_EQ(lines(slurp(in_build("env.install"))), sandbox_environment(m_spec, StepKind::other));
  EXPECT_EQ(slurp(in_build("env.install")).find("MAKEFLAGS"), std::string::npos);
  // One sandbox: the same init (PID 1) ran every step, and a scratch write to
  // the root in one step is still there in the next one.
  EXPECT_EQ(trim(slurp(in_build("init.configure"))), "1");
  EXPECT_EQ(trim(slurp(in_build("init.build"))), "1");
  EXPECT_EQ(trim(slurp(in_build("seen"))), "scratch");
  EXPECT_FALSE(path_exists("/etc/gang-steps"));
  EXPECT_EQ(trim(slurp(m_spec.install_dir + "/f")), "installed");
  std::string log = slurp(m_log);
  std::size_t configure = log.find("# [configure-commands] echo $PPID > init.configure\n");
  std::size_t build = log.find("# [build-commands] cat /etc/gang-steps > seen\n");
  std::size_t install = log.find("# [install-commands] echo installed > $DESTDIR/f\n");
  EXPECT_NE(configure, std::string::npos) << log;
  EXPECT_NE(build, std::string::npos) << log;
  EXPECT_NE(install, std::string::npos) << log;
  EXPECT_LT(configure, build);
  EXPECT_LT(build, install);
}

TEST_F(SandboxTest, RunStepsStopsAtTheFirstFailureAndNamesItsStepAndCommand) {
  auto result = run_steps(m_spec,
                          {{"configure-commands", StepKind::other, {"echo configured"}},
                           {"build-commands", StepKind::build,
                            {"echo building", "echo broken >&2; exit 4", "echo after"}},
                           {"install-commands", StepKind::other, {"touch installed"}}},
                          m_log);
  ASSERT_TRUE(result) << result.error().to_string();
  EXPECT_FALSE(result->ok);
  EXPECT_FALSE(result->cancelled);
  EXPECT_EQ(result->step, "build-commands");
  EXPECT_EQ(result->command, "echo broken >&2; exit 4");
  EXPECT_EQ(result->exit_status, 4);
  EXPECT_EQ(result->last_lines.back(), "broken");
  EXPECT_NE(result->describe().find(
                "step build-commands failed: command `echo broken >&2; exit 4` exited with status 4"),
            std::string::npos);
  std::string log = slurp(m_log);
  EXPECT_NE(log.find("# [configure-commands] echo configured\nconfigured\n"
                     "# [build-commands] echo building\nbuilding\n"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("after"), std::string::npos);
  EXPECT_EQ(log.find("install-commands"), std::string::npos);
  EXPECT_FALSE(path_exists(in_build("installed")));
}

TEST_F(SandboxTest, RunStepsCanBeCancelledInALaterStep) {
  std::atomic<bool> stop{false};
  StepOptions options;
  options.control.should_stop = [&] { return stop.load(); };
  std::thread stopper([&] {
    for (int i = 0; i < 500 && !path_exists(in_build("sleeping")); ++i)
      std::this_thread::sleep_for(10ms);
    stop = true;
  });
  auto start = std::chrono::steady_clock::now();
  auto result = run_steps(m_spec,
                          {{"configure-commands", StepKind::other, {"true"}},
                           {"build-commands", StepKind::build, {"touch sleeping; sleep 30"}}},
                          m_log, options);
  stopper.join();
  ASSERT_TRUE(result) << result.error().to_string();
  EXPECT_FALSE(result->ok);
  EXPECT_TRUE(result->cancelled);
  EXPECT_EQ(result->step, "build-commands");
  EXPECT_EQ(result->command, "touch sleeping; sleep 30");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
}

TEST_F(SandboxTest, ASandboxCanBeMountedAgainAfterAWritableRun) {
  // Volatile overlays leave a marker that would refuse a second mount of the
  // same upper layer (what gang shell does); it must be cleared. (Upper
  // layers on disk, as system assembly keeps them.)
  m_spec.keep_upper = true;
  auto first = run({"echo one > /etc/gang-again; echo one > /usr/gang-again"});
  ASSERT_TRUE(first && first->ok);
  auto second = run({"cat /etc/gang-again /usr/gang-again > again"});
  ASSERT_TRUE(second) << second.error().to_string();
  ASSERT_TRUE(second->ok) << second->describe();
  EXPECT_EQ(slurp(in_build("again")), "one\none\n");
}

TEST_F(SandboxTest, WritesOutsideTheBuildLeaveNothingOnDiskUnlessTheRunFails) {
  // By default the upper layers are a tmpfs of the sandbox: a successful run
  // leaves only the (empty) mount point and the build and install dirs.
  auto ok = run({"echo one > /etc/gang-kept; echo two > /usr/gang-kept"});
  ASSERT_TRUE(ok) << ok.error().to_string();
  ASSERT_TRUE(ok->ok) << ok->describe();
  EXPECT_FALSE(path_exists(m_spec.sandbox_dir + "/kept"));
  EXPECT_TRUE(std::filesystem::is_empty(m_spec.sandbox_dir + "/root"));
  auto next = run({"test ! -e /etc/gang-kept && test ! -e /usr/gang-kept"});
  ASSERT_TRUE(next && next->ok) << (next ? next->describe() : next.error().to_string());

  // A failed run keeps them (files, directories, symlinks, modes) for gang
  // shell, which sees them on top of its own fresh layers.
  auto failed = run({"echo one > /etc/gang-kept; echo two > /usr/gang-kept; mkdir -p /opt/x; "
                     "echo three > /opt/x/f; chmod 0750 /opt/x/f; ln -s f /opt/x/l; false"});
  ASSERT_TRUE(failed) << failed.error().to_string();
  EXPECT_FALSE(failed->ok);
  EXPECT_EQ(slurp(m_spec.sandbox_dir + "/kept/etc/gang-kept"), "one\n");
  EXPECT_EQ(slurp(m_spec.sandbox_dir + "/kept/usr/gang-kept"), "two\n");
  EXPECT_EQ(slurp(m_spec.sandbox_dir + "/kept/root/opt/x/f"), "three\n");
  struct stat st {};
  ASSERT_EQ(::lstat((m_spec.sandbox_dir + "/kept/root/opt/x/f").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  ASSERT_EQ(::lstat((m_spec.sandbox_dir + "/kept/root/opt/x/l").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  auto again = run({"cat /etc/gang-kept /usr/gang-kept /opt/x/f /opt/x/l > again"});
  ASSERT_TRUE(again) << again.error().to_string();
  ASSERT_TRUE(again->ok) << again->describe();
  EXPECT_EQ(slurp(in_build("again")), "one\ntwo\nthree\nthree\n");
}

TEST_F(SandboxTest, ScratchOnDiskWhenForced) {
  // Unprivileged sandboxes on kernels before 6.6 keep their scratch on disk
  // (tmpfs has no user xattrs there); GANG_SANDBOX_SCRATCH=disk forces it.
  ::setenv("GANG_SANDBOX_SCRATCH", "disk", 1);
  auto result = run({"echo x > /usr/on-disk"});
  ::unsetenv("GANG_SANDBOX_SCRATCH");
  ASSERT_TRUE(result) << result.error().to_string();
  ASSERT_TRUE(result->ok) << result->describe();
  EXPECT_EQ(slurp(sandbox_upper_dir(m_spec.sandbox_dir, "usr") + "/on-disk"), "x\n");
  ASSERT_TRUE(remove_sandbox(m_spec.sandbox_dir));
  EXPECT_FALSE(path_exists(m_spec.sandbox_dir));
}

TEST_F(SandboxTest, CommandsRunInTheBuildDirectoryUnderAFreshPidNamespace) {
  auto result = run({"pwd > cwd; echo $$ > pid; ls /proc | grep -c '^[0-9]' > nprocs",
                     "cat /proc/1/status | grep '^PPid' > ppid1"});
  ASSERT_TRUE(result) << result.error().to_string();
  ASSERT_TRUE(result->ok) << result->describe();
  EXPECT_EQ(trim(slurp(in_build("cwd"))), "/hello.build");
  EXPECT_EQ(trim(slurp(in_build("pid"))), "2");  // the init is 1, sh its child
  EXPECT_LE(std::stoi(slurp(in_build("nprocs"))), 4);
  EXPECT_EQ(trim(slurp(in_build("ppid1"))), "PPid:\t0");
}

TEST_F(SandboxTest, TheSandboxHoldsNoneOfTheCallersFiles) {
  std::vector<int> opened;
  for (int i = 0; i < 20; ++i) opened.push_back(::open("/dev/null", O_RDONLY));  // no CLOEXEC
  auto result = run({"ls /proc/1/fd | wc -l > init_fds; ls /proc/$$/fd | wc -l > sh_fds"});
  for (int fd : opened) ::close(fd);
  ASSERT_TRUE(result && result->ok);
  // 0-2 + status, keepalive, log, null, and the scratch and sandbox
  // directories (for keeping a failed run's writes).
  EXPECT_LE(std::stoi(slurp(in_build("init_fds"))), 9);
  EXPECT_LE(std::stoi(slurp(in_build("sh_fds"))), 4);    // 0-2 + the one ls opens
}

TEST_F(SandboxTest, TheEnvironmentIsExactlyTheContract) {
  const char* dump = "env | grep -v -e '^PWD=' -e '^OLDPWD=' -e '^SHLVL=' -e '^_=' | sort > ";
  ::setenv("GANG_TEST_LEAK", "leaked", 1);
  auto configure = run({std::string(dump) + "env.configure"}, "configure");
  auto build = run({std::string(dump) + "env.build"}, "build");
  ::unsetenv("GANG_TEST_LEAK");
  ASSERT_TRUE(configure && build);
  ASSERT_TRUE(configure->ok && build->ok) << configure->describe() << build->describe();
  auto lines = [](const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
  };
  EXPECT_EQ(lines(slurp(in_build("env.build"))), sandbox_environment(m_spec, StepKind::build));
  EXPECT_EQ(lines(slurp(in_build("env.configure"))), sandbox_environment(m_spec, StepKind::other));
  EXPECT_EQ(slurp(in_build("env.configure")).find("MAKEFLAGS"), std::string::npos);
  EXPECT_NE(slurp(in_build("env.build")).find("MAKEFLAGS=-j3\n"), std::string::npos);
}

TEST_F(SandboxTest, EverySandboxHasANetworkNamespaceOfItsOwn) {
  // Namespaces made in advance (root) or in clone(): never the host's, never
  // one an earlier sandbox used, and its lo is up.
  std::set<std::string> seen;
  std::string host = std::filesystem::read_symlink("/proc/self/ns/net").string();
  for (int i = 0; i < 4; ++i) {
    auto result = run({"readlink /proc/self/ns/net > ns",
                       "perl -MIO::Socket::INET -e '$s = IO::Socket::INET->new(Listen => 1, "
                       "LocalAddr => \"127.0.0.1:0\") or exit 1; $p = $s->sockport; "
                       "IO::Socket::INET->new(PeerAddr => \"127.0.0.1:$p\") or exit 2; "
                       "print \"up\\n\"' > lo"});
    ASSERT_TRUE(result) << result.error().to_string();
    ASSERT_TRUE(result->ok) << result->describe();
    std::string ns = trim(slurp(in_build("ns")));
    EXPECT_NE(ns, host);
    EXPECT_TRUE(seen.insert(ns).second) << "namespace " << ns << " used twice";
    EXPECT_EQ(trim(slurp(in_build("lo"))), "up") << "127.0.0.1 works inside";
  }
}

TEST_F(SandboxTest, AForkedChildNeverSharesItsParentsPreparedNetworkNamespaces) {
  if (::geteuid() != 0) GTEST_SKIP() << "namespaces are prepared in advance only as root";
  // The parent's factory has namespaces ready; a child forked without exec
  // inherits their fds: it must not hand the same one out as the parent.
  auto first = run({"true"});
  ASSERT_TRUE(first && first->ok);
  ::usleep(200'000);  // let the factory fill up
  SandboxSpec child_spec = m_spec;
  child_spec.sandbox_dir = m_root + "/child-sandbox";
  child_spec.build_dir = child_spec.sandbox_dir + "/hello.build";
  child_spec.install_dir = child_spec.sandbox_dir + "/hello.inst";
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto r = run_step(child_spec, "configure", {"readlink /proc/self/ns/net > ns"},
                      m_root + "/child.log");
    ::_exit(r && r->ok ? 0 : 1);
  }
  auto parent = run({"readlink /proc/self/ns/net > ns"});
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << slurp(m_root + "/child.log");
  ASSERT_TRUE(parent && parent->ok);
  std::string mine = trim(slurp(in_build("ns")));
  std::string theirs = trim(slurp(child_spec.build_dir + "/ns"));
  EXPECT_FALSE(mine.empty());
  EXPECT_NE(mine, theirs);
}

TEST_F(SandboxTest, HasNoNetworkButLoopback) {
  // A listener on the host's loopback must be unreachable from inside.
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::listen(listener, 1), 0);
  socklen_t size = sizeof address;
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &size), 0);
  std::string port = std::to_string(ntohs(address.sin_port));
  std::string probe =
      "perl -MIO::Socket::INET -e 'exit(IO::Socket::INET->new(PeerAddr => "
      "\"127.0.0.1:" +
      port + "\", Timeout => 2) ? 0 : 1)'";
  // Sanity: the probe works on the host.
  ASSERT_EQ(std::system(probe.c_str()), 0);
  auto result = run({"tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > ifaces",
                     "if " + probe + "; then echo reached > net; else echo blocked > net; fi"});
  ::close(listener);
  ASSERT_TRUE(result) << result.error().to_string();
  ASSERT_TRUE(result->ok) << result->describe();
  EXPECT_EQ(trim(slurp(in_build("ifaces"))), "lo");
  EXPECT_EQ(trim(slurp(in_build("net"))), "blocked");
}

TEST_F(SandboxTest, WritesOutsideTheSandboxNeverReachTheHost) {
  std::string outside = m_root + "/outside";
  ASSERT_TRUE(write_file_atomic(outside, "original"));
  auto result = run({
      "echo x > /usr/gang-sandbox-test-file; echo x > /etc/gang-sandbox-test-file",
      "echo x > " + outside + " 2>/dev/null && echo wrote > outside || echo denied > outside",
      "echo installed > $DESTDIR/file; echo scratch > /tmp/t; echo y > /dev/null",
  });
  ASSERT_TRUE(result) << result.error().to_string();
  ASSERT_TRUE(result->ok) << result->describe();
  EXPECT_FALSE(path_exists("/usr/gang-sandbox-test-file"));
  EXPECT_FALSE(path_exists("/etc/gang-sandbox-test-file"));
  EXPECT_EQ(slurp(outside), "original");
  EXPECT_EQ(trim(slurp(in_build("outside"))), "denied");
  EXPECT_EQ(trim(slurp(m_spec.install_dir + "/file")), "installed");
}

TEST_F(SandboxTest, AStagedHardLinkedCacheFileCannotBeModified) {
  std::string blob = m_root + "/cache/blob";
  ASSERT_TRUE(write_file_atomic(blob, "pristine\n", 0444));
  std::string staged = m_root + "/staged/usr/share/doc/f";
  ASSERT_EQ(::link(blob.c_str(), staged.c_str()), 0);
  // `none` has only the shell (builtins): root may write a 0444 file anyway.
  ASSERT_TRUE(make_shell_layer(m_root + "/shell"));
  for (const char* base : {"host", "none"}) {
    m_spec.base = base;
    m_spec.sandbox_dir = m_root + "/sandbox-" + base;
    std::string command =
        "echo x > /usr/share/doc/f; read line < /usr/share/doc/f; "
        "echo $line > seen";
    if (m_spec.base == "host") {
      command = "chmod u+w /usr/share/doc/f; " + command + "; rm -f /usr/share/doc/f";
    } else {
      m_spec.lower_layers.push_back(m_root + "/shell");
    }
    auto result = run({command});
    ASSERT_TRUE(result) << result.error().to_string();
    ASSERT_TRUE(result->ok) << base << ": " << result->describe();
    EXPECT_EQ(trim(slurp(in_build("seen"))), "x") << base;
    EXPECT_EQ(slurp(blob), "pristine\n") << base;
    EXPECT_TRUE(path_exists(staged)) << base;
    struct stat st {};
    ASSERT_EQ(::stat(blob.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0444u) << base;
  }
}

TEST_F(SandboxTest, ManyLowerLayersStackTopFirst) {
  std::string parent = m_root + "/a-staging-area-with-a-deliberately-long-name-to-overflow-a-page";
  m_spec.lower_layers.clear();
  for (int i = 0; i < 100; ++i) {
    std::string layer = parent + "/l" + std::to_string(i);
    ASSERT_TRUE(make_dirs(layer + "/usr/share/gang"));
    ASSERT_TRUE(write_file_atomic(layer + "/usr/share/gang/own" + std::to_string(i), "x"));
    ASSERT_TRUE(write_file_atomic(layer + "/usr/share/gang/shared", std::to_string(i)));
    m_spec.lower_layers.push_back(layer);
  }
  auto result =
      run({"test -f /usr/share/gang/own0 && test -f /usr/share/gang/own99 && "
           "cat /usr/share/gang/shared > shared"});
  ASSERT_TRUE(result) << result.error().to_string();
  ASSERT_TRUE(result->ok) << result->describe();
  EXPECT_EQ(slurp(in_build("shared")), "0");  // the first layer is the top one
}

// Base `host` on a multiarch host: gcc, ld, ld.so and pkg-config search
// /usr/lib/<triplet> and /usr/include/<triplet> before /usr/lib and
// /usr/include. A staged libz.so.1 (the soname of the host's zlib, always
// present on Debian) with an extra symbol, a staged zlib.h, a staged
// ieee754.h (libc6-dev keeps the host's in the multiarch include directory)
// and a staged zlib.pc must be the ones a build finds, links and runs with.
TEST_F(SandboxTest, StagedLibrariesHeadersAndPkgConfigWinOverTheHostsMultiarchCopies) {
  const std::string triplet = host_multiarch_triplet();
  if (triplet.empty() || !path_exists("/usr/include/" + triplet + "/ieee754.h") ||
      !path_exists("/usr/lib/" + triplet + "/libz.so.1") ||
      std::system("cc --version >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "needs a multiarch host with cc, libc6-dev and zlib1g";
  const std::string staged = m_root + "/staged";
  ASSERT_TRUE(make_dirs(staged + "/usr/include"));
  ASSERT_TRUE(make_dirs(staged + "/usr/lib/pkgconfig"));
  ASSERT_TRUE(
      write_file_atomic(staged + "/usr/include/ieee754.h", "#define GANG_STAGED_IEEE754 1\n"));
  ASSERT_TRUE(write_file_atomic(staged + "/usr/include/zlib.h",
                                "#define ZLIB_VERSION \"9.9.9-gang\"\n"
                                "const char *zlibVersion(void);\n"
                                "const char *gang_staged_zlib(void);\n"));
  ASSERT_TRUE(write_file_atomic(m_root + "/z.c",
                                "const char *zlibVersion(void) { return \"9.9.9-gang\"; }\n"
                                "const char *gang_staged_zlib(void) { return \"staged\"; }\n"));
  ASSERT_EQ(std::system(("cc -shared -fPIC -Wl,-soname,libz.so.1 -o " + staged +
                         "/usr/lib/libz.so.1 " + m_root + "/z.c")
                            .c_str()),
            0);
  ASSERT_EQ(::symlink("libz.so.1", (staged + "/usr/lib/libz.so").c_str()), 0);
  ASSERT_TRUE(write_file_atomic(staged + "/usr/lib/pkgconfig/zlib.pc",
                                "prefix=/usr\nlibdir=${prefix}/lib\nincludedir=${prefix}/include\n"
                                "Name: zlib\nDescription: staged\nVersion: 9.9.9-gang\n"
                                "Libs: -L${libdir} -lz\nCflags: -I${includedir}\n"));
  ASSERT_TRUE(make_dirs(m_spec.build_dir));
  ASSERT_TRUE(write_file_atomic(
      in_build("t.c"),
      "#include <ieee754.h>\n#include <zlib.h>\n#include <stdio.h>\n"
      "#ifndef GANG_STAGED_IEEE754\n#error the host's ieee754.h\n#endif\n"
      "int main(void) {\n"
      "  printf(\"%s %s %s\\n\", ZLIB_VERSION, zlibVersion(), gang_staged_zlib());\n"
      "  return 0;\n}\n"));
  m_spec.base = "host";
  // -lz finds libz.so; -l:libz.so.1 names the file the host certainly has in
  // its multiarch directory (even without zlib1g-dev).
  std::vector<std::string> commands = {"cc -o t-lz t.c -lz", "./t-lz > out-lz",
                                       "cc -o t-soname t.c -l:libz.so.1",
                                       "./t-soname > out-soname"};
  const bool pkg_config = path_exists("/usr/bin/pkg-config");
  if (pkg_config) commands.push_back("pkg-config --modversion zlib > out-pc");
  auto result = run(commands);
  ASSERT_TRUE(result) << result.error().to_string();
  ASSERT_TRUE(result->ok) << result->describe();
  EXPECT_EQ(slurp(in_build("out-lz")), "9.9.9-gang 9.9.9-gang staged\n");
  EXPECT_EQ(slurp(in_build("out-soname")), "9.9.9-gang 9.9.9-gang staged\n");
  if (pkg_config) {
    EXPECT_EQ(slurp(in_build("out-pc")), "9.9.9-gang\n");
  }
  // Other host libraries (libm) still link beside the staged one.
  m_spec.sandbox_dir = m_root + "/sandbox-plain";
  auto plain = run({"cc -o t-m t.c -lz -lm", "./t-m > out-m"});
  ASSERT_TRUE(plain) << plain.error().to_string();
  ASSERT_TRUE(plain->ok) << plain->describe();
}

// A dependency staged under PREFIX=/usr/local: gcc and pkg-config already
// look in /usr/local/include and /usr/local/lib/pkgconfig first, but the
// linker meets /usr/lib/<triplet> before /usr/local/lib, and the loader never
// looks there; the staged library must still win.
TEST_F(SandboxTest, ALibraryStagedUnderUsrLocalWinsToo) {
  const std::string triplet = host_multiarch_triplet();
  if (triplet.empty() || !path_exists("/usr/lib/" + triplet + "/libz.so.1") ||
      std::system("cc --version >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "needs a multiarch host with cc and zlib1g";
  const std::string staged = m_root + "/staged";
  ASSERT_TRUE(make_dirs(staged + "/usr/local/lib"));
  ASSERT_TRUE(make_dirs(staged + "/usr/local/include"));
  ASSERT_TRUE(write_file_atomic(staged + "/usr/local/include/zlib.h",
                                "const char *gang_staged_zlib(void);\n"));
  ASSERT_TRUE(write_file_atomic(m_root + "/z.c",
                                "const char *gang_staged_zlib(void) { return \"local\"; }\n"));
  ASSERT_EQ(std::system(("cc -shared -fPIC -Wl,-soname,libz.so.1 -o " + staged +
                         "/usr/local/lib/libz.so.1 " + m_root + "/z.c")
                            .c_str()),
            0);
  ASSERT_TRUE(make_dirs(m_spec.build_dir));
  ASSERT_TRUE(
      write_file_atomic(in_build("t.c"),
                        "#include <zlib.h>\n#include <stdio.h>\n"
                        "int main(void) { printf(\"%s\\n\", gang_staged_zlib()); return 0; }\n"));
  m_spec.base = "host";
  m_spec.prefix = "/usr/local";
  auto result = run({"cc -o t t.c -l:libz.so.1", "./t > out"});
  ASSERT_TRUE(result) << result.error().to_string();
  ASSERT_TRUE(result->ok) << result->describe();
  EXPECT_EQ(slurp(in_build("out")), "local\n");
}

// A layer holding both usr/lib and usr/lib/<triplet> (Perl modules install
// into usr/lib/<T>/perl; CMake and Meson put libraries there on Debian), and
// both usr/include and usr/include/<T>: overlayfs refuses a mount whose lower
// layers nest ("overlapping lowerdir path", ELOOP), so a naive /usr/lib/<T>
// overlay over the layer's usr/lib/<T> and usr/lib cannot start the sandbox.
// Each staged file must show where it was installed, the layer's usr/lib
// also in /usr/lib/<T> (ahead of the host's copies), and the host's own
// multiarch files beside them.
class MultiarchNestingTest : public SandboxTest {
 protected:
  void SetUp() override {
    SandboxTest::SetUp();
    m_triplet = host_multiarch_triplet();
    if (m_triplet.empty() || !path_exists("/usr/lib/" + m_triplet + "/libc.so.6"))
      GTEST_SKIP() << "needs a multiarch host";
  }
  // Writes the layer at `staged` and runs the commands that read it back.
  Result<StepResult> stage_and_look(const std::string& staged) {
    const std::string t = m_triplet;
    for (const std::string& dir :
         {"/usr/lib/" + t + "/perl/5.36.0/Gang", "/usr/include/" + t + "/gang"})
      if (auto ok = make_dirs(staged + dir); !ok) return std::unexpected(ok.error());
    for (const auto& [path, text] : std::vector<std::pair<std::string, std::string>>{
             {"/usr/lib/" + t + "/perl/5.36.0/Gang/Staged.pm", "multiarch\n"},
             {"/usr/lib/libgangstaged.so.1", "parent\n"},
             {"/usr/include/" + t + "/gang/arch.h", "arch\n"},
             {"/usr/include/gang-plain.h", "plain\n"}})
      if (auto ok = write_file_atomic(staged + path, text); !ok) return std::unexpected(ok.error());
    if (auto ok = make_dirs(m_spec.build_dir); !ok) return std::unexpected(ok.error());
    m_spec.base = "host";
    return run({"cat /usr/lib/" + t + "/perl/5.36.0/Gang/Staged.pm > a",
                "cat /usr/lib/libgangstaged.so.1 > b",
                "cat /usr/lib/" + t + "/libgangstaged.so.1 > c 2>/dev/null || echo absent > c",
                "cat /usr/include/" + t + "/gang/arch.h /usr/include/gang-plain.h > d",
                "cat /usr/include/" + t + "/gang-plain.h > e 2>/dev/null || echo absent > e",
                "test -f /usr/lib/" + t + "/libc.so.6 && echo host > f",
                "if [ -e /usr/lib/" + t + "/" + t + " ]; then echo nested; else echo none; fi > g"});
  }
  std::string m_triplet;
};

TEST_F(MultiarchNestingTest, ALayerWithBothUsrLibAndItsMultiarchDirectoryIsStagedWhole) {
  auto result = stage_and_look(m_root + "/staged");
  ASSERT_TRUE(result) << result.error().to_string();
  ASSERT_TRUE(result->ok) << result->describe();
  EXPECT_EQ(slurp(in_build("a")), "multiarch\n");
  EXPECT_EQ(slurp(in_build("b")), "parent\n");
  EXPECT_EQ(slurp(in_build("c")), "parent\n");  // usr/lib shows in /usr/lib/<T> too
  EXPECT_EQ(slurp(in_build("d")), "arch\nplain\n");
  EXPECT_EQ(slurp(in_build("e")), "plain\n");
  EXPECT_EQ(slurp(in_build("f")), "host\n");
  // As root the layer's usr/lib/<T> is whited out of its usr/lib view; in a
  // user namespace it shows as <T>/<T>.
  if (::geteuid() == 0) {
    EXPECT_EQ(slurp(in_build("g")), "none\n");
  }
}

// A cache on an overlayfs (inside a container): a nested overlay over its
// layer would stack three deep, past the kernel's limit of two. The layer's
// usr/lib is then left out of /usr/lib/<T> (it still shows in /usr/lib), and
// the sandbox starts.
TEST_F(MultiarchNestingTest, ALayerOnAnOverlayfsIsNotNestedTwice) {
  const std::string lower = m_root + "/container-lower";
  const std::string merged = m_root + "/staged";
  ASSERT_TRUE(make_dirs(lower));
  ASSERT_TRUE(make_dirs(m_root + "/container-upper"));
  ASSERT_TRUE(make_dirs(m_root + "/container-work"));
  ASSERT_TRUE(make_dirs(merged));
  int status = testing::in_own_mount_namespace([&] {
    std::string data = "lowerdir=" + lower + ",upperdir=" + m_root +
                       "/container-upper,workdir=" + m_root + "/container-work";
    if (::geteuid() != 0) data += ",userxattr";
    if (::mount("overlay", merged.c_str(), "overlay", 0, data.c_str()) != 0) return 77;
    auto result = stage_and_look(merged);
    if (!result) {
      std::fprintf(stderr, "%s\n", result.error().to_string().c_str());
      return 1;
    }
    if (!result->ok) {
      std::fprintf(stderr, "%s\n", result->describe().c_str());
      return 2;
    }
    if (slurp(in_build("a")) != "multiarch\n" || slurp(in_build("b")) != "parent\n" ||
        slurp(in_build("c")) != "absent\n" || slurp(in_build("e")) != "absent\n" ||
        slurp(in_build("f")) != "host\n")
      return 3;
    return 0;
  });
  if (status == -1 || status == 77) GTEST_SKIP() << "cannot mount an overlayfs here";
  EXPECT_EQ(status, 0);
}

// Nothing staged under /usr/lib or /usr/include: the host's multiarch
// directories are used as they are (no extra overlay), and a build that
// stages nothing links the host's own libraries.
TEST_F(SandboxTest, WithNothingStagedTheHostsLibrariesAreUsedAsTheyAre) {
  const std::string triplet = host_multiarch_triplet();
  if (triplet.empty() || !path_exists("/usr/lib/" + triplet + "/libz.so.1") ||
      std::system("cc --version >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "needs a multiarch host with cc and zlib1g";
  m_spec.base = "host";
  m_spec.keep_upper = true;  // the scratch on disk, to see which overlays were made
  ASSERT_TRUE(make_dirs(m_spec.build_dir));
  ASSERT_TRUE(
      write_file_atomic(in_build("t.c"),
                        "const char *zlibVersion(void);\n#include <stdio.h>\n"
                        "int main(void) { printf(\"%s\\n\", zlibVersion()); return 0; }\n"));
  auto result = run({"cc -o t t.c -l:libz.so.1", "./t > out", "ls /usr/lib/" + triplet + " > ls"});
  ASSERT_TRUE(result) << result.error().to_string();
  ASSERT_TRUE(result->ok) << result->describe();
  EXPECT_NE(slurp(in_build("out")), "9.9.9-gang\n");
  EXPECT_NE(slurp(in_build("ls")).find("libz.so.1"), std::string::npos);
  EXPECT_FALSE(path_exists(m_spec.sandbox_dir + "/root/overlay/multiarch_usr_lib_" + triplet));
}

TEST_F(SandboxTest, BootstrapModeKeepsTheRootReadOnly) {
  m_spec.mode = SandboxMode::bootstrap;
  m_spec.base = "none";  // bootstrap always builds on the host
  auto result = run({"test -x /usr/bin/sh",
                     "if touch /usr/x 2>/dev/null || touch /x 2>/dev/null; then echo rw > root; "
                     "else echo ro > root; fi",
                     "echo ok > /tmp/t && echo ok > $DESTDIR/f && cat /tmp/t > tmp"});
  ASSERT_TRUE(result) << result.error().to_string();
  ASSERT_TRUE(result->ok) << result->describe();
  EXPECT_EQ(trim(slurp(in_build("root"))), "ro");
  EXPECT_EQ(trim(slurp(in_build("tmp"))), "ok");
  EXPECT_EQ(trim(slurp(m_spec.install_dir + "/f")), "ok");
}

TEST_F(SandboxTest, OutputGoesToTheLogAndAFailureReportsStepCommandStatusAndTail) {
  std::string many = "i=0; while [ $i -lt 50 ]; do i=$((i+1)); echo noise $i; done";
  auto result = run({"echo first", many + "; echo to stderr >&2; exit 3", "echo never"});
  ASSERT_TRUE(result) << result.error().to_string();
  EXPECT_FALSE(result->ok);
  EXPECT_EQ(result->step, "configure");
  EXPECT_EQ(result->command, many + "; echo to stderr >&2; exit 3");
  EXPECT_EQ(result->exit_status, 3);
  EXPECT_EQ(result->signal, 0);
  ASSERT_EQ(result->last_lines.size(), 40u);
  EXPECT_EQ(result->last_lines.back(), "to stderr");
  EXPECT_EQ(result->last_lines.front(), "noise 12");
  std::string log = slurp(m_log);
  EXPECT_NE(log.find("# [configure] echo first\nfirst\n"), std::string::npos);
  EXPECT_EQ(log.find("never"), std::string::npos);
  std::string report = result->describe();
  EXPECT_NE(report.find("step configure failed"), std::string::npos);
  EXPECT_NE(report.find("exited with status 3"), std::string::npos);

  // The log is appended to, not replaced.
  auto again = run({"echo second run"});
  ASSERT_TRUE(again && again->ok);
  EXPECT_TRUE(slurp(m_log).starts_with(log));
}

TEST_F(SandboxTest, ACommandKilledByASignalIsReported) {
  auto result = run({"kill -9 $$"});
  ASSERT_TRUE(result) << result.error().to_string();
  EXPECT_FALSE(result->ok);
  EXPECT_EQ(result->signal, SIGKILL);
  EXPECT_NE(result->describe().find("SIGKILL"), std::string::npos);
}

TEST_F(SandboxTest, ABadMountIsAnErrorNotAStepFailure) {
  m_spec.base = m_root + "/no-such-sysroot";
  auto result = run({"true"});
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("no-such-sysroot"), std::string::npos);
}

TEST_F(SandboxTest, AStageWithNoShellFailsWith127) {
  m_spec.base = "none";
  m_spec.lower_layers.clear();
  auto result = run({"true"});
  ASSERT_TRUE(result) << result.error().to_string();
  EXPECT_FALSE(result->ok);
  EXPECT_EQ(result->exit_status, 127);
  EXPECT_NE(slurp(m_log).find("cannot run /bin/sh"), std::string::npos);
}

TEST_F(SandboxTest, RunInteractiveReentersASavedSpecAfterTheDirectoryMoved) {
  ASSERT_TRUE(make_dirs(m_spec.build_dir));
  ASSERT_TRUE(write_file_atomic(in_build("marker"), "m"));
  auto first = run({"echo kept > /usr/state; false"});  // a failed run keeps /usr/state
  ASSERT_TRUE(first && !first->ok);
  ASSERT_TRUE(save_spec(m_spec));
  std::string kept = kept_sandbox_dir(m_root + "/cache", "hello");
  ASSERT_TRUE(make_dirs(m_root + "/cache/failed"));
  ASSERT_EQ(::rename(m_spec.sandbox_dir.c_str(), kept.c_str()), 0);

  auto spec = load_spec(kept);
  ASSERT_TRUE(spec) << spec.error().to_string();
  auto status = run_interactive(*spec, {"sh", "-c",
                                        "test -f marker && test \"$(cat /usr/state)\" = kept && "
                                        "test \"$MAKEFLAGS\" = -j3 && exit 7"});
  ASSERT_TRUE(status) << status.error().to_string();
  EXPECT_EQ(*status, 7);
  EXPECT_TRUE(remove_sandbox(kept));
  EXPECT_FALSE(path_exists(kept));
}

TEST_F(SandboxTest, AnInteractiveSandboxNeverWaitsForALockHeldByAnotherThread) {
  // The init is a clone of a multi-threaded caller: a lock another thread
  // held at that moment stays held in the init for ever. Starting the
  // program with glibc's fork() would run the pthread_atfork handlers (the
  // network namespace factory has one) and take such locks.
  static std::mutex held;
  static std::once_flag registered;
  std::call_once(registered, [] {
    ::pthread_atfork([] { held.lock(); }, [] { held.unlock(); }, [] { held.unlock(); });
  });
  std::atomic<bool> locked{false}, release{false};
  std::thread holder([&] {
    std::lock_guard lock(held);
    locked = true;
    while (!release) std::this_thread::sleep_for(10ms);
  });
  while (!locked) std::this_thread::sleep_for(1ms);
  std::atomic<bool> done{false};
  Result<int> status = 0;
  std::thread shell([&] {
    status = run_interactive(m_spec, {"sh", "-c", "exit 3"});
    done = true;
  });
  auto until = std::chrono::steady_clock::now() + 20s;
  while (!done && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(10ms);
  if (!done) {
    ADD_FAILURE() << "the interactive sandbox is stuck";
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      auto stat = read_file(entry.path().string() + "/stat");
      if (!stat) continue;
      auto close = stat->rfind(')');
      if (close == std::string::npos || close + 2 > stat->size()) continue;
      std::istringstream rest(stat->substr(close + 2));
      std::string state;
      pid_t ppid = 0;
      rest >> state >> ppid;
      if (ppid == ::getpid()) ::kill(std::stoi(entry.path().filename().string()), SIGKILL);
    }
  }
  shell.join();
  release = true;
  holder.join();
  ASSERT_TRUE(status) << status.error().to_string();
  EXPECT_EQ(*status, 3);
}

TEST_F(SandboxTest, CancellationKillsTheWholeSandboxQuickly) {
  std::string tag = "31.4159" + std::to_string(::getpid());
  std::atomic<bool> stop{false};
  pid_t init = -1;
  StepOptions options;
  options.control.should_stop = [&] { return stop.load(); };
  options.control.on_start = [&](pid_t pid) { init = pid; };
  std::thread stopper([&] {
    std::this_thread::sleep_for(300ms);
    stop = true;
  });
  auto start = std::chrono::steady_clock::now();
  auto result = run({"sleep " + tag + " & sleep " + tag + "; echo done"}, "build", options);
  auto elapsed = std::chrono::steady_clock::now() - start;
  stopper.join();
  ASSERT_TRUE(result) << result.error().to_string();
  EXPECT_FALSE(result->ok);
  EXPECT_TRUE(result->cancelled);
  EXPECT_LT(elapsed, 2s);
  EXPECT_GT(init, 0);
  EXPECT_NE(::kill(init, 0), 0);
  // No process of the sandbox survives.
  std::this_thread::sleep_for(100ms);
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    auto cmdline = read_file(entry.path().string() + "/cmdline");
    if (cmdline) {
      EXPECT_EQ(cmdline->find(tag), std::string::npos) << entry.path();
    }
  }
}

TEST_F(SandboxTest, NoProcessOfABuildOutlivesItsResult) {
  // A build's sandbox is not waited for to be torn down, but every process
  // it left running is gone before the caller sees the result: a writer
  // left spinning in the background never writes again.
  pid_t init = -1;
  StepOptions options;
  options.control.on_start = [&](pid_t pid) { init = pid; };
  auto result = run({"(while :; do echo x >> spin; done) & sleep 0.2; echo started"}, "build",
                    options);
  ASSERT_TRUE(result) << result.error().to_string();
  ASSERT_TRUE(result->ok) << result->describe();
  auto size = [&] { return std::filesystem::file_size(in_build("spin")); };
  auto at_result = size();
  EXPECT_GT(at_result, 0u);
  // (watched closely at first: the sandbox's teardown goes on meanwhile)
  auto until = std::chrono::steady_clock::now() + 5ms;
  while (std::chrono::steady_clock::now() < until && size() == at_result) {}
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(size(), at_result);

  // The init is reaped (by the next launch at the latest): no zombie stays.
  auto next = run({"true"});
  ASSERT_TRUE(next && next->ok);
  ASSERT_GT(init, 0);
  errno = 0;
  EXPECT_EQ(::waitpid(init, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST_F(SandboxTest, AHeldSandboxRunsNothingUntilRunAndOnlyOnce) {
  // The sandbox is built at once, but its commands wait for run().
  auto held = hold_steps(m_spec, {Step{"build", StepKind::build, {"echo ran >> marker"}}}, m_log);
  ASSERT_TRUE(held) << held.error().to_string();
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(path_exists(in_build("marker")));
  pid_t init = -1;
  StepControl control;
  control.on_start = [&](pid_t pid) { init = pid; };
  auto result = held->run(control);
  ASSERT_TRUE(result) << result.error().to_string();
  EXPECT_TRUE(result->ok) << result->describe();
  EXPECT_GT(init, 0);
  EXPECT_EQ(read_file(in_build("marker")).value_or(""), "ran\n");
  // A second run() runs nothing again.
  auto again = held->run(control);
  ASSERT_TRUE(again);
  EXPECT_EQ(read_file(in_build("marker")).value_or(""), "ran\n");
}

TEST_F(SandboxTest, ADroppedHeldSandboxRunsNothingAndLeavesNoProcess) {
  std::set<pid_t> before = child_pids();
  {
    auto held = hold_steps(m_spec, {Step{"build", StepKind::build, {"echo ran >> marker"}}}, m_log);
    ASSERT_TRUE(held) << held.error().to_string();
    std::this_thread::sleep_for(100ms);  // (built by now, waiting)
  }
  {
    // Dropped while the init may still be building the root.
    auto held = hold_steps(m_spec, {Step{"build", StepKind::build, {"echo ran >> marker"}}}, m_log);
    ASSERT_TRUE(held) << held.error().to_string();
  }
  std::this_thread::sleep_for(300ms);
  EXPECT_FALSE(path_exists(in_build("marker")));
  // Their inits are reaped by the next launch: no process and no zombie stay.
  auto next = run({"true"});
  ASSERT_TRUE(next && next->ok);
  std::this_thread::sleep_for(100ms);
  pid_t last = -1;  // (this one's init is itself left to the next launch)
  StepOptions options;
  options.control.on_start = [&](pid_t pid) { last = pid; };
  ASSERT_TRUE(run({"true"}, "build", options));
  for (pid_t pid : child_pids())
    EXPECT_TRUE(before.contains(pid) || pid == last) << "left behind: " << pid;
}

TEST_F(SandboxTest, AHeldSandboxKilledFromOutsideIsReportedKilledByRun) {
  std::set<pid_t> before = child_pids();
  auto held = hold_steps(m_spec, {Step{"build", StepKind::build, {"echo ran >> marker"}}}, m_log);
  ASSERT_TRUE(held) << held.error().to_string();
  std::vector<pid_t> inits;
  for (pid_t pid : child_pids())
    if (!before.contains(pid)) inits.push_back(pid);
  ASSERT_EQ(inits.size(), 1u);
  ASSERT_EQ(::kill(inits[0], SIGKILL), 0);
  auto result = held->run({});
  ASSERT_TRUE(result) << result.error().to_string();
  EXPECT_FALSE(result->ok);
  EXPECT_TRUE(result->sandbox_killed);
  EXPECT_FALSE(path_exists(in_build("marker")));
}

TEST_F(SandboxTest, TheInitIsAProgramOfItsOwnNotACopyOfTheCaller) {
  // The init is exec'd (sandbox/init/): it holds none of the caller's
  // memory (nothing the caller writes is copied on write while a build
  // runs) and an empty environment.
  std::string exe, environment;
  std::size_t rss_kb = 0;
  StepOptions options;
  options.control.on_start = [&](pid_t pid) {
    std::string proc = "/proc/" + std::to_string(pid);
    std::error_code ec;
    exe = std::filesystem::read_symlink(proc + "/exe", ec).string();
    environment = read_file(proc + "/environ").value_or("?");
    std::ifstream status(proc + "/status");
    for (std::string line; std::getline(status, line);)
      if (line.starts_with("VmRSS:")) rss_kb = std::stoul(line.substr(6));
  };
  auto result = run({"sleep 0.2"}, "build", options);
  ASSERT_TRUE(result && result->ok);
  EXPECT_NE(exe.find("gang-sandbox-init"), std::string::npos) << exe;
  EXPECT_EQ(environment, "");
  EXPECT_GT(rss_kb, 0u);
  EXPECT_LT(rss_kb, 8u * 1024) << "the init holds the caller's memory";
}

TEST_F(SandboxTest, ASandboxStillStartsInAProcessThatClosedItsFiles) {
  auto first = run({"true"});  // (the init's image is loaded now)
  ASSERT_TRUE(first && first->ok);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close_range(3, ~0U, 0);
    auto result = run({"echo again > again"});
    ::_exit(result && result->ok ? 0 : 3);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(read_file(in_build("again")).value_or(""), "again\n");
}

TEST_F(SandboxTest, SigtermToTheInitStopsTheStep) {
  StepOptions options;
  options.control.on_start = [](pid_t pid) {
    std::thread([pid] {
      std::this_thread::sleep_for(200ms);
      ::kill(pid, SIGTERM);
    }).detach();
  };
  auto start = std::chrono::steady_clock::now();
  auto result = run({"sleep 30"}, "build", options);
  ASSERT_TRUE(result) << result.error().to_string();
  EXPECT_FALSE(result->ok);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
}

TEST_F(SandboxTest, SigtstpAndSigcontToTheProcessGroupSuspendAndResume) {
  ASSERT_TRUE(make_dirs(m_spec.build_dir));
  pid_t worker = ::fork();
  ASSERT_GE(worker, 0);
  if (worker == 0) {
    ::setpgid(0, 0);
    // The sandbox is in a session of its own: the worker relays the stop.
    relay_job_control_to_sandboxes();
    auto result =
        run({"i=0; while true; do i=$((i+1)); echo $i > count.tmp; "
             "mv count.tmp count; sleep 0.02; done"});
    ::_exit(result ? 0 : 3);
  }
  ::setpgid(worker, worker);
  auto count = [&] {
    auto text = read_file(in_build("count"));
    return text && !text->empty() ? std::stoi(*text) : 0;
  };
  for (int i = 0; i < 100 && count() < 3; ++i) std::this_thread::sleep_for(20ms);
  ASSERT_GE(count(), 3);
  ASSERT_EQ(::kill(-worker, SIGTSTP), 0);
  std::this_thread::sleep_for(200ms);
  int stopped_at = count();
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(count(), stopped_at);
  ASSERT_EQ(::kill(-worker, SIGCONT), 0);
  std::this_thread::sleep_for(300ms);
  EXPECT_GT(count(), stopped_at);
  // ^C to the group ends the build and the worker.
  ::kill(-worker, SIGINT);
  int status = 0;
  ASSERT_EQ(::waitpid(worker, &status, 0), worker);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGINT);
}

TEST_F(SandboxTest, AWorkerKilledWithSigkillTakesItsSandboxDown) {
  ASSERT_TRUE(make_dirs(m_spec.build_dir));
  std::string tag = "27.1828" + std::to_string(::getpid());
  pid_t worker = ::fork();
  ASSERT_GE(worker, 0);
  if (worker == 0) {
    auto result = run({"touch started; sleep " + tag});
    ::_exit(result ? 0 : 3);
  }
  for (int i = 0; i < 200 && !path_exists(in_build("started")); ++i)
    std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(path_exists(in_build("started")));
  ::kill(worker, SIGKILL);
  ::waitpid(worker, nullptr, 0);
  std::this_thread::sleep_for(300ms);
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    auto cmdline = read_file(entry.path().string() + "/cmdline");
    if (cmdline) {
      EXPECT_EQ(cmdline->find(tag), std::string::npos) << entry.path();
    }
  }
}

TEST_F(SandboxTest, WorksUnprivilegedThroughAUserNamespace) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged user";
  const uid_t nobody = testing::k_nobody;
  ASSERT_EQ(::chmod(m_root.c_str(), 0755), 0);
  ASSERT_EQ(::chmod((m_root + "/cache").c_str(), 0755), 0);
  std::string blob = m_root + "/cache/blob";
  ASSERT_TRUE(write_file_atomic(blob, "pristine\n", 0444));
  ASSERT_TRUE(make_dirs(m_root + "/staged/usr/share/gangtest"));
  ASSERT_EQ(::link(blob.c_str(), (m_root + "/staged/usr/share/gangtest/f").c_str()), 0);
  // As for a real unprivileged user, the cache and its staged trees are the
  // user's own (root inside the sandbox), so chmod is allowed there.
  for (const auto& entry : std::filesystem::recursive_directory_iterator(m_root + "/staged"))
    ASSERT_EQ(::lchown(entry.path().c_str(), nobody, nobody), 0);
  ASSERT_EQ(::chown((m_root + "/staged").c_str(), nobody, nobody), 0);
  ASSERT_TRUE(make_dirs(m_root + "/own"));
  ASSERT_EQ(::chown((m_root + "/own").c_str(), nobody, nobody), 0);
  // Decided by trying what the sandbox needs, as that user.
  if (std::string refused = testing::probe_user_namespace_overlay(m_root + "/own", nobody);
      !refused.empty())
    GTEST_SKIP() << "unprivileged user namespaces with overlayfs are not available here: " << refused;
  m_spec.sandbox_dir = m_root + "/own/sandbox";
  m_spec.build_dir = m_spec.sandbox_dir + "/hello.build";
  m_spec.install_dir = m_spec.sandbox_dir + "/hello.inst";
  m_log = m_root + "/own/build.log";
  auto as_nobody = [&](const std::function<int()>& body) {
    pid_t child = ::fork();
    if (child == 0) {
      if (::setgroups(0, nullptr) != 0 || ::setresgid(nobody, nobody, nobody) != 0 ||
          ::setresuid(nobody, nobody, nobody) != 0)
        ::_exit(10);
      ::_exit(body());
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  int status = as_nobody([&] {
    auto result =
        run({"id -u > uid; chmod u+w /usr/share/gangtest/f; echo x > /usr/share/gangtest/f",
             "rm -rf /usr/share/gangtest && mkdir /usr/share/gangtest && "
             "test ! -e /usr/share/gangtest/f && echo ok > gone"});
    if (!result) {
      std::fprintf(stderr, "%s\n", result.error().to_string().c_str());
      return 11;
    }
    if (!result->ok) std::fprintf(stderr, "%s\n", result->describe().c_str());
    return result->ok ? 0 : 12;
  });
  ASSERT_EQ(status, 0);
  EXPECT_EQ(trim(slurp(in_build("uid"))), "0");
  EXPECT_EQ(trim(slurp(in_build("gone"))), "ok");
  EXPECT_EQ(slurp(blob), "pristine\n");
  // The unprivileged owner can remove its sandbox (overlayfs leaves a 000 dir).
  EXPECT_EQ(as_nobody([&] { return remove_sandbox(m_spec.sandbox_dir) ? 0 : 13; }), 0);
  EXPECT_FALSE(path_exists(m_spec.sandbox_dir));
}

TEST_F(SandboxTest, RemoveSandboxRemovesOverlayWorkDirectories) {
  m_spec.keep_upper = true;
  auto result = run({"echo x > /etc/y"});
  ASSERT_TRUE(result && result->ok);
  EXPECT_TRUE(path_exists(m_spec.sandbox_dir + "/root/overlay/root/work"));
  ASSERT_TRUE(remove_sandbox(m_spec.sandbox_dir));
  EXPECT_FALSE(path_exists(m_spec.sandbox_dir));
}

}  // namespace
}  // namespace gang

namespace gang {
namespace {

// True if the running kernel is at least major.minor.
bool kernel_at_least(int major, int minor) {
  struct utsname u {};
  if (::uname(&u) != 0) return false;
  int ma = 0, mi = 0;
  if (std::sscanf(u.release, "%d.%d", &ma, &mi) != 2) return false;
  return ma > major || (ma == major && mi >= minor);
}

// Layers whose options cannot fit one page, even relative to their parent:
// the new mount API takes them one at a time; the classic option string
// (forced here with GANG_OVERLAY_API=classic) refuses them with a reason.
TEST_F(SandboxTest, LayersBeyondOnePageOfOptionsMountThroughLowerdirPlus) {
  m_spec.lower_layers.clear();
  const std::string parent = m_root + "/layers";
  for (int i = 0; i < 60; ++i) {
    std::string layer = parent + "/" + std::string(90, 'l') + "-" + std::to_string(i);
    ASSERT_TRUE(make_dirs(layer + "/usr/share/doc"));
    ASSERT_TRUE(write_file_atomic(layer + "/usr/share/doc/which", std::to_string(i) + "\n"));
    ASSERT_TRUE(write_file_atomic(layer + "/usr/share/doc/layer" + std::to_string(i), "x"));
    m_spec.lower_layers.insert(m_spec.lower_layers.begin(), layer);  // the last one on top
  }
  struct Env {
    explicit Env(const char* value) { ::setenv("GANG_OVERLAY_API", value, 1); }
    ~Env() { ::unsetenv("GANG_OVERLAY_API"); }
  };
  {
    Env classic("classic");
    auto result = run({"true"});
    ASSERT_FALSE(result);
    EXPECT_NE(result.error().to_string().find("too many or too long lower layers"), std::string::npos)
        << result.error().to_string();
  }
  {
    // Kernels before 6.8 (Debian 12's 6.1) name the layers by fd number.
    Env fds("fd");
    auto result = run({"cat /usr/share/doc/which > which", "ls /usr/share/doc | grep -c layer > count"});
    ASSERT_TRUE(result) << result.error().to_string();
    ASSERT_TRUE(result->ok) << result->describe() << slurp(m_log);
    EXPECT_EQ(trim(slurp(in_build("which"))), "59");
    EXPECT_EQ(trim(slurp(in_build("count"))), "60");
    ASSERT_EQ(::unlink(in_build("which").c_str()), 0);
  }
  if (!kernel_at_least(6, 8)) GTEST_SKIP() << "the kernel predates overlayfs lowerdir+ (6.8)";
  auto result = run({"cat /usr/share/doc/which > which", "ls /usr/share/doc | grep -c layer > count"});
  ASSERT_TRUE(result) << result.error().to_string();
  ASSERT_TRUE(result->ok) << result->describe() << slurp(m_log);
  EXPECT_EQ(trim(slurp(in_build("which"))), "59");
  EXPECT_EQ(trim(slurp(in_build("count"))), "60");
}

}  // namespace
}  // namespace gang
