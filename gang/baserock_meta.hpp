// baserock_meta.hpp: the `baserock/NAME.meta` file every chunk, stratum and
// system artifact carries, in ybd's shape (ybd writes it as YAML; gang writes
// the same fields as JSON, which YAML readers also read):
//   {"products": [{"artifact": "zlib-devel", "components": ["usr/include/zlib.h", ...]}],
//    "repo": "upstream:zlib", "ref": "...", "cache": "zlib.<key>"}
// A chunk's product components are paths; a stratum's are chunk products.
// repo and ref are written for chunks only.
//
// Concurrency: pure functions over plain values.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "definitions/splitting.hpp"
#include "util/error.hpp"

namespace gang {

struct BaserockMeta {
  std::vector<Product> products;
  std::string repo;   // chunks: as written in the definition; "" = not written
  std::string ref;    // chunks: the definition's ref
  std::string cache;  // the artifact's cache key
};

// "baserock/<name>.meta", relative to an artifact's root.
[[nodiscard]] std::string baserock_meta_path(const std::string& name);

[[nodiscard]] std::string encode_baserock_meta(const BaserockMeta& meta);
// Parses a .meta file; `what` names it in errors. Unknown fields are ignored;
// ybd's older `files` lists count as components.
[[nodiscard]] Result<BaserockMeta> decode_baserock_meta(std::string_view text,
                                                        const std::string& what);

}  // namespace gang
