#include "remote/remote_options.hpp"

#include <charconv>

#include "util/fs.hpp"

namespace gang {

namespace {

bool parse_int(std::string_view text, int& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

Result<std::string> normalise_cache_url(const std::string& url) {
  std::string_view rest = url;
  if (rest.starts_with("http://")) {
    rest.remove_prefix(7);
  } else if (rest.starts_with("https://")) {
    rest.remove_prefix(8);
  } else {
    return make_error("remote cache URL \"" + url + "\": only http:// and https:// are supported");
  }
  std::string_view authority = rest.substr(0, rest.find('/'));
  if (authority.empty()) return make_error("remote cache URL \"" + url + "\" names no host");
  if (authority.find('@') != std::string_view::npos)
    return make_error(
        "remote cache URL: credentials do not belong in the URL (they would show on command "
        "lines and in logs); put them in a file named by remote-credentials, or in .netrc");
  if (url.find_first_of("?#") != std::string::npos)
    return make_error("remote cache URL \"" + url + "\": no query or fragment allowed");
  for (char c : url)
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f)
      return make_error("remote cache URL contains a space or control character");
  std::string out = url;
  while (out.ends_with('/')) out.pop_back();
  return out;
}

Result<RedisAddress> parse_redis_url(const std::string& url) {
  std::string_view rest = url;
  if (!rest.starts_with("redis://"))
    return make_error("Redis URL \"" + url + "\": it must start with redis://");
  rest.remove_prefix(8);
  if (rest.find('@') != std::string_view::npos)
    return make_error(
        "Redis URL: a password does not belong in the URL; put it in a file named by "
        "redis-credentials");
  RedisAddress address;
  std::string_view hostport = rest.substr(0, rest.find('/'));
  if (rest.size() > hostport.size()) {
    std::string_view db = rest.substr(hostport.size() + 1);
    if (!db.empty() && (!parse_int(db, address.db) || address.db < 0))
      return make_error("Redis URL \"" + url + "\": the database must be a number");
  }
  std::size_t colon = hostport.rfind(':');
  if (colon != std::string_view::npos && hostport.find(']') == std::string_view::npos) {
    if (!parse_int(hostport.substr(colon + 1), address.port) || address.port <= 0 ||
        address.port > 65535)
      return make_error("Redis URL \"" + url + "\": bad port");
    hostport = hostport.substr(0, colon);
  }
  if (hostport.empty()) return make_error("Redis URL \"" + url + "\" names no host");
  address.host = std::string(hostport);
  return address;
}

Result<Credentials> read_credentials(const std::string& path) {
  auto text = read_file(path);
  if (!text) return make_error("cannot read the credentials file " + path + ": " + text.error().message);
  std::string_view rest = *text;
  std::string_view line;
  while (!rest.empty()) {
    std::size_t nl = rest.find('\n');
    line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (!line.empty()) break;
  }
  Credentials out;
  if (line.empty()) return make_error("the credentials file " + path + " is empty");
  if (line.starts_with("Bearer ") || line.starts_with("bearer ")) {
    out.kind = Credentials::Kind::bearer;
    out.secret = std::string(line.substr(7));
  } else if (line.find(':') != std::string_view::npos) {
    out.kind = Credentials::Kind::basic;
    out.secret = std::string(line);
  } else {
    return make_error("the credentials file " + path +
                      ": its first line must be \"user:password\" or \"Bearer TOKEN\"");
  }
  return out;
}

}  // namespace gang
