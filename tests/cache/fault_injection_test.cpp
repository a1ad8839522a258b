// Publishing under injected faults (full disk, failing disk, short writes,
// failed links, a failing index commit), through the cache's FileSystem
// seam, without root: the error is clear and immediate, nothing already
// cached is lost, no blob appears under its name before its data is
// durable, and the index never names an artifact whose blobs are not there.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "cache/artifact_cache.hpp"
#include "cache/file_system.hpp"
#include "util/fs.hpp"

namespace gang {
namespace {

using namespace std::chrono_literals;

std::size_t entries_in(const std::string& path) {
  std::size_t n = 0;
  if (DIR* d = ::opendir(path.c_str())) {
    while (struct dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
    ::closedir(d);
  }
  return n;
}

// Fails chosen operations with chosen errnos, optionally after some calls,
// cuts writes short, and records the order of fsyncs and links.
class FaultyFileSystem : public FileSystem {
 public:
  enum class Op { write, fsync, syncfs, link, commit };
  struct Fault {
    int err = 0;
    int after = 0;  // calls that succeed first
  };
  std::map<Op, Fault> faults;
  std::size_t short_write = 0;  // cut every write to at most this many bytes (0: no)
  std::vector<std::string> log;  // "fsync <inode>", "link <inode> <new path>"
  std::mutex mutex;

  ssize_t write(int fd, const void* data, std::size_t size) override {
    if (fail(Op::write)) return -1;
    if (short_write != 0 && size > short_write) size = short_write;
    return FileSystem::write(fd, data, size);
  }
  int fsync(int fd) override {
    if (fail(Op::fsync)) return -1;
    struct stat st {};
    ::fstat(fd, &st);
    record("fsync " + std::to_string(st.st_ino));
    return FileSystem::fsync(fd);
  }
  int syncfs(int fd) override { return fail(Op::syncfs) ? -1 : FileSystem::syncfs(fd); }
  int linkat(int olddirfd, const char* oldpath, int newdirfd, const char* newpath, int flags) override {
    if (fail(Op::link)) return -1;
    struct stat st {};
    ::fstatat(olddirfd, oldpath, &st, (flags & AT_SYMLINK_FOLLOW) != 0 ? 0 : AT_SYMLINK_NOFOLLOW);
    record("link " + std::to_string(st.st_ino) + " " + newpath);
    return FileSystem::linkat(olddirfd, oldpath, newdirfd, newpath, flags);
  }
  int before_index_commit() override {
    if (fail(Op::commit)) return errno;
    return 0;
  }

 private:
  bool fail(Op op) {
    std::lock_guard lock(mutex);
    auto it = faults.find(op);
    if (it == faults.end() || it->second.err == 0) return false;
    if (it->second.after > 0) {
      --it->second.after;
      return false;
    }
    errno = it->second.err;
    return true;
  }
  void record(std::string entry) {
    std::lock_guard lock(mutex);
    log.push_back(std::move(entry));
  }
};

class FaultInjectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root = dir.path() + "/cache";
    fs = std::make_shared<FaultyFileSystem>();
    ArtifactCache::Options options;
    options.file_system = fs;
    options.warn = [](const std::string&) {};
    auto opened = ArtifactCache::open(root, options);
    ASSERT_TRUE(opened);
    cache.emplace(std::move(*opened));
    // Something already cached, which no fault may harm.
    old_src = make_src("old", {{"f", "old contents"}, {"bin/tool", std::string(300000, 't')}});
    ASSERT_TRUE(cache->insert("old", old_src, ArtifactMeta{}));
    new_src = make_src("new", {{"a", "new a"}, {"big", std::string(3 << 20, 'b')}, {"c", "new c"}});
  }
  void TearDown() override {
    if (HasFailure()) dir.keep();
  }
  std::string make_src(const std::string& name, const std::map<std::string, std::string>& files) {
    std::string src = dir.path() + "/" + name;
    for (const auto& [path, contents] : files) {
      std::string full = src + "/" + path;
      EXPECT_TRUE(make_dirs(full.substr(0, full.rfind('/'))));
      EXPECT_TRUE(write_file_atomic(full, contents, path.starts_with("bin/") ? 0755 : 0644));
    }
    return src;
  }
  // The old artifact still stages byte for byte, verified.
  void expect_old_intact() {
    std::string out = dir.path() + "/check-old-" + std::to_string(++checks);
    ASSERT_TRUE(cache->stage("old", out, StageMode::copy, Verify::yes));
    EXPECT_EQ(read_file(out + "/f").value_or(""), "old contents");
    EXPECT_EQ(read_file(out + "/bin/tool").value_or("").size(), 300000u);
  }
  // Publishing "new" fails at once, with an error naming the cause, and leaves
  // no artifact, no temporary and no blob of "new" under its final name.
  void expect_clean_failure(const std::string& cause) {
    auto start = std::chrono::steady_clock::now();
    auto inserted = cache->insert("new", new_src, ArtifactMeta{});
    EXPECT_LT(std::chrono::steady_clock::now() - start, 5s) << "no retry loop";
    ASSERT_FALSE(inserted) << "published despite the fault";
    EXPECT_NE(inserted.error().to_string().find(cause), std::string::npos) << inserted.error().to_string();
    EXPECT_FALSE(cache->contains("new"));
    EXPECT_EQ(entries_in(root + "/incoming"), 0u) << "temporaries left behind";
    expect_old_intact();
    auto report = cache->verify();
    ASSERT_TRUE(report);
    EXPECT_TRUE(report->ok());
    // Once the fault clears, the same publish succeeds.
    fs->faults.clear();
    fs->short_write = 0;
    ASSERT_TRUE(cache->insert("new", new_src, ArtifactMeta{}));
    std::string out = dir.path() + "/new-out";
    ASSERT_TRUE(cache->stage("new", out, StageMode::copy, Verify::yes));
    EXPECT_EQ(read_file(out + "/big").value_or("").size(), std::size_t{3 << 20});
  }

