#include "definitions/yaml.hpp"

#include <yaml.h>

#include <algorithm>
#include <optional>
#include <unordered_map>

namespace gang {

namespace {

// Thrown inside the tree builder only; caught in parse_yaml.
struct StructureError {
  Error error;
};

// Budgets that keep a hostile file from exhausting time, memory or stack.
// Aliases copy their anchor's subtree, so a few lines of nested aliases (the
// "billion laughs" shape) would expand to billions of nodes: every node
// copied for an anchor or an alias counts, and past k_max_copied_nodes the
// file is refused. Real definitions copy a few hundred at most. Nesting past
// k_max_depth is refused too: the tree and its readers recurse.
constexpr std::size_t k_max_copied_nodes = 100'000;
constexpr std::size_t k_max_depth = 256;

struct Mark {
  int line = 0;  // 0-based, as libyaml reports them
  int column = 0;
};

// Builds a YamlNode tree from parser events.
class TreeBuilder {
 public:
  explicit TreeBuilder(const std::string& file) : m_file(file) {}

  YamlNode take_root() { return std::move(m_root); }

  void on_alias(const Mark& mark, const std::string& anchor) {
    auto it = m_anchors.find(anchor);
    if (it == m_anchors.end()) fail(mark, "unknown alias \"" + anchor + "\"");
    charge_copy(mark, it->second.size, "alias \"*" + anchor + "\"");
    YamlNode copy = it->second.node;
    finish(std::move(copy), {}, it->second.size);
  }

  // A plain "", "~", "null", "Null" or "NULL" is null, as YAML reads it.
  void on_scalar(const Mark& mark, const std::string& anchor, bool plain, std::string value) {
    YamlNode node;
    set_mark(node, mark);
    if (!plain || !(value.empty() || value == "~" || value == "null" || value == "Null" ||
                    value == "NULL")) {
      node.type = YamlNode::Type::scalar;
      node.scalar = std::move(value);
      node.plain = plain;
    }
    finish(std::move(node), anchor, 1, plain);
  }

  void open(YamlNode::Type type, const Mark& mark, std::string anchor) {
    if (m_stack.size() >= k_max_depth)
      fail(mark, "nested deeper than " + std::to_string(k_max_depth) + " levels");
    Frame frame;
    frame.node.type = type;
    set_mark(frame.node, mark);
    frame.anchor = std::move(anchor);
    m_stack.push_back(std::move(frame));
  }

  void close() {
    Frame frame = std::move(m_stack.back());
    m_stack.pop_back();
    if (!frame.merged.empty()) apply_merge(frame);
    finish(std::move(frame.node), frame.anchor, frame.size);
  }

 private:
  struct Frame {
    YamlNode node;
    std::string anchor;
    bool have_key = false;
    bool pending_is_merge = false;  // the pending key is a plain "<<"
    YamlEntry pending;              // key and its position, while the value is parsed
    std::vector<YamlEntry> merged;  // entries of "<<" values, first wins
    std::size_t merge_at = 0;       // where "<<" stood among the entries
    std::size_t size = 1;           // nodes in this subtree so far, itself included
  };

  struct Anchored {
    YamlNode node;
    std::size_t size = 1;  // nodes in `node`'s subtree
  };

  // Counts `size` more copied nodes; refuses the file past the budget.
  void charge_copy(const Mark& mark, std::size_t size, const std::string& what) {
    m_copied += size;
    if (m_copied > k_max_copied_nodes)
      fail(mark, what + " expands the document past " + std::to_string(k_max_copied_nodes) +
                     " copied nodes (nested aliases?)");
  }

  [[noreturn]] void fail(const Mark& mark, std::string message) {
    throw StructureError{Error{std::move(message), m_file, mark.line + 1, mark.column + 1, {}}};
  }

