// The remote tier over fakes of the HTTP cache and of Redis, with real
// local caches: what is downloaded is verified and published like a build,
// what is uploaded goes content first, a corrupt or foreign entry is
// refused, and a server that is down or refuses writes never stops a gang.
#include "remote/remote_tier.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <thread>

#include "cache/artifact_cache.hpp"
#include "remote/action_result.hpp"
#include "util/fs.hpp"
#include "util/sha256.hpp"

namespace gang {
namespace {

using namespace std::chrono_literals;

// What a fake server holds; shared by every connection to it.
struct FakeServer {
  std::mutex mutex;
  std::map<std::string, std::string> ac, cas;
  std::vector<std::string> puts;  // "ac/<digest>" or "cas/<digest>", in order
  bool down = false;
  bool refuse_puts = false;
  int gets = 0;

  std::map<std::string, std::string>& area(RemoteArea a) { return a == RemoteArea::ac ? ac : cas; }
};

class FakeStore final : public RemoteStore {
 public:
  explicit FakeStore(std::shared_ptr<FakeServer> server) : m_server(std::move(server)) {}
  std::string describe() const override { return "http://fake"; }
  RemoteResult<bool> contains(RemoteArea area, const std::string& digest) override {
    std::lock_guard lock(m_server->mutex);
    if (m_server->down) return unreachable();
    return m_server->area(area).contains(digest);
  }
  RemoteResult<std::optional<std::string>> get(RemoteArea area, const std::string& digest,
                                               std::size_t max_bytes) override {
    std::lock_guard lock(m_server->mutex);
    if (m_server->down) return unreachable();
    ++m_server->gets;
    auto& m = m_server->area(area);
    auto it = m.find(digest);
    if (it == m.end()) return std::optional<std::string>();
    if (it->second.size() > max_bytes)
      return std::unexpected(RemoteError{RemoteError::Kind::corrupt, "too big"});
    return std::optional<std::string>(it->second);
  }
  RemoteResult<bool> get_to_fd(RemoteArea area, const std::string& digest, int fd,
                               std::uint64_t max_bytes, std::string* sha256) override {
    auto got = get(area, digest, max_bytes);
    if (!got) return std::unexpected(got.error());
    if (!*got) return false;
    EXPECT_EQ(::write(fd, (*got)->data(), (*got)->size()), static_cast<ssize_t>((*got)->size()));
    *sha256 = sha256_hex(**got);
    return true;
  }
  RemoteResult<void> put(RemoteArea area, const std::string& digest,
                         std::string_view bytes) override {
    std::lock_guard lock(m_server->mutex);
    if (m_server->down) return unreachable();
    if (m_server->refuse_puts)
      return std::unexpected(RemoteError{RemoteError::Kind::refused, "PUT: HTTP 401"});
    m_server->area(area)[digest] = std::string(bytes);
    m_server->puts.push_back((area == RemoteArea::ac ? "ac/" : "cas/") + digest);
    return {};
  }
  RemoteResult<void> put_file(RemoteArea area, const std::string& digest,
                              const std::string& path) override {
    auto bytes = read_file(path);
    EXPECT_TRUE(bytes) << path;
    return put(area, digest, bytes ? *bytes : "");
  }