  TempDir dir{"gang-fault-"};
  std::string root, old_src, new_src;
  std::shared_ptr<FaultyFileSystem> fs;
  std::optional<ArtifactCache> cache;
  int checks = 0;
};

TEST_F(FaultInjectionTest, FullDiskWhileWritingABlob) {
  fs->faults[FaultyFileSystem::Op::write] = {ENOSPC, 1};
  expect_clean_failure("No space left on device");
}

TEST_F(FaultInjectionTest, FullDiskMessageSaysTheCacheIsFull) {
  fs->faults[FaultyFileSystem::Op::write] = {ENOSPC, 0};
  auto inserted = cache->insert("new", new_src, ArtifactMeta{});
  ASSERT_FALSE(inserted);
  EXPECT_NE(inserted.error().to_string().find("the cache is full"), std::string::npos);
}

TEST_F(FaultInjectionTest, FailingDiskOnFsync) {
  fs->faults[FaultyFileSystem::Op::fsync] = {EIO, 1};
  expect_clean_failure("Input/output error");
}

TEST_F(FaultInjectionTest, FailedLinkIntoPlace) {
  fs->faults[FaultyFileSystem::Op::link] = {EIO, 1};
  expect_clean_failure("Input/output error");
}

TEST_F(FaultInjectionTest, FullDiskAtTheIndexCommit) {
  fs->faults[FaultyFileSystem::Op::commit] = {ENOSPC, 0};
  expect_clean_failure("No space left on device");
}

TEST_F(FaultInjectionTest, ShortWritesStillStoreEveryByte) {
  fs->short_write = 777;
  ASSERT_TRUE(cache->insert("new", new_src, ArtifactMeta{}));
  std::string out = dir.path() + "/out";
  ASSERT_TRUE(cache->stage("new", out, StageMode::copy, Verify::yes));
  EXPECT_EQ(read_file(out + "/big").value_or(""), std::string(3 << 20, 'b'));
  EXPECT_EQ(read_file(out + "/a").value_or(""), "new a");
}

TEST_F(FaultInjectionTest, ShortWritesThenAFullDisk) {
  fs->short_write = 4096;
  fs->faults[FaultyFileSystem::Op::write] = {ENOSPC, 100};  // mid-way through the big file
  expect_clean_failure("No space left on device");
}

TEST_F(FaultInjectionTest, EveryBlobIsDurableBeforeItHasItsName) {
  fs->log.clear();
  ASSERT_TRUE(cache->insert("new", new_src, ArtifactMeta{}));
  std::vector<std::string> synced;
  int links = 0;
  for (const auto& entry : fs->log) {
    if (entry.starts_with("fsync ")) synced.push_back(entry.substr(6));
    if (!entry.starts_with("link ")) continue;
    ++links;
    std::string inode = entry.substr(5, entry.find(' ', 5) - 5);
    EXPECT_NE(std::find(synced.begin(), synced.end(), inode), synced.end())
        << "linked into place before its data was synced: " << entry;
  }
  EXPECT_GE(links, 4) << "three files and a manifest were stored";
}

}  // namespace
}  // namespace gang
