// End-to-end tests of whose trouble a build's failure is (issue 10, items 7
// and 15): a step killed from outside, a full disk, or our own Ctrl-C is
// abandoned and retried, never recorded as the component's failure; a
// successful retry removes the kept failed sandbox; a step's own crash is a
// failure. The real binary, real workers, a real cache and sandboxes.
#include <gtest/gtest.h>
#include <dirent.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <set>

#include "cache/artifact_cache.hpp"
#include "definitions/cache_key.hpp"
#include "gang/project.hpp"
#include "gang/step_trouble.hpp"
#include "gang/worker.hpp"
#include "sandbox/spec.hpp"
#include "tests/gang/gang_process.hpp"
#include "tests/gang/stratum_test.hpp"
#include "tests/support/run_command.hpp"
#include "util/fs.hpp"

namespace gang {
namespace {

using namespace std::chrono_literals;
using testing::count_lines_with;
using testing::run_gang;

struct Chunk {
  std::string name;
  std::vector<std::string> commands;  // install-commands, before the file is written
  std::vector<std::string> deps = {};
};

// One stratum `s` of inline chunks; each runs its commands, then installs
// share/t/<name>.
void write_chunks(const std::string& root, const std::vector<Chunk>& chunks) {
  std::vector<testing::StratumChunk> stratum;
  for (const auto& c : chunks) {
    auto& s = stratum.emplace_back(testing::StratumChunk{c.name, c.deps, {}});
    for (const auto& command : c.commands) s.install_commands.push_back("'" + command + "'");
    s.install_commands.push_back("mkdir -p \"$DESTDIR/share/t\" && echo " + c.name +
                                 " > \"$DESTDIR/share/t/" + c.name + "\"");
  }
  testing::write_stratum(root, stratum);
}

class BuildTrouble : public testing::StratumTest {
 protected:
  BuildTrouble() : StratumTest("gang-trouble-test-") {}
  // The recorded failure of `name`, or "" when none is recorded.
  std::string failure_of(const std::string& name) {
    auto opened = ArtifactCache::open(cache);
    EXPECT_TRUE(opened);
    auto record = opened->failures().of(keys()[name]);
    EXPECT_TRUE(record);
    return record && *record ? (*record)->reason : std::string();
  }
};

// Pids of processes whose command line starts with argv0 and contains `arg`.
std::vector<pid_t> processes_running(const std::string& argv0, const std::string& arg) {
  std::vector<pid_t> out;
  if (DIR* d = ::opendir("/proc")) {
    while (dirent* e = ::readdir(d)) {
      pid_t pid = std::atoi(e->d_name);
      if (pid <= 0) continue;
      std::string cmdline = testing::slurp("/proc/" + std::to_string(pid) + "/cmdline");
      if (cmdline.starts_with(argv0 + '\0') && cmdline.find(arg) != std::string::npos)
        out.push_back(pid);
    }
    ::closedir(d);
  }
  return out;
}

TEST_F(BuildTrouble, AStepKilledFromOutsideIsRetriedNotRecordedAsFailed) {
  // The OOM killer's or a user's SIGKILL of a build step.
  write_chunks(defs, {{"victim", {"sleep 2.7182"}}});
  std::string out = dir.path() + "/kill.out";
  auto child = testing::spawn_gang(build_args(1), out);
  std::vector<pid_t> sleeping;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (sleeping.empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    sleeping = processes_running("sleep", "2.7182");
  }
  ASSERT_EQ(sleeping.size(), 1u) << testing::slurp(out);
  ::kill(sleeping[0], SIGKILL);
  int status = testing::wait_child(child, 60s);
  std::string output = testing::slurp(out);
  EXPECT_EQ(status, 0) << output;
  EXPECT_EQ(count_lines_with(output, "[victim] Starting build"), 2) << output;
  EXPECT_NE(output.find("SIGKILL from outside"), std::string::npos) << output;
  EXPECT_EQ(failure_of("victim"), "");
  auto opened = ArtifactCache::open(cache);
  ASSERT_TRUE(opened);
  EXPECT_TRUE(opened->contains(keys()["victim"]));
}

TEST_F(BuildTrouble, AStepsOwnCrashIsTheComponentsFailure) {
  // A compiler that crashes (SIGSEGV of its own) is a real failure.
  write_chunks(defs, {{"crash", {"sh -c \"kill -SEGV \\$\\$\""}}});
  auto run = run_gang(build_args(1), dir.path());
  EXPECT_EQ(run.status, 1) << run.output;
  EXPECT_EQ(count_lines_with(run.output, "[crash] Starting build"), 1) << run.output;
  EXPECT_NE(failure_of("crash"), "") << run.output;
}

TEST_F(BuildTrouble, AFullDiskIsAbandonedBoundedAndNeverRecorded) {
  write_chunks(defs, {{"full", {"echo \"cp: error writing x: No space left on device\" >&2; exit 1"}}});
  auto run = run_gang(build_args(1), dir.path());
  EXPECT_EQ(run.status, 1) << run.output;
  EXPECT_EQ(count_lines_with(run.output, "[full] Starting build"), k_max_abandons) << run.output;
  EXPECT_NE(run.output.find("full or failing file system"), std::string::npos) << run.output;
  EXPECT_EQ(failure_of("full"), "") << "a transient fault is not the component's failure";
  // So the next plain build tries it again instead of refusing it.
  auto again = run_gang(build_args(1), dir.path());
  EXPECT_GE(count_lines_with(again.output, "[full] Starting build"), 1) << again.output;
}

// The Done-when of issue 10: with the cache on a real file system that
// fills up mid-build (a small tmpfs, in a private mount namespace so that
// nothing outlives the test), the gang ends within 10 s, non-zero, with a
// summary naming the full disk; what was cached before survives, verified.
TEST_F(BuildTrouble, ARealFullCacheFileSystemEndsTheGangQuicklyWithASummary) {
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root";
  if (std::system("unshare -m --propagation private true 2>/dev/null") != 0)
    GTEST_SKIP() << "cannot create a mount namespace here (unshare -m)";
  std::string fs = dir.path() + "/fs", script = dir.path() + "/full.sh", log = dir.path() + "/full.log";
  ASSERT_TRUE(make_dirs(fs));
  std::string gang = GANG_BINARY;
  std::string cache_dir = fs + "/cache";
  std::string body =
      "set -u\n"
      "mount -t tmpfs -o size=2500k tmpfs '" + fs + "' || exit 90\n"
      "'" + gang + "' build '" + target + "' --cache '" + cache_dir +
      "' --instances 2 --max-jobs 1 >/dev/null 2>&1\n"
      "echo small-built=$?\n"
      "cp '" + dir.path() + "/s-full.morph' '" + target + "'\n"
      "start=$(date +%s%N)\n"
      "'" + gang + "' build '" + target + "' --cache '" + cache_dir +
      "' --instances 2 --max-jobs 1 > '" + log + "' 2>&1\n"
      "echo status=$?\n"
      "echo elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))\n"
      "'" + gang + "' cache verify --cache '" + cache_dir + "' >/dev/null 2>&1\n"
      "echo verify=$?\n"
      "'" + gang + "' cache ls --cache '" + cache_dir + "' | grep -c '^small' | sed 's/^/small-cached=/'\n";
  // First only `small` (built and cached), then the stratum grows a chunk
  // that fills the disk, and one above it.
  write_chunks(defs, {{"small", {}},
                      {"big", {"head -c 3000000 /dev/zero > \"$DESTDIR/fill\""}, {"small"}},
                      {"top", {}, {"big"}}});
  ASSERT_TRUE(write_file_atomic(dir.path() + "/s-full.morph", testing::slurp(target)));
  write_chunks(defs, {{"small", {}}});
  ASSERT_TRUE(write_file_atomic(script, body));
  auto run = testing::run_command("timeout 120 unshare -m --propagation private sh '" + script + "' 2>&1");
  std::string output = run.output + "\n" + testing::slurp(log);
  ASSERT_EQ(run.output.find("status=0"), std::string::npos) << output;
  EXPECT_NE(run.output.find("status=1"), std::string::npos) << output;
  auto at = run.output.find("elapsed_ms=");
  ASSERT_NE(at, std::string::npos) << output;
  EXPECT_LT(std::stol(run.output.substr(at + 11)), 10000) << output;
  EXPECT_NE(output.find("Summary:"), std::string::npos) << output;
  EXPECT_TRUE(output.find("file system is full") != std::string::npos ||
              output.find("full or failing file system") != std::string::npos ||
              output.find("No space left on device") != std::string::npos ||
              output.find("the cache is full") != std::string::npos)
      << output;
  EXPECT_NE(run.output.find("verify=0"), std::string::npos) << output;
  EXPECT_NE(run.output.find("small-cached=1"), std::string::npos) << output;
}

TEST_F(BuildTrouble, CtrlCOfTheWholeProcessGroupRecordsNoFailure) {
  // A terminal's Ctrl-C reaches the frontend, the workers and the sandboxes
  // at once; the sandbox dies of it before the worker notices its stop.
  write_chunks(defs, {{"slow", {"sleep 17.31"}}});
  std::string out = dir.path() + "/int.out";
  testing::Child child = testing::spawn_gang(build_args(1), out, true);
  pid_t pid = child.pid;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (processes_running("sleep", "17.31").empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  ASSERT_FALSE(processes_running("sleep", "17.31").empty()) << testing::slurp(out);
  ::kill(-pid, SIGINT);
  int status = testing::wait_child(child, 10s);
  std::string output = testing::slurp(out);
  EXPECT_NE(status, 0) << output;
  EXPECT_EQ(failure_of("slow"), "") << output;
}

TEST_F(BuildTrouble, ACtrlCDropsTheChunkSetUpAheadWithNothingLeftBehind) {
  // While one chunk's commands run, the worker sets the other up (its
  // sandbox built, held, unclaimed). A Ctrl-C then drops it: its commands
  // never run, no claim is left, and no process of it outlives gang.
  write_chunks(defs, {{"a", {"sleep 17.41"}}, {"b", {"sleep 17.42"}}});
  std::string out = dir.path() + "/int.out";
  // Orphans of gang's process tree come to this process, to be counted
  // (beside children it already has: inits of earlier tests not yet reaped).
  auto children = [] {
    auto pids = testing::children_of(::getpid());
    return std::set<pid_t>(pids.begin(), pids.end());
  };
  std::set<pid_t> before = children();
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  testing::Child child = testing::spawn_gang(build_args(1), out, true);
  pid_t pid = child.pid;
  auto sleeping = [] {
    return processes_running("sleep", "17.41").size() + processes_running("sleep", "17.42").size();
  };
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (sleeping() == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  ASSERT_EQ(sleeping(), 1u) << testing::slurp(out);
  std::this_thread::sleep_for(500ms);  // (the other one set up meanwhile)
  EXPECT_EQ(sleeping(), 1u) << "the chunk set up ahead ran";
  auto all = keys();
  // Both have a sandbox: one running, one set up ahead.
  for (const char* name : {"a.", "b."}) {
    auto in_tmp = entries(cache + "/tmp");
    EXPECT_TRUE(std::any_of(in_tmp.begin(), in_tmp.end(),
                            [&](const std::string& entry) { return entry.starts_with(name); }))
        << name << " is neither running nor set up ahead";
  }
  ::kill(-pid, SIGINT);
  int status = testing::wait_child(child, 10s);
  std::string output = testing::slurp(out);
  EXPECT_NE(status, 0) << output;
  std::this_thread::sleep_for(300ms);
  std::vector<pid_t> left;
  for (pid_t orphan : children())
    if (!before.contains(orphan)) left.push_back(orphan);
  for (pid_t orphan : left) {
    ::kill(orphan, SIGKILL);
    ::waitpid(orphan, nullptr, 0);
  }
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);
  EXPECT_TRUE(left.empty()) << left.size() << " processes outlived gang\n" << output;
  EXPECT_EQ(failure_of("a"), "") << output;
  EXPECT_EQ(failure_of("b"), "") << output;
  auto opened = ArtifactCache::open(cache);
  ASSERT_TRUE(opened);
  for (const char* name : {"a", "b"}) {
    auto claim = opened->claims().claim_of(all[name]);
    ASSERT_TRUE(claim);
    EXPECT_FALSE(claim->has_value()) << name << "'s claim was left";
  }
  EXPECT_EQ(count_lines_with(output, "Starting build"), 1) << output;
}

TEST_F(BuildTrouble, ASuccessfulRetryRemovesTheKeptFailedSandbox) {
  // Fails until a moment a few seconds from now, then succeeds.
  auto ready_at = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count() +
                  3;
  write_chunks(defs, {{"flaky", {"test \"$(date +%s)\" -ge " + std::to_string(ready_at) +
                                     " || { echo not yet >&2; exit 3; }"}}});
  auto first = run_gang(build_args(1), dir.path());
  ASSERT_EQ(first.status, 1) << first.output;
  ASSERT_NE(failure_of("flaky"), "");
  ASSERT_EQ(entries(cache + "/failed").size(), 1u) << "the failed sandbox is kept";
  while (std::chrono::system_clock::now().time_since_epoch() < std::chrono::seconds(ready_at + 1))
    std::this_thread::sleep_for(100ms);
  auto retried = run_gang(build_args(1, {"--retry-failed"}), dir.path());
  ASSERT_EQ(retried.status, 0) << retried.output;
  EXPECT_EQ(failure_of("flaky"), "");
  EXPECT_TRUE(entries(cache + "/failed").empty()) << "the stale kept sandbox was removed";
}

TEST_F(BuildTrouble, AMissingMemberOfACachedStratumIsRebuiltNotAFailure) {
  write_chunks(defs, {{"a", {"sleep 0.3"}}, {"b", {}}});
  (void)make_dirs(defs + "/systems");
  ASSERT_TRUE(write_file_atomic(defs + "/systems/sys.morph",
                                "name: sys\nkind: system\narch: x86_64\nstrata:\n"
                                "- name: s\n  morph: strata/s.morph\n"));
  target = defs + "/systems/sys.morph";
  auto first = run_gang(build_args(1), dir.path());
  ASSERT_EQ(first.status, 0) << first.output;
  auto k = keys();
  for (int seed = 1; seed <= 4; ++seed) {
    // The stratum stays cached; one of its chunks does not (gang cache
    // forget, or verify dropped it).
    for (const char* name : {"sys", "a"})
      ASSERT_EQ(run_gang({"cache", "forget", k[name], "--cache", cache}, dir.path()).status, 0);
    auto run = run_gang(build_args(2, {"--seed", std::to_string(seed)}), dir.path());
    EXPECT_EQ(run.status, 0) << "seed " << seed << ":\n" << run.output;
    EXPECT_NE(run.output.find("failures: none"), std::string::npos) << run.output;
    EXPECT_EQ(count_lines_with(run.output, "Not built"), 0) << "seed " << seed << ":\n" << run.output;
    EXPECT_EQ(count_lines_with(run.output, "gave up"), 0) << run.output;
    EXPECT_EQ(count_lines_with(run.output, "[a] Starting build"), 1) << run.output;
    EXPECT_EQ(count_lines_with(run.output, "[sys] Starting build"), 1) << run.output;
  }
}

TEST_F(BuildTrouble, OutputThatCouldNeverBeStagedIsRefusedAtPublishOnce) {
  // A path of 4,829 bytes, made of two halves of 2,410 that are joined by
  // a rename (no system call sees the whole path).
  write_chunks(defs, {{"deep", {"cd \"$DESTDIR\"; a=; for i in $(seq 10 19); do "
                                "a=$a/$(printf %0240d $i); done; mkdir -p top$a low$a; "
                                "mv low top$a/; echo x > low$a/../f || true"}},
                      {"user", {}, {"deep"}}});
  // No split rules: nothing but the publication walks the output.
  ASSERT_TRUE(write_file_atomic(defs + "/DEFAULTS",
                                "build-systems:\n  manual:\n    install-commands: []\n"));
  auto run = run_gang(build_args(1), dir.path());
  EXPECT_EQ(run.status, 1) << run.output;
  EXPECT_EQ(count_lines_with(run.output, "[deep] Starting build"), 1) << "not retried:\n" << run.output;
  EXPECT_EQ(count_lines_with(run.output, "[user] Starting build"), 0) << run.output;
  std::string reason = failure_of("deep");
  // The first path past the limit: top/ + 10 names + low/ + 3 names.
  EXPECT_NE(reason.find("a path of 3140 bytes, longer than gang can stage (3000): top/0000"),
            std::string::npos)
      << reason;
  EXPECT_NE(reason.find("0012"), std::string::npos) << "names the path: " << reason;
  auto opened = ArtifactCache::open(cache);
  ASSERT_TRUE(opened);
  EXPECT_FALSE(opened->contains(keys()["deep"])) << "the cache never holds what it cannot stage";
}

TEST_F(BuildTrouble, AFifoInDestdirIsAFailureNotRetried) {
  write_chunks(defs, {{"piped", {"mkfifo \"$DESTDIR/pipe\""}}});
  auto run = run_gang(build_args(1), dir.path());
  EXPECT_EQ(run.status, 1) << run.output;
  EXPECT_EQ(count_lines_with(run.output, "[piped] Starting build"), 1) << run.output;
  EXPECT_NE(failure_of("piped").find("DESTDIR holds a FIFO, which an artifact cannot hold: pipe"),
            std::string::npos)
      << failure_of("piped");
  // Found as it is published (off the worker's path): its sandbox is kept
  // for `gang shell` all the same, spec and FIFO included.
  std::string kept = kept_sandbox_dir(cache, "piped");
  EXPECT_TRUE(path_exists(spec_path(kept))) << kept;
  struct stat st {};
  EXPECT_EQ(::lstat((kept + "/piped.inst/pipe").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
}

TEST(StepTrouble, SentSignalsAndFullDisksAreOutsideCausesACrashIsNot) {
  StepResult killed;
  killed.ok = false;
  killed.step = "build";
  killed.command = "make";
  killed.signal = SIGKILL;
  EXPECT_TRUE(outside_cause(killed, std::nullopt, ""));
  StepResult reported = killed;  // a shell reporting its command's death
  reported.signal = 0;
  reported.exit_status = 128 + SIGTERM;
  EXPECT_TRUE(outside_cause(reported, std::nullopt, ""));
  StepResult whole = killed;
  whole.signal = 0;
  whole.sandbox_killed = true;
  EXPECT_TRUE(outside_cause(whole, std::nullopt, ""));
  StepResult crash = killed;
  crash.signal = SIGSEGV;
  EXPECT_FALSE(outside_cause(crash, std::nullopt, ""));
  StepResult plain = killed;
  plain.signal = 0;
  plain.exit_status = 2;
  plain.last_lines = {"error: expected ';'"};
  EXPECT_FALSE(outside_cause(plain, std::nullopt, ""));
  plain.last_lines = {"write error: Input/output error"};
  EXPECT_TRUE(outside_cause(plain, std::nullopt, ""));
  EXPECT_TRUE(is_machine_trouble("cannot write x: No space left on device"));
  EXPECT_FALSE(is_machine_trouble("checkout failed: no such commit"));
}

}  // namespace
}  // namespace gang
