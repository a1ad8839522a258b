// Split rules as ybd applies them: the chunk's products first, then the
// DEFAULTS rules; '-' prefix; first match wins; whole-path matches; Python
// regex syntax of the real Baserock DEFAULTS.
#include "definitions/splitting.hpp"

#include <gtest/gtest.h>

namespace gang {
namespace {

// The real Baserock DEFAULTS split-rules (definitions version 8).
const std::vector<SplitRule> k_chunk_defaults = {
    {"-bins", {"(usr/)?s?bin/.*"}},
    {"-libs", {R"((usr/)?lib(32|64)?/lib[^/]*\.so(\.\d+)*)", "(usr/)libexec/.*"}},
    {"-devel",
     {"(usr/)?include/.*", R"((usr/)?lib(32|64)?/lib.*\.a)", R"((usr/)?lib(32|64)?/lib.*\.la)",
      R"((usr/)?(lib(32|64)?|share)/pkgconfig/.*\.pc)"}},
    {"-doc", {"(usr/)?share/doc/.*", "(usr/)?share/man/.*", "(usr/)?share/info/.*"}},
    {"-locale", {"(usr/)?share/locale/.*", "(usr/)?share/i18n/.*", "(usr/)?share/zoneinfo/.*"}},
    {"-misc", {".*"}},
};
const std::vector<SplitRule> k_stratum_defaults = {
    {"-devel", {".*-devel", ".*-debug", ".*-doc"}},
    {"-runtime", {".*-bins", ".*-libs", ".*-locale", ".*-misc", ".*"}},
};
// The real strata/build-essential/glibc.morph products (glibc-libs twice).
const std::vector<SplitRule> k_glibc_products = {
    {"glibc-nss", {"etc/nsswitch.conf", "(usr/)?lib/libnss.*"}},
    {"glibc-gconv", {"(usr/)?lib/gconv/.*"}},
    {"glibc-libs", {"sbin/ldconfig", "lib(32|64)?/ld-.*", "(usr/)?lib(exec)?/pt_chown"}},
    {"glibc-bins",
     {"(usr/)?s?bin/.*", "(usr/)?libexec/getconf/.*",
      R"((usr/)?lib(32|64)?/libSegFault\.so(\.\d+)*$)"}},
    {"glibc-libs",
     {R"((usr/)?lib(32|64)?/lib[^/]*\.so(\.\d+)*$)", "etc/ld.so.conf", "etc/ld.so.conf.d"}},
    {"glibc-devel",
     {"(usr/)?include/.*", R"((usr/)?lib(32|64)?/lib.*\.a)", R"((usr/)?lib(32|64)?/lib.*\.la)",
      R"((usr/)?(lib(32|64)?|share)/pkgconfig/.*\.pc)", R"((usr/)?lib(32|64)?/.*\.o)"}},
    {"glibc-locale",
     {"(usr/)?lib/locale/.*", "(usr/)?share/locale/.*", "(usr/)?share/i18n/.*",
      "(usr/)?share/zoneinfo/.*"}},
    {"glibc-misc", {".*"}},
};

SplitRuleSet compile(const std::string& name, const std::vector<SplitRule>& own,
                     const std::vector<SplitRule>& defaults = k_chunk_defaults) {
  auto rules = SplitRuleSet::compile(name, own, defaults);
  EXPECT_TRUE(rules) << rules.error().to_string();
  return rules ? std::move(*rules) : SplitRuleSet{};
}

std::string product_of(const SplitRuleSet& rules, const std::string& path) {
  auto index = rules.match(path);
  return index ? rules.artifacts()[*index] : "(none)";
}

// Expected values computed with ybd's own code (Python re, re.match on
// `path` or `path + '/'`) over the same rules.
TEST(Splitting, RealDefaultsClassifyPathsExactlyAsYbdDoes) {
  SplitRuleSet zlib = compile("zlib", {});
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"usr", "zlib-misc"},
      {"usr/bin", "zlib-bins"},  // a directory matches through "usr/bin/"
      {"usr/bin/ldd", "zlib-bins"},
      {"sbin", "zlib-bins"},
      {"lib/ld-linux-x86-64.so.2", "zlib-misc"},
      {"usr/lib/libc.so.6", "zlib-libs"},
      {"usr/lib/libc.so", "zlib-libs"},
      {"usr/lib/libfoo.so.1.2.3", "zlib-libs"},  // (\.\d+)*
      {"usr/lib/libz.so.1.x", "zlib-misc"},      // whole-path match: the tail must match too
      {"usr/lib32/libq.so", "zlib-libs"},
      {"usr/lib/sub/libq.so", "zlib-misc"},  // [^/]*
      {"usr/libexec/pt_chown", "zlib-libs"},
      {"usr/include", "zlib-devel"},
      {"usr/include/stdio.h", "zlib-devel"},
      {"usr/lib/libc.a", "zlib-devel"},
      {"usr/lib/pkgconfig/x.pc", "zlib-devel"},
      {"usr/share/pkgconfig/y.pc", "zlib-devel"},
      {"usr/share/man/man1/ldd.1", "zlib-doc"},
      {"usr/share/doc", "zlib-doc"},
      {"usr/share", "zlib-misc"},
      {"usr/share/locale/de/LC_MESSAGES/libc.mo", "zlib-locale"},
      {"usr/share/zoneinfo/UTC", "zlib-locale"},
      {"etc/nsswitch.conf", "zlib-misc"},
      {"baserock", "zlib-misc"},
  };
  for (const auto& [path, product] : expected) EXPECT_EQ(product_of(zlib, path), product) << path;
  EXPECT_EQ(zlib.artifacts(), (std::vector<std::string>{"zlib-bins", "zlib-libs", "zlib-devel",
                                                        "zlib-doc", "zlib-locale", "zlib-misc"}));
}

