// sha256.hpp: SHA-256 through OpenSSL's EVP interface, as an incremental
// hasher plus one-shot helpers. A Sha256 object is single-threaded; separate
// objects may be used from separate threads.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "util/error.hpp"

struct evp_md_ctx_st;

namespace gang {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  Sha256(Sha256&& other) noexcept;
  Sha256& operator=(Sha256&& other) noexcept;

  // Feeds bytes into the digest.
  void update(const void* data, std::size_t size);
  void update(std::string_view data) { update(data.data(), data.size()); }

  // Returns the lowercase hex digest (64 characters); the hasher is reset.
  [[nodiscard]] std::string hex_digest();

 private:
  evp_md_ctx_st* m_ctx;
};

// Lowercase hex SHA-256 of a byte string.
[[nodiscard]] std::string sha256_hex(std::string_view data);

// Lowercase hex SHA-256 of a file's contents; an error if it cannot be read.
[[nodiscard]] Result<std::string> sha256_file(const std::string& path);

}  // namespace gang
