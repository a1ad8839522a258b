// json_text.hpp: JSON string literals for the commands that write JSON line
// by line (gang show, gang cache), so that their layout stays one record per
// line. The escaping is nlohmann-json's (the project's one JSON library):
// bytes that are not valid UTF-8 become U+FFFD, so the output is always
// valid JSON. Thread-safe (no state).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace gang {

// Appends `text` to `out` as a JSON string literal (quotes included).
void append_json_string(std::string& out, std::string_view text);

// `text` as a JSON string literal.
[[nodiscard]] std::string json_string(std::string_view text);

// `items` as a JSON array of strings: ["a", "b"].
[[nodiscard]] std::string json_strings(const std::vector<std::string>& items);

}  // namespace gang
