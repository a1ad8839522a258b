// test_tree.hpp: helpers for definitions tests: the checked-in fixture tree
// and small trees written into a TempDir.
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <map>
#include <string>

#include "definitions/definitions.hpp"
#include "util/fs.hpp"

namespace gang::testing {

inline std::string fixture(const std::string& name) {
  return std::string(GANG_SOURCE_DIR) + "/tests/definitions/fixtures/" + name;
}

inline constexpr const char* k_minimal_defaults = R"(build-systems:
  manual:
    install-commands: []
  autotools:
    configure-commands:
    - ./configure --prefix="$PREFIX"
    build-commands:
    - make
    install-commands:
    - make DESTDIR="$DESTDIR" install
  cmake:
    build-commands:
    - cmake --build .
split-rules:
  chunk:
  - artifact: -misc
    include: ['.*']
)";

// Writes files (path relative to the tree -> contents) under a fresh TempDir,
// with VERSION (8) and a small DEFAULTS unless the map overrides them.
class Tree {
 public:
  explicit Tree(std::initializer_list<std::pair<std::string, std::string>> list) {
    std::map<std::string, std::string> files(list.begin(), list.end());
    files.try_emplace("VERSION", "version: 8\n");
    files.try_emplace("DEFAULTS", k_minimal_defaults);
    for (const auto& [path, text] : files) write(path, text);
  }

  void write(const std::string& path, const std::string& text) {
    std::string full = m_dir.path() + "/" + path;
    auto slash = full.rfind('/');
    EXPECT_TRUE(make_dirs(full.substr(0, slash)));
    EXPECT_TRUE(write_file_atomic(full, text));
  }

  [[nodiscard]] const std::string& root() const { return m_dir.path(); }

  [[nodiscard]] Result<Definitions> load(Strictness s = Strictness::warn) const {
    LoadOptions options;
    options.unknown_fields = s;
    return load_definitions(root(), options);
  }

 private:
  TempDir m_dir{"gang-defs-test-"};
};

}  // namespace gang::testing
