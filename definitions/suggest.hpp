// suggest.hpp: "did you mean" suggestions for misspelt names, by optimal
// string alignment distance (a transposition counts as one edit).
// Concurrency: pure functions.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace gang {

// Edit distance between a and b (insert, delete, substitute, transpose).
[[nodiscard]] std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word` if it is close enough to be a plausible
// typo (at most a third of the word's length, and at most 3 edits), else "".
[[nodiscard]] std::string closest_match(std::string_view word,
                                        std::span<const std::string_view> candidates);

// " (did you mean \"x\"?)" for closest_match, or "" when there is none.
[[nodiscard]] std::string did_you_mean(std::string_view word,
                                       std::span<const std::string_view> candidates);

}  // namespace gang
