// worker.hpp: one gang instance's scheduling loop, as in ybd. The worker
// walks the build graph in its own order (longest chains to the end of the
// graph first, shuffled within each chain length) and repeatedly picks a
// component whose dependencies are all cached and which is neither cached,
// claimed nor failed; it claims it, re-checks the cache, builds and
// publishes it. Lost races are reported as `Bah!`. When nothing is ready it
// waits on the cache's change notification. It returns as soon as the target
// artifact exists, or when nothing more can be built.
//
// Everything the loop touches (the cache, the builder, the clock of change
// notifications) sits behind WorkerBackend, so the loop is tested with a fake
// and run for real by cmd_worker over the artifact cache and the sandbox.
//
// Concurrency: one Worker per process, single-threaded. Other workers, in
// this gang or another, share only the cache.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gang/event.hpp"
#include "util/error.hpp"

namespace gang {

struct WorkItem {
  std::string name;
  std::string key;                 // the cache key
  std::vector<std::size_t> deps;   // indices of the items that must be cached first;
                                   // always lower than the item's own (dependency order)
  double estimate_s = 0;           // its last measured build time; 0 if never built here
};

// downloaded: the backend found the artifact in a remote cache and
// published it locally instead (it holds no claim afterwards).
enum class ClaimStatus { won, held_by_other, already_cached, failed, downloaded };

struct ClaimReply {
  ClaimStatus status = ClaimStatus::won;
  std::string holder;  // who holds it (held_by_other) or failed it (failed); downloaded: from where
  double seconds = 0;  // downloaded: how long it took
};

// abandoned: not built for a reason outside the component (a dependency's
// artifact turned out corrupt and was dropped, a full disk, a sandbox that
// could not be set up); nothing is recorded in the cache, the worker looks
// again, and gives up on the component after k_max_abandons attempts.
// publishing: built; the backend publishes it in the background (the claim
// is still held) and hands the final report over through finished().
enum class BuildOutcome { published, already_present, failed, cancelled, abandoned, publishing };
constexpr int k_max_abandons = 3;

// A claim that fails with an error (the cache refuses the key, the cache's
// file system is full or failing) is retried after a backoff of
// k_claim_retry_first_ms, doubled each time (the worker builds other
// components meanwhile); after k_max_claim_errors consecutive errors on one
// component (250+500+1000+2000 ms of backoff, so about 4 s) the worker gives
// up and
// exits with k_worker_failed, reporting the component as failed.
constexpr int k_max_claim_errors = 5;
constexpr int k_claim_retry_first_ms = 250;

struct BuildReport {
  BuildOutcome outcome = BuildOutcome::published;
  double seconds = 0;
  std::string reason;    // for failed: what failed (step, command, status)
  std::string log_path;  // the build log
  double stage_seconds = 0;    // of `seconds`: staging the dependencies
  double publish_seconds = 0;  // of `seconds`: publishing into the cache
  std::int64_t finished_ms = 0;  // now_ms() when it ended, if known (a background publish)
};

class WorkerBackend {
 public:
  virtual ~WorkerBackend() = default;
  [[nodiscard]] virtual bool is_cached(const std::string& key) = 0;
  // is_cached() and failure() of many keys at once (one look at the cache
  // for a whole scan): for each key, cached, else its failure's reason if any.
  struct KeyState {
    bool cached = false;
    std::optional<std::string> failure;
  };
  [[nodiscard]] virtual std::vector<KeyState> states(const std::vector<std::string>& keys) {
    std::vector<KeyState> out(keys.size());
    for (std::size_t i = 0; i < keys.size(); ++i) {
      out[i].cached = is_cached(keys[i]);
      if (!out[i].cached) out[i].failure = failure(keys[i]);
    }
    return out;
  }
  // The recorded failure's reason, or nullopt when the key has not failed
  // (or its failure is to be retried).
  [[nodiscard]] virtual std::optional<std::string> failure(const std::string& key) = 0;
  // The build log of key's recorded failure, for the summary ("" if unknown).
  [[nodiscard]] virtual std::string failure_log(const std::string& /*key*/) { return {}; }
  [[nodiscard]] virtual Result<ClaimReply> claim(const std::string& key) = 0;
  // Fetches key's artifact from a remote cache, if there is one and it
  // has it (the target, before its dependencies are ready): a `downloaded`
  // reply, or nullopt.
  [[nodiscard]] virtual std::optional<ClaimReply> download(const std::string& /*key*/) {
    return std::nullopt;
  }
  virtual void release(const std::string& key) = 0;
  // Builds item `index` under the claim and publishes it, or records its
  // failure. Returns `cancelled` when should_stop() became true mid-build;
  // then nothing is published and the failure is not recorded.
  [[nodiscard]] virtual BuildReport build(std::size_t index) = 0;
  // Pipelining, where a backend offers it. build(index, meanwhile) calls
  // `meanwhile` once while the item's own work runs (a chunk's commands),
  // and the worker then sets its next build up with prepare(): an item that
  // can_prepare() accepts is set up without a claim (a chunk: staged,
  // checked out, its sandbox built and held, nothing shared written), and
  // build() of that item, once claimed, only runs it. drop_prepared()
  // drops what prepare() set up for an item that is not built after all
  // (no-op for any other). A prepare() that cannot finish sets nothing up.
  // claimed(): whether anybody holds key's claim now.
  [[nodiscard]] virtual BuildReport build(std::size_t index,
                                          const std::function<void()>& /*meanwhile*/) {
    return build(index);
  }
  [[nodiscard]] virtual bool can_prepare(std::size_t /*index*/) { return false; }
  virtual void prepare(std::size_t /*index*/) {}
  virtual void drop_prepared(std::size_t /*index*/) {}
  [[nodiscard]] virtual bool claimed(const std::string& /*key*/) { return false; }
  // The final reports of builds that build() returned as `publishing`,
  // whose publish has finished since the last call (their claims still
  // held: the worker releases them).
  [[nodiscard]] virtual std::vector<std::pair<std::size_t, BuildReport>> finished() { return {}; }
  // Blocks until every `publishing` build's publish has finished.
  virtual void drain() {}
  // Blocks until the cache changes, a publish finishes, a stop is
  // requested, or timeout_ms pass.
  virtual void wait_for_change(int timeout_ms) = 0;
  // True once the worker was asked to stop (SIGTERM/SIGINT).
  [[nodiscard]] virtual bool stop_requested() = 0;
  // The clock the retry backoffs are measured with (ms; only differences
  // matter). Fakes advance it in wait_for_change.
  [[nodiscard]] virtual std::int64_t clock_ms() { return now_ms(); }
};

struct WorkerOptions {
  int instance = 1;
  std::uint64_t seed = 0;
  int idle_timeout_ms = 1000;  // bound on each wait, to notice dead claim holders
};

// Exit statuses of Worker::run.
constexpr int k_worker_target_done = 0;
constexpr int k_worker_failed = 1;
constexpr int k_worker_stopped = 143;

class Worker {
 public:
  using Sink = std::function<void(const Event&)>;

