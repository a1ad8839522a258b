#include "definitions/splitting.hpp"

#include <regex.h>

#include <algorithm>
#include <cctype>
#include <set>

namespace gang {

namespace {

// A Python escape outside brackets, as POSIX ERE text; nullopt if POSIX has
// no equivalent.
std::optional<std::string> escape_outside(char c) {
  switch (c) {
    case 'd':
      return "[0-9]";
    case 'D':
      return "[^0-9]";
    case 'w':
      return "[[:alnum:]_]";
    case 'W':
      return "[^[:alnum:]_]";
    case 's':
      return "[[:space:]]";
    case 'S':
      return "[^[:space:]]";
    case 'n':
      return "\n";
    case 't':
      return "\t";
    default:
      break;
  }
  if (std::isalnum(static_cast<unsigned char>(c))) return std::nullopt;
  if (std::string_view(".[]()*+?{}|^$\\").find(c) != std::string_view::npos)
    return std::string("\\") + c;
  return std::string(1, c);
}

}  // namespace

Result<std::string> python_regex_to_posix(std::string_view p) {
  std::string out;
  auto unsupported = [&](std::string_view what) {
    return make_error("regular expression \"" + std::string(p) + "\": " + std::string(what) +
                      " is not supported");
  };
  bool after_quantifier = false;
  for (std::size_t i = 0; i < p.size(); ++i) {
    char c = p[i];
    bool quantifier = false;
    if (c == '\\') {
      if (i + 1 >= p.size()) return unsupported("a trailing backslash");
      auto e = escape_outside(p[++i]);
      if (!e) return unsupported(std::string("\\") + p[i]);
      out += *e;
    } else if (c == '(') {
      if (i + 1 < p.size() && p[i + 1] == '?') {
        if (i + 2 < p.size() && p[i + 2] == ':') {
          i += 2;
        } else {
          return unsupported("a (?...) group other than (?:...)");
        }
      }
      out += '(';
    } else if (c == '[') {
      // A bracket expression: Python escapes inside become POSIX classes or
      // literals; ']' '^' '-' given as escapes go where POSIX reads them literally.
      std::size_t j = i + 1;
      bool negate = j < p.size() && p[j] == '^';
      if (negate) ++j;
      std::string body;
      bool rbracket = false, caret = false, dash = false;
      if (j < p.size() && p[j] == ']') {
        rbracket = true;
        ++j;
      }
      for (; j < p.size() && p[j] != ']'; ++j) {
        if (p[j] != '\\') {
          body += p[j];
          continue;
        }
        if (++j >= p.size()) return unsupported("a trailing backslash");
        switch (p[j]) {
          case 'd':
            body += "0-9";
            break;
          case 'w':
            body += "[:alnum:]_";
            break;
          case 's':
            body += "[:space:]";
            break;
          case 'n':
            body += '\n';
            break;
          case 't':
            body += '\t';
            break;
          case ']':
            rbracket = true;
            break;
          case '^':
            caret = true;
            break;
          case '-':
            dash = true;
            break;
          default:
            if (std::isalnum(static_cast<unsigned char>(p[j])))
              return unsupported(std::string("\\") + p[j] + " in a [...] set");
            body += p[j];
        }
      }
      if (j >= p.size()) return unsupported("an unterminated [...] set");
      out += '[';
      if (negate) out += '^';
      if (rbracket) out += ']';
      out += body;
      if (caret) out += '^';
      if (dash) out += '-';
      out += ']';
      i = j;
    } else if (c == '?' && after_quantifier) {
      // A lazy quantifier matches the same strings as the greedy one.
      continue;
    } else {
      quantifier = c == '*' || c == '+' || c == '?' || c == '}';
      out += c;
    }
    after_quantifier = quantifier;
  }
  return out;
}

struct SplitRuleSet::Compiled {
  regex_t regex{};
  std::size_t artifact = 0;
  bool ok = false;
  Compiled() = default;
  Compiled(const Compiled&) = delete;
  Compiled& operator=(const Compiled&) = delete;
  ~Compiled() {
    if (ok) ::regfree(&regex);
  }
};

Result<SplitRuleSet> SplitRuleSet::compile(const std::string& name,
                                           const std::vector<SplitRule>& own,
                                           const std::vector<SplitRule>& defaults) {
  SplitRuleSet set;
  for (const auto* rules : {&own, &defaults}) {
    for (const SplitRule& rule : *rules) {
      std::string artifact = rule.artifact.starts_with('-') ? name + rule.artifact : rule.artifact;
      auto found = std::find(set.m_artifacts.begin(), set.m_artifacts.end(), artifact);
      std::size_t index = static_cast<std::size_t>(found - set.m_artifacts.begin());
      if (found == set.m_artifacts.end()) set.m_artifacts.push_back(artifact);
      // ybd: re.compile('^(?:' + '|'.join(include) + ')$')
      std::string joined;
      for (const auto& pattern : rule.include) {
        auto posix = python_regex_to_posix(pattern);
        if (!posix) return make_error("split rule for " + artifact + ": " + posix.error().message);
        joined += (joined.empty() ? "" : "|") + *posix;
      }
      auto compiled = std::make_shared<Compiled>();
      compiled->artifact = index;
      std::string text = "^(" + joined + ")$";
      if (int rc = ::regcomp(&compiled->regex, text.c_str(), REG_EXTENDED | REG_NOSUB); rc != 0) {
        char message[256];
        ::regerror(rc, &compiled->regex, message, sizeof message);
        return make_error("split rule for " + artifact + ": bad regular expression \"" + text +
                          "\": " + message);
      }
      compiled->ok = true;
      set.m_rules.push_back(std::move(compiled));
    }
  }
  return set;
}

std::optional<std::size_t> SplitRuleSet::match(std::string_view text) const {
  std::string plain(text);
  std::string slashed = plain + "/";
  for (const auto& rule : m_rules) {
    if (::regexec(&rule->regex, plain.c_str(), 0, nullptr, 0) == 0 ||
        ::regexec(&rule->regex, slashed.c_str(), 0, nullptr, 0) == 0)
      return rule->artifact;
  }
  return std::nullopt;
}

std::vector<Product> split_paths(const SplitRuleSet& rules, const std::vector<std::string>& paths) {
  std::vector<Product> products;
  for (const auto& artifact : rules.artifacts()) products.push_back({artifact, {}});
  for (const auto& path : paths)
    if (auto index = rules.match(path)) products[*index].components.push_back(path);
  for (auto& product : products) {
    std::sort(product.components.begin(), product.components.end());
    product.components.erase(std::unique(product.components.begin(), product.components.end()),
                             product.components.end());
  }
  return products;
}

std::vector<Product> split_stratum(const SplitRuleSet& rules,
                                   const std::vector<ChunkProducts>& chunks) {
  std::vector<std::string> names = rules.artifacts();
  std::vector<std::set<std::string>> members(names.size());
  auto slot = [&](const std::string& artifact) {
    auto found = std::find(names.begin(), names.end(), artifact);
    if (found != names.end()) return static_cast<std::size_t>(found - names.begin());
    names.push_back(artifact);
    members.emplace_back();
    return names.size() - 1;
  };
  for (const auto& chunk : chunks) {
    for (const auto& [chunk_product, stratum_product] : chunk.artifacts)
      members[slot(stratum_product)].insert(chunk_product);
    for (const auto& product : chunk.products)
      if (auto index = rules.match(product)) members[*index].insert(product);
  }
  std::vector<Product> products;
  for (std::size_t i = 0; i < names.size(); ++i)
    products.push_back({names[i], {members[i].begin(), members[i].end()}});
  return products;
}

}  // namespace gang
