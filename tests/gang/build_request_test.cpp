// Specs for the build request a frontend hands its workers
// (gang/build_request.hpp): the worker's command line round-trips, the pins
// file round-trips and refuses bad input with its name, and, end to end with
// real git repositories, a worker builds the commit its gang resolved even
// after the mirror moved on, and refuses a target key that is not its gang's.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "gang/build_request.hpp"
#include "tests/gang/gang_process.hpp"
#include "tests/gang/stratum_test.hpp"
#include "tests/support/run_command.hpp"
#include "util/fs.hpp"

namespace gang {
namespace {

using testing::count_lines_with;
using testing::run_gang;

TEST(BuildRequest, EveryFieldSurvivesTheWorkersCommandLine) {
  BuildRequest full;
  full.target = "systems/a system.morph";
  full.definitions = "/defs";
  full.arch = "armv8l64";
  full.cache_dir = "/var/cache/gang";
  full.base = "none";
  full.max_jobs = 7;
  full.offline = full.strict = full.verify = full.no_remote_push = true;
  full.remote_cache = "http://cache:8080/gang";
  full.redis = "redis://leases:6379";
  full.retry_failed_before_ms = 1796394024812;
  full.gang_id = "gang-42";
  full.pins_file = "/tmp/pins.json";
  full.instance = 3;
  full.seed = 18446744073709551615ull;
  full.events_fd = 3;
  auto parsed = BuildRequest::parse(full.to_argv());
  ASSERT_TRUE(parsed);
  EXPECT_EQ(*parsed, full);

  BuildRequest minimal;
  minimal.target = "strata/s.morph";
  auto back = BuildRequest::parse(minimal.to_argv());
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, minimal);
  EXPECT_FALSE(back->base);  // not given is not "" (an empty base would be a sysroot path)
  EXPECT_FALSE(back->max_jobs);
}

TEST(BuildRequest, AnUnknownFlagOrNoTargetIsAUsageError) {
  auto unknown = BuildRequest::parse({"strata/s.morph", "--instances", "4"});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error(), 2);
  auto none = BuildRequest::parse({"--offline"});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error(), 2);
}

TEST(SourcePins, RoundTripAndRefuseBadInputNamingTheFile) {
  SourcePins pins;
  pins.target_key = "s.0123";
  pins.sources[{"upstream:gcc", "releases/gcc-12"}] = {std::string(40, 'a'), std::string(40, 'b'),
                                                       1700000000};
  pins.sources[{"test:one", "master"}] = {std::string(40, 'c'), std::string(40, 'd'), 0};
  auto back = SourcePins::decode(pins.encode(), "pins.json");
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(back->target_key, pins.target_key);
  ASSERT_EQ(back->sources.size(), 2u);
  const auto& gcc = back->sources.at({"upstream:gcc", "releases/gcc-12"});
  EXPECT_EQ(gcc.commit, std::string(40, 'a'));
  EXPECT_EQ(gcc.tree, std::string(40, 'b'));
  EXPECT_EQ(gcc.commit_time, 1700000000);

  for (const char* bad : {"", "[]", "{\"sources\": []}", "{\"target_key\": \"k\"}",
                          "{\"target_key\": \"k\", \"sources\": [{\"repo\": \"r\", \"ref\": \"m\", "
                          "\"commit\": \"c\", \"tree\": \"t\"}]}",
                          "{\"target_key\": \"k\", \"sources\": [7]}"}) {
    auto refused = SourcePins::decode(bad, "/tmp/gang/pins.json");
    ASSERT_FALSE(refused) << bad;
    EXPECT_NE(refused.error().message.find("/tmp/gang/pins.json"), std::string::npos)
        << refused.error().message;
  }
}

class CountingResolver : public SourceResolver {
 public:
  Result<std::optional<ResolvedSource>> resolve(const std::string& repo,
                                                const std::string& ref) override {
    asked.push_back(repo + " " + ref);
    return std::optional<ResolvedSource>{ResolvedSource{"fallback", "tree", 1}};
  }
  std::vector<std::string> asked;
};

TEST(PinnedSourceResolver, AnswersPinsItselfAndAsksForTheRest) {
  SourcePins pins;
  pins.sources[{"test:one", "master"}] = {"pinned", "pinned-tree", 5};
  CountingResolver mirrors;
  PinnedSourceResolver resolver(pins, mirrors);
  auto one = resolver.resolve("test:one", "master");
  ASSERT_TRUE(one && *one);
  EXPECT_EQ((*one)->commit, "pinned");
  auto other = resolver.resolve("test:one", "other-branch");
  ASSERT_TRUE(other && *other);
  EXPECT_EQ((*other)->commit, "fallback");
  EXPECT_EQ(mirrors.asked, std::vector<std::string>{"test:one other-branch"});
}

