#include "cache/artifact_cache.hpp"

#include <dirent.h>
#include <gtest/gtest.h>

#include <unordered_set>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <functional>
#include <map>
#include <thread>

#include "cache/file_lock.hpp"
#include "cache/manifest.hpp"
#include "cache/records.hpp"
#include "util/fs.hpp"
#include "util/sha256.hpp"

namespace gang {
namespace {

using namespace std::chrono_literals;

// Writes files (path -> contents) under dir, creating parents.
void write_tree(const std::string& dir, const std::map<std::string, std::string>& files,
                int mode = 0644) {
  for (const auto& [path, contents] : files) {
    std::string full = dir + "/" + path;
    ASSERT_TRUE(make_dirs(full.substr(0, full.rfind('/'))));
    ASSERT_TRUE(write_file_atomic(full, contents, mode));
  }
}

struct stat stat_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st;
}

std::string read(const std::string& path) {
  auto r = read_file(path);
  return r ? *r : "<missing " + path + ">";
}

// Runs fn in a forked child and returns its exit status (or 128+signal).
int in_child(const std::function<int()>& fn) {
  pid_t pid = ::fork();
  if (pid == 0) {
    int code = 1;
    try {
      code = fn();
    } catch (...) {
    }
    ::_exit(code);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::size_t count_blobs(const std::string& root) {
  std::size_t n = 0;
  auto blobs = BlobStore::open(root);
  EXPECT_TRUE(blobs);
  (void)blobs->for_each([&](const BlobId&, std::uint64_t) { ++n; });
  return n;
}

// A System whose clock and host the test controls; processes are real.
class FakeSystem : public System {
 public:
  std::int64_t now = 1'000'000;
  std::string host = "here";
  std::int64_t now_ms() override { return now; }
  std::string host_name() override { return host; }
  std::optional<std::uint64_t> process_start_time(int pid) override {
    return read_process_start_time(pid);
  }
  int self_pid() override { return static_cast<int>(::getpid()); }
};

class ArtifactCacheTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root = dir.path() + "/cache";
    options.warn = [this](const std::string& w) { warnings.push_back(w); };
  }
  void TearDown() override {
    if (HasFailure()) dir.keep();
  }
  ArtifactCache open_cache() {
    auto c = ArtifactCache::open(root, options);
    if (!c) throw std::runtime_error(c.error().to_string());
    return std::move(*c);
  }
  ArtifactMeta meta(int instance = 1) {
    ArtifactMeta m;
    m.build_duration = 1500ms;
    m.built_by = Holder{"builder-host", 42, 7, instance, "gang-1"};
    return m;
  }

  TempDir dir{"gang-cache-test-"};
  std::string root;
  ArtifactCache::Options options;
  std::vector<std::string> warnings;
};

TEST(Records, ParseSizeAcceptsSuffixes) {
  EXPECT_EQ(*parse_size("10G"), 10ull << 30);
  EXPECT_EQ(*parse_size("500M"), 500ull << 20);
  EXPECT_EQ(*parse_size("64k"), 64ull << 10);
  EXPECT_EQ(*parse_size("123"), 123u);
  EXPECT_EQ(*parse_size("2GB"), 2ull << 30);
  EXPECT_FALSE(parse_size("ten"));
  EXPECT_FALSE(parse_size("5X"));
}

TEST(Records, ArtifactRowRoundTripsWithExtraMetadata) {
  ArtifactInfo info;
  info.manifest_digest = std::string(64, 'a');
  info.size = 99;
  info.file_count = 3;
  info.created_ms = 1234;
  info.meta.build_duration = 250ms;
  info.meta.built_by = Holder{"h", 5, 6, 2, "g"};
  info.meta.extra["chunks"] = "{\"a\": 1}\nline two \\ backslash";
  auto back = decode_artifact("k", encode_artifact(info));
  ASSERT_TRUE(back) << back.error().to_string();
  EXPECT_EQ(back->manifest_digest, info.manifest_digest);
  EXPECT_EQ(back->size, 99u);
  EXPECT_EQ(back->file_count, 3u);
  EXPECT_EQ(back->meta.build_duration, 250ms);
  EXPECT_TRUE(back->meta.built_by.same_process(info.meta.built_by));
  EXPECT_EQ(back->meta.built_by.gang_id, "g");
  EXPECT_EQ(back->meta.extra.at("chunks"), info.meta.extra.at("chunks"));
}

TEST(Manifest, RoundTripsAwkwardPathsAndRejectsUnsafeOnes) {
  Manifest m;
  m.entries.push_back({ManifestEntry::Type::directory, "a dir", 0755, {}, 0, {}});
  m.entries.push_back({ManifestEntry::Type::file, "a dir/50%\nnew", 0644, std::string(64, 'b'), 7, {}});
  m.entries.push_back({ManifestEntry::Type::symlink, "a dir/l", 0, {}, 0, "../x y"});
  m.entries.push_back({ManifestEntry::Type::hardlink, "h", 0, {}, 0, "a dir/50%\nnew"});
  auto back = Manifest::decode(m.encode());
  ASSERT_TRUE(back) << back.error().to_string();
  ASSERT_EQ(back->entries.size(), 4u);
  EXPECT_EQ(back->entries[1].path, "a dir/50%\nnew");
  EXPECT_EQ(back->entries[1].size, 7u);
  EXPECT_EQ(back->entries[2].target, "../x y");
  EXPECT_EQ(back->entries[3].target, "a dir/50%\nnew");
  EXPECT_FALSE(Manifest::decode("gang-manifest 1\nd 0755 ../escape\n"));
  EXPECT_FALSE(Manifest::decode("gang-manifest 1\nf 0644 abc 1 x\n"));
  EXPECT_FALSE(Manifest::decode("not a manifest\n"));
}

TEST(System, ReadsThisProcessStartTimeAndNothingForMissingPids) {
  auto mine = read_process_start_time(static_cast<int>(::getpid()));
  ASSERT_TRUE(mine);
  EXPECT_GT(*mine, 0u);
  EXPECT_FALSE(read_process_start_time(0));
  EXPECT_FALSE(read_process_start_time(999999999));
}

TEST_F(ArtifactCacheTest, InsertThenStageReproducesTheTree) {
  std::string src = dir.path() + "/src";
  write_tree(src, {{"usr/bin/tool", "#!/bin/sh\necho hi\n"}, {"usr/share/doc/README", "read me"}});
  ASSERT_EQ(::chmod((src + "/usr/bin/tool").c_str(), 0755), 0);
  ASSERT_TRUE(make_dirs(src + "/var/empty"));
  ASSERT_EQ(::chmod((src + "/var/empty").c_str(), 0700), 0);
  ASSERT_EQ(::symlink("tool", (src + "/usr/bin/alias").c_str()), 0);
  ASSERT_EQ(::link((src + "/usr/share/doc/README").c_str(), (src + "/usr/share/doc/README.hard").c_str()), 0);

  auto cache = open_cache();
  EXPECT_FALSE(cache.contains("core.abc"));
  auto inserted = cache.insert("core.abc", src, meta());
  ASSERT_TRUE(inserted) << inserted.error().to_string();
  EXPECT_EQ(*inserted, PublishOutcome::inserted);
  EXPECT_TRUE(cache.contains("core.abc"));

  for (StageMode mode : {StageMode::hardlink, StageMode::copy}) {
    std::string out = dir.path() + (mode == StageMode::copy ? "/copy" : "/link");
    auto staged = cache.stage("core.abc", out, mode, Verify::yes);
    ASSERT_TRUE(staged) << staged.error().to_string();
    EXPECT_EQ(read(out + "/usr/bin/tool"), "#!/bin/sh\necho hi\n");
    EXPECT_EQ(read(out + "/usr/share/doc/README"), "read me");
    EXPECT_EQ(stat_of(out + "/usr/bin/tool").st_mode & 0111, 0111u);
    EXPECT_TRUE(S_ISDIR(stat_of(out + "/var/empty").st_mode));
    EXPECT_EQ(stat_of(out + "/var/empty").st_mode & 0777, 0700u);
    char target[64] = {};
    ASSERT_GT(::readlink((out + "/usr/bin/alias").c_str(), target, sizeof target), 0);
    EXPECT_STREQ(target, "tool");
    EXPECT_EQ(stat_of(out + "/usr/share/doc/README").st_ino,
              stat_of(out + "/usr/share/doc/README.hard").st_ino);
    if (mode == StageMode::copy) {
      EXPECT_EQ(stat_of(out + "/usr/bin/tool").st_mode & 0777, 0755u);
      EXPECT_EQ(stat_of(out + "/usr/share/doc/README").st_mode & 0777, 0644u);
    }
  }
}

// A tree with every kind of entry: modes, an executable, a symlink, an empty
// directory, hard links inside the tree, a set-id file and big files.
void write_rich_tree(const std::string& src) {
  write_tree(src, {{"usr/bin/tool", "#!/bin/sh\necho hi\n"},
                   {"usr/bin/suid", "pretend setuid"},
                   {"usr/share/doc/README", "read me"},
                   {"usr/lib/big.so", std::string(3 << 20, 'b')},
                   {"usr/lib/big-exe", std::string(2 << 20, 'x')},
                   {"etc/private", "secret"}});
  ASSERT_EQ(::chmod((src + "/usr/bin/tool").c_str(), 0755), 0);
  ASSERT_EQ(::chmod((src + "/usr/lib/big-exe").c_str(), 0755), 0);
  ASSERT_EQ(::chmod((src + "/usr/bin/suid").c_str(), 04755), 0);
  ASSERT_EQ(::chmod((src + "/etc/private").c_str(), 0600), 0);
  ASSERT_TRUE(make_dirs(src + "/var/empty"));
  ASSERT_EQ(::chmod((src + "/var/empty").c_str(), 0700), 0);
  ASSERT_EQ(::symlink("tool", (src + "/usr/bin/alias").c_str()), 0);
  ASSERT_EQ(::link((src + "/usr/share/doc/README").c_str(), (src + "/usr/share/doc/README.hard").c_str()), 0);
  ASSERT_EQ(::link((src + "/usr/lib/big.so").c_str(), (src + "/usr/lib/big.so.1").c_str()), 0);
}

// "path type mode size contents-digest link-target", one line per entry, and
// which paths share an inode: what staging must reproduce.
std::string describe_tree(const std::string& root) {
  std::string out;
  std::map<ino_t, std::string> inodes;
  std::function<void(const std::string&)> walk = [&](const std::string& rel) {
    std::string full = rel.empty() ? root : root + "/" + rel;
    DIR* d = ::opendir(full.c_str());
    if (d == nullptr) return;
    std::vector<std::string> names;
    while (auto e = ::readdir(d))
      if (std::string_view(e->d_name) != "." && std::string_view(e->d_name) != "..") names.emplace_back(e->d_name);
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      std::string r = rel.empty() ? n : rel + "/" + n;
      struct stat st = stat_of(root + "/" + r);
      char mode[16];
      std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
      if (S_ISDIR(st.st_mode)) {
        out += r + " d " + mode + "\n";
        walk(r);
      } else if (S_ISLNK(st.st_mode)) {
        char target[256] = {};
        (void)!::readlink((root + "/" + r).c_str(), target, sizeof target - 1);
        out += r + " l -> " + target + "\n";
      } else {
        auto [it, fresh] = inodes.try_emplace(st.st_ino, r);
        out += r + " f " + mode + " " + std::to_string(st.st_size) + " " +
               sha256_hex(read(root + "/" + r)).substr(0, 12) +
               (fresh ? "" : " same inode as " + it->second) + "\n";
      }
    }
  };
  walk("");
  return out;
}

