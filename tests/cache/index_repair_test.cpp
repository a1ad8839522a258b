// The index is a cache of the blobs: a damaged LMDB data file is a clear
// error (never SIGBUS), `repair` rebuilds the index from manifests that
// record their own key, and verify() lets publishing go on while it hashes.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <thread>

#include "cache/artifact_cache.hpp"
#include "cache/manifest.hpp"
#include "util/fs.hpp"

namespace gang {
namespace {

using namespace std::chrono_literals;

void write_tree(const std::string& dir, const std::map<std::string, std::string>& files) {
  for (const auto& [path, contents] : files) {
    std::string full = dir + "/" + path;
    ASSERT_TRUE(make_dirs(full.substr(0, full.rfind('/'))));
    ASSERT_TRUE(write_file_atomic(full, contents, path.starts_with("bin/") ? 0755 : 0644));
  }
}

class IndexRepairTest : public ::testing::Test {
 protected:
  void SetUp() override { root = dir.path() + "/cache"; }
  void TearDown() override {
    if (HasFailure()) dir.keep();
  }
  ArtifactMeta meta(std::chrono::milliseconds duration = 1500ms) {
    ArtifactMeta m;
    m.build_duration = duration;
    m.built_by = Holder{"builder-host", 42, 7, 2, "gang-1"};
    m.extra["chunks"] = "a b\nc";  // awkward characters survive the round trip
    return m;
  }
  // Publishes three artifacts (an executable, a symlink, shared contents).
  void publish_three() {
    auto cache = ArtifactCache::open(root);
    ASSERT_TRUE(cache) << cache.error().to_string();
    for (int i = 0; i < 3; ++i) {
      std::string src = dir.path() + "/src" + std::to_string(i);
      write_tree(src, {{"bin/tool", "tool " + std::to_string(i)}, {"share/common", "same"}});
      ASSERT_EQ(::symlink("../bin/tool", (src + "/share/link").c_str()), 0);
      ASSERT_TRUE(cache->insert("k" + std::to_string(i), src, meta()));
    }
    auto all = cache->list();
    ASSERT_TRUE(all);
    for (const auto& info : *all) before[info.key] = info;
  }
  void truncate_index(off_t size) {
    ASSERT_EQ(::truncate((root + "/index/data.mdb").c_str(), size), 0);
  }

