#include "definitions/yaml.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <optional>
#include <spanstream>
#include <unordered_map>

namespace gang {

namespace {

// Thrown inside the event handler only; caught in parse_yaml.
struct StructureError {
  Error error;
};

class TreeBuilder final : public YAML::EventHandler {
 public:
  explicit TreeBuilder(const std::string& file) : m_file(file) {}

  bool done() const { return m_done; }
  YamlNode take_root() { return std::move(m_root); }

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override { m_done = true; }

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    YamlNode node;
    set_mark(node, mark);
    finish(std::move(node), anchor);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = m_anchors.find(anchor);
    if (it == m_anchors.end()) fail(mark, "unknown alias");
    YamlNode copy = it->second;
    finish(std::move(copy), 0);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    YamlNode node;
    node.type = YamlNode::Type::scalar;
    set_mark(node, mark);
    node.scalar = value;
    finish(std::move(node), anchor, tag == "?");
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    open(YamlNode::Type::sequence, mark, anchor);
  }
  void OnSequenceEnd() override { close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    open(YamlNode::Type::map, mark, anchor);
  }
  void OnMapEnd() override { close(); }

 private:
  struct Frame {
    YamlNode node;
    YAML::anchor_t anchor = 0;
    bool have_key = false;
    bool pending_is_merge = false;  // the pending key is a plain "<<"
    YamlEntry pending;              // key and its position, while the value is parsed
    std::vector<YamlEntry> merged;  // entries of "<<" values, first wins
    std::size_t merge_at = 0;       // where "<<" stood among the entries
  };

  [[noreturn]] void fail(const YAML::Mark& mark, std::string message) {
    throw StructureError{Error{std::move(message), m_file, mark.line + 1, mark.column + 1, {}}};
  }

  static void set_mark(YamlNode& node, const YAML::Mark& mark) {
    node.line = mark.line + 1;
    node.column = mark.column + 1;
  }

  void open(YamlNode::Type type, const YAML::Mark& mark, YAML::anchor_t anchor) {
    Frame frame;
    frame.node.type = type;
    set_mark(frame.node, mark);
    frame.anchor = anchor;
    m_stack.push_back(std::move(frame));
  }

  void close() {
    Frame frame = std::move(m_stack.back());
    m_stack.pop_back();
    if (!frame.merged.empty()) apply_merge(frame);
    finish(std::move(frame.node), frame.anchor);
  }

  // YAML merge keys ("<<: *base", "<<: [*a, *b]"), as PyYAML reads them and
  // real clusters use them: the mapping's own keys win, then earlier merged
  // mappings over later ones. Merged entries take the place of the "<<".
  void merge_value(Frame& frame, const YamlNode& value) {
    auto add = [&](const YamlNode& map) {
      if (!map.is_map())
        throw StructureError{Error{"\"<<\" must merge a mapping or a list of mappings, not " +
                                       std::string(describe(map.type)),
                                   m_file, map.line, map.column, "<<"}};
      for (const auto& entry : map.entries) {
        auto same = [&](const YamlEntry& e) { return e.key == entry.key; };
        if (std::none_of(frame.merged.begin(), frame.merged.end(), same))
          frame.merged.push_back(entry);
      }
    };
    if (value.is_sequence())
      for (const auto& item : value.items) add(item);
    else
      add(value);
    frame.merge_at = frame.node.entries.size();
  }

  static void apply_merge(Frame& frame) {
    std::vector<YamlEntry> kept;
    for (auto& entry : frame.merged) {
      auto same = [&](const YamlEntry& e) { return e.key == entry.key; };
      if (std::none_of(frame.node.entries.begin(), frame.node.entries.end(), same))
        kept.push_back(std::move(entry));
    }
    auto& entries = frame.node.entries;
    entries.insert(entries.begin() + static_cast<std::ptrdiff_t>(frame.merge_at),
                   std::make_move_iterator(kept.begin()), std::make_move_iterator(kept.end()));
  }

  void finish(YamlNode node, YAML::anchor_t anchor, bool plain = false) {
    if (anchor != 0) m_anchors[anchor] = node;
    if (m_stack.empty()) {
      m_root = std::move(node);
      return;
    }
    Frame& top = m_stack.back();
    if (top.node.type == YamlNode::Type::sequence) {
      top.node.items.push_back(std::move(node));
      return;
    }
    if (!top.have_key) {
      if (node.type != YamlNode::Type::scalar)
        throw StructureError{
            Error{"mapping keys must be plain strings", m_file, node.line, node.column, {}}};
      for (const auto& entry : top.node.entries) {
        if (entry.key == node.scalar)
          throw StructureError{Error{"duplicate field \"" + node.scalar + "\" (first at line " +
                                         std::to_string(entry.line) + ")",
                                     m_file, node.line, node.column, node.scalar}};
      }
      top.pending_is_merge = plain && node.scalar == "<<";
      top.pending.key = std::move(node.scalar);
      top.pending.line = node.line;
      top.pending.column = node.column;
      top.have_key = true;
      return;
    }
    if (top.pending_is_merge) {
      merge_value(top, node);
      top.pending = YamlEntry{};
      top.have_key = false;
      top.pending_is_merge = false;
      return;
    }
    top.pending.value = std::move(node);
    top.node.entries.push_back(std::move(top.pending));
    top.pending = YamlEntry{};
    top.have_key = false;
  }