TEST_F(ArtifactCacheTest, TakeInsertStagesAndVerifiesLikeCopyInsertAfterTheSourceIsGone) {
  std::string copied = dir.path() + "/copied", taken = dir.path() + "/taken";
  write_rich_tree(copied);
  write_rich_tree(taken);
  std::string expected = describe_tree(copied);
  ASSERT_EQ(describe_tree(taken), expected);
  std::string copy_root = dir.path() + "/cache-copy", take_root = dir.path() + "/cache-take";
  auto copy_cache = ArtifactCache::open(copy_root, options);
  auto take_cache = ArtifactCache::open(take_root, options);
  ASSERT_TRUE(copy_cache && take_cache);
  ASSERT_EQ(*copy_cache->insert("k", copied, meta()), PublishOutcome::inserted);
  auto inserted = take_cache->insert("k", taken, meta(), Ownership::take);
  ASSERT_TRUE(inserted) << inserted.error().to_string();
  ASSERT_EQ(*inserted, PublishOutcome::inserted);
  // Taken: the plain file's inode is now its blob, read-only.
  auto take_blobs = BlobStore::open(take_root);
  struct stat readme = stat_of(taken + "/usr/share/doc/README");
  struct stat blob = stat_of(take_blobs->path(BlobId{sha256_hex("read me"), false}));
  EXPECT_EQ(readme.st_ino, blob.st_ino);
  EXPECT_EQ(blob.st_mode & 07777, 0444u);
  struct stat big_exe = stat_of(take_blobs->path(BlobId{sha256_hex(std::string(2 << 20, 'x')), true}));
  EXPECT_EQ(big_exe.st_ino, stat_of(taken + "/usr/lib/big-exe").st_ino);
  EXPECT_EQ(big_exe.st_mode & 07777, 0555u);
  // The set-id file was copied: its source keeps its mode.
  EXPECT_EQ(stat_of(taken + "/usr/bin/suid").st_mode & 07777, 04755u);

  ASSERT_TRUE(remove_tree(taken));
  auto entries_of = [](Manifest m) {  // the tree, without the publication record
    m.key.clear();
    m.record.clear();
    return m.encode();
  };
  EXPECT_EQ(entries_of(*copy_cache->manifest("k")), entries_of(*take_cache->manifest("k")));
  for (StageMode mode : {StageMode::hardlink, StageMode::copy}) {
    std::string suffix = mode == StageMode::copy ? "-copy" : "-link";
    std::string from_copy = dir.path() + "/out-c" + suffix, from_take = dir.path() + "/out-t" + suffix;
    ASSERT_TRUE(copy_cache->stage("k", from_copy, mode, Verify::yes));
    auto staged = take_cache->stage("k", from_take, mode, Verify::yes);
    ASSERT_TRUE(staged) << staged.error().to_string();
    EXPECT_EQ(describe_tree(from_take), describe_tree(from_copy)) << suffix;
    if (mode == StageMode::copy) {
      EXPECT_EQ(describe_tree(from_take), expected);
    }
  }
  // Every blob has exactly the store's mode, and only the store and the
  // staged trees reach it.
  ASSERT_TRUE(take_blobs->for_each([&](const BlobId& id, std::uint64_t) {
    struct stat st = stat_of(take_blobs->path(id));
    EXPECT_EQ(st.st_mode & 07777, id.executable ? 0555u : 0444u) << id.name();
  }));
  auto report = take_cache->verify();
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->ok());
  EXPECT_TRUE(warnings.empty());
}

