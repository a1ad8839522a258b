// A blob edited in place with its size unchanged is caught with one stat
// (its mtime loses the blob stamp), re-hashed, and never staged or reused.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "cache/artifact_cache.hpp"
#include "util/fs.hpp"
#include "util/sha256.hpp"

namespace gang {
namespace {

class BlobStampTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root = dir.path() + "/cache";
    src = dir.path() + "/src";
    ASSERT_TRUE(make_dirs(src));
    ASSERT_TRUE(write_file_atomic(src + "/f", "good contents", 0644));
    options.warn = [this](const std::string& w) { warnings.push_back(w); };
    auto opened = ArtifactCache::open(root, options);
    ASSERT_TRUE(opened);
    cache.emplace(std::move(*opened));
    ASSERT_TRUE(cache->insert("k", src, ArtifactMeta{}));
    blob = BlobStore::open(root)->path(BlobId{sha256_hex("good contents"), false});
  }
  void TearDown() override {
    if (HasFailure()) dir.keep();
  }
  struct stat stat_of(const std::string& path) {
    struct stat st {};
    EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
    return st;
  }
  // Overwrites the blob's first bytes in place, as an edit through a hard
  // link would: same inode, same size.
  void edit_blob_in_place(const std::string& bytes) {
    ASSERT_EQ(::chmod(blob.c_str(), 0644), 0);
    int fd = ::open(blob.c_str(), O_WRONLY | O_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pwrite(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
    ::close(fd);
    ASSERT_EQ(::chmod(blob.c_str(), 0444), 0);
  }

  TempDir dir{"gang-blob-stamp-"};
  std::string root, src, blob;
  ArtifactCache::Options options;
  std::optional<ArtifactCache> cache;
  std::vector<std::string> warnings;
};

TEST_F(BlobStampTest, EveryBlobCarriesTheStamp) {
  EXPECT_TRUE(has_blob_stamp(stat_of(blob)));
  auto manifest = cache->manifest("k");
  ASSERT_TRUE(manifest);
  EXPECT_TRUE(has_blob_stamp(stat_of(root + "/objects/" + cache->lookup("k")->value().manifest_digest.substr(0, 2) +
                                     "/" + cache->lookup("k")->value().manifest_digest)));
}

TEST_F(BlobStampTest, ASameSizeEditIsNeverStagedEvenWithoutVerify) {
  edit_blob_in_place("evil");  // "evil contents": 13 bytes, like "good contents"
  ASSERT_EQ(stat_of(blob).st_size, 13);
  std::string out = dir.path() + "/out";
  auto staged = cache->stage("k", out, StageMode::copy, Verify::no);
  EXPECT_FALSE(staged) << "staged: " << read_file(out + "/f").value_or("?");
  EXPECT_FALSE(cache->contains("k")) << "the damaged artifact is dropped, to be rebuilt";
  EXPECT_FALSE(path_exists(blob)) << "the damaged blob is removed";
  EXPECT_FALSE(warnings.empty());
}

TEST_F(BlobStampTest, AGoodBlobThatLostItsStampIsRehashedUsedAndStampedAgain) {
  ASSERT_EQ(::utimensat(AT_FDCWD, blob.c_str(), nullptr, 0), 0);  // now, as a touch would
  ASSERT_FALSE(has_blob_stamp(stat_of(blob)));
  std::string out = dir.path() + "/out";
  ASSERT_TRUE(cache->stage("k", out, StageMode::copy, Verify::no));
  EXPECT_EQ(read_file(out + "/f").value_or(""), "good contents");
  EXPECT_TRUE(has_blob_stamp(stat_of(blob)));
  EXPECT_TRUE(cache->contains("k"));
}

TEST_F(BlobStampTest, DeduplicationNeverReusesAnEditedBlob) {
  edit_blob_in_place("evil");
  std::string src2 = dir.path() + "/src2";
  ASSERT_TRUE(make_dirs(src2));
  ASSERT_TRUE(write_file_atomic(src2 + "/g", "good contents", 0644));
  ASSERT_TRUE(cache->insert("k2", src2, ArtifactMeta{}));
  std::string out = dir.path() + "/out";
  ASSERT_TRUE(cache->stage("k2", out, StageMode::copy, Verify::no));
  EXPECT_EQ(read_file(out + "/g").value_or(""), "good contents");
}

}  // namespace
}  // namespace gang
