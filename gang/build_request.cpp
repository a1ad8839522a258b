#include "gang/build_request.hpp"

#include <nlohmann/json.hpp>

#include <cstdio>

#include "gang/cli.hpp"

namespace gang {

std::vector<std::string> BuildRequest::to_argv() const {
  std::vector<std::string> argv{target};
  auto add = [&](const char* flag, const std::string& value) {
    if (value.empty()) return;
    argv.push_back(std::string("--") + flag);
    argv.push_back(value);
  };
  add("definitions", definitions);
  add("arch", arch);
  add("cache", cache_dir);
  if (base) {
    argv.push_back("--base");
    argv.push_back(*base);
  }
  if (max_jobs) add("max-jobs", std::to_string(*max_jobs));
  add("remote-cache", remote_cache);
  add("redis", redis);
  if (retry_failed_before_ms) add("retry-failed-before", std::to_string(*retry_failed_before_ms));
  add("gang-id", gang_id);
  add("pins", pins_file);
  for (auto [flag, on] : {std::pair{"offline", offline}, std::pair{"strict", strict},
                          std::pair{"verify", verify}, std::pair{"no-remote-push", no_remote_push}})
    if (on) argv.push_back(std::string("--") + flag);
  add("instance", std::to_string(instance));
  add("seed", std::to_string(seed));
  if (events_fd >= 0) add("events-fd", std::to_string(events_fd));
  return argv;
}

std::expected<BuildRequest, int> BuildRequest::parse(const Args& args) {
  cxxopts::Options options("gang worker", "One gang instance (started by gang build).");
  options.add_options()
      ("target", "", cxxopts::value<std::string>())
      ("arch", "", cxxopts::value<std::string>())
      ("max-jobs", "", cxxopts::value<int>())
      ("cache", "", cxxopts::value<std::string>())
      ("definitions", "", cxxopts::value<std::string>())
      ("base", "", cxxopts::value<std::string>())
      ("offline", "")
      ("remote-cache", "", cxxopts::value<std::string>())
      ("redis", "", cxxopts::value<std::string>())
      ("no-remote-push", "")
      ("strict", "")
      ("verify", "")
      ("retry-failed-before", "", cxxopts::value<std::int64_t>())
      ("pins", "the frontend's resolved sources (a JSON file)", cxxopts::value<std::string>())
      ("instance", "", cxxopts::value<int>()->default_value("1"))
      ("seed", "", cxxopts::value<std::uint64_t>()->default_value("0"))
      ("events-fd", "", cxxopts::value<int>()->default_value("-1"))
      ("gang-id", "", cxxopts::value<std::string>()->default_value(""))
      ("h,help", "");
  options.parse_positional({"target"});
  auto result = parse_options(options, args);
  if (!result) return std::unexpected(result.error());
  const cxxopts::ParseResult& parsed = *result;
  if (!parsed.count("target")) {
    std::fputs("gang: error: gang worker needs a TARGET\n", stderr);
    return std::unexpected(2);
  }
  auto text = [&](const char* flag) {
    return parsed.count(flag) ? parsed[flag].as<std::string>() : std::string();
  };
  BuildRequest r;
  r.target = text("target");
  r.definitions = text("definitions");
  r.arch = text("arch");
  r.cache_dir = text("cache");
  if (parsed.count("base")) r.base = text("base");
  if (parsed.count("max-jobs")) r.max_jobs = parsed["max-jobs"].as<int>();
  r.offline = parsed.count("offline") > 0;
  r.strict = parsed.count("strict") > 0;
  r.verify = parsed.count("verify") > 0;
  r.remote_cache = text("remote-cache");
  r.redis = text("redis");
  r.no_remote_push = parsed.count("no-remote-push") > 0;
  if (parsed.count("retry-failed-before"))
    r.retry_failed_before_ms = parsed["retry-failed-before"].as<std::int64_t>();
  r.gang_id = parsed["gang-id"].as<std::string>();
  r.pins_file = text("pins");
  r.instance = parsed["instance"].as<int>();
  r.seed = parsed["seed"].as<std::uint64_t>();
  r.events_fd = parsed["events-fd"].as<int>();
  return r;
}

std::string SourcePins::encode() const {
  nlohmann::ordered_json out;
  out["target_key"] = target_key;
  out["sources"] = nlohmann::ordered_json::array();
  for (const auto& [where, source] : sources)
    out["sources"].push_back({{"repo", where.first},
                              {"ref", where.second},
                              {"commit", source.commit},
                              {"tree", source.tree},
                              {"commit_time", source.commit_time}});
  return out.dump(1) + "\n";
}

Result<SourcePins> SourcePins::decode(const std::string& text, const std::string& origin) {
  auto bad = [&](const std::string& what) { return make_error(origin + ": " + what); };
  auto json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) return bad("not a JSON object");
  SourcePins pins;
  auto key = json.find("target_key");
  if (key == json.end() || !key->is_string()) return bad("no \"target_key\" string");
  pins.target_key = key->get<std::string>();
  auto sources = json.find("sources");
  if (sources == json.end() || !sources->is_array()) return bad("no \"sources\" array");
  std::size_t index = 0;
  for (const auto& s : *sources) {
    std::string at = "sources[" + std::to_string(index++) + "]";
    if (!s.is_object()) return bad(at + " is not an object");
    std::string fields[4];
    const char* names[4] = {"repo", "ref", "commit", "tree"};
    for (int i = 0; i < 4; ++i) {
      auto f = s.find(names[i]);
      if (f == s.end() || !f->is_string()) return bad(at + " has no \"" + names[i] + "\" string");
      fields[i] = f->get<std::string>();
    }
    auto time = s.find("commit_time");
    if (time == s.end() || !time->is_number_integer())
      return bad(at + " has no \"commit_time\" integer");
    pins.sources[{fields[0], fields[1]}] =
        ResolvedSource{fields[2], fields[3], time->get<std::int64_t>()};
  }
  return pins;
}

Result<std::optional<ResolvedSource>> PinnedSourceResolver::resolve(const std::string& repo,
                                                                    const std::string& ref) {
  if (auto it = m_pins.sources.find({repo, ref}); it != m_pins.sources.end())
    return std::optional<ResolvedSource>{it->second};
  return m_fallback.resolve(repo, ref);
}

}  // namespace gang
