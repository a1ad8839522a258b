// system.hpp: the operating-system facts the cache's claim logic depends on
// (wall clock, host name, whether a process is still the one we recorded),
// behind a small interface so tests can fake dead holders and expired
// leases. real_system() is thread-safe and shared.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace gang {

// The running kernel's boot id, read once; "" if unknown.
[[nodiscard]] std::string read_boot_id();

class System {
 public:
  virtual ~System() = default;
  // Unix wall-clock time in milliseconds.
  [[nodiscard]] virtual std::int64_t now_ms() = 0;
  // This machine's host name.
  [[nodiscard]] virtual std::string host_name() = 0;
  // The start time of process pid on this host (/proc/<pid>/stat field 22,
  // clock ticks since boot), or nullopt if there is no such process.
  [[nodiscard]] virtual std::optional<std::uint64_t> process_start_time(int pid) = 0;
  // This process's pid.
  [[nodiscard]] virtual int self_pid() = 0;
  // This boot of the host (/proc/sys/kernel/random/boot_id; "" if unknown):
  // a process recorded under another boot id is gone, whatever its pid.
  [[nodiscard]] virtual std::string boot_id() { return read_boot_id(); }
};

// The real clock, host and /proc.
[[nodiscard]] std::shared_ptr<System> real_system();

// Reads /proc/<pid>/stat field 22; nullopt if the process does not exist.
[[nodiscard]] std::optional<std::uint64_t> read_process_start_time(int pid);

}  // namespace gang