TEST(Splitting, ChunkProductsComeFirstAndTheFirstMatchWins) {
  SplitRuleSet glibc = compile("glibc", k_glibc_products);
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"sbin/ldconfig", "glibc-libs"},  // own rule before the default -bins
      {"sbin", "glibc-bins"},
      {"usr/lib/libSegFault.so", "glibc-bins"},  // bins before the second libs rule
      {"usr/lib/libnss_files.so.2", "glibc-nss"},
      {"usr/lib/gconv", "glibc-gconv"},
      {"usr/lib/gconv/UTF-16.so", "glibc-gconv"},
      {"lib64/ld-2.23.so", "glibc-libs"},
      {"etc/ld.so.conf", "glibc-libs"},
      {"usr/libexec/getconf/POSIX_V7", "glibc-bins"},
      {"usr/libexec/pt_chown", "glibc-libs"},
      {"usr/share/man/man1/ldd.1", "glibc-misc"},  // own catch-all before the default -doc
      {"usr/share/zoneinfo/UTC", "glibc-locale"},
  };
  for (const auto& [path, product] : expected) EXPECT_EQ(product_of(glibc, path), product) << path;
  // glibc-libs is one product although two rules name it; the defaults
  // (with the '-' prefix expanded) follow the chunk's own products.
  EXPECT_EQ(glibc.artifacts(),
            (std::vector<std::string>{"glibc-nss", "glibc-gconv", "glibc-libs", "glibc-bins",
                                      "glibc-devel", "glibc-locale", "glibc-misc", "glibc-doc"}));
}

TEST(Splitting, DashPrefixMeansTheComponentNameAndOtherNamesStayAsWritten) {
  SplitRuleSet rules = compile("foo", {{"-tools", {"opt/.*"}}, {"special", {"etc/x"}}}, {});
  EXPECT_EQ(rules.artifacts(), (std::vector<std::string>{"foo-tools", "special"}));
  EXPECT_EQ(product_of(rules, "opt/a"), "foo-tools");
  EXPECT_EQ(product_of(rules, "etc/x"), "special");
  EXPECT_EQ(product_of(rules, "etc/xy"), "(none)") << "anchored at the end";
  EXPECT_EQ(product_of(rules, "a/opt/a"), "(none)") << "anchored at the start";
  EXPECT_EQ(product_of(rules, "/opt/a"), "(none)") << "paths have no leading slash";
}

