// End-to-end tests of `gang build`: the real binary, real worker processes,
// a real cache and real sandboxes, on small synthetic definitions whose
// build steps sleep and write files.
#include <gtest/gtest.h>
#include <dirent.h>

#include <set>

#include "cache/artifact_cache.hpp"
#include "definitions/cache_key.hpp"
#include "gang/project.hpp"
#include "tests/gang/gang_process.hpp"
#include "tests/gang/stratum_test.hpp"
#include "tests/support/run_command.hpp"
#include "util/fs.hpp"
#include "util/sha256.hpp"

namespace gang {
namespace {

using namespace std::chrono_literals;
using testing::count_lines_with;
using testing::run_gang;
using testing::TestChunk;

class GangBuild : public testing::StratumTest {
 protected:
  GangBuild() : StratumTest("gang-build-test-") {}
  std::vector<std::string> tmp_entries() const { return entries(cache + "/tmp"); }
};

TEST_F(GangBuild, FourInstancesBuildEveryComponentExactlyOnce) {
  std::vector<TestChunk> chunks;
  for (int i = 0; i < 8; ++i) chunks.push_back({"c" + std::to_string(i), {}, 0.3});
  chunks.push_back({"top", {"c0", "c1", "c2"}, 0.1});
  testing::write_tree(defs, chunks);
  auto run = run_gang(build_args(4, {"--log", dir.path() + "/events.log"}), dir.path());
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_EQ(count_lines_with(run.output, "Starting build"), 10) << run.output;
  EXPECT_EQ(count_lines_with(run.output, "Elapsed time for build"), 10);
  EXPECT_NE(testing::slurp(dir.path() + "/events.log").find("Summary"), std::string::npos);

  auto opened = ArtifactCache::open(cache);
  ASSERT_TRUE(opened);
  std::set<int> builders;
  for (const auto& [name, key] : keys()) {
    auto info = opened->lookup(key);
    ASSERT_TRUE(info && *info) << name << " is not cached";
    builders.insert((*info)->meta.built_by.instance);
    EXPECT_GE((*info)->meta.built_by.instance, 1);
    EXPECT_LE((*info)->meta.built_by.instance, 4);
  }
  EXPECT_GT(builders.size(), 1u) << "the work was shared";
}

TEST_F(GangBuild, LosingInstancesLogBahAndTheHolder) {
  testing::write_tree(defs, {{"first", {}, 1.0}, {"second", {"first"}, 0.2}});
  auto run = run_gang(build_args(3), dir.path());
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_GE(count_lines_with(run.output, "[first] Bah! claimed by instance"), 1) << run.output;
  EXPECT_EQ(count_lines_with(run.output, "Starting build"), 3);
  EXPECT_NE(run.output.find("Bah! "), std::string::npos);
}

TEST_F(GangBuild, AFailureIsRecordedOnceAndEverythingElseIsBuilt) {
  testing::write_tree(defs, {{"ok1", {}, 0.1}, {"bad", {}, 0.1, true}, {"ok2", {}, 0.1},
                             {"after", {"bad"}, 0}});
  std::string log = dir.path() + "/gang.log";
  auto run = run_gang(build_args(2, {"--log", log}), dir.path());
  EXPECT_EQ(run.status, 1) << run.output;
  EXPECT_EQ(count_lines_with(run.output, "[bad] Starting build"), 1) << run.output;
  // The summary counts per instance; the names of what each built go to --log.
  std::string summary = run.output.substr(std::min(run.output.find("Summary:"), run.output.size()));
  EXPECT_NE(summary.find("instance 1: built "), std::string::npos) << summary;
  EXPECT_EQ(summary.find("ok1"), std::string::npos) << summary;
  std::string logged = testing::slurp(log);
  EXPECT_NE(logged.find("instance 1 built:"), std::string::npos) << logged;
  EXPECT_NE(logged.find("ok1"), std::string::npos) << logged;
  EXPECT_EQ(count_lines_with(run.output, "[after] Starting build"), 0);
  EXPECT_NE(run.output.find("failures: 1"), std::string::npos);
  EXPECT_NE(run.output.find("deliberate failure"), std::string::npos) << "the log tail is shown";
  auto k = keys();
  EXPECT_NE(run.output.find(cache + "/logs/" + k["bad"] + ".log"), std::string::npos);

  auto again = run_gang(build_args(2), dir.path());
  EXPECT_EQ(again.status, 1);
  EXPECT_EQ(count_lines_with(again.output, "Starting build"), 0) << "failures are not retried";
  // The failure recorded by the earlier run is this run's failure too, with
  // its log and how to retry or look inside.
  std::string again_summary = again.output.substr(std::min(again.output.find("Summary:"), again.output.size()));
  EXPECT_NE(again_summary.find("failures: 1\n    bad: recorded failure: "), std::string::npos)
      << again.output;
  EXPECT_NE(again_summary.find("log:   " + cache + "/logs/" + k["bad"] + ".log"), std::string::npos)
      << again.output;
  EXPECT_NE(again_summary.find("shell: gang shell bad"), std::string::npos) << again.output;
  EXPECT_NE(again_summary.find("--retry-failed"), std::string::npos) << again.output;
  EXPECT_EQ(again.output.find("failures: none"), std::string::npos) << again.output;

  auto retried = run_gang(build_args(2, {"--retry-failed"}), dir.path());
  EXPECT_EQ(retried.status, 1);
  EXPECT_EQ(count_lines_with(retried.output, "[bad] Starting build"), 1) << retried.output;

  // The failed build's sandbox is kept, and gang shell runs in it.
  auto shell = run_gang({"shell", "bad", "--cache", cache, "--", "sh", "-c",
                         "pwd; echo DESTDIR=$DESTDIR; test -d /bad.inst"},
                        dir.path());
  EXPECT_EQ(shell.status, 0) << shell.output;
  EXPECT_NE(shell.output.find("/bad.build"), std::string::npos) << shell.output;
  EXPECT_NE(shell.output.find("DESTDIR=/bad.inst"), std::string::npos) << shell.output;
}

TEST_F(GangBuild, AWorkerKilledMidBuildDoesNotStopTheGang) {
  testing::write_tree(defs, {{"a", {}, 1.5}, {"b", {}, 1.5}});
  std::string out = dir.path() + "/kill.out";
  auto child = testing::spawn_gang(build_args(2), out);
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (count_lines_with(testing::slurp(out), "Starting build") < 2 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  ASSERT_EQ(count_lines_with(testing::slurp(out), "Starting build"), 2) << testing::slurp(out);
  auto workers = testing::children_of(child.pid);
  ASSERT_EQ(workers.size(), 2u);
  ::kill(workers[0], SIGKILL);
  int status = testing::wait_child(child, 60s);
  std::string output = testing::slurp(out);
  EXPECT_EQ(status, 0) << output;
  EXPECT_NE(output.find("killed by signal 9"), std::string::npos) << output;
  EXPECT_EQ(count_lines_with(output, "Starting build"), 4) << "the lost chunk was rebuilt:\n" << output;
  auto opened = ArtifactCache::open(cache);
  ASSERT_TRUE(opened);
  for (const auto& [name, key] : keys()) EXPECT_TRUE(opened->contains(key)) << name;
}

TEST_F(GangBuild, TwoIndependentGangsShareTheWorkAndBothExitWhenTheTargetExists) {
  testing::write_tree(defs, {{"c1", {}, 1.0}, {"c2", {"c1"}, 1.0}});
  std::string out_a = dir.path() + "/a.out";
  std::string out_b = dir.path() + "/b.out";
  auto a = testing::spawn_gang(build_args(1), out_a);
  ASSERT_TRUE(testing::wait_for_text(out_a, "[c1] Starting build", 20s));
  auto b = testing::spawn_gang(build_args(1), out_b);
  int status_a = testing::wait_child(a, 60s);
  auto a_done = std::chrono::steady_clock::now();
  int status_b = testing::wait_child(b, 60s);
  auto b_done = std::chrono::steady_clock::now();
  std::string text_a = testing::slurp(out_a), text_b = testing::slurp(out_b);
  EXPECT_EQ(status_a, 0) << text_a;
  EXPECT_EQ(status_b, 0) << text_b;
  EXPECT_NE(text_b.find("[c1] Bah!"), std::string::npos) << text_b;
  EXPECT_EQ(count_lines_with(text_a + text_b, "Starting build"), 3) << text_a << text_b;
  EXPECT_LT(b_done - a_done, 1500ms) << "the second gang noticed the target promptly";
}

TEST_F(GangBuild, SigintStopsEveryWorkerAndLeavesNoClaimOrSandbox) {
  testing::write_tree(defs, {{"slow1", {}, 19.77}, {"slow2", {}, 19.77}, {"quick", {}, 0}});
  std::string out = dir.path() + "/int.out";
  auto child = testing::spawn_gang(build_args(2), out);
  auto deadline = std::chrono::steady_clock::now() + 20s;
  auto slow_started = [&] {
    std::string text = testing::slurp(out);
    return count_lines_with(text, "[slow1] Starting build") + count_lines_with(text, "[slow2] Starting build");
  };
  while (slow_started() < 2 &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  std::this_thread::sleep_for(300ms);  // let both sandboxes start sleeping
  auto sent = std::chrono::steady_clock::now();
  ::kill(child.pid, SIGINT);
  int status = testing::wait_child(child, 10s);
  auto stopped = std::chrono::steady_clock::now() - sent;
  std::string output = testing::slurp(out);
  EXPECT_EQ(status, 130) << output;
  EXPECT_LT(stopped, 2500ms) << output;

  auto verify = run_gang({"cache", "verify", "--cache", cache}, dir.path());
  EXPECT_EQ(verify.status, 0) << verify.output;
  auto opened = ArtifactCache::open(cache);
  ASSERT_TRUE(opened);
  for (const auto& [name, key] : keys()) {
    auto claim = opened->claims().claim_of(key);
    ASSERT_TRUE(claim);
    EXPECT_FALSE(claim->has_value()) << name << " is still claimed";
    if (name.starts_with("slow")) {
      EXPECT_FALSE(opened->contains(key)) << "nothing partial published";
    }
  }
  EXPECT_TRUE(tmp_entries().empty()) << "no sandbox left behind";
  // No sandboxed process survives.
  bool survivor = false;
  if (DIR* d = ::opendir("/proc")) {
    while (dirent* e = ::readdir(d)) {
      std::string cmdline = testing::slurp(std::string("/proc/") + e->d_name + "/cmdline");
      if (cmdline.find("19.77") != std::string::npos) survivor = true;
    }
    ::closedir(d);
  }
  EXPECT_FALSE(survivor);
}


// Runs a shell command line; returns its exit status.
int sh(const std::string& command) { return testing::run_command(command).status; }

TEST_F(GangBuild, ASourceStackBuildsOnceAndANewCommitChangesTheKeys) {
  // Two git repositories: a library and a program that links it.
  std::string repos = dir.path() + "/repos";
  std::string env = "GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t ";
  ASSERT_EQ(sh("set -e; mkdir -p " + repos + "/lib " + repos + "/app; cd " + repos +
               "/lib; git init -q -b master; printf 'int lib_value(void) { return 41; }\\n' > lib.c; "
               "git add .; " + env + "git commit -q -m one; cd ../app; git init -q -b master; "
               "printf 'int lib_value(void);\\nint main(void) { return lib_value() == 41 ? 0 : 1; }\\n' > "
               "main.c; git add .; " + env + "git commit -q -m one"),
            0);
  (void)make_dirs(defs + "/strata");
  (void)write_file_atomic(defs + "/VERSION", "version: 9\n");
  (void)write_file_atomic(defs + "/DEFAULTS", "build-systems:\n  manual: {}\n");
  (void)write_file_atomic(defs + "/gang.conf", "aliases:\n  test: " + repos + "/\n");
  (void)write_file_atomic(defs + "/strata/s.morph",
                          "name: s\nkind: stratum\nchunks:\n"
                          "- name: lib\n  repo: test:lib\n  ref: master\n  install-commands:\n"
                          "  - cc -c lib.c -o lib.o && ar rcs liblib.a lib.o\n"
                          "  - mkdir -p \"$DESTDIR$PREFIX/lib\" && cp liblib.a \"$DESTDIR$PREFIX/lib/\"\n"
                          "- name: app\n  repo: test:app\n  ref: master\n  build-depends: [lib]\n"
                          "  build-commands:\n  - cc main.c -o app -llib\n  - ./app\n"
                          "  install-commands:\n"
                          "  - mkdir -p \"$DESTDIR$PREFIX/bin\" && cp app \"$DESTDIR$PREFIX/bin/\"\n");
  auto first = run_gang(build_args(1), dir.path());
  ASSERT_EQ(first.status, 0) << first.output;
  EXPECT_EQ(count_lines_with(first.output, "Starting build"), 3) << first.output;

  auto second = run_gang(build_args(1), dir.path());
  ASSERT_EQ(second.status, 0) << second.output;
  EXPECT_EQ(count_lines_with(second.output, "Starting build"), 0) << "all cached:\n" << second.output;

  auto show_before = run_gang({"show", target, "--cache", cache, "--json"}, dir.path());
  ASSERT_EQ(show_before.status, 0) << show_before.output;
  ASSERT_EQ(sh("set -e; cd " + repos + "/lib; printf 'int lib_value(void) { return 41; } /* v2 */\\n' "
               "> lib.c; " + env + "git commit -q -am two"),
            0);
  auto third = run_gang(build_args(1), dir.path());
  ASSERT_EQ(third.status, 0) << third.output;
  EXPECT_EQ(count_lines_with(third.output, "Starting build"), 3)
      << "lib changed, so lib, app (a dependant) and s rebuild:\n" << third.output;
  auto show_after = run_gang({"show", target, "--cache", cache, "--json"}, dir.path());
  ASSERT_EQ(show_after.status, 0);
  auto key_of = [](const std::string& json, const std::string& name) {
    auto at = json.find("\"key\": \"" + name + ".");
    return at == std::string::npos ? std::string() : json.substr(at, 80);
  };
  for (const char* name : {"lib", "app", "s"}) {
    EXPECT_FALSE(key_of(show_before.output, name).empty()) << show_before.output;
    EXPECT_NE(key_of(show_before.output, name), key_of(show_after.output, name)) << name;
  }
  EXPECT_EQ(count_lines_with(show_after.output, "\"state\": \"cached\""), 3) << show_after.output;
}


TEST_F(GangBuild, ARunningBuildTheTargetNoLongerNeedsIsStoppedWhenTheTargetAppears) {
  testing::write_tree(defs, {{"slow", {}, 18.88}});
  std::string out = dir.path() + "/stop.out";
  auto child = testing::spawn_gang(build_args(1), out);
  ASSERT_TRUE(testing::wait_for_text(out, "[slow] Starting build", 20s)) << testing::slurp(out);
  std::this_thread::sleep_for(200ms);
  // Somebody else (here: the plumbing command) publishes the target itself.
  std::string artifact = dir.path() + "/artifact";
  ASSERT_TRUE(make_dirs(artifact + "/baserock"));
  ASSERT_TRUE(write_file_atomic(artifact + "/baserock/s.meta", "{}\n"));
  auto published = std::chrono::steady_clock::now();
  auto insert = run_gang({"cache", "insert", keys()["s"], artifact, "--cache", cache}, dir.path());
  ASSERT_EQ(insert.status, 0) << insert.output;
  int status = testing::wait_child(child, 10s);
  auto exited = std::chrono::steady_clock::now();
  std::string output = testing::slurp(out);
  EXPECT_EQ(status, 0) << output;
  EXPECT_LT(exited - published, 2s) << output;
  EXPECT_NE(output.find("[slow] Build stopped: the target no longer needs it"), std::string::npos)
      << output;
  EXPECT_TRUE(tmp_entries().empty()) << "the stopped build's sandbox was removed";
  auto opened = ArtifactCache::open(cache);
  ASSERT_TRUE(opened);
  EXPECT_FALSE(opened->contains(keys()["slow"])) << "nothing partial published";
  auto claim = opened->claims().claim_of(keys()["slow"]);
  ASSERT_TRUE(claim);
  EXPECT_FALSE(claim->has_value()) << "the claim was released";
}


TEST_F(GangBuild, ACorruptDependencyIsRebuiltNotStaged) {
  testing::write_tree(defs, {{"dep", {}, 0}, {"user", {"dep"}, 0}});
  auto first = run_gang(build_args(1), dir.path());
  ASSERT_EQ(first.status, 0) << first.output;
  // Damage the blob holding dep's only file ("dep\n"), then ask for user again.
  std::string digest = sha256_hex("dep\n");
  std::string blob = cache + "/objects/" + digest.substr(0, 2) + "/" + digest;
  ASSERT_TRUE(path_exists(blob)) << blob;
  ::chmod(blob.c_str(), 0644);
  ASSERT_TRUE(write_file(blob, "tampered\n"));
  auto k = keys();
  for (const char* name : {"user", "s"})
    ASSERT_EQ(run_gang({"cache", "forget", k[name], "--cache", cache}, dir.path()).status, 0);

  auto second = run_gang(build_args(1, {"--verify"}), dir.path());
  EXPECT_EQ(second.status, 0) << second.output;
  EXPECT_EQ(count_lines_with(second.output, "[dep] Starting build"), 1)
      << "the damaged artifact was dropped and rebuilt:\n" << second.output;
  EXPECT_EQ(count_lines_with(second.output, "[user] Starting build"), 2) << second.output;
  auto verify = run_gang({"cache", "verify", "--cache", cache}, dir.path());
  EXPECT_EQ(verify.status, 0) << verify.output;
}

}  // namespace
}  // namespace gang
