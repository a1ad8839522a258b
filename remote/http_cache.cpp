#include "remote/http_cache.hpp"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "util/sha256.hpp"

namespace gang {

void http_global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// What one request reads from and writes to.
struct HttpCache::Transfer {
  // Download: into memory (text) or into fd, hashed; at most max_bytes.
  std::string* text = nullptr;
  int out_fd = -1;
  std::uint64_t max_bytes = 0;
  std::uint64_t received = 0;
  bool too_big = false;
  int write_errno = 0;
  Sha256 hasher;
  bool hash = false;
  // Upload: from memory or from in_fd.
  std::string_view body;
  std::size_t body_offset = 0;
  int in_fd = -1;
  std::uint64_t upload_size = 0;
  bool upload = false;
  // The body of an error answer, kept short for the message.
  std::string error_body;
};

namespace {

std::size_t on_write(char* data, std::size_t size, std::size_t count, void* user) {
  auto& t = *static_cast<HttpCache::Transfer*>(user);
  std::size_t n = size * count;
  if (t.received + n > t.max_bytes) {
    t.too_big = true;
    return 0;  // aborts the transfer
  }
  t.received += n;
  if (t.hash) t.hasher.update(data, n);
  if (t.text != nullptr) {
    t.text->append(data, n);
  } else if (t.out_fd >= 0) {
    std::size_t done = 0;
    while (done < n) {
      ssize_t w = ::write(t.out_fd, data + done, n - done);
      if (w < 0) {
        if (errno == EINTR) continue;
        t.write_errno = errno;
        return 0;
      }
      done += static_cast<std::size_t>(w);
    }
  }
  return n;
}

std::size_t on_read(char* buffer, std::size_t size, std::size_t count, void* user) {
  auto& t = *static_cast<HttpCache::Transfer*>(user);
  std::size_t n = size * count;
  if (t.in_fd >= 0) {
    for (;;) {
      ssize_t r = ::read(t.in_fd, buffer, n);
      if (r >= 0) return static_cast<std::size_t>(r);
      if (errno != EINTR) return CURL_READFUNC_ABORT;
    }
  }
  std::size_t left = t.body.size() - t.body_offset;
  std::size_t take = std::min(left, n);
  std::memcpy(buffer, t.body.data() + t.body_offset, take);
  t.body_offset += take;
  return take;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* cancel = static_cast<const std::atomic<bool>*>(user);
  return cancel != nullptr && cancel->load() ? 1 : 0;  // non-zero aborts
}

// Collects the body of a failed answer (for its message), bounded.
std::size_t on_error_body(char* data, std::size_t size, std::size_t count, void* user) {
  auto& body = *static_cast<std::string*>(user);
  std::size_t n = size * count;
  if (body.size() < 200) body.append(data, std::min<std::size_t>(n, 200 - body.size()));
  return n;
}

bool valid_digest(const std::string& digest) {
  if (digest.size() != 64) return false;
  for (char c : digest)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

RemoteError error_for_status(long status, const std::string& what) {
  RemoteError e;
  e.kind = (status == 401 || status == 403) ? RemoteError::Kind::refused : RemoteError::Kind::server;
  e.message = what + ": HTTP " + std::to_string(status) +
              (status == 401   ? " (unauthorised: check remote-credentials or .netrc)"
               : status == 403 ? " (forbidden)"
                               : "");
  return e;
}

}  // namespace

Result<std::unique_ptr<HttpCache>> HttpCache::open(const RemoteOptions& options) {
  auto base = normalise_cache_url(options.cache_url);
  if (!base) return std::unexpected(base.error());
  std::unique_ptr<HttpCache> cache(new HttpCache());
  cache->m_base = *base;
  cache->m_options = options;
  if (!options.credentials_file.empty()) {
    auto credentials = read_credentials(options.credentials_file);
    if (!credentials) return std::unexpected(credentials.error());
    cache->m_credentials = std::move(*credentials);
  }
  http_global_init();
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return make_error("libcurl: cannot create a handle");
  cache->m_curl = curl;
  curl_slist* headers = nullptr;
  // No "Expect: 100-continue" round trip before each upload.
  headers = curl_slist_append(headers, "Expect:");
  if (cache->m_credentials.kind == Credentials::Kind::bearer)
    headers = curl_slist_append(headers,
                                ("Authorization: Bearer " + cache->m_credentials.secret).c_str());
  cache->m_headers = headers;
  return cache;
}

HttpCache::~HttpCache() {
  if (m_headers != nullptr) curl_slist_free_all(static_cast<curl_slist*>(m_headers));
  if (m_curl != nullptr) curl_easy_cleanup(static_cast<CURL*>(m_curl));
}

std::string HttpCache::url(RemoteArea area, const std::string& digest) const {
  return m_base + (area == RemoteArea::ac ? "/ac/" : "/cas/") + digest;
}

RemoteResult<long> HttpCache::perform(const char* method, const std::string& url,
                                      Transfer& transfer) {
  CURL* curl = static_cast<CURL*>(m_curl);
  curl_easy_reset(curl);
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(m_options.connect_timeout_ms));
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(m_options.timeout_ms));
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, static_cast<curl_slist*>(m_headers));
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  if (m_cancel != nullptr) {
    curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(curl, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(m_cancel));
  }
  if (m_credentials.kind == Credentials::Kind::basic) {
    curl_easy_setopt(curl, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
    curl_easy_setopt(curl, CURLOPT_USERPWD, m_credentials.secret.c_str());
  } else if (m_credentials.kind == Credentials::Kind::none) {
    curl_easy_setopt(curl, CURLOPT_NETRC, static_cast<long>(CURL_NETRC_OPTIONAL));
    if (!m_options.netrc_file.empty())
      curl_easy_setopt(curl, CURLOPT_NETRC_FILE, m_options.netrc_file.c_str());
  }
  std::string method_name = method;
  if (method_name == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (method_name == "PUT") {
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(curl, CURLOPT_READDATA, &transfer);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(transfer.upload_size));
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_error_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer.error_body);
  } else {
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &transfer);
    // An error page is not content: fail on >= 400 before writing it.
    curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
  }
  CURLcode code = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  if (code == CURLE_HTTP_RETURNED_ERROR) return status;
  if (code == CURLE_WRITE_ERROR && transfer.too_big)
    return std::unexpected(RemoteError{RemoteError::Kind::corrupt,
                                       std::string(method) + " " + url + ": more bytes than expected"});
  if (code == CURLE_WRITE_ERROR && transfer.write_errno != 0)
    return std::unexpected(RemoteError{RemoteError::Kind::server,
                                       std::string(method) + " " + url + ": cannot write locally: " +
                                           std::strerror(transfer.write_errno)});
  if (code != CURLE_OK) {
    RemoteError e;
    e.kind = RemoteError::Kind::unreachable;
    e.message = std::string(method) + " " + url + ": " + curl_easy_strerror(code);
    return std::unexpected(e);
  }
  return status;
}

