#include "util/sha256.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <stdexcept>

#include "util/fs.hpp"

namespace gang {

Sha256::Sha256() : m_ctx(EVP_MD_CTX_new()) {
  if (m_ctx == nullptr || EVP_DigestInit_ex(m_ctx, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("OpenSSL: cannot initialise SHA-256");
}

Sha256::~Sha256() {
  if (m_ctx != nullptr) EVP_MD_CTX_free(m_ctx);
}

Sha256::Sha256(Sha256&& other) noexcept : m_ctx(other.m_ctx) { other.m_ctx = nullptr; }

Sha256& Sha256::operator=(Sha256&& other) noexcept {
  if (this != &other) {
    if (m_ctx != nullptr) EVP_MD_CTX_free(m_ctx);
    m_ctx = other.m_ctx;
    other.m_ctx = nullptr;
  }
  return *this;
}

void Sha256::update(const void* data, std::size_t size) {
  EVP_DigestUpdate(m_ctx, data, size);
}

std::string Sha256::hex_digest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(m_ctx, digest, &length);
  EVP_DigestInit_ex(m_ctx, EVP_sha256(), nullptr);
  static const char k_hex[] = "0123456789abcdef";
  std::string out(length * 2, '0');
  for (unsigned int i = 0; i < length; ++i) {
    out[2 * i] = k_hex[digest[i] >> 4];
    out[2 * i + 1] = k_hex[digest[i] & 0xf];
  }
  return out;
}

std::string sha256_hex(std::string_view data) {
  Sha256 hasher;
  hasher.update(data);
  return hasher.hex_digest();
}

Result<std::string> sha256_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_errno_error("cannot open " + path);
  Fd owned(fd);
  Sha256 hasher;
  char buffer[1 << 16];
  auto read = read_pieces(fd, path, buffer, sizeof buffer, [&](std::string_view piece) {
    hasher.update(piece.data(), piece.size());
    return true;
  });
  if (!read) return std::unexpected(read.error());
  return hasher.hex_digest();
}

}  // namespace gang