TEST_F(ArtifactCacheTest, TakeInsertLeavesFilesAloneWhoseBlobsExistAndCopiesThoseLinkedFromOutside) {
  std::string first = dir.path() + "/first", second = dir.path() + "/second";
  std::map<std::string, std::string> files{{"a", "shared a"}, {"big", std::string(2 << 20, 'g')}};
  write_tree(first, files);
  write_tree(second, files);
  write_tree(second, {{"new", "only in second"}, {"linked", "linked from outside"}});
  std::string outside = dir.path() + "/outside";
  ASSERT_EQ(::link((second + "/linked").c_str(), outside.c_str()), 0);
  auto cache = open_cache();
  ASSERT_TRUE(cache.insert("first", first, meta()));
  std::size_t before = count_blobs(root);
  auto inserted = cache.insert("second", second, meta(), Ownership::take);
  ASSERT_TRUE(inserted) << inserted.error().to_string();
  // new + linked + a manifest.
  EXPECT_EQ(count_blobs(root), before + 3);
  auto blobs = BlobStore::open(root);
  for (const char* name : {"a", "big"}) {
    struct stat st = stat_of(second + "/" + name);
    EXPECT_EQ(st.st_mode & 0777, 0644u) << name << " must be left alone: its blob existed";
    EXPECT_NE(st.st_ino, stat_of(blobs->path(BlobId{sha256_hex(files[name]), false})).st_ino);
  }
  EXPECT_EQ(stat_of(second + "/new").st_ino,
            stat_of(blobs->path(BlobId{sha256_hex("only in second"), false})).st_ino);
  struct stat out = stat_of(outside);
  EXPECT_EQ(out.st_mode & 0777, 0644u) << "a file linked from outside the tree is copied";
  EXPECT_NE(out.st_ino, stat_of(blobs->path(BlobId{sha256_hex("linked from outside"), false})).st_ino);
  ASSERT_TRUE(remove_tree(second));
  ASSERT_TRUE(write_file_atomic(outside, "changed later"));
  ASSERT_TRUE(cache.stage("second", dir.path() + "/staged", StageMode::hardlink, Verify::yes));
  EXPECT_EQ(read(dir.path() + "/staged/linked"), "linked from outside");
  auto report = cache.verify();
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->ok());
}

TEST_F(ArtifactCacheTest, TakeInsertFromAnotherFileSystemCopies) {
  std::string mnt = dir.path() + "/other-fs";
  ASSERT_TRUE(make_dirs(mnt));
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=16m") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here (not root?)";
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mnt};
  write_tree(mnt + "/src", {{"small", "small file"}, {"big", std::string(2 << 20, 'q')}});
  auto cache = open_cache();
  auto inserted = cache.insert("k", mnt + "/src", meta(), Ownership::take);
  ASSERT_TRUE(inserted) << inserted.error().to_string();
  EXPECT_EQ(stat_of(mnt + "/src/small").st_mode & 0777, 0644u) << "a file that was not taken keeps its mode";
  ASSERT_TRUE(remove_tree(mnt + "/src"));
  ASSERT_TRUE(cache.stage("k", dir.path() + "/out", StageMode::hardlink, Verify::yes));
  EXPECT_EQ(read(dir.path() + "/out/small"), "small file");
  EXPECT_EQ(stat_of(dir.path() + "/out/big").st_mode & 0777, 0444u);
}

TEST_F(ArtifactCacheTest, GcRemovesBuildDirectoriesOfDeadWorkersOnly) {
  auto system = std::make_shared<FakeSystem>();
  system->now = static_cast<std::int64_t>(::time(nullptr)) * 1000;
  options.system = system;
  auto cache = open_cache();
  // A worker killed mid-build: its directory holds read-only and mode-000
  // directories, as sandboxes leave them.
  std::string dead_dir;
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  pid_t child = ::fork();
  if (child == 0) {
    ::close(pipe_fds[0]);
    auto c = ArtifactCache::open(root, options);
    if (!c) ::_exit(2);
    auto made = c->build_dirs().make("glibc.x86");
    if (!made) ::_exit(3);
    std::string d = *made;
    if (!make_dirs(d + "/overlay/0/work/work") || !make_dirs(d + "/glibc.inst/usr/lib")) ::_exit(4);
    if (!write_file_atomic(d + "/glibc.inst/usr/lib/libc.so", "libc")) ::_exit(5);
    ::chmod((d + "/overlay/0/work/work").c_str(), 0);
    ::chmod((d + "/glibc.inst/usr/lib").c_str(), 0555);
    ::chmod((d + "/glibc.inst").c_str(), 0500);
    (void)!::write(pipe_fds[1], d.data(), d.size());
    ::_exit(0);
  }
  ::close(pipe_fds[1]);
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(pipe_fds[0], buffer, sizeof buffer)) > 0) dead_dir.append(buffer, static_cast<std::size_t>(n));
  ::close(pipe_fds[0]);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_EQ(WEXITSTATUS(status), 0);
  ASSERT_TRUE(path_exists(dead_dir));
  EXPECT_NE(dead_dir.find("/tmp/glibc.x86." + std::to_string(child) + "-"), std::string::npos) << dead_dir;

  auto live = cache.build_dirs().make("gcc");
  ASSERT_TRUE(live);
  ASSERT_TRUE(make_dirs(*live + "/gcc.inst"));
  // Our pid with another start time: a dead process whose pid was reused.
  std::string self = std::to_string(::getpid());
  std::string start = std::to_string(*read_process_start_time(::getpid()));
  std::string reused = cache.tmp_dir() + "/zlib." + self + "-" + std::to_string(std::stoull(start) + 1) +
                       live->substr(live->find('-', live->find('-', live->rfind('/')) + 1));
  ASSERT_TRUE(make_dirs(reused));
  // Other hosts' directories and unknown names are judged by age only.
  std::string other_host = cache.tmp_dir() + "/m4." + self + "-1-0badbeef.abcdef";
  std::string legacy = cache.tmp_dir() + "/legacy.AbCdEf";
  ASSERT_TRUE(make_dirs(other_host));
  ASSERT_TRUE(make_dirs(legacy));

  auto report = cache.gc();
  ASSERT_TRUE(report);
  EXPECT_EQ(report->scratch_dirs_removed, 2u);
  EXPECT_FALSE(path_exists(dead_dir));
  EXPECT_FALSE(path_exists(reused));
  EXPECT_TRUE(path_exists(*live + "/gcc.inst"));
  EXPECT_TRUE(path_exists(other_host));
  EXPECT_TRUE(path_exists(legacy));
  EXPECT_TRUE(warnings.empty());

  system->now += (options.orphan_age_s + 60) * 1000;
  report = cache.gc();
  ASSERT_TRUE(report);
  EXPECT_FALSE(path_exists(other_host));
  EXPECT_FALSE(path_exists(legacy));
  EXPECT_TRUE(path_exists(*live)) << "liveness beats age: its creator (this process) lives";
}

