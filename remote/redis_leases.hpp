// redis_leases.hpp: claims across hosts, as Redis leases. A lease on key K
// is the Redis string PREFIX+K holding "host:pid:token", set with
// SET NX PX ttl; renewal and release are compare-and-set Lua scripts, so a
// host only ever extends or deletes its own lease. A lease that is not
// renewed expires and any host may take it: the cost is duplicate work,
// never a wrong artifact (the caches decide what is published).
//
// LeaseService is the interface the remote tier uses (tests fake it);
// RedisLeases is hiredis, with connect and command timeouts, reconnecting
// after an error. Concurrency: one thread at a time per object.
#pragma once

#include <memory>
#include <optional>
#include <vector>
#include <string>

#include "remote/http_cache.hpp"

namespace gang {

struct LeaseReply {
  bool won = false;
  std::string holder;  // when not won: the holder's "host:pid:token"
};

// "host:pid:token", token random: a value no other process will hold.
[[nodiscard]] std::string lease_value(const std::string& host);

class LeaseService {
 public:
  virtual ~LeaseService() = default;
  [[nodiscard]] virtual std::string describe() const = 0;
  // This process's lease value ("host:pid:token").
  [[nodiscard]] virtual const std::string& me() const = 0;
  [[nodiscard]] virtual RemoteResult<LeaseReply> take(const std::string& key) = 0;
  // The holder's value, nullopt if nobody holds key's lease.
  [[nodiscard]] virtual RemoteResult<std::optional<std::string>> peek(const std::string& key) = 0;
  // true if still ours (extended), false if it expired and somebody else
  // holds it, or nobody does.
  [[nodiscard]] virtual RemoteResult<bool> renew(const std::string& key) = 0;
  [[nodiscard]] virtual RemoteResult<void> release(const std::string& key) = 0;
  // Deletes key's lease if it still holds `value` (a dead holder's).
  [[nodiscard]] virtual RemoteResult<void> release_dead(const std::string& key,
                                                        const std::string& value) = 0;
};

class RedisLeases final : public LeaseService {
 public:
  // Parses options.redis_url and reads redis_credentials_file; does not
  // connect yet (the first call does). me: this process's lease value
  // (lease_value()); connections of one process share it.
  [[nodiscard]] static Result<std::unique_ptr<RedisLeases>> open(const RemoteOptions& options,
                                                                 const std::string& me);
  ~RedisLeases() override;
  RedisLeases(const RedisLeases&) = delete;
  RedisLeases& operator=(const RedisLeases&) = delete;

  [[nodiscard]] std::string describe() const override;
  [[nodiscard]] const std::string& me() const override { return m_me; }
  [[nodiscard]] RemoteResult<LeaseReply> take(const std::string& key) override;
  [[nodiscard]] RemoteResult<std::optional<std::string>> peek(const std::string& key) override;
  [[nodiscard]] RemoteResult<bool> renew(const std::string& key) override;
  [[nodiscard]] RemoteResult<void> release(const std::string& key) override;
  [[nodiscard]] RemoteResult<void> release_dead(const std::string& key,
                                                const std::string& value) override;

 private:
  RedisLeases() = default;
  [[nodiscard]] RemoteResult<void> connect();
  void disconnect();
  // Runs a command given as arguments; the reply is freed by the caller.
  [[nodiscard]] RemoteResult<void*> command(const std::vector<std::string>& args);

  RemoteOptions m_options;
  std::string m_host;
  int m_port = 6379;
  int m_db = 0;
  std::string m_user, m_password;
  std::string m_me;
  void* m_context = nullptr;  // redisContext*
};

}  // namespace gang
