// Deployment extensions run as morph and ybd run them: through their
// shebang, from the definitions' root, with upper-case parameters in the
// environment, and parameters never passing through a shell.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deploy/extension.hpp"
#include "util/fs.hpp"

namespace gang {
namespace {

class ExtensionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    defs = dir.path() + "/defs";
    ASSERT_TRUE(make_dirs(defs + "/extensions"));
    ASSERT_TRUE(make_dirs(dir.path() + "/root/etc"));
  }
  void TearDown() override {
    if (HasFailure()) dir.keep();
  }
  void write_extension(const std::string& file, const std::string& text) {
    ASSERT_TRUE(write_file_atomic(defs + "/extensions/" + file, text, 0644));  // not executable
  }
  Extension find(const std::string& name, ExtensionStep step) {
    auto found = find_extension(defs, name, step);
    EXPECT_TRUE(found) << found.error().to_string();
    EXPECT_TRUE(found && *found) << name;
    return found && *found ? **found : Extension{};
  }
  TempDir dir{"gang-extension-test-"};
  std::string defs;
};

TEST_F(ExtensionTest, ConfigureGetsRootdirAndUpperCaseParametersIntact) {
  // Like set-hostname.configure: writes HOSTNAME into ROOTDIR/etc/hostname.
  write_extension("set-hostname.configure",
                  "#!/bin/sh\nset -e\nprintf '%s' \"$HOSTNAME\" > \"$1/etc/hostname\"\n"
                  "printf '%s|%s|%s|%s' \"$UPGRADE\" \"$(pwd)\" \"$lower\" \"$PYTHONPATH\" > \"$1/etc/env\"\n");
  Extension ext = find("extensions/set-hostname", ExtensionStep::configure);
  EXPECT_EQ(ext.interpreter, "/bin/sh");
  ExtensionCall call;
  call.definitions_root = defs;
  call.rootdir = dir.path() + "/root";
  const std::string hostile = "a'b\"c $(touch pwned) `x`; rm -rf / & | > <\\n";
  call.parameters = {{"HOSTNAME", hostile}, {"lower", "not passed"}};
  ASSERT_TRUE(run_extension(ext, call));
  EXPECT_EQ(read_file(call.rootdir + "/etc/hostname").value_or(""), hostile);
  std::string env = read_file(call.rootdir + "/etc/env").value_or("");
  EXPECT_TRUE(env.starts_with("no|" + defs + "||")) << env;
  EXPECT_TRUE(env.ends_with(defs + "/extensions")) << env;
  EXPECT_FALSE(path_exists(defs + "/pwned"));
}

TEST_F(ExtensionTest, WriteGetsRootdirAndLocationCheckOnlyTheLocation) {
  write_extension("probe.write", "#!/usr/bin/env sh\nprintf '%s\\n' \"$#\" \"$@\" > \"$2\"\n");
  write_extension("probe.check", "#!/bin/sh\n[ \"$#\" = 1 ] && [ ! -e \"$1\" ]\n");
  ExtensionCall call;
  call.definitions_root = defs;
  call.rootdir = dir.path() + "/root";
  call.location = dir.path() + "/out file";
  Extension check = find("probe", ExtensionStep::check);
  EXPECT_EQ(check.interpreter, "/bin/sh");
  ASSERT_TRUE(run_extension(check, call));
  Extension write = find("probe", ExtensionStep::write);
  EXPECT_EQ(write.interpreter, "sh");
  ASSERT_TRUE(run_extension(write, call));
  EXPECT_EQ(read_file(call.location).value_or(""), "2\n" + call.rootdir + "\n" + call.location + "\n");
  auto again = run_extension(check, call);  // the location exists now: the check fails
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().to_string().find("probe.check failed with exit status 1"), std::string::npos)
      << again.error().to_string();
}

TEST_F(ExtensionTest, AMissingInterpreterIsACleanErrorBeforeAnythingRuns) {
  write_extension("old.configure", "#!/usr/bin/python2\nimport sys\n");
  Extension ext = find("old", ExtensionStep::configure);
  auto runnable = check_runnable(ext);
  ASSERT_FALSE(runnable);
  EXPECT_NE(runnable.error().to_string().find("old.configure needs the interpreter /usr/bin/python2"),
            std::string::npos)
      << runnable.error().to_string();
  write_extension("env.configure", "#!/usr/bin/env no-such-python-gang\n");
  EXPECT_FALSE(check_runnable(find("env", ExtensionStep::configure)));
}

TEST_F(ExtensionTest, NamesAreCheckedAndAbsentExtensionsAreNone) {
  auto absent = find_extension(defs, "tar", ExtensionStep::check);
  ASSERT_TRUE(absent);
  EXPECT_FALSE(*absent);
  EXPECT_FALSE(find_extension(defs, "..", ExtensionStep::write));
  EXPECT_FALSE(find_extension(defs, "a\nb", ExtensionStep::write));
  ASSERT_EQ(::mkfifo((defs + "/extensions/fifo.write").c_str(), 0644), 0);
  EXPECT_FALSE(find_extension(defs, "fifo", ExtensionStep::write));
}

TEST_F(ExtensionTest, OutputGoesToTheLog) {
  write_extension("loud.configure", "#!/bin/sh\necho to-stdout\necho to-stderr >&2\n");
  std::string log = dir.path() + "/deploy.log";
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  ExtensionCall call;
  call.definitions_root = defs;
  call.rootdir = dir.path() + "/root";
  call.output_fd = fd;
  ASSERT_TRUE(run_extension(find("loud", ExtensionStep::configure), call));
  ::close(fd);
  EXPECT_EQ(read_file(log).value_or(""), "to-stdout\nto-stderr\n");
}

}  // namespace
}  // namespace gang