TEST_F(ArtifactCacheTest, LookupReportsMetadataAndSecondInsertIsAlreadyPresent) {
  std::string src = dir.path() + "/src";
  write_tree(src, {{"a", "12345"}, {"b/c", "xyz"}});
  auto cache = open_cache();
  ArtifactMeta m = meta(3);
  m.extra["chunks"] = "[\"glibc\", \"gcc\"]";
  ASSERT_EQ(*cache.insert("k.1", src, m), PublishOutcome::inserted);
  auto again = cache.insert("k.1", src, meta(4));
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, PublishOutcome::already_present);
  auto info = cache.lookup("k.1");
  ASSERT_TRUE(info && *info);
  EXPECT_EQ((*info)->size, 8u);
  EXPECT_EQ((*info)->file_count, 2u);
  EXPECT_EQ((*info)->meta.build_duration, 1500ms);
  EXPECT_EQ((*info)->meta.built_by.instance, 3);
  EXPECT_EQ((*info)->meta.built_by.host, "builder-host");
  EXPECT_EQ((*info)->meta.extra.at("chunks"), "[\"glibc\", \"gcc\"]");
  EXPECT_GT((*info)->created_ms, 0);
  EXPECT_FALSE(*cache.lookup("k.2"));
  EXPECT_FALSE(cache.insert("bad/key", src, m));
  auto all = cache.list();
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].key, "k.1");
}

TEST_F(ArtifactCacheTest, IdenticalFilesAreStoredOnceAcrossArtifacts) {
  std::string one = dir.path() + "/one", two = dir.path() + "/two";
  write_tree(one, {{"same", "shared bytes"}, {"x", "only in one"}});
  write_tree(two, {{"other/same", "shared bytes"}, {"y", "only in two"}});
  auto cache = open_cache();
  ASSERT_TRUE(cache.insert("one", one, meta()));
  ASSERT_TRUE(cache.insert("two", two, meta()));
  // shared + x + y + two manifests.
  EXPECT_EQ(count_blobs(root), 5u);
  std::string out = dir.path() + "/out";
  ASSERT_TRUE(cache.stage("one", out));
  ASSERT_TRUE(cache.stage("two", out));
  EXPECT_EQ(stat_of(out + "/same").st_ino, stat_of(out + "/other/same").st_ino);
}

TEST_F(ArtifactCacheTest, StagedHardLinksAreReadOnlyAndCopiesAreIndependent) {
  std::string src = dir.path() + "/src";
  write_tree(src, {{"lib/libx.so", "library"}});
  auto cache = open_cache();
  ASSERT_TRUE(cache.insert("x", src, meta()));
  std::string linked = dir.path() + "/linked", copied = dir.path() + "/copied";
  ASSERT_TRUE(cache.stage("x", linked, StageMode::hardlink));
  ASSERT_TRUE(cache.stage("x", copied, StageMode::copy));
  auto blob_path = BlobStore::open(root)->path(BlobId{sha256_hex("library"), false});
  struct stat blob = stat_of(blob_path);
  struct stat link = stat_of(linked + "/lib/libx.so");
  EXPECT_EQ(link.st_ino, blob.st_ino);
  EXPECT_EQ(link.st_mode & 0222, 0u) << "a staged hard link must not be writable";
  EXPECT_EQ(blob.st_mode & 0777, 0444u);
  struct stat copy = stat_of(copied + "/lib/libx.so");
  EXPECT_NE(copy.st_ino, blob.st_ino);
  ASSERT_TRUE(write_file_atomic(copied + "/lib/libx.so", "changed by a build"));
  ASSERT_EQ(::truncate((copied + "/lib/libx.so").c_str(), 3), 0);
  EXPECT_EQ(read(blob_path), "library");
  EXPECT_EQ(read(linked + "/lib/libx.so"), "library");
  auto report = cache.verify();
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->ok());
}

TEST_F(ArtifactCacheTest, StagingSeveralArtifactsOverlaysLaterOnesOnEarlierOnes) {
  std::string a = dir.path() + "/a", b = dir.path() + "/b";
  write_tree(a, {{"etc/conf", "from a"}, {"bin/only-a", "a"}, {"lib/thing", "a file"}});
  write_tree(b, {{"etc/conf", "from b"}, {"bin/only-b", "b"}, {"lib/thing/inside", "now a dir"}});
  ASSERT_EQ(::symlink("only-a", (a + "/bin/link").c_str()), 0);
  ASSERT_EQ(::symlink("only-b", (b + "/bin/link").c_str()), 0);
  auto cache = open_cache();
  ASSERT_TRUE(cache.insert("a", a, meta()));
  ASSERT_TRUE(cache.insert("b", b, meta()));
  std::string out = dir.path() + "/sysroot";
  for (StageMode mode : {StageMode::hardlink, StageMode::copy}) {
    ASSERT_TRUE(remove_tree(out));
    auto sa = cache.stage("a", out, mode);
    ASSERT_TRUE(sa) << sa.error().to_string();
    auto sb = cache.stage("b", out, mode);
    ASSERT_TRUE(sb) << sb.error().to_string();
    EXPECT_EQ(read(out + "/etc/conf"), "from b");
    EXPECT_EQ(read(out + "/bin/only-a"), "a");
    EXPECT_EQ(read(out + "/bin/only-b"), "b");
    EXPECT_EQ(read(out + "/lib/thing/inside"), "now a dir");
    char target[64] = {};
    ASSERT_GT(::readlink((out + "/bin/link").c_str(), target, sizeof target), 0);
    EXPECT_STREQ(target, "only-b");
  }
}

// A directory that several artifacts hold takes the mode of the last one
// staged, as its files do, whichever modes come first (a Perl module made
// usr/ 0775, a CMake library 0755); and a new directory gets its recorded
// mode whatever the process's umask.
TEST_F(ArtifactCacheTest, StagedDirectoriesTakeTheLastArtifactsModeWhateverTheUmask) {
  std::string a = dir.path() + "/a", b = dir.path() + "/b";
  write_tree(a, {{"usr/share/a", "a"}});
  write_tree(b, {{"usr/share/b", "b"}});
  ASSERT_EQ(::chmod((a + "/usr").c_str(), 0775), 0);
  ASSERT_EQ(::chmod((b + "/usr").c_str(), 0755), 0);
  ASSERT_EQ(::chmod((b + "/usr/share").c_str(), 0750), 0);
  auto cache = open_cache();
  ASSERT_TRUE(cache.insert("a", a, meta()));
  ASSERT_TRUE(cache.insert("b", b, meta()));
  auto mode_of = [](const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 ? st.st_mode & 07777 : 0;
  };
  std::string out = dir.path() + "/sysroot";
  for (StageMode mode : {StageMode::hardlink, StageMode::copy}) {
    ASSERT_TRUE(remove_tree(out));
    ASSERT_TRUE(cache.stage("a", out, mode));
    EXPECT_EQ(mode_of(out + "/usr"), 0775u);
    EXPECT_EQ(mode_of(out + "/usr/share"), 0755u);
    ASSERT_TRUE(cache.stage("b", out, mode));
    EXPECT_EQ(mode_of(out + "/usr"), 0755u);
    EXPECT_EQ(mode_of(out + "/usr/share"), 0750u);
    ASSERT_TRUE(cache.stage("a", out, mode));
    EXPECT_EQ(mode_of(out + "/usr"), 0775u);
    EXPECT_EQ(mode_of(out + "/usr/share"), 0755u);
  }
  mode_t old = ::umask(077);
  ASSERT_TRUE(remove_tree(out));
  auto staged = cache.stage("a", out, StageMode::copy);
  ::umask(old);
  ASSERT_TRUE(staged) << staged.error().to_string();
  EXPECT_EQ(mode_of(out + "/usr"), 0775u);
  EXPECT_EQ(mode_of(out + "/usr/share"), 0755u);
}

