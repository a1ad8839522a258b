// status_printer.hpp: the one place user-facing progress output goes through,
// as in ninja. On a smart terminal it keeps a status line at the bottom and
// scrolls log lines above it; on a pipe or dumb terminal it prints plain
// lines, one per event, and no status line at all.
//
// Concurrency: used only by the frontend's single thread.
#pragma once

#include <cstdio>
#include <string>

namespace gang {

class StatusPrinter {
 public:
  // smart: draw a status line (stdout is a terminal and TERM is not dumb).
  StatusPrinter(std::FILE* out, bool smart);

  // True when `out` is a terminal and TERM is set and not "dumb".
  [[nodiscard]] static bool is_smart_terminal(std::FILE* out);

  // Prints one log line; on a terminal, above the status line.
  void print_line(const std::string& line);

  // Replaces the status line (terminal only; ignored on a pipe).
  void set_status(const std::string& status);

  // Clears the status line, leaving the cursor at the start of a clean line.
  void clear_status();

  [[nodiscard]] bool smart() const { return m_smart; }

 private:
  void draw_status();
  [[nodiscard]] int width() const;

  std::FILE* m_out;
  bool m_smart;
  std::string m_status;
  bool m_status_shown = false;
};

}  // namespace gang
