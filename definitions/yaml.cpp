#include "definitions/yaml.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>
#include <yaml-cpp/yaml.h>

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

  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t anchor,
                const std::string& value) override {
    YamlNode node;
    node.type = YamlNode::Type::scalar;
    set_mark(node, mark);
    node.scalar = value;
    finish(std::move(node), anchor);
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
    YamlEntry pending;  // key and its position, while the value is parsed
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
    finish(std::move(frame.node), frame.anchor);
  }

  void finish(YamlNode node, YAML::anchor_t anchor) {
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
      top.pending.key = std::move(node.scalar);
      top.pending.line = node.line;
      top.pending.column = node.column;
      top.have_key = true;
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

Result<YamlNode> parse_yaml(std::string_view text, const std::string& file) {
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

}  // namespace gang