  const std::string& m_file;
  std::vector<Frame> m_stack;
  std::unordered_map<YAML::anchor_t, YamlNode> m_anchors;
  YamlNode m_root;
  bool m_done = false;
};

}  // namespace

const YamlNode* YamlNode::find(std::string_view key) const {
  for (const auto& entry : entries)
    if (entry.key == key) return &entry.value;
  return nullptr;
}

const char* describe(YamlNode::Type type) {
  switch (type) {
    case YamlNode::Type::null:
      return "null";
    case YamlNode::Type::scalar:
      return "a string";
    case YamlNode::Type::sequence:
      return "a list";
    case YamlNode::Type::map:
      return "a mapping";
  }
  return "?";
}

namespace {

Result<YamlNode> parse_once(std::string_view text, const std::string& file) {
  std::ispanstream in(std::span<const char>(text.data(), text.size()));
  TreeBuilder builder(file);
  try {
    YAML::Parser parser(in);
    parser.HandleNextDocument(builder);
  } catch (const YAML::Exception& e) {
    if (e.mark.is_null()) return make_error_at(file, 0, e.msg);
    return make_error_at(file, e.mark.line + 1, e.msg, {}, e.mark.column + 1);
  } catch (const StructureError& e) {
    return std::unexpected(e.error);
  }
  return builder.take_root();
}

std::size_t indentation(std::string_view line) {
  std::size_t n = line.find_first_not_of(' ');
  return n == std::string_view::npos ? line.size() : n;
}

bool blank(std::string_view line) {
  return line.find_first_not_of(" \t\r") == std::string_view::npos;
}

// For a line "<indent>- [- ...]&anchor [!tag ]|" (a block scalar with
// properties as a block sequence entry, with no indentation indicator),
// the column of the first property and of the last "-"; else nullopt.
std::optional<std::pair<std::size_t, std::size_t>> property_block_header(std::string_view line) {
  std::size_t i = indentation(line);
  std::size_t dash = std::string_view::npos;
  while (i + 1 < line.size() && line[i] == '-' && line[i + 1] == ' ') {
    dash = i;
    i = line.find_first_not_of(' ', i + 1);
    if (i == std::string_view::npos) return std::nullopt;
  }
  if (dash == std::string_view::npos) return std::nullopt;
  std::size_t property = i;
  while (i < line.size() && (line[i] == '&' || line[i] == '!')) {
    i = line.find(' ', i);
    if (i == std::string_view::npos) return std::nullopt;
    i = line.find_first_not_of(' ', i);
    if (i == std::string_view::npos) return std::nullopt;
  }
  if (i == property || (line[i] != '|' && line[i] != '>')) return std::nullopt;
  for (++i; i < line.size() && (line[i] == '-' || line[i] == '+'); ++i) {
  }
  std::size_t rest = line.find_first_not_of(" \r", i);
  if (rest != std::string_view::npos && (line[rest] != '#' || rest == i)) return std::nullopt;
  return std::pair{property, dash};
}

// yaml-cpp 0.7 rejects a block scalar that is a block sequence entry with an
// anchor or tag ("- &strip |") unless its lines are indented past the anchor
// ("end of sequence not found", jbeder/yaml-cpp#1163); Baserock's own DEFAULTS
// has one. This indents such a scalar's lines just past the anchor, which
// leaves its value as it was (a block scalar's common indentation is not part
// of it) and keeps every line number. nullopt if there is nothing to indent.
std::optional<std::string> indent_property_block_scalars(std::string_view text) {
  std::vector<std::string_view> lines;
  for (std::size_t at = 0; at <= text.size();) {
    std::size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    lines.push_back(text.substr(at, end - at));
    at = end + 1;
  }
  std::vector<std::size_t> shift(lines.size(), 0);
  bool changed = false;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    auto header = property_block_header(lines[i]);
    if (!header) continue;
    auto [property, dash] = *header;
    std::size_t end = i + 1;
    while (end < lines.size() && (blank(lines[end]) || indentation(lines[end]) > dash)) ++end;
    std::size_t first = i + 1;
    while (first < end && blank(lines[first])) ++first;
    if (first == end || indentation(lines[first]) > property) continue;
    std::size_t by = property + 1 - indentation(lines[first]);
    for (std::size_t j = i + 1; j < end; ++j)
      if (!lines[j].empty()) shift[j] = by;
    changed = true;
    i = end - 1;
  }
  if (!changed) return std::nullopt;
  std::string out;
  out.reserve(text.size() + 64);
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += '\n';
    out.append(shift[i], ' ');
    out += lines[i];
  }
  return out;
}

}  // namespace

Result<YamlNode> parse_yaml(std::string_view text, const std::string& file) {
  auto doc = parse_once(text, file);
  if (doc) return doc;
  if (auto indented = indent_property_block_scalars(text))
    if (auto retry = parse_once(*indented, file)) return retry;
  return doc;
}

}  // namespace gang
