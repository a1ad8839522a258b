#include "gang/config.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>

#include "definitions/arch.hpp"
#include "tests/gang/gang_process.hpp"
#include "util/fs.hpp"

namespace gang {
namespace {

// Sets environment variables for one test and restores them afterwards.
class ScopedEnv {
 public:
  void set(const char* name, const char* value) {
    const char* old = std::getenv(name);
    m_saved.emplace_back(name, old ? std::optional<std::string>(old) : std::nullopt);
    if (value) ::setenv(name, value, 1); else ::unsetenv(name);
  }
  ~ScopedEnv() {
    for (auto it = m_saved.rbegin(); it != m_saved.rend(); ++it) {
      if (it->second) ::setenv(it->first.c_str(), it->second->c_str(), 1);
      else ::unsetenv(it->first.c_str());
    }
  }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> m_saved;
};

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {"GANG_CACHE", "GANG_INSTANCES", "GANG_MAX_JOBS", "GANG_ARCH",
                             "GANG_OFFLINE", "GANG_BASE", "GANG_STRICT", "GANG_ALIASES",
                             "GANG_REMOTE_CACHE", "GANG_REMOTE_CREDENTIALS", "GANG_REMOTE_NETRC",
                             "GANG_REMOTE_PUSH", "GANG_REDIS", "GANG_REDIS_CREDENTIALS"})
      env.set(name, nullptr);
  }
  TempDir dir{"gang-config-test-"};
  ScopedEnv env;
};

TEST_F(ConfigTest, DefaultsToXdgCacheHomeAndOneInstance) {
  env.set("XDG_CACHE_HOME", "/var/tmp/xdg");
  auto config = load_config(dir.path());
  ASSERT_TRUE(config);
  EXPECT_EQ(config->cache_dir, "/var/tmp/xdg/gang");
  EXPECT_EQ(config->instances, "1");
  // ybd's default aliases are built in.
  EXPECT_EQ(config->aliases, default_aliases());
  EXPECT_EQ(config->aliases.at("upstream"), "git://git.baserock.org/delta/");
  EXPECT_EQ(config->aliases.at("baserock"), "git://git.baserock.org/baserock/");
  for (const char* name : {"freedesktop", "github", "gnome"})
    EXPECT_TRUE(config->aliases.contains(name)) << name;
  env.set("XDG_CACHE_HOME", nullptr);
  env.set("HOME", "/home/someone");
  EXPECT_EQ(load_config("")->cache_dir, "/home/someone/.cache/gang");
}

TEST_F(ConfigTest, ReadsGangConfAndEnvironmentWins) {
  ASSERT_TRUE(write_file_atomic(dir.path() + "/gang.conf",
                                "cache: /srv/cache\ninstances: 3\nmax-jobs: 6\narch: armv8l64\n"
                                "aliases:\n  upstream: https://example.org/git/\n"));
  auto from_file = load_config(dir.path());
  ASSERT_TRUE(from_file) << from_file.error().to_string();
  EXPECT_EQ(from_file->cache_dir, "/srv/cache");
  EXPECT_EQ(from_file->instances, "3");
  EXPECT_EQ(from_file->max_jobs, 6);
  EXPECT_EQ(from_file->arch, "armv8l64");
  EXPECT_EQ(from_file->aliases.at("upstream"), "https://example.org/git/");
  EXPECT_EQ(from_file->aliases.at("gnome"), "git://git.gnome.org/");  // the rest stay built in

  env.set("GANG_INSTANCES", "4");
  env.set("GANG_MAX_JOBS", "2");
  env.set("GANG_ALIASES", "baserock=file:///mirror/,upstream=file:///up/");
  auto merged = load_config(dir.path());
  ASSERT_TRUE(merged);
  EXPECT_EQ(merged->instances, "4");
  EXPECT_EQ(merged->max_jobs, 2);
  EXPECT_EQ(merged->aliases.at("upstream"), "file:///up/");
  EXPECT_EQ(merged->aliases.at("baserock"), "file:///mirror/");
}

TEST_F(ConfigTest, BadValuesNameTheFileLineAndField) {
  ASSERT_TRUE(write_file_atomic(dir.path() + "/gang.conf", "instances: 2\nmax-jobs: lots\n"));
  auto config = load_config(dir.path());
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error().line, 2);
  EXPECT_EQ(config.error().field, "max-jobs");
  EXPECT_NE(config.error().to_string().find("gang.conf:2"), std::string::npos);

  ASSERT_TRUE(write_file_atomic(dir.path() + "/gang.conf", "instanses: 2\n"));
  auto unknown = load_config(dir.path());
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("unknown setting \"instanses\""), std::string::npos);

  ASSERT_TRUE(write_file_atomic(dir.path() + "/gang.conf", "instances: [1\n"));
  EXPECT_FALSE(load_config(dir.path()));

  ASSERT_TRUE(write_file_atomic(dir.path() + "/gang.conf", "instances: 2\n"));
  env.set("GANG_MAX_JOBS", "-3");
  auto bad_env = load_config(dir.path());
  ASSERT_FALSE(bad_env);
  EXPECT_NE(bad_env.error().message.find("GANG_MAX_JOBS"), std::string::npos);
}