 private:
  static std::unexpected<RemoteError> unreachable() {
    return std::unexpected(RemoteError{RemoteError::Kind::unreachable, "connection refused"});
  }
  std::shared_ptr<FakeServer> m_server;
};

struct FakeRedis {
  std::mutex mutex;
  std::map<std::string, std::string> leases;
  bool down = false;
};

class FakeLeases final : public LeaseService {
 public:
  FakeLeases(std::shared_ptr<FakeRedis> redis, std::string me)
      : m_redis(std::move(redis)), m_me(std::move(me)) {}
  std::string describe() const override { return "redis://fake"; }
  const std::string& me() const override { return m_me; }
  RemoteResult<LeaseReply> take(const std::string& key) override {
    std::lock_guard lock(m_redis->mutex);
    if (m_redis->down) return down();
    auto [it, inserted] = m_redis->leases.emplace(key, m_me);
    if (inserted) return LeaseReply{true, {}};
    return LeaseReply{false, it->second};
  }
  RemoteResult<std::optional<std::string>> peek(const std::string& key) override {
    std::lock_guard lock(m_redis->mutex);
    if (m_redis->down) return down();
    auto it = m_redis->leases.find(key);
    if (it == m_redis->leases.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  RemoteResult<bool> renew(const std::string& key) override {
    std::lock_guard lock(m_redis->mutex);
    if (m_redis->down) return down();
    auto it = m_redis->leases.find(key);
    return it != m_redis->leases.end() && it->second == m_me;
  }
  RemoteResult<void> release(const std::string& key) override { return release_dead(key, m_me); }
  RemoteResult<void> release_dead(const std::string& key, const std::string& value) override {
    std::lock_guard lock(m_redis->mutex);
    if (m_redis->down) return down();
    auto it = m_redis->leases.find(key);
    if (it != m_redis->leases.end() && it->second == value) m_redis->leases.erase(it);
    return {};
  }

 private:
  static std::unexpected<RemoteError> down() {
    return std::unexpected(RemoteError{RemoteError::Kind::unreachable, "Redis is down"});
  }
  std::shared_ptr<FakeRedis> m_redis;
  std::string m_me;
};

class RemoteTierTest : public ::testing::Test {
 protected:
  RemoteTierTest() {
    auto a = ArtifactCache::open(dir.path() + "/a");
    auto b = ArtifactCache::open(dir.path() + "/b");
    EXPECT_TRUE(a && b);
    cache_a.emplace(std::move(*a));
    cache_b.emplace(std::move(*b));
    options.retry_after_ms = 50;
  }

  std::unique_ptr<RemoteTier> tier(ArtifactCache& cache, const std::string& me) {
    auto s = server;
    auto r = redis;
    return std::make_unique<RemoteTier>(
        cache, options, [s] { return std::make_unique<FakeStore>(s); },
        [r, me] { return std::make_unique<FakeLeases>(r, me); });
  }

  // Publishes a small tree as key in cache: a plain file, an executable,
  // a symlink and a hard link.
  void publish(ArtifactCache& cache, const std::string& key, const std::string& salt = "") {
    std::string tree = dir.path() + "/tree-" + std::to_string(++trees);
    ASSERT_TRUE(make_dirs(tree + "/usr/bin"));
    ASSERT_TRUE(write_file_atomic(tree + "/usr/bin/tool", "#!/bin/sh\necho " + key + salt + "\n", 0755));
    ASSERT_TRUE(write_file_atomic(tree + "/usr/readme", "readme of " + key + salt + "\n", 0644));
    ASSERT_EQ(::symlink("tool", (tree + "/usr/bin/alias").c_str()), 0);
    ASSERT_EQ(::link((tree + "/usr/readme").c_str(), (tree + "/usr/readme2").c_str()), 0);
    ArtifactMeta meta;
    meta.built_by = cache.holder(1, "test");
    auto inserted = cache.insert(key, tree, meta);
    ASSERT_TRUE(inserted) << inserted.error().to_string();
  }

  std::string content_digest(const std::string& text) { return sha256_hex(text); }

  int trees = 0;
  TempDir dir{"gang-remote-test-"};
  std::optional<ArtifactCache> cache_a, cache_b;
  RemoteOptions options;
  std::shared_ptr<FakeServer> server = std::make_shared<FakeServer>();
  std::shared_ptr<FakeRedis> redis = std::make_shared<FakeRedis>();
};

TEST(ActionResult, RoundTripsAndRefusesWhatIsNotOne) {
  RemoteDigest d{std::string(64, 'a'), 1234};
  std::string bytes = encode_action_result(d);
  // field 2 (output_files), length-delimited: the wire format Bazel reads.
  ASSERT_FALSE(bytes.empty());
  EXPECT_EQ(static_cast<unsigned char>(bytes[0]), 0x12);
  auto back = decode_action_result(bytes);
  ASSERT_TRUE(back);
  EXPECT_EQ(back->hash, d.hash);
  EXPECT_EQ(back->size, 1234);
  // Unknown fields before and after (exit_code = 4, a varint) are skipped.
  std::string extended = std::string("\x20\x00", 2) + bytes + std::string("\x20\x01", 2);
  ASSERT_TRUE(decode_action_result(extended));
  EXPECT_FALSE(decode_action_result("garbage that is not protobuf \xff\xff\xff"));
  EXPECT_FALSE(decode_action_result(bytes.substr(0, bytes.size() - 3)));  // truncated
  EXPECT_FALSE(decode_action_result(encode_action_result({"not-hex", 1})));
  EXPECT_FALSE(decode_action_result(""));
  EXPECT_NE(action_digest("a.1"), action_digest("a.2"));
  EXPECT_EQ(action_digest("a.1").size(), 64u);
}

TEST(RemoteOptionsTest, UrlsCarryNoCredentials) {
  EXPECT_EQ(*normalise_cache_url("http://cache.example:8080/gang/"), "http://cache.example:8080/gang");
  EXPECT_TRUE(normalise_cache_url("https://cache.example"));
  auto with_password = normalise_cache_url("http://user:secret@cache.example/");
  ASSERT_FALSE(with_password);
  EXPECT_EQ(with_password.error().message.find("secret"), std::string::npos);
  EXPECT_FALSE(normalise_cache_url("ftp://cache.example"));
  EXPECT_FALSE(normalise_cache_url("http://"));
  EXPECT_FALSE(normalise_cache_url("http://host/a?b=c"));
  auto redis = parse_redis_url("redis://10.0.0.1:6380/2");
  ASSERT_TRUE(redis);
  EXPECT_EQ(redis->host, "10.0.0.1");
  EXPECT_EQ(redis->port, 6380);
  EXPECT_EQ(redis->db, 2);
  EXPECT_EQ(parse_redis_url("redis://localhost")->port, 6379);
  EXPECT_FALSE(parse_redis_url("redis://:pw@localhost"));
  EXPECT_FALSE(parse_redis_url("http://localhost"));
  EXPECT_FALSE(parse_redis_url("redis://host:99999"));
}

TEST(RemoteOptionsTest, CredentialsFiles) {
  TempDir dir{"gang-creds-"};
  ASSERT_TRUE(write_file_atomic(dir.path() + "/basic", "\n  builder:s3cret  \n", 0600));
  ASSERT_TRUE(write_file_atomic(dir.path() + "/bearer", "Bearer tok123\n", 0600));
  ASSERT_TRUE(write_file_atomic(dir.path() + "/bad", "justaword\n", 0600));
  auto basic = read_credentials(dir.path() + "/basic");
  ASSERT_TRUE(basic);
  EXPECT_EQ(basic->kind, Credentials::Kind::basic);
  EXPECT_EQ(basic->secret, "builder:s3cret");
  auto bearer = read_credentials(dir.path() + "/bearer");
  ASSERT_TRUE(bearer);
  EXPECT_EQ(bearer->kind, Credentials::Kind::bearer);
  EXPECT_EQ(bearer->secret, "tok123");
  auto bad = read_credentials(dir.path() + "/bad");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().message.find("justaword"), std::string::npos);  // never echoes a secret
  EXPECT_FALSE(read_credentials(dir.path() + "/missing"));
}

TEST_F(RemoteTierTest, WhatOneHostPushesAnotherDownloadsIntact) {
  publish(*cache_a, "thing.1");
  auto a = tier(*cache_a, "host-a:1:x");
  a->push("thing.1");
  EXPECT_EQ(a->finish(5000), 0u);
  auto reports = a->take_push_reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_TRUE(reports[0].ok) << reports[0].error;
  // Content first, the /ac/ entry last.
  ASSERT_FALSE(server->puts.empty());
  EXPECT_EQ(server->puts.back(), "ac/" + action_digest("thing.1"));
  for (std::size_t i = 0; i + 1 < server->puts.size(); ++i)
    EXPECT_TRUE(server->puts[i].starts_with("cas/")) << server->puts[i];

  auto b = tier(*cache_b, "host-b:1:y");
  PullResult pulled = b->pull("thing.1");
  EXPECT_EQ(pulled.kind, PullResult::Kind::downloaded) << pulled.detail;
  ASSERT_TRUE(cache_b->contains("thing.1"));
  std::string out = dir.path() + "/staged";
  ASSERT_TRUE(cache_b->stage("thing.1", out, StageMode::copy));
  EXPECT_EQ(*read_file(out + "/usr/bin/tool"), "#!/bin/sh\necho thing.1\n");
  EXPECT_EQ(*read_file(out + "/usr/readme2"), "readme of thing.1\n");
  struct stat st;
  ASSERT_EQ(::stat((out + "/usr/bin/tool").c_str(), &st), 0);
  EXPECT_TRUE(st.st_mode & 0100);
  char target[16] = {};
  ASSERT_GT(::readlink((out + "/usr/bin/alias").c_str(), target, sizeof target - 1), 0);
  EXPECT_STREQ(target, "tool");
  auto info = cache_b->lookup("thing.1");
  ASSERT_TRUE(info && *info);
  EXPECT_EQ((*info)->meta.extra.at("downloaded_from"), "http://fake");
  EXPECT_EQ((*info)->meta.built_by.instance, 1);  // as the builder recorded it
  EXPECT_TRUE(cache_b->verify()->ok());
  // A second pull finds it local: nothing is fetched again.
  EXPECT_EQ(b->pull("thing.1").kind, PullResult::Kind::already_present);
  EXPECT_EQ(b->pull("other.1").kind, PullResult::Kind::miss);
}

TEST_F(RemoteTierTest, WhatWasCachedBeforeIsOfferedOnlyIfTheRemoteLacksIt) {
  publish(*cache_a, "old.1");
  publish(*cache_a, "old.2");
  auto a = tier(*cache_a, "host-a:1:x");
  a->push("old.2");
  ASSERT_EQ(a->finish(5000), 0u);
  (void)a->take_push_reports();
  std::size_t puts = server->puts.size();
  a->push_if_missing("old.2");  // the remote has it: only a HEAD
  a->push_if_missing("old.1");  // it does not: uploaded
  // (finish() would drop offers not yet made: wait for the upload itself)
  std::vector<PushReport> reports;
  for (int i = 0; i < 500 && reports.empty(); ++i) {
    std::this_thread::sleep_for(10ms);
    reports = a->take_push_reports();
  }
  ASSERT_EQ(a->finish(5000), 0u);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].key, "old.1");
  std::lock_guard lock(server->mutex);
  EXPECT_TRUE(server->ac.contains(action_digest("old.1")));
  EXPECT_GT(server->puts.size(), puts);
  EXPECT_EQ(server->puts.back(), "ac/" + action_digest("old.1"));
}

TEST_F(RemoteTierTest, ACorruptBlobIsRefusedNeverStagedAndRepairedByTheNextUpload) {
  publish(*cache_a, "thing.1");
  auto a = tier(*cache_a, "host-a:1:x");
  a->push("thing.1");
  ASSERT_EQ(a->finish(5000), 0u);
  std::string readme = content_digest("readme of thing.1\n");
  ASSERT_TRUE(server->cas.contains(readme));
  server->cas[readme][0] ^= 0x20;  // bytes flipped on the server

  auto b = tier(*cache_b, "host-b:1:y");
  PullResult pulled = b->pull("thing.1");
  EXPECT_EQ(pulled.kind, PullResult::Kind::refused_corrupt);
  EXPECT_NE(pulled.detail.find("corrupt"), std::string::npos) << pulled.detail;
  EXPECT_FALSE(cache_b->contains("thing.1"));
  // Nothing in b's store carries the right name with the wrong bytes.
  std::string path = cache_b->blob_path(BlobId{readme, false});
  if (path_exists(path)) {
    EXPECT_EQ(*sha256_file(path), readme);
  }
  auto messages = b->take_messages();
  ASSERT_FALSE(messages.empty());
  EXPECT_NE(messages[0].find("refused"), std::string::npos) << messages[0];

  // b builds it itself and uploads: the known-bad blob goes up again even
  // though the server says it has it.
  publish(*cache_b, "thing.1", "");
  b->push("thing.1");
  ASSERT_EQ(b->finish(5000), 0u);
  EXPECT_EQ(sha256_hex(server->cas[readme]), readme);
}

TEST_F(RemoteTierTest, AnEntryNamingAnotherArtifactsManifestIsRefused) {
  publish(*cache_a, "thing.1");
  auto a = tier(*cache_a, "host-a:1:x");
  a->push("thing.1");
  ASSERT_EQ(a->finish(5000), 0u);
  // A confused (or hostile) writer points other.1's entry at thing.1's manifest.
  server->ac[action_digest("other.1")] = server->ac[action_digest("thing.1")];
  auto b = tier(*cache_b, "host-b:1:y");
  PullResult pulled = b->pull("other.1");
  EXPECT_EQ(pulled.kind, PullResult::Kind::refused_corrupt);
  EXPECT_FALSE(cache_b->contains("other.1"));
  server->ac[action_digest("junk.1")] = "not an action result";
  EXPECT_EQ(b->pull("junk.1").kind, PullResult::Kind::refused_corrupt);
  // An entry whose blob is gone from the server is a miss, nothing published.
  std::string readme = content_digest("readme of thing.1\n");
  server->cas.erase(readme);
  EXPECT_EQ(b->pull("thing.1").kind, PullResult::Kind::miss);
  EXPECT_FALSE(cache_b->contains("thing.1"));
}

TEST_F(RemoteTierTest, ADownServerIsLoggedOnceAndTriedAgainLater) {
  server->down = true;
  auto b = tier(*cache_b, "host-b:1:y");
  EXPECT_EQ(b->pull("thing.1").kind, PullResult::Kind::unavailable);
  int gets = server->gets;
  EXPECT_EQ(b->pull("thing.2").kind, PullResult::Kind::unavailable);  // not even asked
  EXPECT_EQ(server->gets, gets);
  auto messages = b->take_messages();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_NE(messages[0].find("unavailable"), std::string::npos);
  EXPECT_NE(messages[0].find("carrying on locally"), std::string::npos);
  std::this_thread::sleep_for(80ms);  // retry_after_ms is 50 here
  server->down = false;
  EXPECT_EQ(b->pull("thing.3").kind, PullResult::Kind::miss);
  messages = b->take_messages();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_NE(messages[0].find("is back"), std::string::npos);
  // Redis down: leases are off, building goes on.
  redis->down = true;
  EXPECT_EQ(b->take_lease("thing.3").kind, LeaseResult::Kind::unavailable);
  EXPECT_FALSE(b->peek_lease("thing.3"));
}

TEST_F(RemoteTierTest, RefusedUploadsStopForTheRunAndReleaseTheLease) {
  server->refuse_puts = true;
  publish(*cache_a, "thing.1");
  publish(*cache_a, "thing.2");
  auto a = tier(*cache_a, "host-a:1:x");
  ASSERT_EQ(a->take_lease("thing.1").kind, LeaseResult::Kind::won);
  a->push("thing.1");
  a->push("thing.2");
  EXPECT_EQ(a->finish(5000), 0u);
  auto reports = a->take_push_reports();
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_FALSE(reports[0].ok);
  EXPECT_FALSE(reports[1].ok);
  auto messages = a->take_messages();
  ASSERT_EQ(messages.size(), 1u);
  EXPECT_NE(messages[0].find("refused an upload"), std::string::npos);
  EXPECT_TRUE(server->ac.empty());
  EXPECT_FALSE(redis->leases.contains("thing.1"));
}

TEST_F(RemoteTierTest, LeasesExcludeOtherHostsUntilTheUploadIsUp) {
  publish(*cache_a, "thing.1");
  auto a = tier(*cache_a, "host-a:11:x");
  auto b = tier(*cache_b, "host-b:22:y");
  EXPECT_EQ(a->take_lease("thing.1").kind, LeaseResult::Kind::won);
  LeaseResult held = b->take_lease("thing.1");
  EXPECT_EQ(held.kind, LeaseResult::Kind::held);
  EXPECT_EQ(held.holder, "pid 11 on host host-a");
  EXPECT_EQ(b->peek_lease("thing.1"), "pid 11 on host host-a");
  EXPECT_FALSE(a->peek_lease("thing.1"));  // one's own lease is no obstacle
  EXPECT_TRUE(a->renew_lease("thing.1", nullptr));
  a->push("thing.1");
  ASSERT_EQ(a->finish(5000), 0u);
  // Released only after the upload: whoever takes it next finds the artifact.
  EXPECT_FALSE(b->peek_lease("thing.1"));
  EXPECT_EQ(b->pull("thing.1").kind, PullResult::Kind::downloaded);
  // A dead holder on this machine (a killed worker) loses its lease at
  // once; a live one, or one on another host, keeps it.
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  b->set_host("host-b");
  redis->leases["thing.3"] = "host-b:" + std::to_string(child) + ":dead";
  EXPECT_FALSE(b->peek_lease("thing.3"));
  EXPECT_FALSE(redis->leases.contains("thing.3"));
  redis->leases["thing.4"] = "host-b:" + std::to_string(::getpid()) + ":alive";
  EXPECT_TRUE(b->peek_lease("thing.4"));
  redis->leases["thing.5"] = "host-c:" + std::to_string(child) + ":elsewhere";
  EXPECT_TRUE(b->peek_lease("thing.5"));
  // A lease lost to another host: renew says so, and who.
  EXPECT_EQ(a->take_lease("thing.2").kind, LeaseResult::Kind::won);
  redis->leases["thing.2"] = "host-c:33:z";
  std::string now_held;
  EXPECT_FALSE(a->renew_lease("thing.2", &now_held));
  EXPECT_EQ(now_held, "pid 33 on host host-c");
}

}  // namespace
}  // namespace gang
