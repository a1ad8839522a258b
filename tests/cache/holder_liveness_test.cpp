// Specs for liveness of claim holders and build directories (issue 10,
// item 8): liveness beats age on this host, and a record or directory from
// another boot of this host is stale at once. Real processes, a real cache.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>

#include "cache/artifact_cache.hpp"
#include "util/fs.hpp"
#include "util/sha256.hpp"

namespace gang {
namespace {

// The real system, except for the boot id, which the test controls.
class RebootedSystem : public System {
 public:
  std::string boot = "11111111-2222-3333-4444-555555555555";
  std::int64_t now_ms() override { return real_system()->now_ms(); }
  std::string host_name() override { return real_system()->host_name(); }
  std::optional<std::uint64_t> process_start_time(int pid) override {
    return read_process_start_time(pid);
  }
  int self_pid() override { return static_cast<int>(::getpid()); }
  std::string boot_id() override { return boot; }
};

class HolderLiveness : public ::testing::Test {
 protected:
  void TearDown() override {
    if (HasFailure()) dir.keep();
  }
  ArtifactCache open_cache(std::shared_ptr<System> system = nullptr) {
    ArtifactCache::Options options;
    options.system = std::move(system);
    options.warn = [](const std::string&) {};
    auto c = ArtifactCache::open(dir.path() + "/cache", options);
    if (!c) throw std::runtime_error(c.error().to_string());
    return std::move(*c);
  }
  static void age(const std::string& path, int days) {
    timespec times[2];
    ::clock_gettime(CLOCK_REALTIME, &times[0]);
    times[0].tv_sec -= days * 24 * 3600;
    times[1] = times[0];
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << path;
  }

