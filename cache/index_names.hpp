// index_names.hpp (internal to cache/): the named databases of the cache's
// LMDB index.
#pragma once

namespace gang::index_names {

inline constexpr const char* artifacts = "artifacts";  // key -> artifact row (records.hpp)
inline constexpr const char* claims = "claims";        // key -> claim row
inline constexpr const char* failures = "failures";    // key -> failure row
inline constexpr const char* durations = "durations";  // component id -> last build, ms (decimal)

// Every database, in the order environments open them.
inline constexpr const char* all[] = {artifacts, claims, failures, durations};

}  // namespace gang::index_names
