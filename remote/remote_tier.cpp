#include "remote/remote_tier.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>

#include "cache/manifest.hpp"
#include "remote/action_result.hpp"
#include "util/sha256.hpp"

namespace gang {

namespace {

constexpr std::size_t k_max_action_result = 64 * 1024;
constexpr std::uint64_t k_max_manifest = 256ull << 20;
constexpr int k_push_attempts = 3;
constexpr int k_push_retry_ms = 2000;

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string short_holder(const std::string& value) {
  // "host:pid:token" -> "pid P on host H"
  auto last = value.rfind(':');
  if (last == std::string::npos || last == 0) return value;
  auto mid = value.rfind(':', last - 1);
  if (mid == std::string::npos) return value;
  return "pid " + value.substr(mid + 1, last - mid - 1) + " on host " + value.substr(0, mid);
}

}  // namespace

bool RemoteTier::holder_dead_here(const std::string& value) const {
  // "host:pid:token"
  auto last = value.rfind(':');
  if (last == std::string::npos || last == 0) return false;
  auto mid = value.rfind(':', last - 1);
  if (mid == std::string::npos || m_host.empty() || value.substr(0, mid) != m_host) return false;
  int pid = 0;
  std::string_view digits = std::string_view(value).substr(mid + 1, last - mid - 1);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), pid);
  if (ec != std::errc() || end != digits.data() + digits.size() || pid <= 0) return false;
  return ::kill(pid, 0) != 0 && errno == ESRCH;
}

Result<std::unique_ptr<RemoteTier>> RemoteTier::open(ArtifactCache& cache,
                                                     const RemoteOptions& options,
                                                     const std::string& host) {
  StoreFactory stores;
  LeaseFactory leases;
  if (!options.cache_url.empty()) {
    auto probe = HttpCache::open(options);  // checks the URL and credentials now
    if (!probe) return std::unexpected(probe.error());
    stores = [options]() -> std::unique_ptr<RemoteStore> {
      auto store = HttpCache::open(options);
      if (!store) return nullptr;
      return std::move(*store);
    };
  }
  if (!options.redis_url.empty()) {
    std::string me = lease_value(host);
    auto probe = RedisLeases::open(options, me);
    if (!probe) return std::unexpected(probe.error());
    leases = [options, me]() -> std::unique_ptr<LeaseService> {
      auto l = RedisLeases::open(options, me);
      if (!l) return nullptr;
      return std::move(*l);
    };
  }
  auto tier = std::make_unique<RemoteTier>(cache, options, std::move(stores), std::move(leases));
  tier->set_host(host);
  return tier;
}

RemoteTier::RemoteTier(ArtifactCache& cache, RemoteOptions options, StoreFactory stores,
                       LeaseFactory leases)
    : m_cache(cache),
      m_options(std::move(options)),
      m_store_factory(std::move(stores)),
      m_lease_factory(std::move(leases)) {
  if (m_store_factory) m_pull = m_store_factory();
  if (m_lease_factory) m_leases = m_lease_factory();
  if (m_pull) m_cache_health.name = "the remote cache " + m_pull->describe();
  if (m_leases) m_redis_health.name = "Redis " + m_leases->describe();
  if (m_pull || m_leases) m_thread = std::thread([this] { push_loop(); });
}

RemoteTier::~RemoteTier() {
  {
    std::lock_guard lock(m_mutex);
    m_stopping = true;
  }
  m_cancel.store(true);
  m_wake.notify_all();
  if (m_thread.joinable()) m_thread.join();
}

void RemoteTier::say(const std::string& line) { m_messages.push_back(line); }

bool RemoteTier::available(Health& h) {
  std::lock_guard lock(m_mutex);
  if (!h.down) return true;
  return wall_ms() >= h.until_ms;  // time for another try
}

void RemoteTier::failed(Health& h, const std::string& why) {
  std::lock_guard lock(m_mutex);
  bool first = !h.down;
  h.down = true;
  h.until_ms = wall_ms() + m_options.retry_after_ms;
  if (first)
    say(h.name + " is unavailable (" + why + "); carrying on locally, retrying every " +
        std::to_string(m_options.retry_after_ms / 1000) + " s");
}

void RemoteTier::succeeded(Health& h) {
  std::lock_guard lock(m_mutex);
  if (!h.down) return;
  h.down = false;
  say(h.name + " is back");
}

std::vector<std::string> RemoteTier::take_messages() {
  std::lock_guard lock(m_mutex);
  return std::exchange(m_messages, {});
}