  // items must be in dependency order (every dep index lower than its item's).
  Worker(std::vector<WorkItem> items, std::size_t target, WorkerBackend& backend,
         WorkerOptions options, Sink sink);

  // Runs until the target is cached (0), nothing more can be built or a
  // claim keeps failing with an error (1), or a stop is requested (143).
  [[nodiscard]] int run();

  // The shuffled order this worker walks (indices into items).
  [[nodiscard]] const std::vector<std::size_t>& order() const { return m_order; }

 private:
  enum class Scan { built_something, waiting_on_others, nothing_left, claim_gave_up };

  Scan scan_once();
  int run_until_done();
  // Claims and builds item `index` if it is ready (pass 2 of a scan); a
  // Scan when the scan ends with it, nullopt to look further.
  std::optional<Scan> try_build(std::size_t index);
  // Emits build_start, builds claimed item `index` (setting the next one up
  // meanwhile) and acts on its report.
  Scan build_claimed(std::size_t index);
  // Pipelining: called while item `building` runs; has the backend set
  // the next ready item of this worker's order up (prepare()).
  void prepare_next(std::size_t building);
  // Drops the item set up ahead, if any.
  void drop_prepared();
  static constexpr std::size_t k_no_item = static_cast<std::size_t>(-1);
  void emit(EventType type, std::size_t item, const std::string& message = {},
            double seconds = 0, const std::string& detail = {},
            const BuildReport* report = nullptr);
  void mark_cached(std::size_t index);
  // Releases item `index`'s claim and acts on how its build ended; false
  // when it was cancelled (the worker stops).
  bool handle_report(std::size_t index, const BuildReport& report);
  // Collects the publishes that finished in the background.
  void collect_finished();
  // Waits for every publish in flight and collects them (before exiting).
  void finish_publishing();

  std::vector<WorkItem> m_items;
  std::size_t m_target;
  WorkerBackend& m_backend;
  WorkerOptions m_options;
  Sink m_sink;
  std::vector<std::size_t> m_order;
  std::vector<char> m_cached;                       // known cached (monotonic)
  std::set<std::pair<std::size_t, std::string>> m_bah_reported;
  std::set<std::size_t> m_failure_reported;
  std::map<std::size_t, int> m_abandons;
  std::set<std::size_t> m_blocked_here;  // given up on by this worker
  std::set<std::size_t> m_publishing;    // built, being published in the background
  std::vector<char> m_blocked;           // the last scan's: never buildable in this run
  std::size_t m_prepared = k_no_item;    // set up ahead (prepare_next), not claimed
  std::map<std::size_t, int> m_claim_errors;             // consecutive claim errors per item
  std::map<std::size_t, std::int64_t> m_claim_retry_at;  // clock_ms() of the next claim attempt
  std::string m_gave_up;                                 // why the worker gave up (claim_gave_up)
  bool m_target_download_tried = false;
  int m_done = 0;
  int m_todo = 0;
};

}  // namespace gang
