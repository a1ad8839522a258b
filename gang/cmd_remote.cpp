// gang remote check: is the remote tier set up right? With the settings a
// build would use (gang.conf in --definitions, GANG_* variables, flags), it
// asks the remote cache for an entry that does not exist (reachable, reads
// allowed), uploads a small probe blob and reads it back (credentials, and a
// server that returns what it was given), and takes and releases a Redis
// lease. Each check prints one line (or a JSON object); exit 0 when all pass.
#include <cxxopts.hpp>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "gang/cli.hpp"
#include "gang/commands.hpp"
#include "gang/config.hpp"
#include "remote/http_cache.hpp"
#include "remote/redis_leases.hpp"
#include "util/sha256.hpp"

namespace gang {

namespace {

struct Check {
  std::string name;
  bool ok = false;
  std::string detail;
  double ms = 0;
};

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "localhost";
  return name;
}

}  // namespace

int cmd_remote(const Args& args) {
  cxxopts::Options options("gang remote", "Check the remote cache and Redis settings.");
  options.positional_help("check");
  options.add_options()
      ("action", "check", cxxopts::value<std::string>())
      ("definitions", "where gang.conf is (default: .)", cxxopts::value<std::string>())
      ("remote-cache", "the remote cache URL (overrides the settings)", cxxopts::value<std::string>())
      ("redis", "the Redis URL (overrides the settings)", cxxopts::value<std::string>())
      ("json", "print the checks as a JSON object")
      ("h,help", "print this help");
  options.parse_positional({"action"});
  auto result = parse_options(options, args);
  if (!result) return result.error();
  const cxxopts::ParseResult& parsed = *result;
  if (!parsed.count("action") || parsed["action"].as<std::string>() != "check") {
    std::fputs("gang: error: usage: gang remote check [--definitions DIR] [--json]\n", stderr);
    return 2;
  }
  auto config = load_config(parsed.count("definitions") ? parsed["definitions"].as<std::string>() : ".");
  if (!config) {
    std::fprintf(stderr, "gang: error: %s\n", config.error().to_string().c_str());
    return 2;
  }
  RemoteOptions remote = config->remote;
  if (parsed.count("remote-cache")) {
    auto url = normalise_cache_url(parsed["remote-cache"].as<std::string>());
    if (!url) {
      std::fprintf(stderr, "gang: error: --remote-cache: %s\n", url.error().message.c_str());
      return 2;
    }
    remote.cache_url = *url;
  }
  if (parsed.count("redis")) remote.redis_url = parsed["redis"].as<std::string>();
  if (!remote.any()) {
    std::fputs("gang: error: no remote cache and no Redis configured (remote-cache, redis in "
               "gang.conf; GANG_REMOTE_CACHE, GANG_REDIS; --remote-cache, --redis)\n", stderr);
    return 2;
  }

  std::vector<Check> checks;
  auto timed = [&](const std::string& name, auto&& fn) {
    auto start = std::chrono::steady_clock::now();
    Check c{name, false, {}, 0};
    fn(c);
    c.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    checks.push_back(std::move(c));
    return checks.back().ok;
  };
  if (!remote.cache_url.empty()) {
    auto store = HttpCache::open(remote);
    if (!store) {
      checks.push_back({"remote cache " + remote.cache_url, false, store.error().to_string(), 0});
    } else {
      HttpCache& s = **store;
      std::string probe = "gang remote check from " + host_name() + " at " +
                          std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
      std::string digest = sha256_hex(probe);
      bool reachable = timed("read " + s.describe(), [&](Check& c) {
        auto got = s.get(RemoteArea::ac, sha256_hex("gang remote check: absent " + probe), 1024);
        c.ok = got && !*got;
        c.detail = !got ? got.error().message : *got ? "an entry that cannot exist was found" : "a miss, as it should be";
      });
      if (reachable && remote.push) {
        bool put = timed("upload (credentials)", [&](Check& c) {
          auto r = s.put(RemoteArea::cas, digest, probe);
          c.ok = r.has_value();
          c.detail = r ? "accepted" : r.error().message;
        });
        if (put)
          timed("read back what was uploaded", [&](Check& c) {
            auto got = s.get(RemoteArea::cas, digest, probe.size() + 1);
            c.ok = got && *got && **got == probe;
            c.detail = !got ? got.error().message : !*got ? "missing after the upload" : c.ok ? "identical" : "different bytes came back";
          });
      }
    }
  }
  if (!remote.redis_url.empty()) {
    std::string me = lease_value(host_name());
    auto leases = RedisLeases::open(remote, me);
    if (!leases) {
      checks.push_back({"Redis " + remote.redis_url, false, leases.error().to_string(), 0});
    } else {
      std::string key = "gang-remote-check:" + me;
      timed("lease on " + (*leases)->describe(), [&](Check& c) {
        auto taken = (*leases)->take(key);
        if (!taken) {
          c.detail = taken.error().message;
          return;
        }
        auto renewed = (*leases)->renew(key);
        auto released = (*leases)->release(key);
        auto after = (*leases)->peek(key);
        c.ok = taken->won && renewed && *renewed && released && after && !*after;
        c.detail = c.ok ? "taken, renewed and released" : "the lease did not behave (taken " +
                              std::string(taken->won ? "yes" : "no") + ")";
      });
    }
  }
  bool all = true;
  for (const auto& c : checks) all &= c.ok;
  if (parsed.count("json")) {
    nlohmann::ordered_json out;
    out["ok"] = all;
    out["checks"] = nlohmann::ordered_json::array();
    for (const auto& c : checks)
      out["checks"].push_back({{"check", c.name}, {"ok", c.ok}, {"detail", c.detail}, {"ms", c.ms}});
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    for (const auto& c : checks)
      std::printf("%-4s %-48s %7.1f ms  %s\n", c.ok ? "ok" : "FAIL", c.name.c_str(), c.ms,
                  c.detail.c_str());
  }
  return all ? 0 : 1;
}

}  // namespace gang
