// mirror_progress.hpp: what users see while gang mirrors git repositories.
// The git mirrors report each clone or fetch (cache/git_mirrors.hpp,
// FetchObserver); MirrorProgress turns those reports into log lines in ybd's
// words, naming repositories as the definitions write them (`upstream:gcc`,
// aliases unexpanded):
//
//   Mirroring upstream:gcc                         (a new mirror is cloned)
//   Mirrored upstream:gcc: 12.3 MiB in 4.2 s
//   Refreshing mirror for upstream:gcc             (an existing one is fetched into)
//   Refreshed mirror for upstream:gcc: 1.0 KiB in 0.3 s
//
// plus, while a transfer runs, a status text ("Mirroring upstream:gcc: 3.1 MiB")
// for a terminal's status line. Where the lines go is the caller's choice:
// the frontend prints them through its StatusPrinter, a worker sends them as
// events.
//
// Concurrency: single-threaded, like the frontend and a worker (a GitMirrors
// shared between threads needs a MirrorProgress whose sinks lock). The sinks
// are called on the fetching thread. It must outlive every fetch made
// through the GitMirrors it observes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "cache/git_mirrors.hpp"
#include "definitions/build_graph.hpp"

namespace gang {

class MirrorProgress {
 public:
  struct Sink {
    std::function<void(const std::string& line)> line;      // one finished log line
    // Transient text for a status line ("" when a transfer ends: clear it);
    // may be empty.
    std::function<void(const std::string& status)> status;
  };

  // `names` maps a repository's expanded URL to the name to show (see
  // repo_names); a URL not in it is shown as it is.
  MirrorProgress(std::map<std::string, std::string> names, Sink sink);
  MirrorProgress(const MirrorProgress&) = delete;
  MirrorProgress& operator=(const MirrorProgress&) = delete;

  // Callbacks that report to this object, for GitMirrors::set_fetch_observer.
  [[nodiscard]] FetchObserver observer();

  // URL -> repo as written, for every repo and submodule URL of `graph`
  // that `git` can expand (the first component naming a URL wins).
  [[nodiscard]] static std::map<std::string, std::string> repo_names(const BuildGraph& graph,
                                                                     const GitMirrors& git);

  // How many clones and fetches were reported, and the bytes they received.
  [[nodiscard]] int transfers() const { return m_transfers; }
  [[nodiscard]] std::uint64_t bytes() const { return m_bytes; }

 private:
  [[nodiscard]] std::string name_of(const std::string& url) const;

  std::map<std::string, std::string> m_names;
  Sink m_sink;
  int m_transfers = 0;
  std::uint64_t m_bytes = 0;
};

// "512 B", "1.5 KiB", "12.3 MiB", "1.2 GiB".
[[nodiscard]] std::string format_bytes(std::uint64_t bytes);

}  // namespace gang
