// splitting.hpp: Baserock's split rules, as ybd applies them (splitting.py).
//
// A chunk's files are divided into products ("artifacts"): the chunk's own
// `products:` rules are tried first, then the DEFAULTS `split-rules` for
// chunks; the first rule with a matching pattern wins. A rule's artifact
// name with a leading '-' is the component's name plus that suffix
// ("-devel" for chunk "zlib" is "zlib-devel"). Every pattern is matched
// against the whole path, relative to the install root without a leading
// '/' ("usr/bin/gzip"); a path also matches when the path plus '/' does,
// which is how a directory rule such as `usr/lib/.*` claims the directory
// `usr/lib` itself. A path no rule matches belongs to no product.
//
// Strata group their chunks' products the same way, matching product names
// ("zlib-devel") against the stratum's `products:` then the DEFAULTS rules
// for strata. A chunk entry's `artifacts:` map (chunk product -> stratum
// product) adds the product to that stratum product as well, as ybd does.
//
// Patterns are Python `re` syntax (DEFAULTS uses `\d`, `(?:...)`, `$`); they
// are translated to POSIX extended regular expressions and compiled once per
// rule set, so matching many paths is fast.
//
// Concurrency: a SplitRuleSet is immutable after compile() and may be used
// from any number of threads (regexec on a compiled regex is thread-safe).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "definitions/definitions.hpp"
#include "util/error.hpp"

namespace gang {

// One product: its name and, sorted, the paths (chunks) or chunk products
// (strata) it holds.
struct Product {
  std::string artifact;
  std::vector<std::string> components;
  friend bool operator==(const Product&, const Product&) = default;
};

// Translates one Python `re` pattern into POSIX extended syntax; an error
// names the construct POSIX cannot express (look-arounds, back-references).
[[nodiscard]] Result<std::string> python_regex_to_posix(std::string_view pattern);

class SplitRuleSet {
 public:
  // Compiles `own` rules, then `defaults`, for the component `name`. An
  // artifact named by several rules is one product (its first rule's place).
  [[nodiscard]] static Result<SplitRuleSet> compile(const std::string& name,
                                                    const std::vector<SplitRule>& own,
                                                    const std::vector<SplitRule>& defaults);

  // Product names, in rule order, without duplicates.
  [[nodiscard]] const std::vector<std::string>& artifacts() const { return m_artifacts; }
  // The index into artifacts() of the product `text` belongs to (ybd's
  // test: `text` or `text/` fully matches a rule), or nullopt.
  [[nodiscard]] std::optional<std::size_t> match(std::string_view text) const;

 private:
  struct Compiled;
  std::vector<std::string> m_artifacts;
  std::vector<std::shared_ptr<const Compiled>> m_rules;  // in rule order
};

// Splits a chunk's paths into its products: one Product per artifact of the
// rule set, in rule order, each with its matching paths sorted (empty
// products included, as ybd records them).
[[nodiscard]] std::vector<Product> split_paths(const SplitRuleSet& rules,
                                               const std::vector<std::string>& paths);

// One chunk as a stratum groups it: its product names and its entry's
// `artifacts:` map.
struct ChunkProducts {
  std::vector<std::string> products;
  std::map<std::string, std::string> artifacts;  // chunk product -> stratum product
};

// Groups chunk products into the stratum's products (see above). A stratum
// product named only by an `artifacts:` map is appended after the rules'.
[[nodiscard]] std::vector<Product> split_stratum(const SplitRuleSet& rules,
                                                 const std::vector<ChunkProducts>& chunks);

}  // namespace gang
