#include "cache/build_dirs.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <optional>
#include <string_view>

#include "util/fs.hpp"
#include "util/mounts.hpp"
#include "util/path_name.hpp"
#include "util/sha256.hpp"

namespace gang {

namespace {

// Eight hex digits naming a host (or a boot of it).
std::string host_tag(const std::string& host) { return sha256_hex(host).substr(0, 8); }

// The creator recorded in a directory's name; nullopt for other names.
struct Creator {
  int pid = 0;
  std::uint64_t start_time = 0;
  std::string host_tag;
  std::string boot_tag;  // "" when the name has none
};

std::optional<Creator> parse_name(std::string_view name) {
  auto last = name.rfind('.');
  if (last == std::string_view::npos || last == 0) return std::nullopt;
  auto prev = name.rfind('.', last - 1);
  if (prev == std::string_view::npos) return std::nullopt;
  std::string_view field = name.substr(prev + 1, last - prev - 1);
  auto dash = field.find('-');
  auto dash2 = dash == std::string_view::npos ? dash : field.find('-', dash + 1);
  if (dash2 == std::string_view::npos) return std::nullopt;
  Creator c;
  const char* begin = field.data();
  auto r1 = std::from_chars(begin, begin + dash, c.pid);
  auto r2 = std::from_chars(begin + dash + 1, begin + dash2, c.start_time);
  if (r1.ec != std::errc() || r1.ptr != begin + dash || r2.ec != std::errc() ||
      r2.ptr != begin + dash2 || c.pid <= 0)
    return std::nullopt;
  c.host_tag = std::string(field.substr(dash2 + 1));
  if (c.host_tag.size() == 17 && c.host_tag[8] == '-') {
    c.boot_tag = c.host_tag.substr(9);
    c.host_tag.resize(8);
  }
  if (c.host_tag.size() != 8) return std::nullopt;
  return c;
}

}  // namespace

BuildDirs::BuildDirs(std::string tmp, std::shared_ptr<System> system, std::int64_t orphan_age_s,
                     Warn warn)
    : m_tmp(std::move(tmp)),
      m_system(std::move(system)),
      m_orphan_age_s(orphan_age_s),
      m_warn(std::move(warn)) {}

Result<std::string> BuildDirs::make(const std::string& name) const {
  System& sys = *m_system;
  int pid = sys.self_pid();
  std::string creator = std::to_string(pid) + "-" +
                        std::to_string(sys.process_start_time(pid).value_or(0)) + "-" +
                        host_tag(sys.host_name());
  if (std::string boot = sys.boot_id(); !boot.empty()) creator += "-" + host_tag(boot);
  if (auto made = make_dirs(m_tmp); !made) return std::unexpected(made.error());
  return make_temp_dir(m_tmp, name_to_leaf(name) + "." + creator + ".");
}

std::uint64_t BuildDirs::remove_dead() const {
  System& sys = *m_system;
  Fd tmp(::open(m_tmp.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (tmp.get() < 0) return 0;
  struct stat top;
  if (::fstat(tmp.get(), &top) != 0) return 0;
  auto names = read_dir(tmp.get());
  if (!names) return 0;
  const std::string here = host_tag(sys.host_name());
  const std::string boot = sys.boot_id();
  const std::string this_boot = boot.empty() ? std::string() : host_tag(boot);
  const std::int64_t now_s = sys.now_ms() / 1000;
  std::uint64_t removed = 0;
  for (const auto& entry : *names) {
    const std::string& name = entry.name;
    struct stat st;
    if (::fstatat(tmp.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    auto creator = parse_name(name);
    bool known = creator && creator->host_tag == here;  // liveness can be known
    bool dead = false;
    if (known && !creator->boot_tag.empty() && !this_boot.empty() &&
        creator->boot_tag != this_boot) {
      dead = true;  // made before a reboot
    } else if (known) {
      auto start = sys.process_start_time(creator->pid);
      dead = !start || (creator->start_time != 0 && *start != creator->start_time);
    }
    bool old = !known && now_s - static_cast<std::int64_t>(st.st_mtime) > m_orphan_age_s;
    if (!dead && !old) continue;
    std::string path = m_tmp + "/" + name;
    // (Dead directories are few: mountinfo is read for each.)
    if (st.st_dev != top.st_dev || !mounts_under(path).empty()) {
      m_warn("cannot remove the abandoned build directory " + path + ": something is mounted in it");
      continue;
    }
    if (auto gone = remove_tree(path); !gone) {
      m_warn("cannot remove the abandoned build directory " + path + ": " +
             gone.error().to_string());
      continue;
    }
    ++removed;
  }
  return removed;
}

}  // namespace gang