TEST_F(ArtifactCacheTest, StagingSelectedPathsKeepsModesLinksAndOnlyThosePaths) {
  std::string src = dir.path() + "/src";
  write_tree(src, {{"usr/bin/tool", "tool"}, {"etc/secret", "secret"}, {"etc/other", "other"},
                   {"usr/share/doc/README", "doc"}});
  ::chmod((src + "/etc/secret").c_str(), 0600);
  ::chmod((src + "/usr/share/doc").c_str(), 0700);
  // A hard-linked trio whose first path (walk order) is not selected.
  ASSERT_EQ(::link((src + "/usr/bin/tool").c_str(), (src + "/usr/bin/x-link").c_str()), 0);
  ASSERT_EQ(::link((src + "/usr/bin/tool").c_str(), (src + "/usr/bin/y-link").c_str()), 0);
  ASSERT_EQ(::symlink("tool", (src + "/usr/bin/sym").c_str()), 0);
  auto cache = open_cache();
  ASSERT_TRUE(cache.insert("x", src, meta()));

  std::unordered_set<std::string> keep{"usr/bin/x-link", "usr/bin/y-link", "usr/bin/sym",
                                       "etc/secret", "usr/share/doc/README"};
  auto selected = select_paths(*cache.manifest("x"), keep);
  std::vector<std::string> paths;
  for (const auto& e : selected.entries) paths.push_back(e.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"etc", "etc/secret", "usr", "usr/bin", "usr/bin/sym",
                                             "usr/bin/x-link", "usr/bin/y-link", "usr/share",
                                             "usr/share/doc", "usr/share/doc/README"}));
  std::string out = dir.path() + "/out";
  ASSERT_TRUE(cache.stage_paths("x", keep, out, StageMode::copy, Verify::yes));
  EXPECT_FALSE(path_exists(out + "/usr/bin/tool"));
  EXPECT_FALSE(path_exists(out + "/etc/other"));
  EXPECT_EQ(read(out + "/usr/bin/x-link"), "tool");
  EXPECT_EQ(stat_of(out + "/usr/bin/x-link").st_ino, stat_of(out + "/usr/bin/y-link").st_ino)
      << "the kept links of one inode stay linked";
  EXPECT_EQ(stat_of(out + "/etc/secret").st_mode & 07777, 0600u);
  EXPECT_EQ(stat_of(out + "/usr/share/doc").st_mode & 07777, 0700u) << "parents keep their modes";
  EXPECT_TRUE(S_ISLNK(stat_of(out + "/usr/bin/sym").st_mode));

  auto text = cache.read_file("x", "usr/bin/y-link");
  ASSERT_TRUE(text && *text);
  EXPECT_EQ(**text, "tool");
  auto none = cache.read_file("x", "no/such/file");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
  EXPECT_FALSE(cache.read_file("not-cached", "etc/secret"));
}

TEST_F(ArtifactCacheTest, StagedCopiesArePublishedWithoutBeingReadAgainUnlessChanged) {
  std::string src = dir.path() + "/src";
  write_tree(src, {{"a", "alpha"}, {"b", "bravo"}, {"c", "charl"}});
  auto cache = open_cache();
  ASSERT_TRUE(cache.insert("x", src, meta()));
  std::string out = dir.path() + "/out";
  StagedCopies copies;
  ASSERT_TRUE(cache.stage_paths("x", {"a", "b", "c"}, out, StageMode::copy, Verify::no, &copies));
  ASSERT_EQ(copies.by_inode.size(), 3u);
  auto digest_of = [](const Manifest& m, const std::string& path) {
    for (const auto& e : m.entries)
      if (e.path == path) return e.digest;
    return std::string();
  };
  auto x = cache.manifest("x");
  ASSERT_TRUE(x);
  // The record stands for the file's bytes: an unchanged copy is taken for
  // the blob it names (here, deliberately, another blob of the same size),
  // so it was not read; one written since is hashed.
  auto a_ino = stat_of(out + "/a").st_ino;
  for (auto& [inode, copy] : copies.by_inode)
    if (inode.second == a_ino) copy.digest = digest_of(*x, "c");
  ASSERT_TRUE(write_file(out + "/b", "BRAVO"));
  ASSERT_TRUE(cache.insert("y", out, meta(), Ownership::take, &copies));
  auto y = cache.manifest("y");
  ASSERT_TRUE(y);
  EXPECT_EQ(digest_of(*y, "a"), digest_of(*x, "c")) << "an unchanged copy is not read again";
  EXPECT_EQ(digest_of(*y, "b"), sha256_hex("BRAVO")) << "a changed copy is hashed";
  EXPECT_EQ(digest_of(*y, "c"), digest_of(*x, "c"));
  // A record whose blob is gone is not trusted either.
  std::string out2 = dir.path() + "/out2";
  StagedCopies again;
  ASSERT_TRUE(cache.stage_paths("x", {"a"}, out2, StageMode::copy, Verify::no, &again));
  for (auto& [inode, copy] : again.by_inode) copy.digest = std::string(64, '0');
  ASSERT_TRUE(cache.insert("z", out2, meta(), Ownership::take, &again));
  auto z = cache.manifest("z");
  ASSERT_TRUE(z);
  EXPECT_EQ(digest_of(*z, "a"), sha256_hex("alpha"));
}

TEST_F(ArtifactCacheTest, CorruptBlobIsAMissWithAWarningAndVerifyDropsIt) {
  std::string src = dir.path() + "/src";
  write_tree(src, {{"f", "good contents"}, {"g", "other"}});
  auto cache = open_cache();
  ASSERT_TRUE(cache.insert("k", src, meta()));
  std::string blob = BlobStore::open(root)->path(BlobId{sha256_hex("good contents"), false});
  ASSERT_EQ(::chmod(blob.c_str(), 0644), 0);
  ASSERT_TRUE(write_file_atomic(blob, "evil contents", 0444));

  // Without verification staging trusts the blob; with it, the bad blob is a miss.
  auto staged = cache.stage("k", dir.path() + "/out", StageMode::hardlink, Verify::yes);
  EXPECT_FALSE(staged);
  EXPECT_FALSE(warnings.empty());
  EXPECT_FALSE(cache.contains("k")) << "a damaged artifact must be dropped";
  EXPECT_FALSE(path_exists(blob));

  // Re-inserting repairs it.
  ASSERT_EQ(*cache.insert("k", src, meta()), PublishOutcome::inserted);
  ASSERT_TRUE(cache.stage("k", dir.path() + "/out2", StageMode::copy, Verify::yes));
  EXPECT_EQ(read(dir.path() + "/out2/f"), "good contents");

  // verify() finds corruption and drops the artifacts that used it.
  ASSERT_EQ(::chmod(blob.c_str(), 0644), 0);
  ASSERT_TRUE(write_file_atomic(blob, "rotten", 0444));
  auto report = cache.verify();
  ASSERT_TRUE(report);
  EXPECT_FALSE(report->ok());
  ASSERT_EQ(report->bad_blobs.size(), 1u);
  EXPECT_EQ(report->dropped_artifacts, std::vector<std::string>{"k"});
  EXPECT_FALSE(cache.contains("k"));
  auto clean = cache.verify();
  ASSERT_TRUE(clean);
  EXPECT_TRUE(clean->ok());
}

