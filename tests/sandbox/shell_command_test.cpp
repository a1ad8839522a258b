// Tests for `gang shell`: the real binary re-enters a kept sandbox.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "sandbox/sandbox.hpp"
#include "tests/support/run_command.hpp"
#include "util/fs.hpp"

namespace gang {
namespace {

testing::CommandResult run_gang(const std::string& args) {
  return testing::run_command(std::string(GANG_BINARY) + " " + args + " 2>&1 </dev/null");
}

class ShellCommandTest : public ::testing::Test {
 protected:
  void SetUp() override {
    m_cache = m_tmp.path() + "/cache";
    SandboxSpec spec;
    spec.name = "hello";
    spec.sandbox_dir = kept_sandbox_dir(m_cache, "hello");
    spec.build_dir = spec.sandbox_dir + "/hello.build";
    spec.install_dir = spec.sandbox_dir + "/hello.inst";
    spec.arch = "x86_64";
    spec.max_jobs = 2;
    spec.log_path = spec.sandbox_dir + "/build.log";
    ASSERT_TRUE(make_dirs(spec.build_dir));
    ASSERT_TRUE(write_file_atomic(spec.build_dir + "/Makefile", "all:\n"));
    ASSERT_TRUE(save_spec(spec));
  }

  TempDir m_tmp{"gang-shell-test-"};
  std::string m_cache;
};

TEST_F(ShellCommandTest, RunsACommandInTheKeptSandboxAndReturnsItsStatus) {
  auto ran = run_gang("shell hello --cache " + m_cache +
                      " -- sh -c 'test -f Makefile && test \"$PWD\" = /hello.build && "
                      "echo \"$DESTDIR $MAKEFLAGS\"; exit 9'");
  EXPECT_EQ(ran.status, 9) << ran.output;
  EXPECT_NE(ran.output.find("/hello.inst -j2"), std::string::npos) << ran.output;
}

TEST_F(ShellCommandTest, OnATerminalTheCommandOwnsTheTerminal) {
  if (std::system("command -v script >/dev/null 2>&1") != 0) GTEST_SKIP() << "no script(1)";
  // script(1) gives gang a pseudo-terminal; the command sees it as its tty
  // and is the terminal's foreground process group.
  std::string inner =
      std::string(GANG_BINARY) + " shell hello --cache " + m_cache +
      " -- sh -c 'tty; read pid comm state ppid pgrp sid tty tpgid rest </proc/\\$\\$/stat; "
      "echo \\$pgrp \\$tpgid; exit 5'";
  std::string command = "script -qec \"" + inner + "\" /dev/null </dev/null 2>&1";
  auto ran = testing::run_command(command);
  EXPECT_EQ(ran.status, 5) << ran.output;
  EXPECT_NE(ran.output.find("/dev/pts/"), std::string::npos) << ran.output;
  // Its process group is the terminal's foreground group.
  std::istringstream words(
      ran.output.substr(std::min(ran.output.find("/dev/pts/"), ran.output.size())));
  std::string tty, pgid, tpgid;
  words >> tty >> pgid >> tpgid;
  EXPECT_FALSE(pgid.empty()) << ran.output;
  EXPECT_EQ(pgid, tpgid) << ran.output;
}

TEST_F(ShellCommandTest, TakesTheCacheFromTheEnvironment) {
  ::setenv("GANG_CACHE", m_cache.c_str(), 1);
  auto ran = run_gang("shell hello -- true");
  ::unsetenv("GANG_CACHE");
  EXPECT_EQ(ran.status, 0) << ran.output;
}

TEST_F(ShellCommandTest, AnUnknownComponentIsAnError) {
  auto ran = run_gang("shell nosuch --cache " + m_cache + " -- true");
  EXPECT_EQ(ran.status, 1);
  EXPECT_NE(ran.output.find("no failed build of \"nosuch\""), std::string::npos) << ran.output;
  auto usage = run_gang("shell");
  EXPECT_EQ(usage.status, 2);
}

}  // namespace
}  // namespace gang
