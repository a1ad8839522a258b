#include "cache/system.hpp"

#include <unistd.h>

#include <charconv>
#include <chrono>

#include "util/fs.hpp"

namespace gang {

namespace {

class RealSystem final : public System {
 public:
  std::int64_t now_ms() override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  std::string host_name() override {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0) return "localhost";
    return name;
  }
  std::optional<std::uint64_t> process_start_time(int pid) override {
    return read_process_start_time(pid);
  }
  int self_pid() override { return static_cast<int>(::getpid()); }
};

}  // namespace

std::optional<std::uint64_t> read_process_start_time(int pid) {
  if (pid <= 0) return std::nullopt;
  auto stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  if (!stat) return std::nullopt;
  // Field 2 (comm) is parenthesised and may hold spaces: count from the last ')'.
  auto paren = stat->rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::size_t pos = paren + 1;
  // After ')' come fields 3, 4, ...; field 22 is the 20th of them.
  for (int field = 3; field < 22; ++field) {
    pos = stat->find(' ', pos + 1);
    if (pos == std::string::npos) return std::nullopt;
  }
  std::uint64_t value = 0;
  const char* begin = stat->data() + pos + 1;
  auto [end, ec] = std::from_chars(begin, stat->data() + stat->size(), value);
  if (ec != std::errc() || end == begin) return std::nullopt;
  return value;
}

std::string read_boot_id() {
  static const std::string id = [] {
    auto text = read_file("/proc/sys/kernel/random/boot_id");
    if (!text) return std::string();
    std::string out = *text;
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
  }();
  return id;
}

std::shared_ptr<System> real_system() {
  static auto system = std::make_shared<RealSystem>();
  return system;
}

}  // namespace gang