TEST_F(ArtifactCacheTest, ABlobOfTheWrongSizeIsNeverStagedEvenWithoutVerify) {
  std::string src = dir.path() + "/src";
  write_tree(src, {{"f", "good contents"}, {"g", "other"}});
  auto cache = open_cache();
  ASSERT_TRUE(cache.insert("k", src, meta()));
  std::string blob = BlobStore::open(root)->path(BlobId{sha256_hex("good contents"), false});
  ASSERT_EQ(::truncate(blob.c_str(), 4), 0);  // a torn write

  for (auto mode : {StageMode::hardlink, StageMode::copy}) {
    ASSERT_TRUE(cache.insert("k", src, meta()));
    auto staged = cache.stage("k", dir.path() + "/out", mode, Verify::no);
    ASSERT_FALSE(staged) << "a truncated blob was staged";
    EXPECT_NE(staged.error().to_string().find("corrupt"), std::string::npos)
        << staged.error().to_string();
    EXPECT_FALSE(cache.contains("k")) << "a damaged artifact must be dropped, to be rebuilt";
    EXPECT_FALSE(path_exists(blob));
    ASSERT_TRUE(cache.insert("k", src, meta()));
    ASSERT_TRUE(cache.stage("k", dir.path() + "/ok", mode, Verify::no));
    EXPECT_EQ(read(dir.path() + "/ok/f"), "good contents");
    ASSERT_EQ(::truncate(blob.c_str(), 4), 0);
    (void)remove_tree(dir.path() + "/out");
    (void)remove_tree(dir.path() + "/ok");
  }
}

TEST_F(ArtifactCacheTest, DeduplicationReplacesATornBlobInsteadOfTrustingItsName) {
  std::string src = dir.path() + "/src";
  write_tree(src, {{"f", "good contents"}});
  auto cache = open_cache();
  ASSERT_TRUE(cache.insert("k", src, meta()));
  std::string blob = BlobStore::open(root)->path(BlobId{sha256_hex("good contents"), false});
  ASSERT_EQ(::truncate(blob.c_str(), 3), 0);
  ASSERT_TRUE(cache.insert("k2", src, meta()));
  EXPECT_EQ(read(blob), "good contents") << "the torn blob was kept because its name existed";
  ASSERT_TRUE(cache.stage("k2", dir.path() + "/out", StageMode::copy, Verify::yes));
}

TEST_F(ArtifactCacheTest, AnUnreadableBlobOrManifestIsAnErrorNotDamage) {
  std::string src = dir.path() + "/src";
  write_tree(src, {{"f", "good contents"}});
  auto cache = open_cache();
  ASSERT_TRUE(cache.insert("k", src, meta()));
  auto info = cache.lookup("k");
  ASSERT_TRUE(info && *info);
  auto store = BlobStore::open(root);
  std::string blob = store->path(BlobId{sha256_hex("good contents"), false});
  std::string manifest = store->path(BlobId{(*info)->manifest_digest, false});

  // A blob that cannot be read (here a directory in its place, so that
  // read() fails with EISDIR even as root; EMFILE or EIO alike): no drop.
  auto unreadable = [](const std::string& path) {
    std::string bytes = read_file(path).value_or("");
    EXPECT_EQ(::unlink(path.c_str()), 0);
    EXPECT_EQ(::mkdir(path.c_str(), 0755), 0);
    return bytes;
  };
  auto readable = [](const std::string& path, const std::string& bytes) {
    EXPECT_EQ(::rmdir(path.c_str()), 0);
    EXPECT_TRUE(write_file_atomic(path, bytes, 0444));
  };
  std::string blob_bytes = unreadable(blob);
  EXPECT_FALSE(cache.stage("k", dir.path() + "/out", StageMode::copy, Verify::yes));
  EXPECT_TRUE(cache.contains("k")) << "a read error dropped the artifact";
  EXPECT_TRUE(path_exists(blob)) << "a read error removed a good blob";
  auto report = cache.verify();
  EXPECT_FALSE(report) << "verify must report the read error";
  EXPECT_TRUE(path_exists(blob));
  EXPECT_TRUE(cache.contains("k"));
  readable(blob, blob_bytes);

  // The manifest cannot be read: no drop either.
  std::string manifest_bytes = unreadable(manifest);
  EXPECT_FALSE(cache.stage("k", dir.path() + "/out2", StageMode::copy, Verify::no));
  EXPECT_TRUE(cache.contains("k"));
  EXPECT_TRUE(path_exists(manifest));
  EXPECT_FALSE(cache.verify());
  EXPECT_TRUE(cache.contains("k"));
  readable(manifest, manifest_bytes);

  // Once readable again, all is well.
  ASSERT_TRUE(cache.stage("k", dir.path() + "/out3", StageMode::copy, Verify::yes));
  auto clean = cache.verify();
  ASSERT_TRUE(clean);
  EXPECT_TRUE(clean->ok());
}

TEST_F(ArtifactCacheTest, ClaimsGoToOneHolderUntilReleased) {
  auto cache = open_cache();
  Holder me = cache.holder(1, "g");
  Holder parent = me;  // another live process on this host: our parent
  parent.pid = static_cast<int>(::getppid());
  parent.start_time = *read_process_start_time(parent.pid);
  parent.instance = 2;

  auto first = cache.claims().claim("k", me);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->kind, ClaimOutcome::Kind::won);
  auto again = cache.claims().claim("k", me);
  EXPECT_EQ(again->kind, ClaimOutcome::Kind::won) << "re-claiming one's own claim renews it";
  auto other = cache.claims().claim("k", parent);
  ASSERT_TRUE(other);
  EXPECT_EQ(other->kind, ClaimOutcome::Kind::held_by_other);
  ASSERT_TRUE(other->holder);
  EXPECT_EQ(other->holder->pid, me.pid);
  EXPECT_FALSE(cache.claims().release("k", parent)) << "only the holder may release";
  EXPECT_FALSE(cache.claims().renew("k", parent));
  EXPECT_TRUE(cache.claims().renew("k", me));
  ASSERT_TRUE(cache.claims().release("k", me));
  EXPECT_FALSE(*cache.claims().claim_of("k"));
  EXPECT_EQ(cache.claims().claim("k", parent)->kind, ClaimOutcome::Kind::won);
  EXPECT_FALSE(cache.claims().release("k", me));
  ASSERT_TRUE(cache.claims().release("k", parent));
  EXPECT_TRUE(cache.claims().release("k", me)) << "releasing an unheld claim is fine";
}

TEST_F(ArtifactCacheTest, ClaimOfADeadHolderIsTakenOver) {
  auto cache = open_cache();
  Holder dead = cache.holder(1);
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  dead.start_time = read_process_start_time(child).value_or(12345);
  ::waitpid(child, nullptr, 0);
  dead.pid = child;
  Holder reused = cache.holder(2);  // our pid, but a different start time
  reused.start_time += 1;

  ASSERT_EQ(cache.claims().claim("k", dead)->kind, ClaimOutcome::Kind::won);
  auto taken = cache.claims().claim("k", cache.holder(3));
  ASSERT_TRUE(taken);
  EXPECT_EQ(taken->kind, ClaimOutcome::Kind::won);
  EXPECT_EQ((*cache.claims().claim_of("k"))->holder.instance, 3);

  ASSERT_TRUE(cache.forget("k"));
  ASSERT_EQ(cache.claims().claim("k", reused)->kind, ClaimOutcome::Kind::won);
  EXPECT_EQ(cache.claims().claim("k", cache.holder(4))->kind, ClaimOutcome::Kind::won)
      << "a recycled pid with another start time is a dead holder";
}

