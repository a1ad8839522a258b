// remote/: the second tier of gang's artifact cache, for gangs on several
// machines. A remote cache speaks the Bazel HTTP cache protocol (GET, HEAD
// and PUT on BASE/cas/<sha256> for contents, BASE/ac/<sha256> for metadata;
// nginx with WebDAV PUT, or bazel-remote), and Redis leases keep two hosts
// from building the same component at once. The local cache stays each
// machine's source of truth: whatever comes from the remote is verified
// (every SHA-256, the manifest's own key) before the local cache publishes
// it through its normal transaction; nothing correct ever depends on the
// remote or on a lease. remote/ depends on cache/ and util/.
//
// remote_options.hpp: what a gang needs to know to use a remote cache and
// Redis (from gang.conf, GANG_* variables or flags), and the credentials,
// which come from a file or .netrc and never from a URL, a command line or
// a log. Plain values; thread-safe as such.
#pragma once

#include <string>

#include "util/error.hpp"

namespace gang {

struct RemoteOptions {
  std::string cache_url;              // "" = no remote cache; http(s)://host[:port][/base]
  std::string credentials_file;       // "user:password" (basic) or "Bearer TOKEN"; "" = none
  std::string netrc_file;             // "" = libcurl's default (~/.netrc), used if present
  bool push = true;                   // upload what this host builds
  int connect_timeout_ms = 2000;      // per connection
  int timeout_ms = 60000;             // per request, transfer included
  int retry_after_ms = 30000;         // how long a tier that failed stays off before a retry
  std::string redis_url;              // "" = no leases; redis://host[:port][/db]
  std::string redis_credentials_file; // "password" or "user:password"; "" = none
  int lease_ms = 60000;               // lease time to live; renewed every third of it
  std::string lease_prefix = "gang:claim:";

  [[nodiscard]] bool any() const { return !cache_url.empty() || !redis_url.empty(); }
};

struct Credentials {
  enum class Kind { none, basic, bearer };
  Kind kind = Kind::none;
  std::string secret;  // "user:password" or the token
};

// Checks a remote cache URL: http or https, a host, no user or password
// (credentials belong in a file or .netrc), no query or fragment. Returns
// it without a trailing '/'.
[[nodiscard]] Result<std::string> normalise_cache_url(const std::string& url);

struct RedisAddress {
  std::string host;
  int port = 6379;
  int db = 0;
};
// Parses redis://host[:port][/db] (no password in the URL, as above).
[[nodiscard]] Result<RedisAddress> parse_redis_url(const std::string& url);

// Reads a credentials file: its first non-empty line is "Bearer TOKEN" or
// "user:password". An error names the file (never its contents).
[[nodiscard]] Result<Credentials> read_credentials(const std::string& path);

}  // namespace gang
