#include "util/sha256.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <stdexcept>

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
  Sha256 hasher;
  char buffer[1 << 16];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      int saved = errno;
      ::close(fd);
      return make_errno_error("cannot read " + path, saved);
    }
    if (n == 0) break;
    hasher.update(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return hasher.hex_digest();
}

}  // namespace gang
