// file_lock.hpp: an flock(2) lock on a file, held while the object lives.
// flock locks belong to the open file description, so two FileLocks on the
// same path exclude each other even between threads of one process (unlike
// fcntl locks). The lock file is created if needed and never deleted.
#pragma once

#include <string>

#include "util/error.hpp"

namespace gang {

class FileLock {
 public:
  enum class Kind { shared, exclusive };
  enum class Wait { block, try_once };

  // Locks path. With Wait::try_once, returns an unlocked FileLock (locked()
  // false) if someone else holds a conflicting lock.
  [[nodiscard]] static Result<FileLock> acquire(const std::string& path, Kind kind, Wait wait);
  FileLock() = default;
  FileLock(FileLock&& other) noexcept : m_fd(other.m_fd) { other.m_fd = -1; }
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();

  [[nodiscard]] bool locked() const { return m_fd >= 0; }
  // Sets the lock file's modification time to now (used as a last-use stamp).
  void touch() const;

 private:
  int m_fd = -1;
};

}  // namespace gang
