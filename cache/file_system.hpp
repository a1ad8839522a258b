// file_system.hpp: the seam between the cache's write path and the kernel
// (leveldb's Env pattern). Every call through which publishing can fail for
// want of space or a failing disk (writing a blob, making it durable, giving
// it its name, committing the index row) goes through a FileSystem, so that
// tests can inject ENOSPC, EIO, short writes and failed links without root
// or a real full disk. The real one is thin and thread-safe; the methods
// return what the system calls return (-1 with errno set on failure).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <memory>

namespace gang {

class FileSystem {
 public:
  virtual ~FileSystem() = default;
  virtual ssize_t write(int fd, const void* data, std::size_t size);
  virtual int fsync(int fd);
  virtual int syncfs(int fd);
  virtual int linkat(int olddirfd, const char* oldpath, int newdirfd, const char* newpath,
                     int flags);
  // Called inside the index's write transaction, just before it commits an
  // artifact row: 0, or an errno the commit then fails with (the real one
  // has nothing to add: LMDB reports its own I/O errors).
  virtual int before_index_commit() { return 0; }
};

// The kernel, unadorned. Shared and thread-safe.
[[nodiscard]] std::shared_ptr<FileSystem> real_file_system();

}  // namespace gang
