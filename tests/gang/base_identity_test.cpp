// The sandbox base as the cache key sees it: host identity through a fake
// probe (and its cached copy), sysroot content identity on a real tree.
#include "gang/base_identity.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <map>

#include "util/fs.hpp"

namespace gang {
namespace {

class FakeProbe final : public HostProbe {
 public:
  std::optional<std::string> read(const std::string& path) override {
    auto it = files.find(path);
    if (it == files.end()) return std::nullopt;
    return it->second;
  }
  std::optional<std::string> first_line(const std::vector<std::string>& argv) override {
    ++runs;
    std::string line;
    for (const auto& a : argv) line += (line.empty() ? "" : " ") + a;
    auto it = tools.find(line);
    if (it == tools.end()) return std::nullopt;
    return it->second;
  }
  std::string fingerprint(const std::string& path) override {
    auto it = stamps.find(path);
    return it == stamps.end() ? "-" : it->second;
  }
  std::string libc_version() override { return libc; }

  std::map<std::string, std::string> files = {
      {"/etc/os-release", "PRETTY_NAME=\"Debian\"\nVERSION_ID=\"12\"\nID=debian\n"},
      {"/etc/debian_version", "12.11\n"}};
  std::map<std::string, std::string> tools = {
      {"/usr/bin/cc --version", "cc (Debian 12.2.0-14) 12.2.0"},
      {"/usr/bin/cc -dumpmachine", "x86_64-linux-gnu"},
      {"/usr/bin/c++ --version", "c++ (Debian 12.2.0-14) 12.2.0"},
      {"/usr/bin/ld --version", "GNU ld (GNU Binutils for Debian) 2.40"}};
  std::map<std::string, std::string> stamps = {{"/usr/bin/cc", "1:2:3:4"}};
  std::string libc = "glibc 2.36 stable";
  int runs = 0;
};

TEST(BaseIdentity, HostNamesTheOsCompilerLinkerAndLibc) {
  FakeProbe probe;
  auto id = identify_base("host", "", probe);
  ASSERT_TRUE(id) << id.error().to_string();
  EXPECT_EQ(id->kind, "host");
  EXPECT_EQ(id->identity,
            "os ID=debian VERSION_ID=\"12\"\n"
            "debian 12.11\n"
            "cc cc (Debian 12.2.0-14) 12.2.0\n"
            "cc-machine x86_64-linux-gnu\n"
            "c++ c++ (Debian 12.2.0-14) 12.2.0\n"
            "ld GNU ld (GNU Binutils for Debian) 2.40\n"
            "libc glibc 2.36 stable\n");
  probe.tools["/usr/bin/cc --version"] = "cc (Debian 12.3.0-1) 12.3.0";
  auto upgraded = identify_base("host", "", probe);
  ASSERT_TRUE(upgraded);
  EXPECT_NE(upgraded->identity, id->identity);
  probe.libc = "glibc 2.37 stable";
  EXPECT_NE(identify_base("host", "", probe)->identity, upgraded->identity);
}

TEST(BaseIdentity, TheHostIdentityIsKeptInTheCacheWhileItsFilesAreUnchanged) {
  TempDir cache{"gang-base-id-"};
  FakeProbe probe;
  // The fake reads the kept file from the real disk.
  auto kept_path = cache.path() + "/host-identity";
  auto first = identify_base("host", cache.path(), probe);
  ASSERT_TRUE(first);
  int runs = probe.runs;
  EXPECT_GT(runs, 0);
  auto kept = read_file(kept_path);
  ASSERT_TRUE(kept) << "no " << kept_path;
  probe.files[kept_path] = *kept;
  auto second = identify_base("host", cache.path(), probe);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->identity, first->identity);
  EXPECT_EQ(probe.runs, runs);  // no tool was run
  // An upgraded compiler changes its file: probed again.
  probe.stamps["/usr/bin/cc"] = "1:2:3:5";
  probe.tools["/usr/bin/cc --version"] = "cc (Debian 12.3.0-1) 12.3.0";
  auto third = identify_base("host", cache.path(), probe);
  ASSERT_TRUE(third);
  EXPECT_GT(probe.runs, runs);
  EXPECT_NE(third->identity, first->identity);
  // A torn kept file is ignored.
  probe.files[kept_path] = kept->substr(0, kept->size() / 2);
  EXPECT_EQ(identify_base("host", cache.path(), probe)->identity, third->identity);
  // Without a cache directory nothing is written.
  TempDir other{"gang-base-id-"};
  ASSERT_TRUE(identify_base("host", other.path() + "/none", probe));
  EXPECT_FALSE(path_exists(other.path() + "/none"));
}

TEST(BaseIdentity, ASysrootIsIdentifiedByItsContentNotItsPlace) {
  TempDir a{"gang-sysroot-"};
  ASSERT_TRUE(make_dirs(a.path() + "/usr/lib"));
  ASSERT_TRUE(write_file(a.path() + "/usr/lib/libz.so.1", "zlib"));
  FakeProbe probe;
  auto first = identify_base(a.path(), "", probe);
  ASSERT_TRUE(first) << first.error().to_string();
  EXPECT_EQ(first->kind, "sysroot");
  EXPECT_TRUE(first->identity.starts_with("sha256:"));
  EXPECT_EQ(identify_base(a.path(), "", probe)->identity, first->identity);
  EXPECT_EQ(probe.runs, 0);
  TempDir b{"gang-sysroot-"};  // a copy that keeps mtimes, elsewhere
  ASSERT_EQ(std::system(("cp -a " + a.path() + "/usr " + b.path() + "/").c_str()), 0);
  EXPECT_EQ(identify_base(b.path(), "", probe)->identity, first->identity);
  ASSERT_TRUE(write_file(a.path() + "/usr/lib/libz.so.1", "zlib 1.3"));
  EXPECT_NE(identify_base(a.path(), "", probe)->identity, first->identity);
  auto none = identify_base("none", "", probe);
  ASSERT_TRUE(none);
  EXPECT_EQ(none->kind, "none");
  EXPECT_EQ(none->identity, "");
  auto missing = identify_base(a.path() + "/nope", "", probe);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("is not a directory"), std::string::npos);
}

}  // namespace
}  // namespace gang