  static void set_mark(YamlNode& node, const Mark& mark) {
    node.line = mark.line + 1;
    node.column = mark.column + 1;
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

  void finish(YamlNode node, const std::string& anchor, std::size_t size = 1, bool plain = false) {
    if (!anchor.empty()) {
      charge_copy(Mark{node.line - 1, node.column - 1}, size, "anchor \"&" + anchor + "\"");
      m_anchors[anchor] = Anchored{node, size};
    }
    if (m_stack.empty()) {
      m_root = std::move(node);
      return;
    }
    Frame& top = m_stack.back();
    top.size += size;
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
  std::unordered_map<std::string, Anchored> m_anchors;
  std::size_t m_copied = 0;  // nodes copied for anchors and aliases
  YamlNode m_root;
};

// libyaml's parser, owned.
class LibYamlParser {
 public:
  LibYamlParser() { m_ok = yaml_parser_initialize(&m_parser) != 0; }
  ~LibYamlParser() {
    if (m_ok) yaml_parser_delete(&m_parser);
  }
  LibYamlParser(const LibYamlParser&) = delete;
  LibYamlParser& operator=(const LibYamlParser&) = delete;
  bool ok() const { return m_ok; }
  yaml_parser_t* get() { return &m_parser; }

 private:
  yaml_parser_t m_parser{};
  bool m_ok = false;
};

class Event {
 public:
  Event() = default;
  ~Event() {
    if (m_have) yaml_event_delete(&m_event);
  }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  yaml_event_t* get() { return &m_event; }
  void taken() { m_have = true; }

 private:
  yaml_event_t m_event{};
  bool m_have = false;
};

std::string anchor_of(const yaml_char_t* anchor) {
  return anchor == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(anchor));
}

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
  LibYamlParser parser;
  if (!parser.ok()) return make_error_at(file, 0, "cannot start the YAML parser");
  yaml_parser_set_input_string(parser.get(), reinterpret_cast<const unsigned char*>(text.data()),
                               text.size());
  TreeBuilder builder(file);
  try {
    for (;;) {
      Event event;
      if (yaml_parser_parse(parser.get(), event.get()) == 0) {
        const yaml_parser_t* p = parser.get();
        std::string message = p->problem != nullptr ? p->problem : "invalid YAML";
        if (p->context != nullptr)
          message = std::string(p->context) + " started at line " +
                    std::to_string(p->context_mark.line + 1) + ": " + message;
        return make_error_at(file, static_cast<int>(p->problem_mark.line) + 1, message, {},
                             static_cast<int>(p->problem_mark.column) + 1);
      }
      event.taken();
      const yaml_event_t& e = *event.get();
      Mark mark{static_cast<int>(e.start_mark.line), static_cast<int>(e.start_mark.column)};
      switch (e.type) {
        case YAML_SCALAR_EVENT:
          builder.on_scalar(
              mark, anchor_of(e.data.scalar.anchor),
              e.data.scalar.style == YAML_PLAIN_SCALAR_STYLE && e.data.scalar.tag == nullptr,
              std::string(reinterpret_cast<const char*>(e.data.scalar.value),
                          e.data.scalar.length));
          break;
        case YAML_ALIAS_EVENT:
          builder.on_alias(mark, anchor_of(e.data.alias.anchor));
          break;
        case YAML_SEQUENCE_START_EVENT:
          builder.open(YamlNode::Type::sequence, mark, anchor_of(e.data.sequence_start.anchor));
          break;
        case YAML_MAPPING_START_EVENT:
          builder.open(YamlNode::Type::map, mark, anchor_of(e.data.mapping_start.anchor));
          break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
          builder.close();
          break;
        case YAML_DOCUMENT_END_EVENT:  // the first document only
        case YAML_STREAM_END_EVENT:
          return builder.take_root();
        default:
          break;
      }
    }
  } catch (const StructureError& e) {
    return std::unexpected(e.error);
  }
}

}  // namespace

Result<YamlNode> parse_yaml(std::string_view text, const std::string& file) {
  return parse_once(text, file);
}

}  // namespace gang
