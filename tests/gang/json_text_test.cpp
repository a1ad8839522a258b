// Specs for the JSON string literals of gang show and gang cache
// (gang/json_text.hpp): plain text as it is, everything else escaped, and
// always valid JSON, even for bytes that are not UTF-8.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "gang/json_text.hpp"

namespace gang {
namespace {

TEST(JsonText, PlainTextIsQuotedAsItIs) {
  EXPECT_EQ(json_string("gcc.0123abcd"), "\"gcc.0123abcd\"");
  EXPECT_EQ(json_strings({"a", "b c"}), "[\"a\", \"b c\"]");
  EXPECT_EQ(json_strings({}), "[]");
}

TEST(JsonText, EverythingElseIsEscapedAndParsesBack) {
  for (std::string text : {std::string("say \"hi\"\\"), std::string("tab\there\nnew"),
                           std::string("\x01\x1f"), std::string("caf\xc3\xa9"),
                           std::string("del\x7f")}) {
    auto parsed = nlohmann::json::parse(json_string(text), nullptr, false);
    ASSERT_FALSE(parsed.is_discarded()) << json_string(text);
    EXPECT_EQ(parsed.get<std::string>(), text);
  }
}

TEST(JsonText, BytesThatAreNotUtf8StillGiveValidJson) {
  std::string broken = "name\xff\xfe-end";
  auto parsed = nlohmann::json::parse(json_string(broken), nullptr, false);
  ASSERT_FALSE(parsed.is_discarded()) << json_string(broken);
  EXPECT_EQ(parsed.get<std::string>(), "name\xef\xbf\xbd\xef\xbf\xbd-end");  // U+FFFD twice
}

}  // namespace
}  // namespace gang
