// ArtifactCache::repair(): rebuilds the cache's index from its blob store.
// Manifests of version 2 record their artifact's key and index row, so the
// blobs alone say which artifacts the cache holds.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <map>

#include "cache/artifact_cache.hpp"
#include "cache/file_lock.hpp"
#include "cache/index_names.hpp"
#include "cache/lmdb.hpp"
#include "cache/manifest.hpp"
#include "util/fs.hpp"

namespace gang {

namespace {

struct Candidate {
  std::string row;  // the index row to write
  std::int64_t created_ms = 0;
  bool from_old_index = false;
};

// The first bytes of a plain blob: enough to tell a manifest by its header.
std::string head_of(const std::string& path) {
  char buf[16];
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return {};
  ssize_t n = ::pread(fd, buf, sizeof buf, 0);
  ::close(fd);
  return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// True if every file of manifest is in the store with its recorded size.
bool complete(const Manifest& manifest, BlobStore& blobs) {
  for (const auto& e : manifest.entries) {
    if (e.type != ManifestEntry::Type::file) continue;
    if (!blobs.contains_intact(BlobId{e.digest, (e.mode & 0111) != 0}, e.size)) return false;
  }
  return true;
}

Result<Manifest> read_manifest(BlobStore& blobs, const std::string& digest) {
  auto text = blobs.read_checked(digest);
  if (!text) return std::unexpected(text.error());
  if (!*text) return make_error("manifest " + digest + " is missing or corrupt");
  return Manifest::decode(**text);
}

}  // namespace

Result<RepairReport> ArtifactCache::repair(const std::string& root) {
  if (!path_exists(root + "/objects"))
    return make_error("no artifact cache at " + root + " (it has no objects/ directory)");
  auto made = make_dirs(root + "/locks");
  if (!made) return std::unexpected(made.error());
  auto gc_lock = FileLock::acquire(root + "/locks/gc.lock", FileLock::Kind::exclusive,
                                   FileLock::Wait::block);
  if (!gc_lock) return std::unexpected(gc_lock.error());
  auto blobs = BlobStore::open(root);
  if (!blobs) return std::unexpected(blobs.error());
  RepairReport report;
  std::map<std::string, Candidate> chosen;  // key -> row

  LmdbEnv::Options env_options;
  env_options.databases.assign(std::begin(index_names::all), std::end(index_names::all));
  const std::string index = root + "/index";
  std::vector<std::pair<std::string, std::string>> durations;
  if (path_exists(index + "/data.mdb")) {
    // Rows of the old index, where it can still be read, are kept if their
    // artifacts are complete: they name the copy that was published.
    auto old = LmdbEnv::open(index, env_options);
    if (old) {
      std::vector<std::pair<std::string, std::string>> rows;
      auto read = (*old)->read([&](LmdbTxn& txn) -> Result<void> {
        // The build-time history too, where it can be read (a loss is harmless).
        (void)txn.for_each(index_names::durations, [&](std::string_view name, std::string_view ms) {
          durations.emplace_back(std::string(name), std::string(ms));
          return true;
        });
        return txn.for_each(index_names::artifacts, [&](std::string_view key, std::string_view row) {
          rows.emplace_back(std::string(key), std::string(row));
          return true;
        });
      });
      report.old_index_readable = static_cast<bool>(read);
      for (const auto& [key, row] : rows) {
        auto info = decode_artifact(key, row);
        if (!info) continue;
        auto manifest = read_manifest(*blobs, info->manifest_digest);
        if (!manifest || !complete(*manifest, *blobs)) continue;
        chosen[key] = Candidate{row, info->created_ms, true};
      }
    }
  }  // the old environment is closed here (the last handle went)

  std::optional<Error> read_error;
  std::vector<std::string> manifests;
  auto walked = blobs->for_each([&](const BlobId& id, std::uint64_t) {
    if (id.executable) return;
    std::string head = head_of(blobs->path(id));
    if (head == "gang-manifest 2\n") manifests.push_back(id.digest);
    if (head == "gang-manifest 1\n") ++report.old_manifests;
  });
  if (!walked) return std::unexpected(walked.error());
  for (const auto& digest : manifests) {
    auto manifest = read_manifest(*blobs, digest);
    if (!manifest || manifest->key.empty() || !valid_key(manifest->key)) continue;
    ++report.manifests_found;
    std::string row = manifest->record + "manifest=" + digest + "\n";
    auto info = decode_artifact(manifest->key, row);
    if (!info) continue;
    if (!complete(*manifest, *blobs)) {
      ++report.incomplete;
      continue;
    }
    auto it = chosen.find(manifest->key);
    if (it != chosen.end() && (it->second.from_old_index || it->second.created_ms >= info->created_ms))
      continue;
    chosen[manifest->key] = Candidate{encode_artifact(*info), info->created_ms, false};
  }

  // Write the new index beside the old one, then swap them.
  const std::string fresh = root + "/index.repair";
  auto cleared = remove_tree(fresh);
  if (!cleared) return std::unexpected(cleared.error());
  {
    auto env = LmdbEnv::open(fresh, env_options);
    if (!env) return std::unexpected(env.error());
    auto written = (*env)->write([&](LmdbTxn& txn) -> Result<void> {
      for (const auto& [key, candidate] : chosen) {
        auto put = txn.put(index_names::artifacts, key, candidate.row);
        if (!put) return std::unexpected(put.error());
      }
      for (const auto& [name, ms] : durations) {
        auto put = txn.put(index_names::durations, name, ms);
        if (!put) return std::unexpected(put.error());
      }
      return {};
    });
    if (!written) return std::unexpected(written.error());
  }
  for (const auto& [key, candidate] : chosen) {
    ++report.restored;
    if (candidate.from_old_index) ++report.kept_from_old_index;
  }
  if (path_exists(index)) {
    struct timespec now {};
    ::clock_gettime(CLOCK_REALTIME, &now);
    report.old_index = root + "/index.before-repair-" +
                       std::to_string(now.tv_sec * 1000LL + now.tv_nsec / 1000000);
    if (::rename(index.c_str(), report.old_index.c_str()) != 0)
      return make_errno_error("cannot move the old index " + index + " aside");
  }
  if (::rename(fresh.c_str(), index.c_str()) != 0)
    return make_errno_error("cannot put the new index " + fresh + " in place");
  auto synced = fsync_dir(root);
  if (!synced) return std::unexpected(synced.error());
  return report;
}

}  // namespace gang