TEST(Splitting, SplitPathsListsEveryProductWithSortedComponents) {
  SplitRuleSet rules = compile("foo", {{"-tools", {"opt/.*"}}}, {{"-rest", {"usr/.*"}}});
  auto products = split_paths(rules, {"usr/b", "opt/z", "usr/a", "elsewhere", "opt/a"});
  ASSERT_EQ(products.size(), 2u);
  EXPECT_EQ(products[0], (Product{"foo-tools", {"opt/a", "opt/z"}}));
  EXPECT_EQ(products[1], (Product{"foo-rest", {"usr/a", "usr/b"}}));
  auto empty = split_paths(rules, {});
  ASSERT_EQ(empty.size(), 2u) << "empty products are recorded too, as ybd does";
  EXPECT_TRUE(empty[0].components.empty());
}

TEST(Splitting, PythonSyntaxTranslatesToPosix) {
  EXPECT_EQ(*python_regex_to_posix(R"(a\d+(?:x|y)\.so$)"), R"(a[0-9]+(x|y)\.so$)");
  EXPECT_EQ(*python_regex_to_posix(R"([\w.]*)"), "[[:alnum:]_.]*");
  EXPECT_EQ(*python_regex_to_posix(R"(a.*?b)"), "a.*b") << "lazy quantifiers match the same";
  EXPECT_EQ(*python_regex_to_posix(R"([^\]x\-])"), "[^]x-]");
  // The real set's most unusual pattern (strata/ruby/*.morph).
  SplitRuleSet ruby = compile("ruby", {{"-doc", {R"(usr/lib/ruby/gems/\d[\w.]*/doc/.*)"}}}, {});
  EXPECT_EQ(product_of(ruby, "usr/lib/ruby/gems/2.0.0/doc/x"), "ruby-doc");
  EXPECT_EQ(product_of(ruby, "usr/lib/ruby/gems/x2.0/doc/x"), "(none)");
}

TEST(Splitting, UnsupportedOrBrokenPatternsAreClearErrors) {
  auto lookahead = SplitRuleSet::compile("foo", {{"-x", {"a(?=b)"}}}, {});
  ASSERT_FALSE(lookahead);
  EXPECT_NE(lookahead.error().message.find("foo-x"), std::string::npos)
      << lookahead.error().message;
  EXPECT_NE(lookahead.error().message.find("(?=b)"), std::string::npos);
  auto backref = SplitRuleSet::compile("foo", {{"-x", {R"((a)\1)"}}}, {});
  ASSERT_FALSE(backref);
  auto unbalanced = SplitRuleSet::compile("foo", {{"-x", {"(a"}}}, {});
  ASSERT_FALSE(unbalanced);
  EXPECT_NE(unbalanced.error().message.find("bad regular expression"), std::string::npos);
}

TEST(Splitting, StrataGroupChunkProductsAndHonourArtifactsMaps) {
  // build-essential's own products, then the DEFAULTS for strata.
  SplitRuleSet rules = compile(
      "build-essential", {{"build-essential-minimal", {"fhs-dirs-.*", "busybox-.*", "glibc-nss"}}},
      k_stratum_defaults);
  std::vector<ChunkProducts> chunks = {
      {{"glibc-nss", "glibc-libs", "glibc-devel", "glibc-misc"},
       {{"glibc-libs", "build-essential-minimal"}, {"glibc-nss", "build-essential-runtime"}}},
      {{"busybox-bins", "busybox-doc"}, {}},
      {{"zlib-libs"}, {{"zlib-libs", "extra-artifact"}}},
  };
  auto products = split_stratum(rules, chunks);
  ASSERT_EQ(products.size(), 4u);
  // ybd adds a mapped product to its target and still to the product its
  // rules pick (glibc-libs is in minimal by the map and runtime by -libs).
  EXPECT_EQ(products[0], (Product{"build-essential-minimal",
                                  {"busybox-bins", "busybox-doc", "glibc-libs", "glibc-nss"}}));
  EXPECT_EQ(products[1], (Product{"build-essential-devel", {"glibc-devel"}}));
  EXPECT_EQ(products[2], (Product{"build-essential-runtime",
                                  {"glibc-libs", "glibc-misc", "glibc-nss", "zlib-libs"}}));
  EXPECT_EQ(products[3], (Product{"extra-artifact", {"zlib-libs"}}));
}

}  // namespace
}  // namespace gang
