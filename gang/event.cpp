#include "gang/event.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <chrono>
#include <vector>

namespace gang {

namespace {

constexpr std::array<std::string_view, 13> k_type_names = {
    "hello", "log", "build_start", "build_done", "bah",
    "failed", "cached", "progress", "target_done", "exit",
    "downloaded", "pushed", "push_failed"};

void append_escaped(std::string& out, std::string_view text) {
  for (char c : text) {
    switch (c) {
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\\': out += "\\\\"; break;
      default: out += c;
    }
  }
}

std::string unescape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      char next = text[++i];
      out += next == 't' ? '\t' : next == 'n' ? '\n' : next;
    } else {
      out += text[i];
    }
  }
  return out;
}

template <typename T>
bool parse_number(std::string_view text, T& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

constexpr std::string_view k_magic = "@gang";

}  // namespace

std::string_view event_type_name(EventType type) {
  return k_type_names[static_cast<std::size_t>(type)];
}

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

std::string serialise_event(const Event& e) {
  std::string out(k_magic);
  out += '\t';
  out += event_type_name(e.type);
  out += '\t' + std::to_string(e.instance) + '\t' + std::to_string(e.time_ms) + '\t';
  append_escaped(out, e.component);
  out += '\t';
  append_escaped(out, e.message);
  out += '\t';
  append_escaped(out, e.detail);
  auto append_seconds = [&](double value) {
    char seconds[32];
    auto [end, ec] = std::to_chars(seconds, seconds + sizeof seconds, value,
                                   std::chars_format::fixed, 3);
    (void)ec;
    out += '\t';
    out.append(seconds, end);
  };
  append_seconds(e.seconds);
  out += '\t' + std::to_string(e.done) + '\t' + std::to_string(e.todo) + '\t' +
         std::to_string(e.total);
  append_seconds(e.stage_seconds);
  append_seconds(e.publish_seconds);
  out += '\t';
  append_escaped(out, e.key);
  out += '\n';
  return out;
}

std::optional<Event> parse_event(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  for (;;) {
    std::size_t tab = line.find('\t', start);
    fields.push_back(line.substr(start, tab == std::string_view::npos ? tab : tab - start));
    if (tab == std::string_view::npos) break;
    start = tab + 1;
  }
  // 11 fields, or 14 with the staging and publish seconds and the key.
  if ((fields.size() != 11 && fields.size() != 14) || fields[0] != k_magic) return std::nullopt;
  Event e;
  bool known = false;
  for (std::size_t i = 0; i < k_type_names.size(); ++i) {
    if (fields[1] == k_type_names[i]) {
      e.type = static_cast<EventType>(i);
      known = true;
    }
  }
  if (!known || !parse_number(fields[2], e.instance) || !parse_number(fields[3], e.time_ms) ||
      !parse_number(fields[7], e.seconds) || !parse_number(fields[8], e.done) ||
      !parse_number(fields[9], e.todo) || !parse_number(fields[10], e.total))
    return std::nullopt;
  if (fields.size() == 14) {
    if (!parse_number(fields[11], e.stage_seconds) || !parse_number(fields[12], e.publish_seconds))
      return std::nullopt;
    e.key = unescape(fields[13]);
  }
  e.component = unescape(fields[4]);
  e.message = unescape(fields[5]);
  e.detail = unescape(fields[6]);
  return e;
}

EventWriter::EventWriter(int fd) : m_fd(fd) {
  if (m_fd >= 0) {
    int flags = ::fcntl(m_fd, F_GETFL);
    if (flags >= 0) ::fcntl(m_fd, F_SETFL, flags | O_NONBLOCK);
  }
}

void EventWriter::send(const Event& event) {
  if (m_fd < 0 || m_broken) return;
  m_queue.push_back(serialise_event(event));
  flush();
}

bool EventWriter::flush() {
  while (!m_queue.empty() && !m_broken) {
    const std::string& head = m_queue.front();
    ssize_t n = ::write(m_fd, head.data() + m_offset, head.size() - m_offset);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return false;
      m_broken = true;  // EPIPE or similar: the frontend is gone
      m_queue.clear();
      break;
    }
    m_offset += static_cast<std::size_t>(n);
    if (m_offset == head.size()) {
      m_queue.pop_front();
      m_offset = 0;
    }
  }
  return true;
}

void EventWriter::drain(int timeout_ms) {
  auto deadline = now_ms() + timeout_ms;
  while (!flush()) {
    auto left = deadline - now_ms();
    if (left <= 0) return;
    pollfd p{m_fd, POLLOUT, 0};
    ::poll(&p, 1, static_cast<int>(left));
  }
}

}  // namespace gang