std::vector<PushReport> RemoteTier::take_push_reports() {
  std::lock_guard lock(m_mutex);
  return std::exchange(m_push_reports, {});
}

PullResult RemoteTier::pull(const std::string& key) {
  PullResult out;
  if (!m_pull || !available(m_cache_health)) {
    out.kind = PullResult::Kind::unavailable;
    return out;
  }
  auto start = std::chrono::steady_clock::now();
  auto unavailable = [&](const RemoteError& e) {
    // Down, failing (5xx) or refusing reads (401): off for a while, said once.
    failed(m_cache_health, e.message);
    out.kind = PullResult::Kind::unavailable;
    out.detail = e.message;
    return out;
  };
  auto refused = [&](const std::string& why) {
    {
      std::lock_guard lock(m_mutex);
      say("refused what the remote cache holds for " + key + ": " + why + "; building it here");
    }
    out.kind = PullResult::Kind::refused_corrupt;
    out.detail = why;
    return out;
  };
  auto entry = m_pull->get(RemoteArea::ac, action_digest(key), k_max_action_result);
  if (!entry) return unavailable(entry.error());
  succeeded(m_cache_health);
  if (!*entry) return out;  // a miss
  auto manifest_ref = decode_action_result(**entry);
  if (!manifest_ref) return refused("its /ac/ entry is not a gang ActionResult");
  if (static_cast<std::uint64_t>(manifest_ref->size) > k_max_manifest)
    return refused("its manifest is implausibly large");
  auto manifest_bytes = m_pull->get(RemoteArea::cas, manifest_ref->hash,
                                    static_cast<std::size_t>(manifest_ref->size));
  if (!manifest_bytes) {
    if (manifest_bytes.error().kind == RemoteError::Kind::corrupt)
      return refused("manifest " + manifest_ref->hash + ": " + manifest_bytes.error().message);
    return unavailable(manifest_bytes.error());
  }
  if (!*manifest_bytes) return out;  // the /ac/ entry outlived its manifest: a miss
  if (sha256_hex(**manifest_bytes) != manifest_ref->hash) {
    {
      std::lock_guard lock(m_mutex);
      m_bad_on_remote.insert(manifest_ref->hash);
    }
    return refused("manifest " + manifest_ref->hash + " arrived corrupt (SHA-256 mismatch)");
  }
  auto manifest = Manifest::decode(**manifest_bytes);
  if (!manifest) return refused("its manifest cannot be read: " + manifest.error().to_string());
  if (manifest->key != key)
    return refused("its manifest is the artifact of \"" + manifest->key + "\", not of this key");
  ArtifactMeta meta;
  // The builder's record (as repair() reads it: the row without its
  // manifest digest, which names the manifest itself).
  if (auto recorded = decode_artifact(key, manifest->record + "manifest=" + manifest_ref->hash + "\n"))
    meta = recorded->meta;
  meta.extra["downloaded_from"] = m_pull->describe();

  std::optional<RemoteError> remote_error;
  bool corrupt = false;
  std::uint64_t bytes = 0;
  auto fetch = [&](const BlobId& id, std::uint64_t size, int fd) -> Result<void> {
    std::string sha;
    auto got = m_pull->get_to_fd(RemoteArea::cas, id.digest, fd, size, &sha);
    if (!got) {
      if (got.error().kind == RemoteError::Kind::corrupt) {
        corrupt = true;
        std::lock_guard lock(m_mutex);
        m_bad_on_remote.insert(id.digest);
      } else {
        remote_error = got.error();
      }
      return make_error(got.error().message);
    }
    if (!*got) return make_error("blob " + id.digest + " is missing on the remote");
    if (sha != id.digest) {
      corrupt = true;
      std::lock_guard lock(m_mutex);
      m_bad_on_remote.insert(id.digest);
      return make_error("blob " + id.digest + " arrived corrupt (SHA-256 " + sha + ")");
    }
    bytes += size;
    return {};
  };
  auto published = m_cache.insert_fetched(key, *manifest, meta, fetch);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  out.bytes = bytes;
  if (!published) {
    if (remote_error) return unavailable(*remote_error);
    if (corrupt) return refused(published.error().to_string());
    // Incomplete on the remote, or a local trouble: build here.
    out.kind = PullResult::Kind::miss;
    out.detail = published.error().to_string();
    std::lock_guard lock(m_mutex);
    say("cannot download " + key + ": " + out.detail + "; building it here");
    return out;
  }
  out.kind = *published == PublishOutcome::inserted ? PullResult::Kind::downloaded
                                                    : PullResult::Kind::already_present;
  return out;
}