class WorkerPins : public testing::StratumTest {
 protected:
  WorkerPins() : StratumTest("gang-pins-test-") {}
  void SetUp() override {
    repo = dir.path() + "/repos/one";
    ASSERT_TRUE(make_dirs(repo));
    ASSERT_TRUE(write_file(repo + "/file", "A\n"));
    ASSERT_EQ(git("init -q -b master"), 0);
    ASSERT_EQ(git("add file"), 0);
    ASSERT_EQ(git("commit -q -m A"), 0);
    (void)make_dirs(defs + "/strata");
    (void)write_file_atomic(defs + "/VERSION", "version: 9\n");
    (void)write_file_atomic(defs + "/DEFAULTS", "build-systems:\n  manual: {}\n");
    (void)write_file_atomic(defs + "/gang.conf", "aliases:\n  test: " + dir.path() + "/repos/\n");
    (void)write_file_atomic(defs + "/strata/s.morph",
                            "name: s\nkind: stratum\nchunks:\n"
                            "- name: c\n  repo: test:one\n  ref: master\n  install-commands:\n"
                            "  - mkdir -p \"$DESTDIR/share\" && cp file \"$DESTDIR/share/c\"\n");
  }
  int git(const std::string& command) {
    return testing::run_command("cd " + repo + " && " + k_identity + "git " + command).status;
  }
  std::string git_out(const std::string& command) {
    auto run = testing::run_command("cd " + repo + " && git " + command);
    std::string out = run.output;
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
  }
  // name -> key, as `gang show` computes them now (from the mirror).
  std::map<std::string, std::string> shown_keys() {
    auto shown = run_gang({"show", target, "--cache", cache, "--json"}, dir.path());
    EXPECT_EQ(shown.status, 0) << shown.output;
    std::map<std::string, std::string> out;
    for (const char* name : {"c", "s"}) {
      auto at = shown.output.find("\"key\": \"" + std::string(name) + ".");
      if (at == std::string::npos) continue;
      at += 8;
      out[name] = shown.output.substr(at, shown.output.find('"', at) - at);
    }
    return out;
  }
  std::vector<std::string> worker_args(const std::string& pins_file) {
    return {"worker", target, "--definitions", defs, "--cache", cache, "--pins", pins_file,
            "--max-jobs", "1"};
  }

  const std::string k_identity =
      "GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t ";
  std::string repo;
};

TEST_F(WorkerPins, AWorkerBuildsTheCommitItsGangResolvedNotWhereTheMirrorMovedSince) {
  auto first = run_gang(build_args(1), dir.path());
  ASSERT_EQ(first.status, 0) << first.output;
  auto at_a = shown_keys();
  ASSERT_EQ(at_a.size(), 2u);
  SourcePins pins;
  pins.target_key = at_a["s"];
  pins.sources[{"test:one", "master"}] = {git_out("rev-parse HEAD"), git_out("rev-parse HEAD^{tree}"),
                                          std::stoll(git_out("log -1 --format=%ct"))};
  // The branch moves on, and another gang fetches it into the mirror.
  ASSERT_TRUE(write_file(repo + "/file", "B\n"));
  ASSERT_EQ(git("commit -q -am B"), 0);
  auto second = run_gang(build_args(1), dir.path());
  ASSERT_EQ(second.status, 0) << second.output;
  auto at_b = shown_keys();
  ASSERT_NE(at_b["s"], at_a["s"]);
  // A's artifacts go; a worker of the first gang (its pins) must build them
  // again, from commit A, although the mirror's master is B now.
  for (const char* name : {"s", "c"})
    ASSERT_EQ(run_gang({"cache", "forget", at_a[name], "--cache", cache}, dir.path()).status, 0);
  std::string pins_file = dir.path() + "/pins.json";
  ASSERT_TRUE(write_file(pins_file, pins.encode()));
  auto worker = run_gang(worker_args(pins_file), dir.path());
  ASSERT_EQ(worker.status, 0) << worker.output;
  EXPECT_EQ(count_lines_with(worker.output, "build_start"), 2) << worker.output;
  const std::string commit_a = pins.sources.begin()->second.commit;
  EXPECT_NE(worker.output.find("Checking out test:one master (" + commit_a.substr(0, 12) + ")"),
            std::string::npos)
      << worker.output;
  auto cached = run_gang({"cache", "ls", "--cache", cache}, dir.path());
  EXPECT_NE(cached.output.find(at_a["s"]), std::string::npos) << cached.output;
  EXPECT_NE(cached.output.find(at_a["c"]), std::string::npos) << cached.output;
}

TEST_F(WorkerPins, AWorkerWhoseTargetKeyIsNotItsGangsRefusesToBuild) {
  auto first = run_gang(build_args(1), dir.path());
  ASSERT_EQ(first.status, 0) << first.output;
  SourcePins pins;
  pins.target_key = "s.0000000000000000000000000000000000000000000000000000000000000000";
  std::string pins_file = dir.path() + "/pins.json";
  ASSERT_TRUE(write_file(pins_file, pins.encode()));
  auto worker = run_gang(worker_args(pins_file), dir.path());
  EXPECT_EQ(worker.status, 1) << worker.output;
  EXPECT_NE(worker.output.find("changed since this gang started"), std::string::npos)
      << worker.output;
  EXPECT_EQ(count_lines_with(worker.output, "build_start"), 0) << worker.output;
  // And a pins file that is not one is refused, naming it.
  ASSERT_TRUE(write_file(pins_file, "{\"target_key\": 7}"));
  auto bad = run_gang(worker_args(pins_file), dir.path());
  EXPECT_EQ(bad.status, 1) << bad.output;
  EXPECT_NE(bad.output.find(pins_file), std::string::npos) << bad.output;
}

TEST_F(WorkerPins, AGangBuildLeavesNoPinsBehind) {
  auto first = run_gang(build_args(2), dir.path());
  ASSERT_EQ(first.status, 0) << first.output;
  for (const auto& name : entries(cache + "/tmp"))
    EXPECT_EQ(name.find("pins."), std::string::npos) << name;
}

}  // namespace
}  // namespace gang
