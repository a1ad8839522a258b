// action_result.hpp: how an artifact is named in a remote cache's action
// cache. The /ac/ entry of key K is at sha256("gang-artifact\0" K) and holds
// a Bazel ActionResult (remote execution API, protobuf) with one output
// file, "gang-manifest", whose digest is the artifact's manifest blob in
// /cas/. Being a real ActionResult, bazel-remote accepts it without
// --disable_http_ac_validation. Only the fields gang writes are read back
// (output_files: path, digest, is_executable); others are skipped.
// Plain functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gang {

inline constexpr std::string_view k_manifest_output = "gang-manifest";

// The /ac/ digest for an artifact's cache key.
[[nodiscard]] std::string action_digest(const std::string& key);

struct RemoteDigest {
  std::string hash;  // 64 lowercase hex digits
  std::int64_t size = 0;
};

// An ActionResult whose only output file is the manifest.
[[nodiscard]] std::string encode_action_result(const RemoteDigest& manifest);
// The manifest's digest from an ActionResult; nullopt if the bytes are not
// a well-formed ActionResult with a "gang-manifest" output of a valid digest.
[[nodiscard]] std::optional<RemoteDigest> decode_action_result(std::string_view bytes);

}  // namespace gang
