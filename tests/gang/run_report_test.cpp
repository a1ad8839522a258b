// The run report (`gang build --report`) and starting states (`--cache-from`):
// the numbers a timing script reads, on fed events and on real gangs whose
// steps sleep for known times.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "gang/run_report.hpp"
#include "tests/gang/gang_process.hpp"
#include "util/fs.hpp"
#include "util/sha256.hpp"

namespace gang {
namespace {

using Json = nlohmann::json;
using testing::run_gang;
using testing::TestChunk;

Event event(EventType type, int instance, std::int64_t ms, const std::string& component,
            double seconds = 0, const std::string& message = {}) {
  Event e;
  e.type = type;
  e.instance = instance;
  e.time_ms = ms;
  e.component = component;
  e.key = component.empty() ? "" : component + ".k";
  e.seconds = seconds;
  e.message = message;
  return e;
}

TEST(RunReport, CriticalPathIdealAndEfficiencyFromFedEvents) {
  // a(4 s) -> b(2 s) -> t(1 s), c(3 s) -> t; x cached at start.
  RunInfo info;
  info.target = "t";
  info.instances = 2;
  info.start_ms = 10000;
  info.components = {{"a", "chunk", "a.k", {}, false}, {"b", "chunk", "b.k", {0}, false},
                     {"c", "chunk", "c.k", {}, false}, {"x", "chunk", "x.k", {}, true},
                     {"t", "stratum", "t.k", {1, 2, 3}, false}};
  RunReport report(info);
  report.on_event(event(EventType::hello, 1, 10000, ""));
  report.on_event(event(EventType::hello, 2, 10000, ""));
  report.on_event(event(EventType::build_start, 1, 10000, "a"));
  report.on_event(event(EventType::build_start, 2, 10000, "c"));
  report.on_event(event(EventType::bah, 2, 10001, "a", 0, "claimed by #1"));
  report.on_event(event(EventType::build_done, 2, 13000, "c", 3.0));
  report.on_event(event(EventType::build_done, 1, 14000, "a", 4.0));
  report.on_event(event(EventType::build_start, 2, 14000, "b"));
  report.on_event(event(EventType::build_start, 1, 14000, "b"));
  report.on_event(event(EventType::build_done, 2, 16000, "b", 2.0));
  report.on_event(event(EventType::bah, 1, 16000, "b", 2.0, "published by another instance first"));
  report.on_event(event(EventType::build_start, 1, 16000, "t"));
  report.on_event(event(EventType::build_done, 1, 17000, "t", 1.0));
  report.on_event(event(EventType::target_done, 1, 17000, "t"));
  report.on_event(event(EventType::exit, 1, 17010, "", 0, "target done"));
  report.on_worker_exit(2, 17020, "exit 0");
  EXPECT_DOUBLE_EQ(report.critical_path_s(), 7.0);
  EXPECT_DOUBLE_EQ(report.work_s(), 10.0);

  Json j = Json::parse(report.to_json(0, 18000));
  EXPECT_EQ(j["schema_version"], k_report_schema_version);
  EXPECT_EQ(j["wall_s"], 8.0);
  EXPECT_EQ(j["critical_path_s"], 7.0);
  EXPECT_EQ(j["ideal_s"], 7.0);  // max(7, 10 / 2)
  EXPECT_EQ(j["efficiency"], 0.875);
  EXPECT_EQ(j["target_published_s"], 7.0);
  EXPECT_EQ(j["totals"]["built"], 4);
  EXPECT_EQ(j["totals"]["cached_at_start"], 1);
  EXPECT_EQ(j["totals"]["bah"], 2);
  EXPECT_EQ(j["totals"]["wasted_s"], 2.0);
  const Json& a = j["components"][0];
  EXPECT_EQ(a["state"], "built");
  EXPECT_EQ(a["instance"], 1);
  EXPECT_EQ(a["start_s"], 0.0);
  EXPECT_EQ(a["end_s"], 4.0);
  EXPECT_EQ(a["lost_race"], true);
  EXPECT_EQ(j["components"][3]["state"], "cached");
  const Json& one = j["per_instance"][0];
  EXPECT_EQ(one["busy_s"], 7.0);  // a, the wasted b, t
  EXPECT_EQ(one["wasted_s"], 2.0);
  EXPECT_EQ(one["idle_s"], 0.01);
  EXPECT_EQ(one["builds"].size(), 3u);
  EXPECT_EQ(one["builds"][1]["outcome"], "wasted");
  EXPECT_EQ(j["per_instance"][1]["exit"], "exit 0");
  EXPECT_EQ(j["per_instance"][1]["exited_s"], 7.02);
}

class RunReportGang : public ::testing::Test {
 protected:
  void SetUp() override {
    defs = dir.path() + "/defs";
    target = defs + "/strata/s.morph";
  }
  void TearDown() override {
    if (HasFailure()) dir.keep();
  }
  Json read_report(const std::string& path) {
    auto text = read_file(path);
    EXPECT_TRUE(text) << path;
    return Json::parse(text.value_or("{}"), nullptr, false);
  }
  TempDir dir{"gang-report-test-"};
  std::string defs, target;
};

TEST_F(RunReportGang, AReportOfARealGangWithKnownSleeps) {
  // The chain a(0.8) -> b(0.8) is the critical path; four leaves of 0.3 s.
  testing::write_tree(defs, {{"a", {}, 0.8},
                             {"b", {"a"}, 0.8},
                             {"l1", {}, 0.3},
                             {"l2", {}, 0.3},
                             {"l3", {}, 0.3},
                             {"l4", {}, 0.3}});
  std::string report = dir.path() + "/report.json";
  auto run = run_gang({"build", target, "--cache", dir.path() + "/cache", "--instances", "2",
                       "--max-jobs", "1", "--seed", "5", "--report", report},
                      dir.path());
  ASSERT_EQ(run.status, 0) << run.output;
  Json j = read_report(report);
  ASSERT_FALSE(j.is_discarded());
  EXPECT_EQ(j["exit_status"], 0);
  EXPECT_EQ(j["instances"], 2);
  EXPECT_EQ(j["max_jobs"], 1);
  EXPECT_EQ(j["seed"], 5);
  EXPECT_EQ(j["totals"]["built"], 7);  // six chunks and the stratum
  EXPECT_EQ(j["totals"]["failed"], 0);
  EXPECT_EQ(j["per_instance"].size(), 2u);
  double sum = 0;
  for (const auto& c : j["components"]) {
    ASSERT_EQ(c["state"], "built") << c;
    EXPECT_GE(c["end_s"].get<double>(), c["start_s"].get<double>()) << c;
    EXPECT_GE(c["build_s"].get<double>(), c["stage_s"].get<double>() + c["publish_s"].get<double>());
    EXPECT_TRUE(c["instance"] == 1 || c["instance"] == 2) << c;
    sum += c["build_s"].get<double>();
  }
  // Each chunk's build time holds its sleep plus gang's overhead (well under a second here).
  const double cp = j["critical_path_s"];
  EXPECT_GE(cp, 1.6);
  EXPECT_LT(cp, 1.6 + 1.5);
  EXPECT_NEAR(j["totals"]["work_s"].get<double>(), sum, 0.01);
  EXPECT_GE(sum, 2.8);
  EXPECT_NEAR(j["ideal_s"].get<double>(), std::max(cp, sum / 2), 0.01);
  const double wall = j["wall_s"];
  EXPECT_GE(wall, j["ideal_s"].get<double>() - 0.01);
  EXPECT_NEAR(j["efficiency"].get<double>(), j["ideal_s"].get<double>() / wall, 0.01);
  ASSERT_FALSE(j["target_published_s"].is_null());
  EXPECT_LE(j["target_published_s"].get<double>(), wall);
  for (const auto& instance : j["per_instance"]) {
    EXPECT_FALSE(instance["exited_s"].is_null());
    EXPECT_NEAR(instance["busy_s"].get<double>() + instance["idle_s"].get<double>(),
                instance["exited_s"].get<double>() - instance["started_s"].get<double>(), 0.05);
  }
}

TEST_F(RunReportGang, AFailedRunAndADefinitionErrorStillWriteAReport) {
  testing::write_tree(defs, {{"ok", {}, 0}, {"bad", {"ok"}, 0, /*fail=*/true}});
  std::string report = dir.path() + "/failed.json";
  auto run = run_gang({"build", target, "--cache", dir.path() + "/cache", "--instances", "1",
                       "--report", report},
                      dir.path());
  ASSERT_EQ(run.status, 1) << run.output;
  Json j = read_report(report);
  EXPECT_EQ(j["exit_status"], 1);
  EXPECT_EQ(j["totals"]["failed"], 1);
  bool found = false;
  for (const auto& c : j["components"])
    if (c["name"] == "bad") {
      found = true;
      EXPECT_EQ(c["state"], "failed");
      EXPECT_FALSE(c["reason"].get<std::string>().empty());
    }
  EXPECT_TRUE(found);

  std::string broken = dir.path() + "/broken.json";
  auto error = run_gang({"build", dir.path() + "/nowhere.morph", "--cache", dir.path() + "/cache",
                         "--report", broken},
                        dir.path());
  EXPECT_NE(error.status, 0);
  Json e = read_report(broken);
  EXPECT_EQ(e["exit_status"], error.status);
  EXPECT_FALSE(e["error"].get<std::string>().empty());
}

// Every file under root: relative path -> (mode, mtime, SHA-256 of the contents).
std::map<std::string, std::string> snapshot(const std::string& root) {
  std::map<std::string, std::string> out;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
    struct stat st;
    if (::lstat(entry.path().c_str(), &st) != 0) continue;
    std::string what = std::to_string(st.st_mode) + " " + std::to_string(st.st_mtim.tv_sec) + "." +
                       std::to_string(st.st_mtim.tv_nsec);
    if (S_ISREG(st.st_mode)) what += " " + sha256_hex(read_file(entry.path()).value_or("?"));
    out[entry.path().string().substr(root.size())] = what;
  }
  return out;
}

TEST_F(RunReportGang, CacheFromLeavesTheOriginalByteIdentical) {
  testing::write_tree(defs, {{"a", {}, 0}, {"b", {"a"}, 0}, {"c", {}, 0}});
  std::string base = dir.path() + "/base";
  ASSERT_EQ(run_gang({"build", target, "--cache", base, "--instances", "1"}, dir.path()).status, 0);
  // Only what a run reads: logs and scratch are the original's own business.
  auto before = snapshot(base + "/objects");
  auto index_before = sha256_hex(read_file(base + "/index/data.mdb").value_or(""));

  std::string copy = dir.path() + "/copy";
  std::string report = dir.path() + "/copy.json";
  auto run = run_gang({"build", target, "--cache", copy, "--cache-from", base, "--report", report},
                      dir.path());
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_EQ(read_report(report)["totals"]["cached_at_start"], 4);  // a b c and the stratum
  // Change the copy every way a run can: forget, rebuild, evict, verify.
  auto ls = run_gang({"cache", "ls", "--json", "--cache", copy}, dir.path());
  ASSERT_EQ(ls.status, 0);
  for (const auto& artifact : Json::parse(ls.output)) {
    ASSERT_EQ(run_gang({"cache", "forget", artifact["key"].get<std::string>(), "--cache", copy},
                       dir.path())
                  .status,
              0);
  }
  ASSERT_EQ(run_gang({"cache", "gc", "--max-size", "0", "--cache", copy}, dir.path()).status, 0);
  auto rebuilt = run_gang({"build", target, "--cache", copy, "--report", report}, dir.path());
  ASSERT_EQ(rebuilt.status, 0) << rebuilt.output;
  EXPECT_EQ(read_report(report)["totals"]["built"], 4);
  ASSERT_EQ(run_gang({"cache", "verify", "--cache", copy}, dir.path()).status, 0);

  EXPECT_EQ(snapshot(base + "/objects"), before);
  EXPECT_EQ(sha256_hex(read_file(base + "/index/data.mdb").value_or("")), index_before);
  auto verify = run_gang({"cache", "verify", "--json", "--cache", base}, dir.path());
  EXPECT_EQ(verify.status, 0) << verify.output;
  EXPECT_NE(verify.output.find("\"dropped_artifacts\": []"), std::string::npos);

  // A copy never lands on a cache that holds something.
  auto refused = run_gang({"build", target, "--cache", copy, "--cache-from", base}, dir.path());
  EXPECT_NE(refused.status, 0);
  EXPECT_NE(refused.output.find("not empty"), std::string::npos) << refused.output;
}

}  // namespace
}  // namespace gang
