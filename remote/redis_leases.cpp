#include "remote/redis_leases.hpp"

#include <hiredis/hiredis.h>
#include <sys/time.h>
#include <unistd.h>

#include <random>
#include <vector>

#include "util/fs.hpp"

namespace gang {

namespace {

constexpr const char* k_renew_script =
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
constexpr const char* k_release_script =
    "if redis.call('get', KEYS[1]) == ARGV[1] then "
    "return redis.call('del', KEYS[1]) else return 0 end";

timeval to_timeval(int ms) {
  timeval tv{};
  tv.tv_sec = ms / 1000;
  tv.tv_usec = (ms % 1000) * 1000;
  return tv;
}

struct ReplyFree {
  void operator()(void* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<void, ReplyFree>;

redisReply* as_reply(const Reply& r) { return static_cast<redisReply*>(r.get()); }

}  // namespace

std::string lease_value(const std::string& host) {
  std::random_device random;
  std::uint64_t token = (static_cast<std::uint64_t>(random()) << 32) | random();
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(token));
  return host + ":" + std::to_string(::getpid()) + ":" + hex;
}

Result<std::unique_ptr<RedisLeases>> RedisLeases::open(const RemoteOptions& options,
                                                       const std::string& me) {
  auto address = parse_redis_url(options.redis_url);
  if (!address) return std::unexpected(address.error());
  std::unique_ptr<RedisLeases> leases(new RedisLeases());
  leases->m_options = options;
  leases->m_host = address->host;
  leases->m_port = address->port;
  leases->m_db = address->db;
  if (!options.redis_credentials_file.empty()) {
    auto text = read_file(options.redis_credentials_file);
    if (!text)
      return make_error("cannot read the Redis credentials file " + options.redis_credentials_file +
                        ": " + text.error().message);
    std::string line = text->substr(0, text->find('\n'));
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty())
      return make_error("the Redis credentials file " + options.redis_credentials_file + " is empty");
    if (auto colon = line.find(':'); colon != std::string::npos) {
      leases->m_user = line.substr(0, colon);
      leases->m_password = line.substr(colon + 1);
    } else {
      leases->m_password = line;
    }
  }
  leases->m_me = me;
  return leases;
}

RedisLeases::~RedisLeases() { disconnect(); }

std::string RedisLeases::describe() const {
  return "redis://" + m_host + ":" + std::to_string(m_port) + "/" + std::to_string(m_db);
}

void RedisLeases::disconnect() {
  if (m_context != nullptr) redisFree(static_cast<redisContext*>(m_context));
  m_context = nullptr;
}

RemoteResult<void> RedisLeases::connect() {
  if (m_context != nullptr) return {};
  redisContext* c =
      redisConnectWithTimeout(m_host.c_str(), m_port, to_timeval(m_options.connect_timeout_ms));
  if (c == nullptr || c->err != 0) {
    std::string why = c != nullptr ? c->errstr : "out of memory";
    if (c != nullptr) redisFree(c);
    return std::unexpected(
        RemoteError{RemoteError::Kind::unreachable, "cannot connect to " + describe() + ": " + why});
  }
  // Every command is bounded by the operation timeout.
  redisSetTimeout(c, to_timeval(std::min(m_options.timeout_ms, 10000)));
  m_context = c;
  if (!m_password.empty()) {
    std::vector<std::string> auth{"AUTH"};
    if (!m_user.empty()) auth.push_back(m_user);
    auth.push_back(m_password);
    auto reply = command(auth);
    if (!reply) return std::unexpected(reply.error());
    Reply r(*reply);
    if (as_reply(r)->type == REDIS_REPLY_ERROR) {
      disconnect();
      return std::unexpected(RemoteError{RemoteError::Kind::refused,
                                         describe() + " refused the credentials"});
    }
  }
  if (m_db != 0) {
    auto reply = command({"SELECT", std::to_string(m_db)});
    if (!reply) return std::unexpected(reply.error());
    Reply r(*reply);
    if (as_reply(r)->type == REDIS_REPLY_ERROR) {
      std::string why = as_reply(r)->str;
      disconnect();
      return std::unexpected(RemoteError{RemoteError::Kind::server, describe() + ": " + why});
    }
  }
  return {};
}

RemoteResult<void*> RedisLeases::command(const std::vector<std::string>& args) {
  if (m_context == nullptr) {
    if (auto connected = connect(); !connected) return std::unexpected(connected.error());
  }
  std::vector<const char*> argv;
  std::vector<std::size_t> lengths;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lengths.push_back(a.size());
  }
  auto* c = static_cast<redisContext*>(m_context);
  void* reply = redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lengths.data());
  if (reply == nullptr) {
    std::string why = c->errstr;
    disconnect();  // the connection is unusable after an error
    return std::unexpected(
        RemoteError{RemoteError::Kind::unreachable, describe() + " " + args[0] + ": " + why});
  }
  return reply;
}

