// hermetic_main.cpp: main() of every gang test binary. It makes the tests
// hermetic: no test may read or write the user's HOME or gang's default
// cache, and none sees the user's gang settings.
//
// - Every GANG_* setting of the caller's environment is removed at start.
// - Each test runs with its own fresh HOME and XDG_CACHE_HOME (so its
//   default cache, $XDG_CACHE_HOME/gang, is its own too), set before the
//   test starts; gang processes a test spawns without --cache inherit them.
//   The directory goes when the test ends (kept if the test failed and left
//   something there).
// - The real default cache (from the caller's XDG_CACHE_HOME or HOME) is
//   watched: if it appears, or its index, generation, logs or scratch
//   directories change while a test runs, that test is named and the binary
//   exits non-zero. CTest also runs the suite with HOME pointing at an empty
//   directory and fails if anything is left in it (see CMakeLists.txt).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "util/fs.hpp"

extern char** environ;

namespace {

// What the watched files look like: for each, absent, or its times and size.
std::string snapshot(const std::string& cache) {
  std::string out;
  for (const char* name : {"", "/index", "/index/data.mdb", "/index/lock.mdb", "/generation",
                           "/logs", "/tmp", "/failed", "/gits", "/objects", "/locks"}) {
    std::string path = cache + name;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
      out += path + " absent\n";
      continue;
    }
    out += path + " " + std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec) +
           " " + std::to_string(st.st_ctim.tv_sec) + "." + std::to_string(st.st_ctim.tv_nsec) + " " +
           std::to_string(st.st_size) + "\n";
  }
  return out;
}

std::string real_default_cache() {
  const char* xdg = std::getenv("XDG_CACHE_HOME");
  if (xdg != nullptr && *xdg != '\0') return std::string(xdg) + "/gang";
  const char* home = std::getenv("HOME");
  if (home != nullptr && *home != '\0') return std::string(home) + "/.cache/gang";
  return {};
}

class Hermetic : public ::testing::EmptyTestEventListener {
 public:
  explicit Hermetic(std::string real_cache)
      : m_real_cache(std::move(real_cache)), m_before(snapshot(m_real_cache)) {}

  void OnTestStart(const ::testing::TestInfo&) override {
    const char* tmp = std::getenv("TMPDIR");
    auto made = gang::make_temp_dir(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "gang-test-home-");
    if (!made) {
      std::fprintf(stderr, "hermetic: %s\n", made.error().to_string().c_str());
      std::exit(2);
    }
    m_dir = *made;
    (void)gang::make_dirs(m_dir + "/home");
    (void)gang::make_dirs(m_dir + "/cache");
    ::setenv("HOME", (m_dir + "/home").c_str(), 1);
    ::setenv("XDG_CACHE_HOME", (m_dir + "/cache").c_str(), 1);
  }

  void OnTestEnd(const ::testing::TestInfo& info) override {
    std::string name = std::string(info.test_suite_name()) + "." + info.name();
    std::string now = snapshot(m_real_cache);
    if (now != m_before) {
      m_offenders.push_back(name);
      std::fprintf(stderr, "hermetic: %s touched the real default cache %s\n", name.c_str(),
                   m_real_cache.c_str());
      m_before = now;
    }
    bool empty = ::rmdir((m_dir + "/home").c_str()) == 0 && ::rmdir((m_dir + "/cache").c_str()) == 0;
    if (info.result() != nullptr && info.result()->Failed() && !empty)
      std::fprintf(stderr, "hermetic: kept %s's HOME and cache in %s\n", name.c_str(), m_dir.c_str());
    else
      (void)gang::remove_tree(m_dir);
  }

  [[nodiscard]] const std::vector<std::string>& offenders() const { return m_offenders; }

 private:
  std::string m_real_cache;
  std::string m_before;
  std::string m_dir;
  std::vector<std::string> m_offenders;
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> gang_vars;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry = *e;
    // Settings only: tests pass their own parameters as GANG_TEST_* and
    // GANG_GIT_RACE_* to the processes they spawn.
    if (entry.starts_with("GANG_") && !entry.starts_with("GANG_TEST_") &&
        !entry.starts_with("GANG_GIT_RACE_"))
      gang_vars.push_back(entry.substr(0, entry.find('=')));
  }
  for (const auto& name : gang_vars) ::unsetenv(name.c_str());

  ::testing::InitGoogleTest(&argc, argv);
  auto* hermetic = new Hermetic(real_default_cache());
  ::testing::UnitTest::GetInstance()->listeners().Append(hermetic);  // owned by GoogleTest
  int status = RUN_ALL_TESTS();
  if (!hermetic->offenders().empty()) {
    std::fprintf(stderr, "hermetic: FAILED: %zu test(s) touched the real default cache:\n",
                 hermetic->offenders().size());
    for (const auto& name : hermetic->offenders()) std::fprintf(stderr, "  %s\n", name.c_str());
    return 1;
  }
  return status;
}