  TempDir dir{"gang-liveness-test-"};
};

TEST_F(HolderLiveness, ALiveOwnersOldBuildDirectorySurvivesCleanup) {
  // A long build, or a gang stopped with Ctrl-Z overnight.
  auto cache = open_cache();
  auto live = cache.build_dirs().make("gcc");
  ASSERT_TRUE(live);
  ASSERT_TRUE(make_dirs(*live + "/gcc.build"));
  age(*live, 2);
  EXPECT_EQ(cache.build_dirs().remove_dead(), 0u);
  EXPECT_TRUE(path_exists(*live + "/gcc.build")) << "its owner (this process) is alive";
  auto report = cache.gc();
  ASSERT_TRUE(report);
  EXPECT_EQ(report->scratch_dirs_removed, 0u);
  EXPECT_TRUE(path_exists(*live + "/gcc.build"));
}

TEST_F(HolderLiveness, AnOtherHostsOldBuildDirectoryIsJudgedByAge) {
  auto cache = open_cache();
  std::string other = cache.tmp_dir() + "/m4.1234-99-0badbeef.abcdef";
  ASSERT_TRUE(make_dirs(other));
  EXPECT_EQ(cache.build_dirs().remove_dead(), 0u);
  EXPECT_TRUE(path_exists(other));
  age(other, 2);
  EXPECT_EQ(cache.build_dirs().remove_dead(), 1u);
  EXPECT_FALSE(path_exists(other)) << "liveness cannot be known there";
}

TEST_F(HolderLiveness, ABuildDirectoryOfAnotherBootIsRemovedAtOnce) {
  auto system = std::make_shared<RebootedSystem>();
  auto before = open_cache(system);
  auto made = before.build_dirs().make("glibc");
  ASSERT_TRUE(made);
  // The same host rebooted; the pid and start time happen to be alive
  // again (they are this process's).
  system->boot = "66666666-7777-8888-9999-000000000000";
  EXPECT_EQ(before.build_dirs().remove_dead(), 1u);
  EXPECT_FALSE(path_exists(*made));
  // A directory of this boot stays.
  auto now = before.build_dirs().make("glibc");
  ASSERT_TRUE(now);
  EXPECT_EQ(before.build_dirs().remove_dead(), 0u);
  EXPECT_TRUE(path_exists(*now));
}

TEST_F(HolderLiveness, AHolderRecordOfAnotherBootOnThisHostIsStale) {
  auto cache = open_cache();
  Holder stale = cache.holder(1, "before-reboot");
  ASSERT_FALSE(stale.boot_id.empty()) << "the holder records the boot id";
  stale.boot_id = "00000000-0000-0000-0000-000000000000";
  ASSERT_EQ(cache.claims().claim("k.1", stale)->kind, ClaimOutcome::Kind::won);
  auto record = cache.claims().claim_of("k.1");
  ASSERT_TRUE(record && *record);
  EXPECT_EQ((*record)->holder.boot_id, stale.boot_id) << "the boot id is stored";
  // Same host, pid and start time as a live process (this one), but
  // recorded in another boot: taken over at once, lease or not.
  Holder me = cache.holder(2, "after-reboot");
  auto outcome = cache.claims().claim("k.1", me);
  ASSERT_TRUE(outcome);
  EXPECT_EQ(outcome->kind, ClaimOutcome::Kind::won);
  auto now = cache.claims().claim_of("k.1");
  ASSERT_TRUE(now && *now);
  EXPECT_EQ((*now)->holder.gang_id, "after-reboot");
}

TEST_F(HolderLiveness, ALiveHolderOfThisBootKeepsItsClaim) {
  auto cache = open_cache();
  // Our parent process: alive, this host, this boot.
  Holder parent = cache.holder(1, "parent");
  parent.pid = static_cast<int>(::getppid());
  parent.start_time = read_process_start_time(parent.pid).value_or(0);
  ASSERT_EQ(cache.claims().claim("k.2", parent)->kind, ClaimOutcome::Kind::won);
  auto outcome = cache.claims().claim("k.2", cache.holder(2, "me"));
  ASSERT_TRUE(outcome);
  EXPECT_EQ(outcome->kind, ClaimOutcome::Kind::held_by_other);
}


// Runs fn in a child process (a fresh LMDB handle, as another gang would
// have) and returns its exit status.
int in_child(const std::function<int()>& fn) {
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(fn());
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

TEST_F(HolderLiveness, ClaimsAreNeverFlushedAndAreMadeAnewAfterAReboot) {
  // Claims live in <cache>/claims, committed without a flush: a system
  // crash may leave that environment corrupt, so the first gang of the next
  // boot makes it anew (within a boot, claims persist across processes).
  std::string key = "gcc.aaaa";
  auto system = std::make_shared<RebootedSystem>();
  auto claimed = in_child([&] {
    auto cache = open_cache(system);
    auto got = cache.claims().claim(key, cache.holder(1, "g"));
    if (!got || got->kind != ClaimOutcome::Kind::won) return 1;
    // Simulate this holder dying uncleanly: the claim row stays.
    return 0;
  });
  ASSERT_EQ(claimed, 0);
  EXPECT_EQ(read_file(dir.path() + "/cache/claims/boot").value_or(""), system->boot + "\n");
  auto same_boot = in_child([&] {
    auto cache = open_cache(system);
    auto record = cache.claims().claim_of(key);
    return record && *record ? 0 : 1;  // still recorded (its holder is dead: taken over on claim)
  });
  EXPECT_EQ(same_boot, 0);
  // A corrupt environment left by a crash is never read: the next boot
  // replaces it.
  {
    int fd = ::open((dir.path() + "/cache/claims/data.mdb").c_str(), O_WRONLY);
    ASSERT_GE(fd, 0);
    std::string junk(8192, '\xff');
    ASSERT_EQ(::pwrite(fd, junk.data(), junk.size(), 0), static_cast<ssize_t>(junk.size()));
    ::close(fd);
  }
  system->boot = "66666666-7777-8888-9999-000000000000";
  auto next_boot = in_child([&] {
    auto cache = open_cache(system);
    auto record = cache.claims().claim_of(key);
    if (!record || *record) return 1;  // gone with the old boot
    auto got = cache.claims().claim(key, cache.holder(1, "g"));
    return got && got->kind == ClaimOutcome::Kind::won ? 0 : 2;
  });
  EXPECT_EQ(next_boot, 0);
  EXPECT_EQ(read_file(dir.path() + "/cache/claims/boot").value_or(""), system->boot + "\n");
}

}  // namespace
}  // namespace gang