TEST_F(ArtifactCacheTest, ClaimsOfOtherHostsExpireWithTheirLeaseUnlessRenewed) {
  auto system = std::make_shared<FakeSystem>();
  options.system = system;
  options.lease = 60s;
  auto cache = open_cache();
  Holder remote{"elsewhere", 1, 1, 1, "g"};
  ASSERT_EQ(cache.claims().claim("k", remote)->kind, ClaimOutcome::Kind::won);
  Holder local = cache.holder(2);
  system->now += 59'000;
  EXPECT_EQ(cache.claims().claim("k", local)->kind, ClaimOutcome::Kind::held_by_other);
  ASSERT_TRUE(cache.claims().renew("k", remote));
  system->now += 59'000;
  EXPECT_EQ(cache.claims().claim("k", local)->kind, ClaimOutcome::Kind::held_by_other);
  system->now += 2'000;
  EXPECT_EQ(cache.claims().claim("k", local)->kind, ClaimOutcome::Kind::won);
}

TEST_F(ArtifactCacheTest, ClaimReportsCachedArtifactsAndRecordedFailures) {
  std::string src = dir.path() + "/src";
  write_tree(src, {{"f", "x"}});
  auto cache = open_cache();
  Holder me = cache.holder(1);
  ASSERT_EQ(cache.claims().claim("built", me)->kind, ClaimOutcome::Kind::won);
  ASSERT_EQ(*cache.insert("built", src, meta()), PublishOutcome::inserted);
  EXPECT_EQ(cache.claims().claim("built", me)->kind, ClaimOutcome::Kind::already_cached);

  ASSERT_TRUE(cache.failures().record("broken", "/logs/broken.log", "make: *** Error 2"));
  auto failed = cache.claims().claim("broken", me);
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->kind, ClaimOutcome::Kind::failed);
  ASSERT_TRUE(failed->failure);
  EXPECT_EQ(failed->failure->log_path, "/logs/broken.log");
  EXPECT_EQ(failed->failure->reason, "make: *** Error 2");
  EXPECT_EQ(failed->failure->failed_by.pid, me.pid);
  ASSERT_TRUE(cache.failures().clear("broken"));
  EXPECT_FALSE(*cache.failures().of("broken"));
  EXPECT_EQ(cache.claims().claim("broken", me)->kind, ClaimOutcome::Kind::won);

  // A worker records itself, instance and gang included.
  ASSERT_TRUE(cache.failures().record("by-worker", "log", "why", cache.holder(3, "gang-7")));
  auto record = cache.failures().of("by-worker");
  ASSERT_TRUE(record && *record);
  EXPECT_EQ((*record)->failed_by.instance, 3);
  EXPECT_EQ((*record)->failed_by.gang_id, "gang-7");
}

TEST_F(ArtifactCacheTest, ForgetClearsArtifactClaimAndFailure) {
  std::string src = dir.path() + "/src";
  write_tree(src, {{"f", "x"}});
  auto cache = open_cache();
  ASSERT_TRUE(cache.insert("k", src, meta()));
  ASSERT_TRUE(cache.failures().record("k", "log", "why"));
  ASSERT_EQ(cache.claims().claim("other", cache.holder())->kind, ClaimOutcome::Kind::won);
  EXPECT_TRUE(*cache.forget("k"));
  EXPECT_TRUE(*cache.forget("other"));
  EXPECT_FALSE(*cache.forget("never"));
  EXPECT_FALSE(cache.contains("k"));
  EXPECT_FALSE(*cache.failures().of("k"));
  EXPECT_FALSE(*cache.claims().claim_of("other"));
}

TEST_F(ArtifactCacheTest, WaitForChangeWakesOnPublishAndTimesOutOtherwise) {
  std::string src = dir.path() + "/src";
  write_tree(src, {{"f", "x"}});
  auto waiter = open_cache();
  ASSERT_GE(waiter.change_fd(), 0);
  auto quiet = waiter.wait_for_change(50ms);
  ASSERT_TRUE(quiet);
  EXPECT_FALSE(*quiet);

  std::thread publisher([&] {
    std::this_thread::sleep_for(100ms);
    auto writer = open_cache();
    (void)writer.insert("k", src, meta());
  });
  auto start = std::chrono::steady_clock::now();
  auto changed = waiter.wait_for_change(5s);
  publisher.join();
  ASSERT_TRUE(changed);
  EXPECT_TRUE(*changed);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 4s);

  // The fd is pollable and reports a release made by another process.
  ASSERT_EQ(waiter.claims().claim("c", waiter.holder())->kind, ClaimOutcome::Kind::won);
  (void)waiter.wait_for_change(0ms);
  ASSERT_TRUE(waiter.claims().release("c", waiter.holder()));
  struct pollfd p{waiter.change_fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 2000), 1);
}

TEST_F(ArtifactCacheTest, EnvironmentRefusesUseAfterFork) {
  auto cache = open_cache();
  ASSERT_TRUE(cache.lookup("k"));
  int status = in_child([&] {
    auto r = cache.lookup("k");
    if (r) return 2;
    return r.error().message.find("fork") != std::string::npos ? 0 : 3;
  });
  EXPECT_EQ(status, 0);
  EXPECT_TRUE(cache.lookup("k")) << "the parent's environment still works";
}

TEST_F(ArtifactCacheTest, MapGrowsWhenFullAndOtherProcessesAdoptTheNewSize) {
  options.initial_map_size = 64 << 10;
  std::string src = dir.path() + "/src";
  write_tree(src, {{"f", "x"}});
  int to_child[2];
  ASSERT_EQ(::pipe(to_child), 0);
  pid_t child = ::fork();
  if (child == 0) {
    char go;
    (void)!::read(to_child[0], &go, 1);
    auto cache = ArtifactCache::open(root, options);
    if (!cache) ::_exit(2);
    ArtifactMeta m = meta();
    m.extra["padding"] = std::string(4000, 'p');
    for (int i = 0; i < 200; ++i)
      if (!cache->insert("child." + std::to_string(i), src, m)) ::_exit(3);
    ::_exit(0);
  }
  auto cache = open_cache();  // small map, opened before the child grows it
  ASSERT_TRUE(cache.insert("parent.0", src, meta()));
  ASSERT_EQ(::write(to_child[1], "g", 1), 1);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  auto more = cache.insert("parent.1", src, meta());
  ASSERT_TRUE(more) << more.error().to_string();
  auto all = cache.list();
  ASSERT_TRUE(all) << all.error().to_string();
  EXPECT_EQ(all->size(), 202u);
  ::close(to_child[0]);
  ::close(to_child[1]);
}

