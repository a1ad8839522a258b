// stratum_test.hpp: the fixture of the end-to-end tests that build one
// stratum `s` (tests/gang/gang_process.hpp writes it) with the real gang
// binary: a temporary directory holding the definitions and the cache, the
// `gang build` arguments, the components' cache keys, and directory listings.
// component_keys() serves other end-to-end tests too.
#pragma once

#include <gtest/gtest.h>
#include <fcntl.h>

#include <map>
#include <string>
#include <vector>

#include "definitions/cache_key.hpp"
#include "gang/project.hpp"
#include "util/fs.hpp"

namespace gang::testing {

// name -> cache key for every component of `target` (a definition file's
// path), loaded as gang loads it with the cache at `cache`.
inline std::map<std::string, std::string> component_keys(const std::string& target,
                                                         const std::string& cache) {
  ProjectOptions options;
  options.target = target;
  options.cache_dir = cache;
  auto project = load_project(options, nullptr);
  EXPECT_TRUE(project) << project.error().to_string();
  if (!project) return {};
  UnresolvedSources none;
  EXPECT_TRUE(compute_keys(project->graph, none));
  std::map<std::string, std::string> out;
  for (const auto& c : project->graph.components) out[c.name] = c.cache_key.value_or("");
  return out;
}

class StratumTest : public ::testing::Test {
 protected:
  // prefix: the temporary directory's name prefix (kept when a test fails).
  explicit StratumTest(const std::string& prefix)
      : dir(prefix),
        defs(dir.path() + "/defs"),
        cache(dir.path() + "/cache"),
        target(defs + "/strata/s.morph") {}
  void TearDown() override {
    if (HasFailure()) dir.keep();
  }
  // `gang build` of the stratum with `instances` and --max-jobs 1, then `extra`.
  std::vector<std::string> build_args(int instances, std::vector<std::string> extra = {}) const {
    std::vector<std::string> args{"build", target, "--cache", cache, "--instances",
                                  std::to_string(instances), "--max-jobs", "1"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
  // name -> key for every component of the target.
  std::map<std::string, std::string> keys() const { return component_keys(target, cache); }
  // The names in directory `path` (none when it does not exist).
  static std::vector<std::string> entries(const std::string& path) {
    std::vector<std::string> out;
    Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0) return out;
    auto listed = read_dir(fd.get());
    EXPECT_TRUE(listed) << path;
    if (listed)
      for (const auto& e : *listed) out.push_back(e.name);
    return out;
  }

  TempDir dir;
  const std::string defs, cache;
  std::string target;  // the stratum, unless a test builds another target
};

}  // namespace gang::testing
