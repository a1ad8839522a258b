// fuzz_definitions.cpp: a libFuzzer target for the definitions loader.
//
// Each input is parsed by parse_yaml (the one YAML reader of definitions and
// gang.conf) and then loaded as part of a small definitions tree: written as
// DEFAULTS when it looks like one (it holds "build-systems:" or
// "split-rules:"), else as strata/fuzz.morph beside a fixed VERSION, a
// chunk file and a system naming the stratum. Any crash, sanitizer report or
// run past libFuzzer's -timeout is a bug. Built with -DGANG_FUZZ=ON and run
// by scripts/fuzz-definitions.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "definitions/definitions.hpp"
#include "definitions/yaml.hpp"
#include "util/fs.hpp"

namespace {

const std::string& tree() {
  static const std::string root = [] {
    std::string dir = gang::make_temp_dir("/tmp", "gang-fuzz-defs-").value();
    (void)gang::write_file(dir + "/VERSION", "version: 8\n");
    (void)gang::make_dirs(dir + "/strata/fuzz");
    (void)gang::make_dirs(dir + "/systems");
    (void)gang::write_file(dir + "/strata/fuzz/hello.morph",
                           "name: hello\nkind: chunk\nbuild-system: manual\n"
                           "build-commands: [make]\n");
    (void)gang::write_file(dir + "/systems/fuzz-system.morph",
                           "name: fuzz-system\nkind: system\narch: x86_64\n"
                           "strata:\n- morph: strata/fuzz.morph\n");
    std::atexit([] { (void)gang::remove_tree(root); });
    return dir;
  }();
  return root;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)gang::parse_yaml(text, "fuzz.morph");

  const std::string& root = tree();
  bool defaults = text.find("build-systems:") != std::string_view::npos ||
                  text.find("split-rules:") != std::string_view::npos;
  std::string target = root + (defaults ? "/DEFAULTS" : "/strata/fuzz.morph");
  if (!gang::write_file(target, std::string(text))) return 0;
  auto defs = gang::load_definitions(root);
  if (defs)
    for (const auto& warning : defs->warnings) (void)warning.to_string();
  ::unlink(target.c_str());
  return 0;
}
