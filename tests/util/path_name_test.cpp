#include "util/path_name.hpp"

#include <gtest/gtest.h>

namespace gang {
namespace {

TEST(PathName, AcceptsRealBaserockNames) {
  for (const char* name : {"gcc", "gstreamer-plugins-base@0.10", "libsigc++", "stage1_gcc",
                           "python3.5", "-devel", "..x", "a..b"})
    EXPECT_TRUE(check_name(name)) << name;
}

TEST(PathName, RefusesAnythingButOneSafeComponent) {
  for (std::string name :
       {std::string(""), std::string("."), std::string(".."), std::string("a/b"),
        std::string("/abs"), std::string("a\nb"), std::string("a\tb"), std::string("a\0b", 3),
        std::string("a b"), std::string("a\x7f"), std::string(201, 'x')})
    EXPECT_FALSE(check_name(name)) << name;
  EXPECT_EQ(check_name("a\nb").error().message,
            "invalid name \"a\\x0ab\" (a name may hold only letters, digits and - _ . + @)");
}

TEST(PathName, JoinNameJoinsOnlySafeNames) {
  EXPECT_EQ(join_name("/c/failed", "gcc").value(), "/c/failed/gcc");
  EXPECT_FALSE(join_name("/c/failed", ".."));
  EXPECT_FALSE(join_name("/c/failed", "a/b"));
  EXPECT_FALSE(join_name("/c/failed", ""));
}

TEST(PathName, NameToLeafIsAlwaysOneSafeComponent) {
  EXPECT_EQ(name_to_leaf("gcc"), "gcc");
  EXPECT_EQ(name_to_leaf("core/gcc"), "core_gcc");  // component ids STRATUM/NAME
  EXPECT_EQ(name_to_leaf(".."), "%2E%2E");
  EXPECT_EQ(name_to_leaf("."), "%2E");
  EXPECT_EQ(name_to_leaf(""), "%");
  EXPECT_EQ(name_to_leaf("../x"), ".._x");
  EXPECT_EQ(name_to_leaf("a\nb"), "a%0Ab");
  for (const char* id : {"..", ".", "", "../x", "a/../b", "a\nb", "x y"}) {
    std::string leaf = name_to_leaf(id);
    EXPECT_FALSE(leaf.empty() || leaf == "." || leaf == "..") << id;
    for (char c : leaf) EXPECT_TRUE(c == '%' || check_name(std::string(1, c)) || c == '.') << id;
  }
}

}  // namespace
}  // namespace gang
