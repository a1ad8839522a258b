// blob_store.hpp: the content-addressed store of file contents under
// <root>/objects. A blob is named by the SHA-256 of its bytes; executable
// contents are stored as a separate inode "<digest>.x" (mode 0555) beside the
// plain one (mode 0444), so that staging by hard link gives every file a
// sensible read-only mode. Blobs are never modified after publication: they
// are written to an anonymous O_TMPFILE (or, where unsupported, to a named
// temporary file "<root>/incoming/<pid>.<start>.<n>" that gc() reclaims once
// its writer is dead) while being hashed, made read-only, and linked into
// place; an existing blob is never replaced. take_file() instead adopts a
// file the caller gives up: it hashes it in place, makes that inode
// read-only and hard-links it into place, so publishing costs no copy.
//
// Durability: a blob's data is fsynced before its name appears, so a power
// loss never leaves a named, torn blob; deduplication trusts an existing
// name only when its size matches too. Callers call sync() before committing
// any index row that refers to new blobs, to make the names themselves
// durable: it fsyncs the directories of the few blobs written since the last
// sync, or, when there are many, issues one syncfs().
//
// Damage without hashing: every blob's modification time is set to
// k_blob_mtime before its name appears, and blobs are never written after
// that. Any write to a blob's bytes (an edit through a hard link, a stray
// root process) sets its mtime to the present, so one stat shows it:
// staging and deduplication re-hash a blob whose mtime or size is not the
// recorded one, and use it only if its hash is right (then stamp it again).
// The ctime cannot serve: link() changes it, and links are how blobs are
// shared and staged.
//
// Concurrency contract: any number of processes, and threads sharing one
// BlobStore, may put the same or different blobs at once (sync() must not
// run concurrently with puts whose blobs it is meant to cover); the first link wins and the others drop their
// identical copy. Removal (gc, verify) is the caller's business to exclude
// against writers (see ArtifactCache's gc lock).
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cache/file_system.hpp"
#include "util/error.hpp"

namespace gang {

struct BlobId {
  std::string digest;       // 64 lowercase hex digits
  bool executable = false;  // stored as "<digest>.x", mode 0555

  [[nodiscard]] std::string name() const { return executable ? digest + ".x" : digest; }
  friend bool operator<(const BlobId& a, const BlobId& b) {
    return a.digest != b.digest ? a.digest < b.digest : a.executable < b.executable;
  }
  friend bool operator==(const BlobId&, const BlobId&) = default;
};

enum class TempFiles { anonymous, named };

// The modification time of every blob (seconds since the epoch; nanoseconds 0).
inline constexpr std::int64_t k_blob_mtime = 1321009871;

// True if st carries the blob stamp (see above): its bytes were not written
// since the blob was stored.
[[nodiscard]] bool has_blob_stamp(const struct ::stat& st);  // O_TMPFILE, or named files in incoming/

class BlobStore {
 public:
  // root is the cache root; creates objects/ and incoming/ as needed.
  // fs: the seam its writes go through (null: the real file system).
  [[nodiscard]] static Result<BlobStore> open(const std::string& root,
                                              TempFiles temp_files = TempFiles::anonymous,
                                              std::shared_ptr<FileSystem> fs = nullptr);
  BlobStore(BlobStore&& other) noexcept;
  BlobStore& operator=(BlobStore&& other) noexcept;
  BlobStore(const BlobStore&) = delete;
  BlobStore& operator=(const BlobStore&) = delete;
  ~BlobStore();

  // The path of a blob (it may not exist).
  [[nodiscard]] std::string path(const BlobId& id) const;
  [[nodiscard]] bool contains(const BlobId& id) const;
  // True if the blob exists with exactly `size` bytes (one stat). A blob of
  // another size is damaged: it is unlinked, so that a good copy can take
  // its place, and the answer is false.
  [[nodiscard]] bool contains_intact(const BlobId& id, std::uint64_t size);

  // Hashes the regular file `name` in directory dirfd while copying it into
  // the store; returns its digest. `size` is the size from stat, a hint.
  [[nodiscard]] Result<std::string> put_file(int dirfd, const char* name, std::uint64_t size,
                                             bool executable);
  // Like put_file, but adopts the file's inode as the blob instead of copying
  // it, when that is safe: a regular file of ours, without setuid/setgid,
  // whose links are all owned by the caller (st_nlink <= links_owned), on
  // the store's file system. The inode is made 0444 (0555 if executable)
  // before it is linked, so the blob never appears writable; the caller must
  // not write to the file afterwards and normally deletes its own paths.
  // If the blob already exists the file is left untouched. Otherwise (or on
  // EXDEV) the bytes already read are copied into a fresh blob.
  [[nodiscard]] Result<std::string> take_file(int dirfd, const char* name, bool executable,
                                              std::uint64_t links_owned = 1);
  // Stores bytes (e.g. a manifest) as a plain blob; returns its digest.
  [[nodiscard]] Result<std::string> put_bytes(std::string_view bytes);
  // Reads a plain blob and checks its hash: the bytes, nullopt if it is
  // missing or its hash is wrong (verified damage), or an error when it
  // could not be read (EMFILE, EIO...; not damage: retry, never drop).
  [[nodiscard]] Result<std::optional<std::string>> read_checked(const std::string& digest) const;
  // Re-hashes a blob: true if intact, false if missing or its hash is wrong,
  // an error if it could not be read.
  [[nodiscard]] Result<bool> check(const BlobId& id) const;
  // Re-hashes a blob whose stamp is missing (see above) and, if intact,
  // stamps it again: true if it may be used, false if it is damaged or
  // missing, an error if it could not be read.
  [[nodiscard]] Result<bool> recheck_unstamped(const BlobId& id) const;
  // Unlinks a blob; absent is not an error.
  [[nodiscard]] Result<void> remove(const BlobId& id);
  // Calls fn for every blob with its size on disk.
  [[nodiscard]] Result<void> for_each(const std::function<void(const BlobId&, std::uint64_t)>& fn) const;
  // Makes every blob written since the last sync durable.
  [[nodiscard]] Result<void> sync();
  // Removes temporary files in incoming/ whose writer has died or that are
  // older than max_age_s seconds; returns how many were removed.
  [[nodiscard]] Result<std::uint64_t> remove_orphans(std::int64_t max_age_s);

 private:
  BlobStore() = default;
  [[nodiscard]] Result<std::string> put_stream(int src_fd, std::string_view bytes, bool executable,
                                               const std::string& what);
  [[nodiscard]] Result<std::string> put_mapped(std::string_view bytes, bool executable);
  [[nodiscard]] Result<void> write_blob(std::string_view bytes, const BlobId& id);
  [[nodiscard]] Result<bool> link_inode(int fd, int dirfd, const char* name, const BlobId& id);
  [[nodiscard]] Result<int> create_temp(bool executable, std::string& temp_name);
  [[nodiscard]] Result<void> link_temp(int fd, const std::string& temp_name, const BlobId& id);

  std::string m_objects;
  std::string m_incoming;
  int m_objects_fd = -1;
  std::uint64_t m_start_time = 0;  // this process's start time, for temp names
  std::shared_ptr<FileSystem> m_fs;
  // Writer state, shared by the threads of one insert.
  struct Writers {
    std::mutex mutex;
    TempFiles temp_files = TempFiles::anonymous;
    std::uint64_t counter = 0;
    std::vector<std::string> unsynced;  // blobs linked since the last sync()
  };
  std::unique_ptr<Writers> m_writers = std::make_unique<Writers>();
};

}  // namespace gang