RemoteResult<bool> HttpCache::contains(RemoteArea area, const std::string& digest) {
  if (!valid_digest(digest)) return std::unexpected(RemoteError{RemoteError::Kind::server, "bad digest " + digest});
  Transfer t;
  std::string u = url(area, digest);
  auto status = perform("HEAD", u, t);
  if (!status) return std::unexpected(status.error());
  if (*status == 200) return true;
  if (*status == 404) return false;
  return std::unexpected(error_for_status(*status, "HEAD " + u));
}

RemoteResult<std::optional<std::string>> HttpCache::get(RemoteArea area, const std::string& digest,
                                                        std::size_t max_bytes) {
  if (!valid_digest(digest)) return std::unexpected(RemoteError{RemoteError::Kind::server, "bad digest " + digest});
  Transfer t;
  std::string text;
  t.text = &text;
  t.max_bytes = max_bytes;
  std::string u = url(area, digest);
  auto status = perform("GET", u, t);
  if (!status) return std::unexpected(status.error());
  if (*status == 200) return std::optional<std::string>(std::move(text));
  if (*status == 404) return std::optional<std::string>();
  return std::unexpected(error_for_status(*status, "GET " + u));
}

RemoteResult<bool> HttpCache::get_to_fd(RemoteArea area, const std::string& digest, int fd,
                                        std::uint64_t max_bytes, std::string* sha256) {
  if (!valid_digest(digest)) return std::unexpected(RemoteError{RemoteError::Kind::server, "bad digest " + digest});
  Transfer t;
  t.out_fd = fd;
  t.max_bytes = max_bytes;
  t.hash = true;
  std::string u = url(area, digest);
  auto status = perform("GET", u, t);
  if (!status) return std::unexpected(status.error());
  if (*status == 404) return false;
  if (*status != 200) return std::unexpected(error_for_status(*status, "GET " + u));
  if (sha256 != nullptr) *sha256 = t.hasher.hex_digest();
  return true;
}

RemoteResult<void> HttpCache::put(RemoteArea area, const std::string& digest,
                                  std::string_view bytes) {
  if (!valid_digest(digest)) return std::unexpected(RemoteError{RemoteError::Kind::server, "bad digest " + digest});
  Transfer t;
  t.body = bytes;
  t.upload_size = bytes.size();
  std::string u = url(area, digest);
  auto status = perform("PUT", u, t);
  if (!status) return std::unexpected(status.error());
  if (*status >= 200 && *status < 300) return {};
  return std::unexpected(error_for_status(*status, "PUT " + u));
}

RemoteResult<void> HttpCache::put_file(RemoteArea area, const std::string& digest,
                                       const std::string& path) {
  if (!valid_digest(digest)) return std::unexpected(RemoteError{RemoteError::Kind::server, "bad digest " + digest});
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return std::unexpected(RemoteError{RemoteError::Kind::server,
                                       "cannot read " + path + ": " + std::strerror(errno)});
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return std::unexpected(RemoteError{RemoteError::Kind::server,
                                       "cannot stat " + path + ": " + std::strerror(err)});
  }
  Transfer t;
  t.in_fd = fd;
  t.upload_size = static_cast<std::uint64_t>(st.st_size);
  std::string u = url(area, digest);
  auto status = perform("PUT", u, t);
  ::close(fd);
  if (!status) return std::unexpected(status.error());
  if (*status >= 200 && *status < 300) return {};
  return std::unexpected(error_for_status(*status, "PUT " + u));
}

}  // namespace gang
