// The real network clients: RedisLeases against a real redis-server started
// here (skipped where redis-server is not installed), and both clients
// against a server that accepts connections but never answers: every call
// returns within its timeout, as `unreachable`.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "remote/http_cache.hpp"
#include "remote/redis_leases.hpp"
#include "util/fs.hpp"

namespace gang {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A TCP socket listening on 127.0.0.1 that never accepts: connections
// complete (the kernel's backlog) and then nothing is ever said.
class SilentServer {
 public:
  SilentServer() {
    m_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(m_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    EXPECT_EQ(::listen(m_fd, 16), 0);
    socklen_t len = sizeof addr;
    ::getsockname(m_fd, reinterpret_cast<sockaddr*>(&addr), &len);
    m_port = ntohs(addr.sin_port);
  }
  ~SilentServer() { ::close(m_fd); }
  [[nodiscard]] int port() const { return m_port; }

 private:
  int m_fd = -1;
  int m_port = 0;
};

int free_port() {
  SilentServer s;
  return s.port();  // closed again when s goes: nothing listens there
}

TEST(NetworkClients, ASilentHttpServerTimesOut) {
  SilentServer silent;
  RemoteOptions options;
  options.cache_url = "http://127.0.0.1:" + std::to_string(silent.port());
  options.timeout_ms = 300;
  auto store = HttpCache::open(options);
  ASSERT_TRUE(store) << store.error().to_string();
  auto start = Clock::now();
  auto got = (*store)->get(RemoteArea::ac, std::string(64, 'a'), 1000);
  auto took = Clock::now() - start;
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().kind, RemoteError::Kind::unreachable);
  EXPECT_LT(took, 3s);
  // Nothing listening: refused at once.
  options.cache_url = "http://127.0.0.1:" + std::to_string(free_port());
  auto closed = HttpCache::open(options);
  ASSERT_TRUE(closed);
  auto head = (*closed)->contains(RemoteArea::cas, std::string(64, 'b'));
  ASSERT_FALSE(head);
  EXPECT_EQ(head.error().kind, RemoteError::Kind::unreachable);
  EXPECT_EQ((*closed)->contains(RemoteArea::cas, "../../etc/passwd").error().kind,
            RemoteError::Kind::server);  // never a path from a bad digest
}

TEST(NetworkClients, ASilentRedisTimesOut) {
  SilentServer silent;
  RemoteOptions options;
  options.redis_url = "redis://127.0.0.1:" + std::to_string(silent.port());
  options.timeout_ms = 300;
  auto leases = RedisLeases::open(options, "h:1:t");
  ASSERT_TRUE(leases) << leases.error().to_string();
  auto start = Clock::now();
  auto taken = (*leases)->take("k");
  ASSERT_FALSE(taken);
  EXPECT_EQ(taken.error().kind, RemoteError::Kind::unreachable);
  EXPECT_LT(Clock::now() - start, 3s);
}

// A redis-server of this test's own, on a free port, in a temporary directory.
class RedisServer {
 public:
  RedisServer() {
    for (const char* path : {"/usr/bin/redis-server", "/usr/local/bin/redis-server"})
      if (::access(path, X_OK) == 0) m_binary = path;
    if (m_binary.empty()) return;
    m_port = free_port();
    std::string port = std::to_string(m_port);
    m_pid = ::fork();
    if (m_pid == 0) {
      ::execl(m_binary.c_str(), m_binary.c_str(), "--bind", "127.0.0.1", "--port", port.c_str(),
              "--save", "", "--appendonly", "no", "--dir", m_dir.path().c_str(), "--logfile",
              (m_dir.path() + "/redis.log").c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    // Ready when it answers.
    RemoteOptions options;
    options.redis_url = url();
    auto probe = RedisLeases::open(options, "probe:0:0");
    for (int i = 0; i < 200; ++i) {
      if (probe && (*probe)->peek("probe")) return;
      std::this_thread::sleep_for(20ms);
    }
    ADD_FAILURE() << "redis-server did not start; see " << m_dir.path();
  }
  ~RedisServer() {
    if (m_pid > 0) {
      ::kill(m_pid, SIGTERM);
      ::waitpid(m_pid, nullptr, 0);
    }
  }
  [[nodiscard]] bool available() const { return !m_binary.empty(); }
  [[nodiscard]] std::string url() const { return "redis://127.0.0.1:" + std::to_string(m_port); }

 private:
  TempDir m_dir{"gang-redis-"};
  std::string m_binary;
  int m_port = 0;
  pid_t m_pid = -1;
};

TEST(NetworkClients, RedisLeasesAreExclusiveRenewableAndExpire) {
  RedisServer redis;
  if (!redis.available()) GTEST_SKIP() << "redis-server is not installed (scripts/setup installs it)";
  RemoteOptions options;
  options.redis_url = redis.url();
  options.lease_ms = 400;
  options.lease_prefix = "test:";
  auto a = RedisLeases::open(options, "host-a:1:aaaa");
  auto b = RedisLeases::open(options, "host-b:2:bbbb");
  ASSERT_TRUE(a && b);
  auto taken = (*a)->take("k.1");
  ASSERT_TRUE(taken);
  EXPECT_TRUE(taken->won);
  auto held = (*b)->take("k.1");
  ASSERT_TRUE(held);
  EXPECT_FALSE(held->won);
  EXPECT_EQ(held->holder, "host-a:1:aaaa");
  EXPECT_EQ(*(*b)->peek("k.1"), std::optional<std::string>("host-a:1:aaaa"));
  // Only the holder renews or releases (compare-and-set).
  EXPECT_FALSE(*(*b)->renew("k.1"));
  ASSERT_TRUE((*b)->release("k.1"));
  EXPECT_TRUE((*b)->peek("k.1")->has_value());
  EXPECT_TRUE(*(*a)->renew("k.1"));
  // Not renewed: it expires and another host takes it.
  std::this_thread::sleep_for(600ms);
  auto after = (*b)->take("k.1");
  ASSERT_TRUE(after);
  EXPECT_TRUE(after->won);
  EXPECT_FALSE(*(*a)->renew("k.1"));  // a learns it lost the lease
  ASSERT_TRUE((*b)->release("k.1"));
  EXPECT_FALSE((*a)->peek("k.1")->has_value());
  // A hostile key is just bytes to Redis.
  auto odd = (*a)->take("k\r\n*1\r\n$8\r\nFLUSHALL\r\n");
  ASSERT_TRUE(odd);
  EXPECT_TRUE(odd->won);
  EXPECT_FALSE(*(*a)->peek("k.2"));
}

}  // namespace
}  // namespace gang
