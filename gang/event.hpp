// event.hpp: the messages a worker sends to its frontend, one per line, over
// a pipe. Workers share no memory with the frontend: an event is a flat
// value, serialised as tab-separated fields with \t, \n and \\ escaped, so a
// line is self-contained and a torn or foreign line is simply not an event.
//
// Concurrency: EventWriter belongs to one worker (single-threaded). It never
// blocks: the pipe is non-blocking, and when the frontend falls behind, events
// queue in memory and are flushed later, so builds are never held up by a
// slow terminal.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

namespace gang {

enum class EventType {
  hello,         // worker started: message = seed, total = components
  log,           // a plain log line about component (may be empty)
  build_start,   // started building component
  build_done,    // published component; seconds = build time
  bah,           // lost a race for component; message names the other holder; seconds = work wasted
  failed,        // component failed; message = reason, detail = log path
  cached,        // component found in the cache (counts towards done)
  progress,      // done/total changed
  target_done,   // the target artifact exists
  exit,          // worker is exiting; seconds = busy seconds; message = status
  downloaded,    // component fetched from the remote cache; seconds = time taken, message = from where
  pushed,        // component uploaded to the remote cache; message = what was uploaded
  push_failed,   // an upload gave up; message = why (never fatal)
};

struct Event {
  EventType type = EventType::log;
  int instance = 0;
  std::int64_t time_ms = 0;   // wall clock, ms since the epoch, at the worker
  std::string component;
  std::string message;
  std::string detail;
  double seconds = 0;
  int done = 0;               // components cached (before or during this run), as this worker last counted
  int todo = 0;               // components this worker found to build when it started
  int total = 0;              // components in the graph
  double stage_seconds = 0;   // build_done, bah: of `seconds`, staging dependencies
  double publish_seconds = 0; // build_done, bah: of `seconds`, publishing
  std::string key;            // the component's cache key (components of two kinds may share a name)
};

[[nodiscard]] std::string_view event_type_name(EventType type);

// One line, ending in '\n'.
[[nodiscard]] std::string serialise_event(const Event& event);

// Parses one line (without its '\n'); nullopt if it is not an event.
[[nodiscard]] std::optional<Event> parse_event(std::string_view line);

// Writes events to a file descriptor without ever blocking the caller.
class EventWriter {
 public:
  // fd < 0 makes a writer that drops everything (a worker run by hand).
  explicit EventWriter(int fd);
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;

  // Queues the event and writes as much of the queue as the pipe takes.
  void send(const Event& event);

  // Writes what the pipe takes now; returns true when the queue is empty.
  bool flush();

  // Blocks up to timeout_ms to drain the queue (used just before exit).
  void drain(int timeout_ms);

  [[nodiscard]] int fd() const { return m_fd; }
  [[nodiscard]] bool pending() const { return !m_queue.empty(); }

 private:
  int m_fd;
  std::deque<std::string> m_queue;
  std::size_t m_offset = 0;  // bytes of m_queue.front() already written
  bool m_broken = false;     // the reader went away: drop everything
};

// Current wall-clock time in ms since the epoch.
[[nodiscard]] std::int64_t now_ms();

}  // namespace gang
