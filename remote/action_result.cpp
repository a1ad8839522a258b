#include "remote/action_result.hpp"

#include "util/sha256.hpp"

namespace gang {

namespace {

// build.bazel.remote.execution.v2: ActionResult.output_files = 2;
// OutputFile.path = 1, .digest = 2, .is_executable = 4;
// Digest.hash = 1, .size_bytes = 2.
constexpr std::uint32_t k_output_files = 2;
constexpr std::uint32_t k_path = 1;
constexpr std::uint32_t k_digest = 2;
constexpr std::uint32_t k_hash = 1;
constexpr std::uint32_t k_size_bytes = 2;
constexpr std::uint32_t k_varint = 0;
constexpr std::uint32_t k_i64 = 1;
constexpr std::uint32_t k_len = 2;
constexpr std::uint32_t k_i32 = 5;

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void put_bytes(std::string& out, std::uint32_t field, std::string_view bytes) {
  put_varint(out, (field << 3) | k_len);
  put_varint(out, bytes.size());
  out.append(bytes);
}

// A protobuf reader over one message's bytes.
struct Reader {
  std::string_view in;
  bool ok = true;

  bool get_varint(std::uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (in.empty()) return ok = false;
      auto b = static_cast<unsigned char>(in.front());
      in.remove_prefix(1);
      v |= static_cast<std::uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return ok = false;
  }
  // Reads the next field; false at the end or on malformed input (ok false).
  bool next(std::uint32_t& field, std::uint32_t& type, std::uint64_t& number,
            std::string_view& bytes) {
    if (in.empty() || !ok) return false;
    std::uint64_t tag = 0;
    if (!get_varint(tag)) return false;
    field = static_cast<std::uint32_t>(tag >> 3);
    type = static_cast<std::uint32_t>(tag & 7);
    switch (type) {
      case k_varint:
        return get_varint(number);
      case k_i64:
        if (in.size() < 8) return ok = false;
        in.remove_prefix(8);
        return true;
      case k_i32:
        if (in.size() < 4) return ok = false;
        in.remove_prefix(4);
        return true;
      case k_len: {
        std::uint64_t n = 0;
        if (!get_varint(n) || n > in.size()) return ok = false;
        bytes = in.substr(0, n);
        in.remove_prefix(n);
        return true;
      }
      default:
        return ok = false;
    }
  }
};

bool valid_hash(std::string_view hash) {
  if (hash.size() != 64) return false;
  for (char c : hash)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::optional<RemoteDigest> decode_digest(std::string_view bytes) {
  Reader r{bytes};
  RemoteDigest d;
  std::uint32_t field = 0, type = 0;
  std::uint64_t number = 0;
  std::string_view value;
  while (r.next(field, type, number, value)) {
    if (field == k_hash && type == k_len) d.hash = std::string(value);
    if (field == k_size_bytes && type == k_varint) d.size = static_cast<std::int64_t>(number);
  }
  if (!r.ok || !valid_hash(d.hash) || d.size < 0) return std::nullopt;
  return d;
}

}  // namespace

std::string action_digest(const std::string& key) {
  std::string input = "gang-artifact";
  input.push_back('\0');
  input += key;
  return sha256_hex(input);
}

std::string encode_action_result(const RemoteDigest& manifest) {
  std::string digest;
  put_bytes(digest, k_hash, manifest.hash);
  put_varint(digest, (k_size_bytes << 3) | k_varint);
  put_varint(digest, static_cast<std::uint64_t>(manifest.size));
  std::string file;
  put_bytes(file, k_path, k_manifest_output);
  put_bytes(file, k_digest, digest);
  std::string out;
  put_bytes(out, k_output_files, file);
  return out;
}

std::optional<RemoteDigest> decode_action_result(std::string_view bytes) {
  Reader r{bytes};
  std::uint32_t field = 0, type = 0;
  std::uint64_t number = 0;
  std::string_view value;
  std::optional<RemoteDigest> found;
  while (r.next(field, type, number, value)) {
    if (field != k_output_files || type != k_len) continue;
    Reader f{value};
    std::string_view path, digest;
    std::uint32_t ff = 0, ft = 0;
    std::uint64_t fn = 0;
    std::string_view fv;
    while (f.next(ff, ft, fn, fv)) {
      if (ff == k_path && ft == k_len) path = fv;
      if (ff == k_digest && ft == k_len) digest = fv;
    }
    if (!f.ok) return std::nullopt;
    if (path == k_manifest_output) found = decode_digest(digest);
  }
  if (!r.ok) return std::nullopt;
  return found;
}

}  // namespace gang
