// http_cache.hpp: a client of the Bazel HTTP cache protocol, and the small
// interface (RemoteStore) the remote tier uses it through, so that the
// tier's logic is tested with a fake server too.
//
// The protocol: GET, HEAD and PUT on BASE/cas/<sha256> (contents, named by
// their hash) and BASE/ac/<sha256> (metadata); 404 is a miss. Servers are
// last-writer-wins and need not check hashes (nginx's DAV module does not),
// so callers verify everything they fetch. HttpCache is libcurl: one easy
// handle, its connections kept alive between requests; connect and total
// timeouts bound every call, so no caller waits on the network longer.
//
// Concurrency: an HttpCache is used by one thread at a time; make one per
// thread. http_global_init() must run once before any thread starts.
#pragma once

#include <atomic>
#include <expected>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "remote/remote_options.hpp"

namespace gang {

enum class RemoteArea { ac, cas };

struct RemoteError {
  enum class Kind {
    unreachable,  // no connection, a timeout, a reset: the tier is down (for now)
    refused,      // 401/403: credentials missing or wrong
    server,       // any other unexpected answer (5xx, 413...)
    corrupt,      // what arrived is not what its name promises
  };
  Kind kind = Kind::server;
  std::string message;
};

template <typename T>
using RemoteResult = std::expected<T, RemoteError>;

class RemoteStore {
 public:
  virtual ~RemoteStore() = default;
  // The URL of the store (for messages; never holds credentials).
  [[nodiscard]] virtual std::string describe() const = 0;
  // HEAD: true if present.
  [[nodiscard]] virtual RemoteResult<bool> contains(RemoteArea area, const std::string& digest) = 0;
  // GET into memory, for small entries (at most max_bytes); nullopt on a miss.
  [[nodiscard]] virtual RemoteResult<std::optional<std::string>> get(RemoteArea area,
                                                                     const std::string& digest,
                                                                     std::size_t max_bytes) = 0;
  // GET into fd (at its current offset), at most max_bytes; false on a miss.
  // *sha256 receives the hex SHA-256 of the bytes written.
  [[nodiscard]] virtual RemoteResult<bool> get_to_fd(RemoteArea area, const std::string& digest,
                                                     int fd, std::uint64_t max_bytes,
                                                     std::string* sha256) = 0;
  // PUT bytes, or the contents of the file at path.
  [[nodiscard]] virtual RemoteResult<void> put(RemoteArea area, const std::string& digest,
                                               std::string_view bytes) = 0;
  [[nodiscard]] virtual RemoteResult<void> put_file(RemoteArea area, const std::string& digest,
                                                    const std::string& path) = 0;
  // Transfers in progress give up soon after *flag becomes true (a worker
  // that is stopping); the flag must outlive the store.
  virtual void set_cancel_flag(const std::atomic<bool>* /*flag*/) {}
};

// Once per process, before threads (curl_global_init).
void http_global_init();

class HttpCache final : public RemoteStore {
 public:
  // options.cache_url must be set; credentials are read here (an error names
  // the file, never its contents).
  [[nodiscard]] static Result<std::unique_ptr<HttpCache>> open(const RemoteOptions& options);
  ~HttpCache() override;
  HttpCache(const HttpCache&) = delete;
  HttpCache& operator=(const HttpCache&) = delete;

  [[nodiscard]] std::string describe() const override { return m_base; }
  [[nodiscard]] RemoteResult<bool> contains(RemoteArea area, const std::string& digest) override;
  [[nodiscard]] RemoteResult<std::optional<std::string>> get(RemoteArea area,
                                                             const std::string& digest,
                                                             std::size_t max_bytes) override;
  [[nodiscard]] RemoteResult<bool> get_to_fd(RemoteArea area, const std::string& digest, int fd,
                                             std::uint64_t max_bytes, std::string* sha256) override;
  [[nodiscard]] RemoteResult<void> put(RemoteArea area, const std::string& digest,
                                       std::string_view bytes) override;
  [[nodiscard]] RemoteResult<void> put_file(RemoteArea area, const std::string& digest,
                                            const std::string& path) override;
  void set_cancel_flag(const std::atomic<bool>* flag) override { m_cancel = flag; }

  struct Transfer;  // one request's state (for libcurl's callbacks)

 private:
  HttpCache() = default;
  [[nodiscard]] std::string url(RemoteArea area, const std::string& digest) const;
  // Performs one request; returns the HTTP status.
  [[nodiscard]] RemoteResult<long> perform(const char* method, const std::string& url,
                                           Transfer& transfer);

  std::string m_base;
  RemoteOptions m_options;
  Credentials m_credentials;
  void* m_curl = nullptr;       // CURL*
  void* m_headers = nullptr;    // curl_slist*
  const std::atomic<bool>* m_cancel = nullptr;
};

}  // namespace gang
