#include "gang/run_report.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

namespace gang {

namespace {

using Json = nlohmann::ordered_json;

double round3(double value) { return std::round(value * 1000.0) / 1000.0; }

}  // namespace

RunReport::RunReport(RunInfo info) : m_info(std::move(info)) {
  m_components.resize(m_info.components.size());
  for (std::size_t i = 0; i < m_info.components.size(); ++i) {
    const RunComponent& c = m_info.components[i];
    m_components[i].state = c.cached_at_start ? "cached" : "skipped";
    m_by_key[c.key] = i;
    m_by_name.emplace(c.name, i);
  }
}

std::optional<std::size_t> RunReport::find(const Event& event) const {
  if (!event.key.empty()) {
    if (auto it = m_by_key.find(event.key); it != m_by_key.end()) return it->second;
  }
  // An event without a key (an older worker): by name, which two kinds may share.
  auto [first, last] = m_by_name.equal_range(event.component);
  if (first == last) return std::nullopt;
  return first->second;
}

void RunReport::close_attempt(InstanceRun& instance, std::size_t component, std::int64_t end_ms,
                              const std::string& outcome, double seconds) {
  bool open = instance.building && *instance.building == component;
  std::int64_t start =
      open ? instance.building_since_ms : end_ms - static_cast<std::int64_t>(seconds * 1000);
  instance.attempts.push_back({component, start, end_ms, outcome});
  // A build whose publish finished in the background ends after the
  // instance started its next one: that one stays open.
  if (open) instance.building.reset();
}

void RunReport::add_busy(InstanceRun& instance, std::int64_t end_ms, double seconds) {
  // Busy time is the union of the instance's build intervals: a build
  // published in the background overlaps the next one.
  std::int64_t start = end_ms - static_cast<std::int64_t>(seconds * 1000);
  std::int64_t from = std::max(start, instance.busy_until_ms);
  if (end_ms > from) instance.busy_s += static_cast<double>(end_ms - from) / 1000.0;
  instance.busy_until_ms = std::max(instance.busy_until_ms, end_ms);
}

void RunReport::on_event(const Event& e) {
  InstanceRun& instance = m_instances[e.instance];
  auto index = find(e);
  switch (e.type) {
    case EventType::hello:
      if (!instance.hello_ms) instance.hello_ms = e.time_ms;
      break;
    case EventType::build_start:
      if (index) {
        instance.building = *index;
        instance.building_since_ms = e.time_ms;
      }
      break;
    case EventType::build_done:
      if (!index) break;
      {
        ComponentRun& c = m_components[*index];
        c.state = "built";
        c.instance = e.instance;
        c.end_ms = e.time_ms;
        c.start_ms = instance.building == index ? instance.building_since_ms
                                                : e.time_ms - static_cast<std::int64_t>(e.seconds * 1000);
        c.build_s = e.seconds;
        c.stage_s = e.stage_seconds;
        c.publish_s = e.publish_seconds;
        add_busy(instance, e.time_ms, e.seconds);
        ++instance.built;
        close_attempt(instance, *index, e.time_ms, "built", e.seconds);
      }
      break;
    case EventType::bah:
      ++instance.bah;
      if (index) {
        m_components[*index].lost_race = true;
        instance.bahs.emplace_back(*index, e.time_ms);
      }
      if (e.seconds > 0) {  // built, then another instance published first
        add_busy(instance, e.time_ms, e.seconds);
        instance.wasted_s += e.seconds;
        if (index) {
          close_attempt(instance, *index, e.time_ms, "wasted", e.seconds);
          if (m_components[*index].state == "skipped") m_components[*index].state = "built_elsewhere";
        }
      }
      break;
    case EventType::failed:
      if (!index) break;
      if (e.seconds > 0 || instance.building == index) {
        add_busy(instance, e.time_ms, e.seconds);
        close_attempt(instance, *index, e.time_ms, "failed", e.seconds);
      }
      if (m_components[*index].state != "built") {
        m_components[*index].state = "failed";
        if (m_components[*index].reason.empty())
          m_components[*index].reason = e.message.substr(0, e.message.find('\n'));
      }
      break;
    case EventType::log:
      // "Not built, will look again" and "Build stopped" close a build.
      if (index && instance.building == index && e.seconds > 0) {
        add_busy(instance, e.time_ms, e.seconds);
        close_attempt(instance, *index, e.time_ms,
                      e.message.starts_with("Build stopped") ? "stopped" : "abandoned", e.seconds);
      }
      break;
    case EventType::cached:
      if (index && m_components[*index].state == "skipped")
        m_components[*index].state = "built_elsewhere";
      break;
    case EventType::target_done:
      if (!m_target_done_ms || e.time_ms < *m_target_done_ms) m_target_done_ms = e.time_ms;
      break;
    case EventType::exit:
      if (!instance.exit_ms) instance.exit_ms = e.time_ms;
      if (instance.exit_status.empty()) instance.exit_status = e.message;
      break;
    case EventType::downloaded:
      if (index && m_components[*index].state != "built") {
        ComponentRun& c = m_components[*index];
        c.state = "downloaded";
        c.end_ms = e.time_ms;
        c.start_ms = e.time_ms - static_cast<std::int64_t>(e.seconds * 1000);
        c.build_s = e.seconds;
      }
      ++instance.downloaded;
      add_busy(instance, e.time_ms, e.seconds);
      break;
    case EventType::pushed:
      ++instance.pushed;
      break;
    case EventType::push_failed:
      ++instance.push_failed;
      break;
    case EventType::progress:
      break;
  }
}

void RunReport::on_worker_exit(int instance_number, std::int64_t time_ms, const std::string& status) {
  InstanceRun& instance = m_instances[instance_number];
  if (!instance.exit_ms) instance.exit_ms = time_ms;
  if (instance.exit_status.empty()) instance.exit_status = status;
  if (instance.building) close_attempt(instance, *instance.building, time_ms, "stopped");
}

double RunReport::critical_path_s() const {
  std::vector<double> finish(m_components.size(), 0);
  double longest = 0;
  for (std::size_t i = 0; i < m_components.size(); ++i) {
    double start = 0;
    for (std::size_t dep : m_info.components[i].deps)
      if (dep < i) start = std::max(start, finish[dep]);
    double own = m_components[i].state == "built" ? m_components[i].build_s : 0;
    finish[i] = start + own;
    longest = std::max(longest, finish[i]);
  }
  return longest;
}

double RunReport::work_s() const {
  double total = 0;
  for (const auto& c : m_components)
    if (c.state == "built") total += c.build_s;
  return total;
}

std::string RunReport::to_json(int exit_status, std::int64_t end_ms) const {
  auto offset = [&](std::int64_t ms) { return round3(static_cast<double>(ms - m_info.start_ms) / 1000.0); };
  const double wall_s = std::max(0.0, static_cast<double>(end_ms - m_info.start_ms) / 1000.0);
  Json out;
  out["schema_version"] = k_report_schema_version;
  out["target"] = m_info.target;
  out["target_key"] = m_info.target_key;
  out["arch"] = m_info.arch;
  out["instances"] = m_info.instances;
  out["max_jobs"] = m_info.max_jobs;
  out["seed"] = m_info.seed;
  out["exit_status"] = exit_status;
  out["start_time_ms"] = m_info.start_ms;
  out["wall_s"] = round3(wall_s);
  out["target_published_s"] = m_target_done_ms ? Json(offset(*m_target_done_ms)) : Json(nullptr);

  int built = 0, cached = 0, failed = 0, elsewhere = 0, skipped = 0, downloaded = 0;
  Json components = Json::array();
  for (std::size_t i = 0; i < m_components.size(); ++i) {
    const RunComponent& info = m_info.components[i];
    const ComponentRun& c = m_components[i];
    built += c.state == "built";
    cached += c.state == "cached";
    failed += c.state == "failed";
    elsewhere += c.state == "built_elsewhere";
    skipped += c.state == "skipped";
    downloaded += c.state == "downloaded";
    Json j;
    j["name"] = info.name;
    j["kind"] = info.kind;
    j["key"] = info.key;
    j["state"] = c.state;
    Json depends = Json::array();
    for (std::size_t dep : info.deps) depends.push_back(m_info.components[dep].name);
    j["depends"] = std::move(depends);
    j["instance"] = c.state == "built" ? Json(c.instance) : Json(nullptr);
    j["start_s"] = c.start_ms ? Json(offset(*c.start_ms)) : Json(nullptr);
    j["end_s"] = c.end_ms ? Json(offset(*c.end_ms)) : Json(nullptr);
    j["build_s"] = round3(c.build_s);
    j["stage_s"] = round3(c.stage_s);
    j["publish_s"] = round3(c.publish_s);
    j["lost_race"] = c.lost_race;
    if (!c.reason.empty()) j["reason"] = c.reason;
    components.push_back(std::move(j));
  }
  out["components"] = std::move(components);

  int bah = 0;
  double wasted = 0;
  Json instances = Json::array();
  for (const auto& [number, instance] : m_instances) {
    if (number <= 0) continue;
    bah += instance.bah;
    wasted += instance.wasted_s;
    std::int64_t from = instance.hello_ms.value_or(m_info.start_ms);
    std::int64_t to = instance.exit_ms.value_or(end_ms);
    double alive_s = std::max(0.0, static_cast<double>(to - from) / 1000.0);
    Json j;
    j["instance"] = number;
    j["started_s"] = instance.hello_ms ? Json(offset(*instance.hello_ms)) : Json(nullptr);
    j["exited_s"] = instance.exit_ms ? Json(offset(*instance.exit_ms)) : Json(nullptr);
    j["exit"] = instance.exit_status;
    j["busy_s"] = round3(instance.busy_s);
    j["idle_s"] = round3(std::max(0.0, alive_s - instance.busy_s));
    j["built"] = instance.built;
    j["bah"] = instance.bah;
    j["wasted_s"] = round3(instance.wasted_s);
    j["downloaded"] = instance.downloaded;
    j["uploaded"] = instance.pushed;
    j["uploads_failed"] = instance.push_failed;
    Json attempts = Json::array();
    for (const Attempt& a : instance.attempts)
      attempts.push_back({{"component", m_info.components[a.component].name},
                          {"start_s", offset(a.start_ms)},
                          {"end_s", offset(a.end_ms)},
                          {"outcome", a.outcome}});
    j["builds"] = std::move(attempts);
    Json bahs = Json::array();
    for (const auto& [component, at] : instance.bahs)
      bahs.push_back({{"component", m_info.components[component].name}, {"at_s", offset(at)}});
    j["lost_races"] = std::move(bahs);
    instances.push_back(std::move(j));
  }
  out["per_instance"] = std::move(instances);

  const double critical = critical_path_s();
  const double work = work_s();
  const double ideal = std::max(critical, work / std::max(1, m_info.instances));
  out["totals"] = {{"components", m_components.size()},
                   {"built", built},
                   {"cached_at_start", cached},
                   {"built_elsewhere", elsewhere},
                   {"downloaded", downloaded},
                   {"failed", failed},
                   {"skipped", skipped},
                   {"bah", bah},
                   {"wasted_s", round3(wasted)},
                   {"work_s", round3(work)}};
  out["critical_path_s"] = round3(critical);
  out["ideal_s"] = round3(ideal);
  out["efficiency"] = wall_s > 0 && built > 0 ? Json(round3(ideal / wall_s)) : Json(nullptr);
  return out.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace gang
