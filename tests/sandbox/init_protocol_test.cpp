#include "sandbox/init_protocol.hpp"

#include <gtest/gtest.h>

#include <cstring>

namespace gang::init {
namespace {

Plan sample() {
  Plan plan;
  plan.loopback_up = true;
  Op tmpfs;
  tmpfs.kind = Op::Kind::mount;
  tmpfs.source = "tmpfs";
  tmpfs.fstype = "tmpfs";
  tmpfs.target = "/s/root";
  tmpfs.flags = 2;
  tmpfs.data = "mode=0755";
  Op overlay;
  overlay.kind = Op::Kind::mount;
  overlay.overlay_api = Op::Api::fd_numbers;
  overlay.fd_fallback = true;
  overlay.lowers = {"/c/trees/a", std::string("/odd\0name:,", 11), ""};
  overlay.upper = "/s/root/overlay/root/upper";
  overlay.work = "/s/root/overlay/root/work";
  overlay.volatile_upper = true;
  overlay.userxattr = true;
  overlay.fallback_data = "lowerdir=x";
  overlay.chdir_to = "/c/trees";
  Op dir;
  dir.kind = Op::Kind::mkdir;
  dir.target = "/s/root/base/etc";
  dir.mode = 0700;
  dir.uid = 0;
  dir.gid = 42;
  plan.ops = {tmpfs, overlay, dir};
  plan.scratch_tmpfs = true;
  plan.scratch_overlay = "/s/root/overlay";
  plan.sandbox_dir = "/s";
  plan.uppers = {"root", "etc"};
  plan.root = "/s/root/mnt";
  plan.cwd = "/hello.build";
  plan.interactive = false;
  plan.die_on_interrupt = true;
  plan.commands = {{{"sh", "-c", "-e", "make"}, {"PATH=/bin", "HOME=/tmp"}, "# [build] make\n"},
                   {{"sh", "-c", "-e", ""}, {}, ""}};
  plan.status_fd = 10;
  plan.keepalive_read = 11;
  plan.output_fd = 12;
  plan.null_fd = 13;
  plan.netns_fd = -1;
  plan.go_fd = 14;
  return plan;
}

TEST(InitProtocol, APlanSurvivesItsEncodingWhole) {
  Plan plan = sample();
  auto decoded = decode(encode(plan));
  ASSERT_TRUE(decoded);
  // Re-encoding what was decoded gives the same bytes: every field came back.
  EXPECT_EQ(encode(*decoded), encode(plan));
  ASSERT_EQ(decoded->ops.size(), 3u);
  EXPECT_EQ(decoded->ops[1].lowers, plan.ops[1].lowers);
  EXPECT_EQ(decoded->ops[1].overlay_api, Op::Api::fd_numbers);
  EXPECT_EQ(decoded->ops[2].mode, 0700u);
  EXPECT_EQ(decoded->ops[2].gid, 42u);
  ASSERT_EQ(decoded->commands.size(), 2u);
  EXPECT_EQ(decoded->commands[0].argv.back(), "make");
  EXPECT_EQ(decoded->commands[0].env, plan.commands[0].env);
  EXPECT_EQ(decoded->go_fd, 14);
  EXPECT_EQ(decoded->netns_fd, -1);
}

TEST(InitProtocol, ATruncatedOrPaddedPlanIsRefused) {
  std::string bytes = encode(sample());
  for (std::size_t size = 0; size < bytes.size(); ++size)
    EXPECT_FALSE(decode(bytes.substr(0, size))) << "a prefix of " << size << " bytes";
  EXPECT_FALSE(decode(bytes + "x"));
  std::string wrong = bytes;
  wrong[0] ^= 1;
  EXPECT_FALSE(decode(wrong)) << "another magic";
}

TEST(InitProtocol, HugeCountsAreRefusedWithoutAllocating) {
  std::string bytes = encode(Plan{});
  // The op count follows the magic and loopback_up.
  std::uint32_t huge = 0xffffffffu;
  std::memcpy(bytes.data() + 5, &huge, sizeof huge);
  EXPECT_FALSE(decode(bytes));
}

}  // namespace
}  // namespace gang::init
