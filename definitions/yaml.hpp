// definitions/: reads a Baserock definitions tree (VERSION, DEFAULTS and
// *.morph files) into plain values, resolves a target into a build graph in
// build order, and computes each component's cache key. It depends only on
// util/; the git layer and the artifact cache reach it through small
// interfaces (SourceResolver) so that it works offline and in tests.
//
// yaml.hpp: the one place that parses definitions. It reads a document
// through libyaml's event parser (the C library PyYAML itself uses, about
// three times faster than yaml-cpp on a real definitions set) into a small
// owned tree (YamlNode) that carries line and column of every node, and turns
// every parser problem into a gang::Error. Nothing of libyaml leaks through
// this header. (gang.conf is read with yaml-cpp, in gang/config.)
// Concurrency: parse_yaml is reentrant; YamlNode is a plain value.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "util/error.hpp"

namespace gang {

struct YamlEntry;

// One YAML node. Mapping keys must be scalars (true of every definitions
// file); entries keep document order.
struct YamlNode {
  enum class Type { null, scalar, sequence, map };

  Type type = Type::null;
  int line = 0;                    // 1-based
  int column = 0;                  // 1-based
  std::string scalar;              // Type::scalar
  bool plain = false;              // Type::scalar written unquoted (so YAML may read it as a number, bool, null)
  std::vector<YamlNode> items;     // Type::sequence
  std::vector<YamlEntry> entries;  // Type::map

  [[nodiscard]] bool is_null() const { return type == Type::null; }
  [[nodiscard]] bool is_scalar() const { return type == Type::scalar; }
  [[nodiscard]] bool is_sequence() const { return type == Type::sequence; }
  [[nodiscard]] bool is_map() const { return type == Type::map; }

  // The value of mapping key `key`, or nullptr if absent or not a mapping.
  [[nodiscard]] const YamlNode* find(std::string_view key) const;
};

struct YamlEntry {
  std::string key;
  int line = 0;  // of the key
  int column = 0;
  YamlNode value;
};

// "a string", "a list", "a mapping" or "null", for error messages.
[[nodiscard]] const char* describe(YamlNode::Type type);

// Parses the first document of `text`. An empty document gives a null node,
// and so does a plain "", "~" or "null". Aliases are expanded and merge keys
// ("<<: *base") merged, as PyYAML (which Baserock's own tools use) reads
// them. Errors carry `file` (as given, for messages), line and column:
// syntax errors, non-scalar mapping keys and duplicate keys, and hostile
// shapes: aliases and anchors that copy more than 100,000 nodes in all (the
// "billion laughs" bomb fails at once instead of expanding) and nesting
// deeper than 256 levels.
[[nodiscard]] Result<YamlNode> parse_yaml(std::string_view text, const std::string& file);

}  // namespace gang