  TempDir dir{"gang-index-repair-"};
  std::string root;
  std::map<std::string, ArtifactInfo> before;
};

TEST(ManifestRecord, Version2RecordsKeyAndRowAndVersion1StillReads) {
  Manifest m;
  m.entries.push_back({ManifestEntry::Type::directory, "usr", 0755, "", 0, ""});
  m.key = "name.abc";
  m.record = "size=3\nx.chunks=a b\\nc\n";
  auto text = m.encode();
  EXPECT_TRUE(text.starts_with("gang-manifest 2\nk name.abc\nm "));
  auto back = Manifest::decode(text);
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(back->key, m.key);
  EXPECT_EQ(back->record, m.record);
  ASSERT_EQ(back->entries.size(), 1u);

  auto v1 = Manifest::decode("gang-manifest 1\nd 0755 usr\n");
  ASSERT_TRUE(v1);
  EXPECT_TRUE(v1->key.empty());
  EXPECT_FALSE(Manifest::decode("gang-manifest 2\nd 0755 usr\n")) << "v2 needs its record lines";
}

TEST_F(IndexRepairTest, ATruncatedDataFileIsAClearErrorNotSigbus) {
  publish_three();
  truncate_index(8192);
  auto cache = ArtifactCache::open(root);  // with the old code: SIGBUS here
  ASSERT_FALSE(cache);
  std::string error = cache.error().to_string();
  EXPECT_NE(error.find("data.mdb"), std::string::npos) << error;
  EXPECT_NE(error.find("truncated"), std::string::npos) << error;
  EXPECT_NE(error.find("gang cache repair"), std::string::npos) << error;

  truncate_index(100);  // not even a meta page
  auto again = ArtifactCache::open(root);
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().to_string().find("no valid meta page"), std::string::npos);
}

TEST_F(IndexRepairTest, RepairRebuildsTheIndexFromTheBlobsAlone) {
  publish_three();
  truncate_index(8192);
  auto report = ArtifactCache::repair(root);
  ASSERT_TRUE(report) << report.error().to_string();
  EXPECT_EQ(report->restored, 3u);
  EXPECT_EQ(report->manifests_found, 3u);
  EXPECT_EQ(report->kept_from_old_index, 0u);
  EXPECT_FALSE(report->old_index_readable);
  EXPECT_TRUE(path_exists(report->old_index + "/data.mdb")) << "the damaged index is kept";

  auto cache = ArtifactCache::open(root);
  ASSERT_TRUE(cache) << cache.error().to_string();
  auto all = cache->list();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 3u);
  for (const auto& info : *all) {
    const auto& old = before.at(info.key);
    EXPECT_EQ(info.manifest_digest, old.manifest_digest);
    EXPECT_EQ(info.size, old.size);
    EXPECT_EQ(info.file_count, old.file_count);
    EXPECT_EQ(info.created_ms, old.created_ms);
    EXPECT_EQ(info.meta.build_duration, 1500ms);
    EXPECT_EQ(info.meta.built_by.host, "builder-host");
    EXPECT_EQ(info.meta.extra.at("chunks"), "a b\nc");
  }
  std::string out = dir.path() + "/out";
  ASSERT_TRUE(cache->stage("k1", out, StageMode::copy, Verify::yes));
  EXPECT_EQ(read_file(out + "/bin/tool").value_or(""), "tool 1");
  struct stat st {};
  ASSERT_EQ(::stat((out + "/bin/tool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);
  char target[64] = {};
  ASSERT_GT(::readlink((out + "/share/link").c_str(), target, sizeof target - 1), 0);
  EXPECT_STREQ(target, "../bin/tool");
  auto verified = cache->verify();
  ASSERT_TRUE(verified);
  EXPECT_TRUE(verified->ok());
}

TEST_F(IndexRepairTest, RepairSkipsArtifactsWithMissingBlobsAndKeepsReadableRows) {
  publish_three();
  {
    auto cache = ArtifactCache::open(root);
    ASSERT_TRUE(cache);
    auto manifest = cache->manifest("k2");
    ASSERT_TRUE(manifest);
    for (const auto& e : manifest->entries) {
      if (e.path == "bin/tool") {
        ASSERT_EQ(::unlink(BlobStore::open(root)->path(BlobId{e.digest, true}).c_str()), 0);
      }
    }
  }
  auto report = ArtifactCache::repair(root);  // the old index is intact here
  ASSERT_TRUE(report) << report.error().to_string();
  EXPECT_TRUE(report->old_index_readable);
  EXPECT_EQ(report->restored, 2u);
  EXPECT_EQ(report->kept_from_old_index, 2u);
  EXPECT_EQ(report->incomplete, 1u);
  auto cache = ArtifactCache::open(root);
  ASSERT_TRUE(cache);
  EXPECT_TRUE(cache->contains("k0"));
  EXPECT_TRUE(cache->contains("k1"));
  EXPECT_FALSE(cache->contains("k2")) << "an artifact missing a blob must not come back";
}

TEST_F(IndexRepairTest, CliReportsTheDamageAndRepairs) {
  publish_three();
  truncate_index(4096);
  std::string gang = std::string(GANG_BINARY) + " cache ";
  std::string tail = " --cache '" + root + "' >'" + dir.path() + "/out' 2>'" + dir.path() + "/err'";
  int ls = std::system((gang + "ls" + tail).c_str());
  ASSERT_TRUE(WIFEXITED(ls)) << "killed by a signal";
  EXPECT_EQ(WEXITSTATUS(ls), 1);
  EXPECT_NE(read_file(dir.path() + "/err").value_or("").find("gang cache repair"), std::string::npos);
  int repaired = std::system((gang + "repair --json" + tail).c_str());
  ASSERT_EQ(repaired, 0) << read_file(dir.path() + "/err").value_or("");
  EXPECT_NE(read_file(dir.path() + "/out").value_or("").find("\"restored\": 3"), std::string::npos);
  ASSERT_EQ(std::system((gang + "ls" + tail).c_str()), 0);
  EXPECT_NE(read_file(dir.path() + "/out").value_or("").find("k2"), std::string::npos);
}

TEST_F(IndexRepairTest, VerifyLetsAPublishCompleteWhileItHashes) {
  publish_three();
  std::mutex mutex;
  std::condition_variable cv;
  bool published = false, waited_out = false;
  int calls = 0;
  ArtifactCache::Options options;
  options.on_verify_blob = [&](const BlobId&) {
    if (++calls != 2) return;  // mid-walk: wait for the publish to finish
    std::unique_lock lock(mutex);
    waited_out = !cv.wait_for(lock, 10s, [&] { return published; });
  };
  auto verifier = ArtifactCache::open(root, options);
  ASSERT_TRUE(verifier);
  std::thread publisher([&] {
    std::this_thread::sleep_for(100ms);  // let verify start
    auto cache = ArtifactCache::open(root);
    std::string src = dir.path() + "/late";
    write_tree(src, {{"f", "late"}});
    auto inserted = cache ? cache->insert("late", src, meta()) : Result<PublishOutcome>{};
    std::lock_guard lock(mutex);
    published = static_cast<bool>(inserted);
    cv.notify_all();
  });
  auto report = verifier->verify();
  publisher.join();
  ASSERT_TRUE(report) << report.error().to_string();
  EXPECT_TRUE(report->ok());
  EXPECT_FALSE(waited_out) << "the publish waited for verify to finish";
  EXPECT_TRUE(published);
}

}  // namespace
}  // namespace gang

namespace gang {
namespace {

TEST(BuildHistory, DurationsOutliveForgetAndGcAndSurviveARepair) {
  TempDir dir{"gang-history-"};
  std::string root = dir.path() + "/cache";
  {
    auto cache = ArtifactCache::open(root);
    ASSERT_TRUE(cache) << cache.error().to_string();
    std::string src = dir.path() + "/src";
    ASSERT_TRUE(make_dirs(src));
    ASSERT_TRUE(write_file_atomic(src + "/f", "x", 0644));
    ASSERT_TRUE(cache->insert("gcc.k1", src, ArtifactMeta{}));
    ASSERT_TRUE(cache->record_duration("gcc", std::chrono::milliseconds(61500)));
    ASSERT_TRUE(cache->record_duration("core", std::chrono::milliseconds(20)));
    ASSERT_TRUE(cache->record_duration("gcc", std::chrono::milliseconds(60000)));  // the last wins
    ASSERT_TRUE(cache->forget("gcc.k1"));
    ASSERT_TRUE(cache->gc(0));
    auto history = cache->durations();
    ASSERT_TRUE(history) << history.error().to_string();
    EXPECT_EQ(*history, (std::map<std::string, std::chrono::milliseconds>{
                            {"core", std::chrono::milliseconds(20)},
                            {"gcc", std::chrono::milliseconds(60000)}}));
  }
  ASSERT_TRUE(ArtifactCache::repair(root));
  auto cache = ArtifactCache::open(root);
  ASSERT_TRUE(cache);
  auto history = cache->durations();
  ASSERT_TRUE(history);
  EXPECT_EQ(history->size(), 2u);
  EXPECT_EQ(history->at("gcc"), std::chrono::milliseconds(60000));
}

}  // namespace
}  // namespace gang
