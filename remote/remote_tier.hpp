// remote_tier.hpp: one worker's use of the remote cache and the Redis
// leases. pull() downloads an artifact the remote has (its /ac/ entry, the
// manifest, the blobs this host lacks; every SHA-256 checked, the
// manifest's own key checked) and publishes it through the local cache's
// transaction. push() queues an artifact this worker published; a thread of
// the tier uploads its blobs the remote lacks, then the manifest, then the
// /ac/ entry (so an /ac/ hit never names missing content), and only then
// gives up the lease, so another host never takes the lease of a component
// whose upload is still on its way. A failed push is retried (3 attempts)
// and reported, never fatal.
//
// Degraded mode: each tier (the cache, Redis) that fails to answer is
// switched off for retry_after_ms, logged once, and tried again after; the
// gang goes on locally meanwhile. A server that refuses uploads (401/403)
// stops pushes for the run. Every network call is bounded by the timeouts.
//
// Concurrency: the worker thread calls everything but the push thread's
// own work; messages for the log are queued and handed over by
// take_messages() on the worker thread (events are single-threaded).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cache/artifact_cache.hpp"
#include "remote/http_cache.hpp"
#include "remote/redis_leases.hpp"

namespace gang {

struct PullResult {
  enum class Kind { downloaded, already_present, miss, unavailable, refused_corrupt };
  Kind kind = Kind::miss;
  double seconds = 0;
  std::uint64_t bytes = 0;  // downloaded
  std::string detail;       // why, for unavailable / refused_corrupt
};

struct LeaseResult {
  enum class Kind { won, held, unavailable };
  Kind kind = Kind::won;
  std::string holder;  // held: "host:pid:token"
};

struct PushReport {
  std::string key;
  bool ok = true;
  std::string error;  // the last attempt's, when !ok
  int blobs_uploaded = 0;
};

class RemoteTier {
 public:
  // The real tier: HttpCache and RedisLeases from options (either may be
  // unset). host names this machine in lease values.
  [[nodiscard]] static Result<std::unique_ptr<RemoteTier>> open(ArtifactCache& cache,
                                                                const RemoteOptions& options,
                                                                const std::string& host);
  // For tests: stores and leases given (null: that tier is off); the push
  // thread's own connections come from the factories.
  using StoreFactory = std::function<std::unique_ptr<RemoteStore>()>;
  using LeaseFactory = std::function<std::unique_ptr<LeaseService>()>;
  RemoteTier(ArtifactCache& cache, RemoteOptions options, StoreFactory stores,
             LeaseFactory leases);
  ~RemoteTier();
  RemoteTier(const RemoteTier&) = delete;
  RemoteTier& operator=(const RemoteTier&) = delete;

  // This machine's host name, as in lease values: a lease of a process of
  // this host that has died is released by whoever finds it.
  void set_host(std::string host) { m_host = std::move(host); }

  [[nodiscard]] bool has_cache() const { return m_pull != nullptr; }
  [[nodiscard]] bool has_leases() const { return m_leases != nullptr; }

  // Downloads key's artifact if the remote has it; see PullResult.
  [[nodiscard]] PullResult pull(const std::string& key);

  // Leases (Redis). peek: who holds key's lease (nullopt: nobody, or Redis
  // is off or down). take: SET NX. renew: false if the lease was lost (the
  // holder in *now_held_by).
  [[nodiscard]] std::optional<std::string> peek_lease(const std::string& key);
  [[nodiscard]] LeaseResult take_lease(const std::string& key);
  [[nodiscard]] bool renew_lease(const std::string& key, std::string* now_held_by);
  // Gives the lease up now (a build that failed or was not published).
  void release_lease(const std::string& key);
  [[nodiscard]] int lease_ms() const { return m_options.lease_ms; }

  // Queues key (published locally) for upload; releases its lease after.
  // Without push (or without a remote cache) it releases the lease at once.
  void push(const std::string& key);
  // Queues key (cached here, built earlier or elsewhere) for upload if the
  // remote lacks its /ac/ entry; no lease is involved. Best effort: not
  // retried, not reported when it fails, dropped by finish().
  void push_if_missing(const std::string& key);
  // Waits up to timeout_ms for queued pushes; returns how many are left.
  // The destructor does not wait: queued uploads are dropped (their leases
  // released) and one in flight is cancelled.
  std::size_t finish(int timeout_ms);

  // Log lines (degraded mode, recoveries, refusals) since the last call.
  [[nodiscard]] std::vector<std::string> take_messages();
  // Pushes done since the last call.
  [[nodiscard]] std::vector<PushReport> take_push_reports();

 private:
  // A tier that failed is off until `until_ms`; logged once per outage.
  struct Health {
    std::string name;
    bool down = false;
    std::int64_t until_ms = 0;
  };
  [[nodiscard]] bool available(Health& h);
  void failed(Health& h, const std::string& why);
  void succeeded(Health& h);
  void say(const std::string& line);
  [[nodiscard]] bool holder_dead_here(const std::string& value) const;
  void push_loop();
  [[nodiscard]] RemoteResult<int> push_one(RemoteStore& store, const std::string& key);

  ArtifactCache& m_cache;
  RemoteOptions m_options;
  std::string m_host;
  std::unique_ptr<RemoteStore> m_pull;     // the worker thread's connection
  std::unique_ptr<LeaseService> m_leases;  // the worker thread's connection
  StoreFactory m_store_factory;
  LeaseFactory m_lease_factory;

  std::mutex m_mutex;  // everything below
  Health m_cache_health{"remote cache"};
  Health m_redis_health{"Redis"};
  bool m_push_refused = false;
  std::set<std::string> m_bad_on_remote;  // digests that arrived corrupt: upload again
  std::vector<std::string> m_messages;
  std::vector<PushReport> m_push_reports;
  struct Job {
    std::string key;
    int attempts = 0;
    std::int64_t not_before_ms = 0;
    bool if_missing = false;  // push_if_missing: look first, hold no lease
  };
  std::deque<Job> m_queue;
  int m_in_flight = 0;
  bool m_stopping = false;
  bool m_finishing = false;
  std::atomic<bool> m_cancel{false};  // set when the tier goes: uploads in flight give up  // finish() was called: no more waiting between retries
  std::condition_variable m_wake;
  std::condition_variable m_idle;
  std::thread m_thread;
};

}  // namespace gang
