// records.hpp: the value types stored in the cache index (who holds or built
// something, artifact metadata, claims, failure records) and their encoding
// as index rows. The encoding is "name=value" lines with '\\' and newline
// escaped; unknown names are ignored on decode so that older gangs can read
// rows written by newer ones. Plain values; thread-safe as such.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "util/error.hpp"

namespace gang {

// A worker process: where it runs and which gang it belongs to. host, pid,
// start_time (from /proc/<pid>/stat field 22) and boot_id (the host's boot,
// /proc/sys/kernel/random/boot_id) identify the process even after its pid
// is reused or the host rebooted.
struct Holder {
  std::string host;
  int pid = 0;
  std::uint64_t start_time = 0;
  int instance = 0;
  std::string gang_id;        // the gang run's id or label
  std::string boot_id = {};   // "" when recorded by an older gang (unknown)

  // True if both name the same process (host, pid, start time and boot).
  [[nodiscard]] bool same_process(const Holder& other) const {
    return host == other.host && pid == other.pid && start_time == other.start_time &&
           boot_id == other.boot_id;
  }
  // "instance 2 (pid 123 on host, gang build-1)".
  [[nodiscard]] std::string describe() const;
};

// What the builder knows about an artifact when it publishes it.
struct ArtifactMeta {
  std::chrono::milliseconds build_duration{0};
  Holder built_by;
  std::map<std::string, std::string> extra;  // free-form, e.g. a stratum's chunks
  // Not stored in the row: the component id whose build-time history
  // (ArtifactCache::durations) the publish records, in its own transaction;
  // "" records none.
  std::string history;
};

// An artifact's index row as read back.
struct ArtifactInfo {
  std::string key;
  std::string manifest_digest;  // SHA-256 of the manifest blob
  std::uint64_t size = 0;       // sum of the regular files' sizes
  std::uint64_t file_count = 0;
  std::int64_t created_ms = 0;    // unix time of publication, milliseconds
  std::int64_t last_used_ms = 0;  // unix time of the last stage (or publication)
  ArtifactMeta meta;
};

// Another instance's record that building a key failed.
struct FailureRecord {
  std::string log_path;
  std::string reason;
  Holder failed_by;
  std::int64_t time_ms = 0;
};

// The claim row: who is building a key, and until when their lease runs.
struct ClaimRecord {
  Holder holder;
  std::int64_t lease_until_ms = 0;
};

// Whether key can name an artifact: not empty, no '/', newline or NUL.
[[nodiscard]] bool valid_cache_key(std::string_view key);

[[nodiscard]] std::string encode_artifact(const ArtifactInfo& info);
[[nodiscard]] Result<ArtifactInfo> decode_artifact(std::string_view key, std::string_view row);
[[nodiscard]] std::string encode_failure(const FailureRecord& record);
[[nodiscard]] Result<FailureRecord> decode_failure(std::string_view row);
[[nodiscard]] std::string encode_claim(const ClaimRecord& record);
[[nodiscard]] Result<ClaimRecord> decode_claim(std::string_view row);

// Parses a size such as "10G", "500M", "64k" or "12345" (bytes; powers of 1024).
[[nodiscard]] Result<std::uint64_t> parse_size(std::string_view text);
// Formats bytes as e.g. "1.5G", "200M", "12K", "17B".
[[nodiscard]] std::string format_size(std::uint64_t bytes);

}  // namespace gang
