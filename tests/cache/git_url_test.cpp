#include <gtest/gtest.h>

#include "cache/git_url.hpp"

namespace gang {
namespace {

const std::map<std::string, std::string> k_aliases = {
    {"upstream", "file:///srv/git/"},
    {"github", "https://github.com/%s.git"},
    {"demo", "../git/"},
};

TEST(GitUrl, AliasPrefixIsPrependedToTheRest) {
  EXPECT_EQ(expand_repo_url("upstream:foo", k_aliases).value(), "file:///srv/git/foo");
}

TEST(GitUrl, AliasWithPercentSSubstitutesTheRest) {
  EXPECT_EQ(expand_repo_url("github:acme/tool", k_aliases).value(), "https://github.com/acme/tool.git");
}

TEST(GitUrl, RelativeAliasPrefixIsResolvedAgainstTheBaseDirectory) {
  EXPECT_EQ(expand_repo_url("demo:libgreet", k_aliases, "/work/x/examples/definitions").value(),
            "/work/x/examples/git/libgreet");
}

TEST(GitUrl, UnknownAliasIsAnErrorNamingIt) {
  auto url = expand_repo_url("baserock:foo", k_aliases);
  ASSERT_FALSE(url);
  EXPECT_NE(url.error().message.find("unknown repo alias \"baserock\""), std::string::npos)
      << url.error().message;
}

TEST(GitUrl, UrlsAndScpLikeAddressesPassThrough) {
  EXPECT_EQ(expand_repo_url("https://example.com/a.git", {}).value(), "https://example.com/a.git");
  EXPECT_EQ(expand_repo_url("file:///srv/a", {}).value(), "file:///srv/a");
  EXPECT_EQ(expand_repo_url("git@example.com:a/b.git", {}).value(), "git@example.com:a/b.git");
}

TEST(GitUrl, LocalPathsBecomeAbsoluteAndNormalised) {
  EXPECT_EQ(expand_repo_url("/srv/git/a/", {}).value(), "/srv/git/a");
  EXPECT_EQ(expand_repo_url("repos/./a", {}, "/defs").value(), "/defs/repos/a");
}

TEST(GitUrl, EmptyRepoIsAnError) { EXPECT_FALSE(expand_repo_url("", k_aliases)); }

TEST(GitUrl, RelativeSubmoduleUrlsResolveAgainstTheSuperproject) {
  EXPECT_EQ(resolve_relative_url("file:///srv/git/super", "../lib.git"), "file:///srv/git/lib.git");
  EXPECT_EQ(resolve_relative_url("https://h/a/super.git", "./sub"), "https://h/a/super.git/sub");
  EXPECT_EQ(resolve_relative_url("/srv/super", "https://x/y"), "https://x/y");
}

TEST(GitUrl, MirrorNamesAreReadableSafeAndDistinct) {
  std::string name = mirror_name("https://github.com/acme/tool.git");
  EXPECT_TRUE(name.starts_with("github.com_acme_tool.git-")) << name;
  EXPECT_EQ(name.find('/'), std::string::npos);
  EXPECT_NE(mirror_name("file:///srv/a_b"), mirror_name("file:///srv/a/b"));
  EXPECT_EQ(mirror_name("file:///srv/a"), mirror_name("file:///srv/a"));
  EXPECT_FALSE(mirror_name("/../..").starts_with("."));
}

}  // namespace
}  // namespace gang