std::optional<std::string> RemoteTier::peek_lease(const std::string& key) {
  if (!m_leases || !available(m_redis_health)) return std::nullopt;
  auto reply = m_leases->peek(key);
  if (!reply) {
    failed(m_redis_health, reply.error().message);
    return std::nullopt;
  }
  succeeded(m_redis_health);
  if (!*reply || **reply == m_leases->me()) return std::nullopt;
  // A holder on this machine that has died (a killed worker) cannot renew:
  // its lease goes now rather than when it expires.
  if (holder_dead_here(**reply)) {
    if (auto released = m_leases->release_dead(key, **reply); released) {
      std::lock_guard lock(m_mutex);
      say("released the lease on " + key + " of " + short_holder(**reply) + ", which died");
      return std::nullopt;
    }
  }
  return short_holder(**reply);
}

LeaseResult RemoteTier::take_lease(const std::string& key) {
  if (!m_leases || !available(m_redis_health)) return {LeaseResult::Kind::unavailable, {}};
  auto reply = m_leases->take(key);
  if (!reply) {
    failed(m_redis_health, reply.error().message);
    return {LeaseResult::Kind::unavailable, {}};
  }
  succeeded(m_redis_health);
  if (reply->won) return {LeaseResult::Kind::won, {}};
  return {LeaseResult::Kind::held, short_holder(reply->holder)};
}

bool RemoteTier::renew_lease(const std::string& key, std::string* now_held_by) {
  if (!m_leases || !available(m_redis_health)) return true;
  auto reply = m_leases->renew(key);
  if (!reply) {
    failed(m_redis_health, reply.error().message);
    return true;
  }
  succeeded(m_redis_health);
  if (*reply) return true;
  if (now_held_by != nullptr) {
    auto holder = m_leases->take(key);  // nobody holds it: take it back
    if (holder && holder->won) return true;
    *now_held_by = holder ? short_holder(holder->holder) : "unknown";
  }
  return false;
}

void RemoteTier::release_lease(const std::string& key) {
  if (!m_leases || !available(m_redis_health)) return;
  if (auto released = m_leases->release(key); !released)
    failed(m_redis_health, released.error().message);
}

void RemoteTier::push(const std::string& key) {
  bool pushing = false;
  {
    std::lock_guard lock(m_mutex);
    pushing = m_store_factory && m_options.push && !m_push_refused;
    if (pushing) m_queue.push_back(Job{key, 0, 0});
  }
  if (pushing) {
    m_wake.notify_all();
  } else {
    release_lease(key);
  }
}

void RemoteTier::push_if_missing(const std::string& key) {
  {
    std::lock_guard lock(m_mutex);
    if (!m_store_factory || !m_options.push || m_push_refused) return;
    m_queue.push_back(Job{key, 0, 0, true});
  }
  m_wake.notify_all();
}

std::size_t RemoteTier::finish(int timeout_ms) {
  std::unique_lock lock(m_mutex);
  m_finishing = true;
  // Offers of what was cached before are best effort: nobody waits on them.
  std::erase_if(m_queue, [](const Job& job) { return job.if_missing; });
  m_wake.notify_all();
  m_idle.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                  [&] { return m_queue.empty() && m_in_flight == 0; });
  return m_queue.size() + static_cast<std::size_t>(m_in_flight);
}

RemoteResult<int> RemoteTier::push_one(RemoteStore& store, const std::string& key) {
  auto fail = [](std::string message) {
    return std::unexpected(RemoteError{RemoteError::Kind::server, std::move(message)});
  };
  auto info = m_cache.lookup(key);
  if (!info) return fail(info.error().to_string());
  if (!*info) return fail("no artifact " + key + " in the local cache any more");
  auto manifest = m_cache.manifest(key);
  if (!manifest) return fail(manifest.error().to_string());
  int uploaded = 0;
  auto upload = [&](const BlobId& id) -> RemoteResult<void> {
    bool known_bad = false;
    {
      std::lock_guard lock(m_mutex);
      known_bad = m_bad_on_remote.contains(id.digest);
    }
    if (!known_bad) {
      auto present = store.contains(RemoteArea::cas, id.digest);
      if (!present) return std::unexpected(present.error());
      if (*present) return {};
    }
    auto put = store.put_file(RemoteArea::cas, id.digest, m_cache.blob_path(id));
    if (!put) return put;
    ++uploaded;
    std::lock_guard lock(m_mutex);
    m_bad_on_remote.erase(id.digest);
    return {};
  };
  std::set<std::string> seen;
  for (const auto& e : manifest->entries) {
    if (e.type != ManifestEntry::Type::file || !seen.insert(e.digest).second) continue;
    if (auto up = upload(BlobId{e.digest, (e.mode & 0111) != 0}); !up)
      return std::unexpected(up.error());
  }
  // The manifest, then the /ac/ entry naming it: never an entry whose
  // content is not there yet.
  BlobId manifest_id{(*info)->manifest_digest, false};
  struct stat st;
  if (::stat(m_cache.blob_path(manifest_id).c_str(), &st) != 0)
    return fail("cannot stat the manifest of " + key);
  if (auto up = upload(manifest_id); !up) return std::unexpected(up.error());
  std::string entry =
      encode_action_result(RemoteDigest{manifest_id.digest, static_cast<std::int64_t>(st.st_size)});
  if (auto put = store.put(RemoteArea::ac, action_digest(key), entry); !put)
    return std::unexpected(put.error());
  return uploaded;
}

