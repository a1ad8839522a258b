#include "sandbox/init_protocol.hpp"

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <type_traits>

namespace gang::init {

namespace {

constexpr std::uint32_t k_magic = 0x47494e31;  // "GIN1"

class Writer {
 public:
  template <typename T>
    requires std::is_trivially_copyable_v<T>
  void put(T value) {
    m_out.append(reinterpret_cast<const char*>(&value), sizeof value);
  }
  void put(const std::string& text) {
    put(static_cast<std::uint32_t>(text.size()));
    m_out += text;
  }
  void put(const std::vector<std::string>& list) {
    put(static_cast<std::uint32_t>(list.size()));
    for (const auto& text : list) put(text);
  }
  std::string take() { return std::move(m_out); }

 private:
  std::string m_out;
};

class Reader {
 public:
  explicit Reader(const std::string& in) : m_in(in) {}
  template <typename T>
    requires std::is_trivially_copyable_v<T>
  bool get(T& value) {
    if (m_in.size() - m_at < sizeof value) return false;
    std::memcpy(&value, m_in.data() + m_at, sizeof value);
    m_at += sizeof value;
    return true;
  }
  bool get(std::string& text) {
    std::uint32_t size = 0;
    if (!get(size) || m_in.size() - m_at < size) return false;
    text.assign(m_in, m_at, size);
    m_at += size;
    return true;
  }
  bool get(std::vector<std::string>& list) {
    std::uint32_t count = 0;
    // (each entry takes at least its 4-byte size)
    if (!get(count) || (m_in.size() - m_at) / 4 < count) return false;
    list.resize(count);
    for (auto& text : list)
      if (!get(text)) return false;
    return true;
  }
  [[nodiscard]] bool at_end() const { return m_at == m_in.size(); }
  [[nodiscard]] std::size_t left() const { return m_in.size() - m_at; }

 private:
  const std::string& m_in;
  std::size_t m_at = 0;
};

void put_op(Writer& out, const Op& op) {
  out.put(op.kind);
  out.put(op.mode);
  out.put(op.uid);
  out.put(op.gid);
  out.put(op.source);
  out.put(op.target);
  out.put(op.fstype);
  out.put(op.data);
  out.put(op.fallback_data);
  out.put(op.chdir_to);
  out.put(op.flags);
  out.put(op.overlay_api);
  out.put(op.fd_fallback);
  out.put(op.lowers);
  out.put(op.upper);
  out.put(op.work);
  out.put(op.volatile_upper);
  out.put(op.userxattr);
}

bool get_op(Reader& in, Op& op) {
  return in.get(op.kind) && in.get(op.mode) && in.get(op.uid) && in.get(op.gid) &&
         in.get(op.source) && in.get(op.target) && in.get(op.fstype) && in.get(op.data) &&
         in.get(op.fallback_data) && in.get(op.chdir_to) && in.get(op.flags) &&
         in.get(op.overlay_api) && in.get(op.fd_fallback) && in.get(op.lowers) &&
         in.get(op.upper) && in.get(op.work) && in.get(op.volatile_upper) && in.get(op.userxattr);
}

}  // namespace

std::string encode(const Plan& plan) {
  Writer out;
  out.put(k_magic);
  out.put(plan.loopback_up);
  out.put(static_cast<std::uint32_t>(plan.ops.size()));
  for (const Op& op : plan.ops) put_op(out, op);
  out.put(plan.scratch_tmpfs);
  out.put(plan.scratch_overlay);
  out.put(plan.sandbox_dir);
  out.put(plan.uppers);
  out.put(plan.root);
  out.put(plan.cwd);
  out.put(plan.interactive);
  out.put(plan.die_on_interrupt);
  out.put(static_cast<std::uint32_t>(plan.commands.size()));
  for (const Command& command : plan.commands) {
    out.put(command.argv);
    out.put(command.env);
    out.put(command.header);
  }
  for (int fd : {plan.status_fd, plan.keepalive_read, plan.output_fd, plan.null_fd, plan.netns_fd,
                 plan.go_fd})
    out.put(fd);
  return out.take();
}

std::optional<Plan> decode(const std::string& bytes) {
  Reader in(bytes);
  Plan plan;
  std::uint32_t magic = 0, count = 0;
  if (!in.get(magic) || magic != k_magic || !in.get(plan.loopback_up) || !in.get(count) ||
      in.left() / 16 < count)
    return std::nullopt;
  plan.ops.resize(count);
  for (Op& op : plan.ops)
    if (!get_op(in, op)) return std::nullopt;
  if (!in.get(plan.scratch_tmpfs) || !in.get(plan.scratch_overlay) || !in.get(plan.sandbox_dir) ||
      !in.get(plan.uppers) || !in.get(plan.root) || !in.get(plan.cwd) ||
      !in.get(plan.interactive) || !in.get(plan.die_on_interrupt) || !in.get(count) ||
      in.left() / 12 < count)
    return std::nullopt;
  plan.commands.resize(count);
  for (Command& command : plan.commands)
    if (!in.get(command.argv) || !in.get(command.env) || !in.get(command.header))
      return std::nullopt;
  if (!in.get(plan.status_fd) || !in.get(plan.keepalive_read) || !in.get(plan.output_fd) ||
      !in.get(plan.null_fd) || !in.get(plan.netns_fd) || !in.get(plan.go_fd) || !in.at_end())
    return std::nullopt;
  return plan;
}

void bring_loopback_up() {
  int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) return;
  ifreq request{};
  std::memcpy(request.ifr_name, "lo", 3);
  if (::ioctl(sock, SIOCGIFFLAGS, &request) == 0) {
    request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP);
    ::ioctl(sock, SIOCSIFFLAGS, &request);
  }
  ::close(sock);
}

}  // namespace gang::init