RemoteResult<LeaseReply> RedisLeases::take(const std::string& key) {
  std::string name = m_options.lease_prefix + key;
  auto reply = command({"SET", name, m_me, "NX", "PX", std::to_string(m_options.lease_ms)});
  if (!reply) return std::unexpected(reply.error());
  Reply r(*reply);
  redisReply* rr = as_reply(r);
  if (rr->type == REDIS_REPLY_STATUS) return LeaseReply{true, {}};
  if (rr->type == REDIS_REPLY_ERROR)
    return std::unexpected(RemoteError{RemoteError::Kind::server, describe() + ": " + rr->str});
  // Not set: somebody holds it. Who (it may have expired meanwhile).
  auto holder = command({"GET", name});
  if (!holder) return std::unexpected(holder.error());
  Reply h(*holder);
  if (as_reply(h)->type == REDIS_REPLY_STRING)
    return LeaseReply{false, std::string(as_reply(h)->str, as_reply(h)->len)};
  return LeaseReply{false, "another host"};
}

RemoteResult<std::optional<std::string>> RedisLeases::peek(const std::string& key) {
  auto reply = command({"GET", m_options.lease_prefix + key});
  if (!reply) return std::unexpected(reply.error());
  Reply r(*reply);
  redisReply* rr = as_reply(r);
  if (rr->type == REDIS_REPLY_STRING) return std::optional<std::string>(std::string(rr->str, rr->len));
  if (rr->type == REDIS_REPLY_ERROR)
    return std::unexpected(RemoteError{RemoteError::Kind::server, describe() + ": " + rr->str});
  return std::optional<std::string>();
}

RemoteResult<bool> RedisLeases::renew(const std::string& key) {
  auto reply = command({"EVAL", k_renew_script, "1", m_options.lease_prefix + key, m_me,
                        std::to_string(m_options.lease_ms)});
  if (!reply) return std::unexpected(reply.error());
  Reply r(*reply);
  redisReply* rr = as_reply(r);
  if (rr->type == REDIS_REPLY_ERROR)
    return std::unexpected(RemoteError{RemoteError::Kind::server, describe() + ": " + rr->str});
  return rr->type == REDIS_REPLY_INTEGER && rr->integer == 1;
}

RemoteResult<void> RedisLeases::release(const std::string& key) { return release_dead(key, m_me); }

RemoteResult<void> RedisLeases::release_dead(const std::string& key, const std::string& value) {
  auto reply = command({"EVAL", k_release_script, "1", m_options.lease_prefix + key, value});
  if (!reply) return std::unexpected(reply.error());
  Reply r(*reply);
  if (as_reply(r)->type == REDIS_REPLY_ERROR)
    return std::unexpected(RemoteError{RemoteError::Kind::server, describe() + ": " + as_reply(r)->str});
  return {};
}

}  // namespace gang
