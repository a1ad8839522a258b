#include "cache/file_system.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace gang {

ssize_t FileSystem::write(int fd, const void* data, std::size_t size) { return ::write(fd, data, size); }
int FileSystem::fsync(int fd) { return ::fsync(fd); }
int FileSystem::syncfs(int fd) { return ::syncfs(fd); }
int FileSystem::linkat(int olddirfd, const char* oldpath, int newdirfd, const char* newpath,
                       int flags) {
  return ::linkat(olddirfd, oldpath, newdirfd, newpath, flags);
}

std::shared_ptr<FileSystem> real_file_system() {
  static auto fs = std::make_shared<FileSystem>();
  return fs;
}

}  // namespace gang