TEST_F(ConfigTest, RemoteSettingsFromGangConfAndEnvironment) {
  auto none = load_config(dir.path());
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->remote.any());
  ASSERT_TRUE(write_file_atomic(dir.path() + "/gang.conf",
                                "remote-cache: http://cache.example:8080/gang/\n"
                                "remote-credentials: secrets/remote\n"
                                "remote-push: false\nremote-connect-timeout: 0.5\n"
                                "remote-timeout: 20\nredis: redis://10.0.0.2:6380\n"
                                "lease-time: 90\n"));
  auto config = load_config(dir.path());
  ASSERT_TRUE(config) << config.error().to_string();
  EXPECT_EQ(config->remote.cache_url, "http://cache.example:8080/gang");
  EXPECT_EQ(config->remote.credentials_file, dir.path() + "/secrets/remote");
  EXPECT_FALSE(config->remote.push);
  EXPECT_EQ(config->remote.connect_timeout_ms, 500);
  EXPECT_EQ(config->remote.timeout_ms, 20000);
  EXPECT_EQ(config->remote.redis_url, "redis://10.0.0.2:6380");
  EXPECT_EQ(config->remote.lease_ms, 90000);
  env.set("GANG_REMOTE_CACHE", "https://other.example");
  env.set("GANG_REMOTE_PUSH", "yes");
  auto merged = load_config(dir.path());
  ASSERT_TRUE(merged);
  EXPECT_EQ(merged->remote.cache_url, "https://other.example");
  EXPECT_TRUE(merged->remote.push);

  // A password in the URL is refused where it was written, and not echoed.
  env.set("GANG_REMOTE_CACHE", nullptr);
  ASSERT_TRUE(write_file_atomic(dir.path() + "/gang.conf",
                                "instances: 2\nremote-cache: http://me:hunter2@cache.example/\n"));
  auto leaky = load_config(dir.path());
  ASSERT_FALSE(leaky);
  EXPECT_EQ(leaky.error().line, 2);
  EXPECT_EQ(leaky.error().field, "remote-cache");
  EXPECT_EQ(leaky.error().to_string().find("hunter2"), std::string::npos);
  ASSERT_TRUE(write_file_atomic(dir.path() + "/gang.conf", "remote-timeout: soon\n"));
  EXPECT_FALSE(load_config(dir.path()));
  ASSERT_TRUE(write_file_atomic(dir.path() + "/gang.conf", "instances: 1\n"));
  env.set("GANG_REDIS", "redis://:pw@host");
  auto bad_env = load_config(dir.path());
  ASSERT_FALSE(bad_env);
  EXPECT_NE(bad_env.error().message.find("GANG_REDIS"), std::string::npos);
}

TEST_F(ConfigTest, InstancesAutoFollowsYbdsRule) {
  long cores = ::sysconf(_SC_NPROCESSORS_ONLN);
  EXPECT_EQ(*resolve_instances("auto"), 1 + static_cast<int>(cores) / 10);
  EXPECT_EQ(*resolve_instances("8"), 8);
  EXPECT_FALSE(resolve_instances("0"));
  EXPECT_FALSE(resolve_instances("many"));
  EXPECT_EQ(resolve_max_jobs(3), 3);
  EXPECT_EQ(resolve_max_jobs(0), static_cast<int>(cores));
}

TEST_F(ConfigTest, YbdStyleCommandLineAndEnvironmentDriveABuild) {
  std::string defs = dir.path() + "/defs";
  testing::write_tree(defs, {{"one", {}, 0}});
  std::string cache = dir.path() + "/cache";
  env.set("GANG_CACHE", cache.c_str());
  env.set("GANG_INSTANCES", "2");
  // gang TARGET ARCH, with no subcommand, is gang build (ybd compatibility).
  auto run = testing::run_gang({defs + "/strata/s.morph", host_arch()}, dir.path());
  EXPECT_EQ(run.status, 0) << run.output;
  EXPECT_NE(run.output.find("gang of 2 instances"), std::string::npos) << run.output;
  EXPECT_TRUE(path_exists(cache + "/index")) << "GANG_CACHE chose the cache";
  auto flags_win = testing::run_gang({defs + "/strata/s.morph", host_arch(), "--instances", "1"}, dir.path());
  EXPECT_EQ(flags_win.status, 0);
  EXPECT_NE(flags_win.output.find("gang of 1 instance "), std::string::npos) << flags_win.output;
}

}  // namespace
}  // namespace gang
