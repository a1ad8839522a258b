// Deploy parameters reach extensions as ybd passes them: str() of the value.
#include "definitions/deploy_value.hpp"

#include <gtest/gtest.h>

namespace gang {
namespace {

std::string render(const std::string& yaml_value) {
  auto doc = parse_yaml("v: " + yaml_value + "\n", "c.morph");
  EXPECT_TRUE(doc) << doc.error().to_string();
  return doc ? render_deploy_value(*doc->find("v")) : std::string();
}

TEST(DeployValue, TopLevelScalarsStayAsWritten) {
  EXPECT_EQ(render("1G"), "1G");
  EXPECT_EQ(render("yes"), "yes");
  EXPECT_EQ(render("'0x10'"), "0x10");
  EXPECT_EQ(render("017"), "017");
  EXPECT_EQ(render(""), "");
}

TEST(DeployValue, ListsAndMappingsArePythonsRendering) {
  EXPECT_EQ(render("[a, 'b', \"c d\"]"), "['a', 'b', 'c d']");
  EXPECT_EQ(render("{ip: 10.0.0.1, weight: 100}"), "{'ip': '10.0.0.1', 'weight': 100}");
  EXPECT_EQ(render("[yes, No, on, false, ~, null, '']"),
            "[True, False, True, False, None, None, '']");
  EXPECT_EQ(render("[0x1f, 017, -3, +4, 1_000]"), "[31, 15, -3, 4, 1000]");
  // PyYAML 1.1: a float needs a dot, so 1e+3 is a string.
  EXPECT_EQ(render("[1.5, 2., .5, 1.0e+3, 1e+3, .inf, -.Inf, .nan]"),
            "[1.5, 2.0, 0.5, 1000.0, '1e+3', inf, -inf, nan]");
  EXPECT_EQ(render("['yes', \"100\"]"), "['yes', '100']");  // quoted: strings
  EXPECT_EQ(render("[\"it's\", 'back\\\\slash']"), "[\"it's\", 'back\\\\\\\\slash']");
  EXPECT_EQ(render("[[1, 2], {}]"), "[[1, 2], {}]");
}

}  // namespace
}  // namespace gang
