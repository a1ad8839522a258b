#include "gang/status_printer.hpp"

#include <sys/ioctl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace gang {

StatusPrinter::StatusPrinter(std::FILE* out, bool smart) : m_out(out), m_smart(smart) {}

bool StatusPrinter::is_smart_terminal(std::FILE* out) {
  const char* term = std::getenv("TERM");
  return ::isatty(::fileno(out)) != 0 && term != nullptr && std::strcmp(term, "dumb") != 0;
}

int StatusPrinter::width() const {
  winsize size{};
  if (::ioctl(::fileno(m_out), TIOCGWINSZ, &size) == 0 && size.ws_col > 0) return size.ws_col;
  return 80;
}

void StatusPrinter::print_line(const std::string& line) {
  if (m_smart && m_status_shown) std::fputs("\r\x1b[K", m_out);
  std::fputs(line.c_str(), m_out);
  std::fputc('\n', m_out);
  if (m_smart) {
    m_status_shown = false;
    draw_status();
  }
  std::fflush(m_out);
}

void StatusPrinter::set_status(const std::string& status) {
  if (!m_smart || status == m_status) return;
  m_status = status;
  draw_status();
  std::fflush(m_out);
}

void StatusPrinter::clear_status() {
  if (m_smart && m_status_shown) {
    std::fputs("\r\x1b[K", m_out);
    std::fflush(m_out);
  }
  m_status_shown = false;
  m_status.clear();
}

void StatusPrinter::draw_status() {
  if (m_status.empty()) return;
  std::string shown = m_status;
  auto cols = static_cast<std::size_t>(width());
  if (cols > 1 && shown.size() >= cols) shown = shown.substr(0, cols - 4) + "...";
  std::fputs("\r\x1b[K", m_out);
  std::fputs(shown.c_str(), m_out);
  m_status_shown = true;
}

}  // namespace gang