TEST_F(ArtifactCacheTest, GcEvictsLeastRecentlyUsedButNeverClaimedOrStagingArtifacts) {
  auto cache = open_cache();
  // A claim that outlives the publication (not yet released) protects it.
  ASSERT_EQ(cache.claims().claim("claimed", cache.holder())->kind, ClaimOutcome::Kind::won);
  for (const char* key : {"old", "claimed", "staging", "recent"}) {
    std::string src = dir.path() + "/src-" + key;
    write_tree(src, {{"big", std::string(100 << 10, key[0])}});
    ASSERT_TRUE(cache.insert(key, src, meta()));
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(cache.stage("old", dir.path() + "/o"));  // now "old" is the most recent
  ASSERT_TRUE(make_dirs(cache.logs_dir()));
  for (const char* key : {"recent", "old"})
    ASSERT_TRUE(write_file(cache.logs_dir() + "/" + key + ".log", "build output\n"));
  auto lock = FileLock::acquire(root + "/locks/" + sha256_hex("staging"), FileLock::Kind::shared,
                                FileLock::Wait::block);
  ASSERT_TRUE(lock && lock->locked());

  auto report = cache.gc(320 << 10);  // four artifacts of 100K + a 4K manifest each
  ASSERT_TRUE(report) << report.error().to_string();
  EXPECT_EQ(report->evicted, std::vector<std::string>{"recent"});
  EXPECT_FALSE(cache.contains("recent"));
  EXPECT_TRUE(cache.contains("claimed"));
  EXPECT_TRUE(cache.contains("staging"));
  EXPECT_TRUE(cache.contains("old"));
  EXPECT_GE(report->blobs_removed, 2u);  // its file and its manifest
  EXPECT_FALSE(path_exists(cache.logs_dir() + "/recent.log")) << "an evicted artifact's log goes";
  EXPECT_TRUE(path_exists(cache.logs_dir() + "/old.log"));

  // Unreferenced blobs of forgotten artifacts go on the next gc.
  ASSERT_TRUE(cache.forget("old"));
  std::size_t before = count_blobs(root);
  auto swept = cache.gc();
  ASSERT_TRUE(swept);
  EXPECT_EQ(count_blobs(root), before - 2);
  auto ok = cache.verify();
  ASSERT_TRUE(ok);
  EXPECT_TRUE(ok->ok());
}

TEST_F(ArtifactCacheTest, GcRemovesOrphanTemporariesOfDeadWritersOnly) {
  auto cache = open_cache();
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  std::string dead = root + "/incoming/" + std::to_string(child) + ".1.0";
  std::string live = root + "/incoming/" + std::to_string(::getpid()) + "." +
                     std::to_string(*read_process_start_time(::getpid())) + ".0";
  ASSERT_TRUE(write_file_atomic(dead, "partial"));
  ASSERT_TRUE(write_file_atomic(live, "being written"));
  auto report = cache.gc();
  ASSERT_TRUE(report);
  EXPECT_EQ(report->temp_files_removed, 1u);
  EXPECT_FALSE(path_exists(dead));
  EXPECT_TRUE(path_exists(live));
}

TEST_F(ArtifactCacheTest, KillDuringInsertLeavesNoPartialArtifact) {
  options.temp_files = TempFiles::named;  // so that the kill leaves visible temporaries
  std::string src = dir.path() + "/src";
  std::map<std::string, std::string> files;
  for (int i = 0; i < 16; ++i) files["f" + std::to_string(i)] = std::string(2 << 20, static_cast<char>('a' + i));
  write_tree(src, files);
  pid_t child = ::fork();
  if (child == 0) {
    auto cache = ArtifactCache::open(root, options);
    if (!cache) ::_exit(2);
    for (int i = 0;; ++i) {
      // Make each tree distinct so every insert writes fresh blobs.
      if (!write_file_atomic(src + "/f0", "round " + std::to_string(i))) ::_exit(3);
      (void)cache->insert("k." + std::to_string(i), src, meta());
    }
  }
  std::this_thread::sleep_for(400ms);
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));

  auto cache = open_cache();
  auto all = cache.list();
  ASSERT_TRUE(all);
  for (const auto& info : *all) {
    auto staged = cache.stage(info.key, dir.path() + "/out/" + info.key, StageMode::hardlink, Verify::yes);
    EXPECT_TRUE(staged) << info.key << ": " << staged.error().to_string();
  }
  auto report = cache.gc();
  ASSERT_TRUE(report);
  auto verified = cache.verify();
  ASSERT_TRUE(verified);
  EXPECT_TRUE(verified->ok());
  EXPECT_TRUE(warnings.empty());
  std::size_t left = 0;
  if (auto d = ::opendir((root + "/incoming").c_str())) {
    while (auto e = ::readdir(d)) left += e->d_name[0] != '.';
    ::closedir(d);
  }
  EXPECT_EQ(left, 0u) << "gc must remove the killed writer's temporaries";
}

TEST_F(ArtifactCacheTest, FullDiskGivesAClearErrorAndLeavesTheIndexConsistent) {
  std::string mnt = dir.path() + "/small";
  ASSERT_TRUE(make_dirs(mnt));
  if (::mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=3m") != 0)
    GTEST_SKIP() << "cannot mount a tmpfs here (not root?)";
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{mnt};
  root = mnt + "/cache";
  std::string small = dir.path() + "/small-src", big = dir.path() + "/big-src";
  write_tree(small, {{"f", "tiny"}});
  write_tree(big, {{"huge", std::string(4 << 20, 'h')}});
  {
    auto cache = open_cache();
    ASSERT_TRUE(cache.insert("small", small, meta()));
    auto failed = cache.insert("big", big, meta());
    ASSERT_FALSE(failed);
    EXPECT_NE(failed.error().message.find("full"), std::string::npos) << failed.error().to_string();
    EXPECT_NE(failed.error().message.find("No space left"), std::string::npos);
    EXPECT_FALSE(cache.contains("big"));
    EXPECT_TRUE(cache.contains("small"));
    auto verified = cache.verify();
    ASSERT_TRUE(verified);
    EXPECT_TRUE(verified->ok());
    ASSERT_TRUE(cache.stage("small", dir.path() + "/out"));
    EXPECT_EQ(read(dir.path() + "/out/f"), "tiny");
    write_tree(small, {{"g", "another"}});
    EXPECT_TRUE(cache.insert("small.2", small, meta())) << "the cache still works afterwards";
  }
}


TEST_F(ArtifactCacheTest, APublishRecordsItsComponentsBuildTimeInTheSameCommit) {
  ArtifactCache cache = open_cache();
  write_tree(dir.path() + "/t", {{"f", "x"}});
  ArtifactMeta m = meta();
  m.history = "chunk-a";
  ASSERT_TRUE(cache.insert("chunk-a.1", dir.path() + "/t", m));
  auto durations = cache.durations();
  ASSERT_TRUE(durations);
  ASSERT_TRUE(durations->contains("chunk-a"));
  EXPECT_EQ(durations->at("chunk-a"), 1500ms);
  // Not part of the row: a lookup does not carry it.
  auto info = cache.lookup("chunk-a.1");
  ASSERT_TRUE(info && *info);
  EXPECT_TRUE((*info)->meta.history.empty());
  // A lost race records nothing new.
  m.build_duration = 9000ms;
  ASSERT_EQ(*cache.insert("chunk-a.1", dir.path() + "/t", m), PublishOutcome::already_present);
  EXPECT_EQ(cache.durations()->at("chunk-a"), 1500ms);
}


TEST_F(ArtifactCacheTest, APublishReleasesThePublishersOwnClaim) {
  ArtifactCache cache = open_cache();
  write_tree(dir.path() + "/t", {{"f", "x"}});
  Holder me = cache.holder(1, "gang-1");
  Holder other = me;
  other.pid = me.pid + 1;
  // Someone else's claim stays.
  ASSERT_EQ(cache.claims().claim("k.1", me)->kind, ClaimOutcome::Kind::won);
  ArtifactMeta by_other = meta();
  by_other.built_by = other;
  ASSERT_TRUE(cache.insert("k.1", dir.path() + "/t", by_other));
  EXPECT_TRUE(cache.claims().claim_of("k.1")->has_value());
  ASSERT_TRUE(cache.claims().release("k.1", me));
  // The publisher's own goes with the publish; releasing it after is fine.
  ASSERT_EQ(cache.claims().claim("k.2", me)->kind, ClaimOutcome::Kind::won);
  ArtifactMeta mine = meta();
  mine.built_by = me;
  ASSERT_TRUE(cache.insert("k.2", dir.path() + "/t", mine));
  EXPECT_FALSE(cache.claims().claim_of("k.2")->has_value());
  EXPECT_TRUE(cache.claims().release("k.2", me));
}

}  // namespace
}  // namespace gang
