#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <functional>

#include "tests/support/capabilities.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/mounts.hpp"
#include "util/sha256.hpp"

namespace gang {
namespace {

TEST(Sha256, MatchesKnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, IncrementalEqualsOneShot) {
  Sha256 hasher;
  hasher.update("a");
  hasher.update("bc");
  EXPECT_EQ(hasher.hex_digest(), sha256_hex("abc"));
}

TEST(Fs, WriteFileAtomicReplacesContentsAndSetsMode) {
  TempDir dir;
  std::string path = dir.path() + "/f";
  ASSERT_TRUE(write_file_atomic(path, "one"));
  ASSERT_TRUE(write_file_atomic(path, "two", 0600));
  EXPECT_EQ(*read_file(path), "two");
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(Fs, RemoveTreeRemovesReadOnlyDirectories) {
  TempDir dir;
  std::string sub = dir.path() + "/a/b";
  ASSERT_TRUE(make_dirs(sub));
  ASSERT_TRUE(write_file_atomic(sub + "/f", "x", 0444));
  ::chmod(sub.c_str(), 0555);
  ASSERT_TRUE(remove_tree(dir.path() + "/a"));
  EXPECT_FALSE(path_exists(dir.path() + "/a"));
}

TEST(Fs, RemoveTreeRemovesPathsLongerThanPathMaxAndUnreadableDirectories) {
  // What a build can leave in a kept sandbox: a path of over 9,000 bytes
  // (made level by level, as no system call takes it whole), a mode-000
  // directory with a file in it, and a symlink to outside, not followed.
  TempDir dir;
  std::string top = dir.path() + "/a";
  ASSERT_TRUE(make_dirs(top));
  ASSERT_TRUE(write_file_atomic(dir.path() + "/outside", "keep"));
  int fd = ::open(top.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::string name(240, 'n');
  for (int level = 0; level < 40; ++level) {
    ASSERT_EQ(::mkdirat(fd, name.c_str(), 0755), 0);
    int sub = ::openat(fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(sub, 0);
    ::close(fd);
    fd = sub;
  }
  int file = ::openat(fd, "deep", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(file, 0);
  ::close(file);
  ASSERT_EQ(::symlinkat((dir.path() + "/outside").c_str(), fd, "link"), 0);
  ::close(fd);
  ASSERT_TRUE(make_dirs(top + "/closed"));
  ASSERT_TRUE(write_file_atomic(top + "/closed/f", "x"));
  ::chmod((top + "/closed").c_str(), 0);
  auto removed = remove_tree(top);
  ASSERT_TRUE(removed) << removed.error().to_string();
  EXPECT_FALSE(path_exists(top));
  EXPECT_EQ(read_file(dir.path() + "/outside").value_or(""), "keep");
}

TEST(Fs, ReadFileReportsMissingFile) {
  auto r = read_file("/nonexistent/gang/file");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("/nonexistent/gang/file"), std::string::npos);
}

TEST(Fs, ReadPiecesHandsOverEveryReadAndStopsWhenAsked) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  Fd reader(fds[0]);
  {
    Fd writer(fds[1]);
    ASSERT_EQ(::write(writer.get(), "abcdefghij", 10), 10);
  }
  std::string got;
  char buffer[4];
  int pieces = 0;
  ASSERT_TRUE(read_pieces(reader.get(), "the pipe", buffer, sizeof buffer, [&](std::string_view p) {
    got.append(p);
    return ++pieces < 2;  // stop after the second piece
  }));
  EXPECT_EQ(got, "abcdefgh");
  EXPECT_EQ(pieces, 2);
  // Whatever was not asked for is still there.
  ASSERT_TRUE(read_pieces(reader.get(), "the pipe", buffer, sizeof buffer, [&](std::string_view p) {
    got.append(p);
    return true;
  }));
  EXPECT_EQ(got, "abcdefghij");
  auto bad =
      read_pieces(-1, "/some/where", buffer, sizeof buffer, [](std::string_view) { return true; });
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("/some/where"), std::string::npos);
}

TEST(Fs, ReadRegularFileRefusesAFileAboveItsCap) {
  TempDir dir;
  std::string path = dir.path() + "/f";
  ASSERT_TRUE(write_file_atomic(path, std::string(100, 'x')));
  EXPECT_EQ(read_regular_file(path, 100).value_or(""), std::string(100, 'x'));
  auto big = read_regular_file(path, 99);
  ASSERT_FALSE(big);
  EXPECT_NE(big.error().message.find("larger than 99 bytes"), std::string::npos);
  EXPECT_EQ(sha256_file(path).value_or(""), sha256_hex(std::string(100, 'x')));
}

TEST(Mounts, MountPointOfReadsTheFifthFieldAndUndoesEscapes) {
  EXPECT_EQ(mount_point_of("36 35 98:0 /mnt1 /mnt\\0402 rw,noatime master:1 - ext3 /dev/root rw"),
            "/mnt 2");
  EXPECT_EQ(mount_point_of("22 1 0:21 / /proc rw,nosuid - proc proc rw"), "/proc");
  EXPECT_EQ(mount_point_of("22 1 0:21 /"), "");
  // An escape that is not octal stays as it is.
  EXPECT_EQ(mount_point_of("1 2 3:4 / /a\\9zz rw"), "/a\\9zz");
  auto points = mount_points();
  EXPECT_NE(std::find(points.begin(), points.end(), "/"), points.end());
}

TEST(Fs, RemoveTreeNeverEntersAFileSystemMountedBelowIt) {
  TempDir dir;
  const std::string tree = dir.path() + "/tree";
  const std::string mnt = tree + "/a/mnt";
  ASSERT_TRUE(make_dirs(mnt));
  ASSERT_TRUE(write_file(tree + "/a/file", "x"));
  int status = testing::in_own_mount_namespace([&] {
    if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "mode=0755") != 0) return 77;
    if (!write_file(mnt + "/precious", "keep")) return 10;
    auto under = mounts_under(tree);
    if (under != std::vector<std::string>{mnt}) return 11;
    auto removed = remove_tree(tree);
    if (removed) return 12;  // it went through the mount
    if (removed.error().message.find("mounted at mnt") == std::string::npos) return 13;
    if (read_file(mnt + "/precious").value_or("") != "keep") return 14;
    // Once unmounted, the rest goes.
    if (::umount2(mnt.c_str(), MNT_DETACH) != 0) return 16;
    if (!remove_tree(tree) || path_exists(tree)) return 17;
    return 0;
  });
  if (status == -1) GTEST_SKIP() << "no mount namespace can be made here";
  EXPECT_EQ(status, 0);
}

TEST(Error, FormatsLocation) {
  Error e{"unknown field", "strata/core.morph", 14, 3, "bulid-depends"};
  EXPECT_EQ(e.to_string(), "strata/core.morph:14:3: unknown field");
}

}  // namespace
}  // namespace gang