void RemoteTier::push_loop() {
  std::unique_ptr<RemoteStore> store = m_store_factory ? m_store_factory() : nullptr;
  if (store) store->set_cancel_flag(&m_cancel);
  std::unique_ptr<LeaseService> leases = m_lease_factory ? m_lease_factory() : nullptr;
  auto release = [&](const std::string& key) {
    if (!leases || !available(m_redis_health)) return;
    if (auto released = leases->release(key); !released)
      failed(m_redis_health, released.error().message);
  };
  std::unique_lock lock(m_mutex);
  for (;;) {
    if (m_queue.empty()) {
      m_idle.notify_all();
      if (m_stopping) return;
      m_wake.wait(lock);
      continue;
    }
    Job job = m_queue.front();
    std::int64_t now = wall_ms();
    if (job.not_before_ms > now && !m_stopping && !m_finishing) {
      m_wake.wait_for(lock, std::chrono::milliseconds(job.not_before_ms - now));
      continue;
    }
    m_queue.pop_front();
    if (m_stopping) {
      // The worker is going now: what is left is not uploaded (the leases
      // go, so other hosts need not wait for them to expire).
      lock.unlock();
      release(job.key);
      lock.lock();
      continue;
    }
    ++m_in_flight;
    bool skip = m_push_refused || !store;
    bool down = m_cache_health.down && wall_ms() < m_cache_health.until_ms;
    lock.unlock();

    PushReport report;
    report.key = job.key;
    bool retry = false;
    if (skip) {
      report.ok = false;
      report.error = store ? "uploads were refused earlier in this run" : "no connection";
    } else if (down) {
      report.ok = false;
      report.error = "the remote cache is unavailable";
      retry = true;
    } else if (job.if_missing && [&] {
                 auto present = store->contains(RemoteArea::ac, action_digest(job.key));
                 return present && *present;
               }()) {
      report.ok = true;
      report.blobs_uploaded = -1;  // nothing to do: the remote has it
    } else {
      auto pushed = push_one(*store, job.key);
      if (pushed) {
        report.blobs_uploaded = *pushed;
        succeeded(m_cache_health);
      } else {
        report.ok = false;
        report.error = pushed.error().message;
        if (pushed.error().kind == RemoteError::Kind::refused) {
          std::lock_guard guard(m_mutex);
          if (!m_push_refused)
            say("the remote cache refused an upload (" + pushed.error().message +
                "); no more uploads in this run, building carries on");
          m_push_refused = true;
        } else {
          if (pushed.error().kind == RemoteError::Kind::unreachable)
            failed(m_cache_health, pushed.error().message);
          retry = true;
        }
      }
    }
    ++job.attempts;
    lock.lock();
    // While the worker is leaving, a tier known to be down is not waited for.
    bool again = retry && !job.if_missing && job.attempts < k_push_attempts &&
                 !(m_finishing && m_cache_health.down);
    lock.unlock();
    // The lease goes once the upload is up (or will not be): another host
    // that takes it then finds the artifact, or builds it.
    if (!again && !job.if_missing) release(job.key);

    lock.lock();
    --m_in_flight;
    if (again && !m_stopping) {
      job.not_before_ms = wall_ms() + k_push_retry_ms * job.attempts;
      m_queue.push_back(job);
    } else if (report.blobs_uploaded >= 0 && (report.ok || !job.if_missing)) {
      // (an offer that failed is not an upload that failed: not reported)
      m_push_reports.push_back(std::move(report));
    }
  }
}

}  // namespace gang
