// End-to-end test of deliverable "staged dependencies win over the host":
// `gang build --base host` of a chunk that links a library a dependency
// built, where the host has its own copy of the same soname (libz.so.1, in
// the host's multiarch directory on every Debian) and its own copy of a
// header (ieee754.h, from libc6-dev, also multiarch). The real binary, real
// workers, real staging from the cache and a real sandbox.
#include <gtest/gtest.h>

#include <cstdlib>

#include "sandbox/launcher.hpp"
#include "sandbox/sandbox_plan.hpp"
#include "tests/gang/gang_process.hpp"
#include "util/fs.hpp"

namespace gang {
namespace {

TEST(StagedDependencies, WinOverTheHostsLibrariesAndHeadersInABuildWithBaseHost) {
  const std::string triplet = host_multiarch_triplet();
  if (triplet.empty() || !path_exists("/usr/lib/" + triplet + "/libz.so.1") ||
      !path_exists("/usr/include/" + triplet + "/ieee754.h") ||
      std::system("cc --version >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "needs a multiarch host with cc, libc6-dev and zlib1g";
  TempDir dir("gang-staged-deps-test-");
  const std::string defs = dir.path() + "/defs";
  ASSERT_TRUE(make_dirs(defs + "/strata"));
  ASSERT_TRUE(write_file_atomic(defs + "/VERSION", "version: 9\n"));
  ASSERT_TRUE(write_file_atomic(defs + "/DEFAULTS", "build-systems:\n  manual: {}\n"));
  ASSERT_TRUE(write_file_atomic(defs + "/strata/s.morph", R"(name: s
kind: stratum
chunks:
- name: zlib
  build-system: manual
  install-commands:
  - |
    cat > z.c <<'EOF'
    const char *zlibVersion(void) { return "9.9.9-gang"; }
    const char *gang_staged_zlib(void) { return "staged"; }
    EOF
  - mkdir -p "$DESTDIR$PREFIX/lib" "$DESTDIR$PREFIX/include"
  - cc -shared -fPIC -Wl,-soname,libz.so.1 -o "$DESTDIR$PREFIX/lib/libz.so.1" z.c
  - ln -s libz.so.1 "$DESTDIR$PREFIX/lib/libz.so"
  - |
    cat > "$DESTDIR$PREFIX/include/zlib.h" <<'EOF'
    #define ZLIB_VERSION "9.9.9-gang"
    const char *zlibVersion(void);
    const char *gang_staged_zlib(void);
    EOF
  - echo '#define GANG_STAGED_IEEE754 1' > "$DESTDIR$PREFIX/include/ieee754.h"
- name: app
  build-system: manual
  build-depends: [zlib]
  build-commands:
  - |
    cat > app.c <<'EOF'
    #include <ieee754.h>
    #include <stdio.h>
    #include <zlib.h>
    #ifndef GANG_STAGED_IEEE754
    #error the host's ieee754.h
    #endif
    int main(void) { printf("%s %s %s\n", ZLIB_VERSION, zlibVersion(), gang_staged_zlib()); return 0; }
    EOF
  - cc -o app app.c -lz
  - ./app > app.out
  - cc -o app2 app.c -l:libz.so.1
  - ./app2 >> app.out
  install-commands:
  - mkdir -p "$DESTDIR$PREFIX/share"
  - cp app.out "$DESTDIR$PREFIX/share/app.out"
)"));
  const std::string cache = dir.path() + "/cache";
  auto run = testing::run_gang({"build", defs + "/strata/s.morph", "--cache", cache, "--base",
                                "host", "--instances", "1", "--max-jobs", "1"},
                               dir.path());
  ASSERT_EQ(run.status, 0) << run.output;
  auto key = [&](const std::string& name) {
    auto at = run.output.find("[" + name + "] Starting build (");
    if (at == std::string::npos) return std::string();
    at = run.output.find('(', at) + 1;
    return run.output.substr(at, run.output.find(')', at) - at);
  };
  const std::string staged = dir.path() + "/staged";
  auto stage =
      testing::run_gang({"cache", "stage", key("app"), staged, "--cache", cache}, dir.path());
  ASSERT_EQ(stage.status, 0) << stage.output << run.output;
  EXPECT_EQ(testing::slurp(staged + "/usr/share/app.out"),
            "9.9.9-gang 9.9.9-gang staged\n9.9.9-gang 9.9.9-gang staged\n");
  if (HasFailure()) dir.keep();
}

}  // namespace
}  // namespace gang
