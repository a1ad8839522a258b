#include "gang/worker.hpp"

#include <algorithm>
#include <random>

namespace gang {

Worker::Worker(std::vector<WorkItem> items, std::size_t target, WorkerBackend& backend,
               WorkerOptions options, Sink sink)
    : m_items(std::move(items)),
      m_target(target),
      m_backend(backend),
      m_options(options),
      m_sink(std::move(sink)),
      m_cached(m_items.size(), 0) {
  // The order: components on longer chains to the end of the graph first,
  // so the critical path never waits behind work that could come later;
  // within one chain length, this worker's own shuffle (ybd's), so that
  // instances spread over the graph instead of colliding.
  //
  // A chain's length is measured in time where the cache remembers how long
  // its components took (the last build of each, under any key), and each
  // component never built here counts as the mean of those that were; with
  // no history at all, every component counts 1 and the length is a count.
  double known_sum = 0;
  std::size_t known = 0;
  for (const auto& item : m_items) {
    if (item.estimate_s > 0) {
      known_sum += item.estimate_s;
      ++known;
    }
  }
  const double unknown_weight = known == 0 ? 1.0 : known_sum / static_cast<double>(known);
  std::vector<double> weight(m_items.size());
  for (std::size_t i = 0; i < m_items.size(); ++i)
    weight[i] = m_items[i].estimate_s > 0 ? m_items[i].estimate_s : unknown_weight;
  std::vector<double> height(m_items.size());
  for (std::size_t i = 0; i < m_items.size(); ++i) height[i] = weight[i];
  for (std::size_t i = m_items.size(); i-- > 0;)
    for (std::size_t dep : m_items[i].deps)
      height[dep] = std::max(height[dep], height[i] + weight[dep]);
  m_order.resize(m_items.size());
  for (std::size_t i = 0; i < m_order.size(); ++i) m_order[i] = i;
  std::mt19937_64 random(m_options.seed);
  std::shuffle(m_order.begin(), m_order.end(), random);
  std::stable_sort(m_order.begin(), m_order.end(),
                   [&](std::size_t a, std::size_t b) { return height[a] > height[b]; });
}

void Worker::emit(EventType type, std::size_t item, const std::string& message, double seconds,
                  const std::string& detail, const BuildReport* report) {
  if (!m_sink) return;
  Event e;
  if (item != k_no_item) {
    e.component = m_items[item].name;
    e.key = m_items[item].key;
  }
  if (report != nullptr) {
    e.stage_seconds = report->stage_seconds;
    e.publish_seconds = report->publish_seconds;
  }
  e.type = type;
  e.instance = m_options.instance;
  e.time_ms = report != nullptr && report->finished_ms > 0 ? report->finished_ms : now_ms();
  e.message = message;
  e.detail = detail;
  e.seconds = seconds;
  e.done = m_done;
  e.todo = m_todo;
  e.total = static_cast<int>(m_items.size());
  m_sink(e);
}

void Worker::mark_cached(std::size_t index) {
  if (m_cached[index]) return;
  m_cached[index] = 1;
  ++m_done;
  emit(EventType::cached, index);
}

bool Worker::handle_report(std::size_t index, const BuildReport& report) {
  const WorkItem& item = m_items[index];
  m_backend.release(item.key);
  switch (report.outcome) {
    case BuildOutcome::published:
      if (!m_cached[index]) ++m_done;
      m_cached[index] = 1;
      emit(EventType::build_done, index, item.key, report.seconds, report.log_path, &report);
      break;
    case BuildOutcome::already_present:
      if (!m_cached[index]) ++m_done;
      m_cached[index] = 1;
      emit(EventType::bah, index, "published by another instance first; work wasted",
           report.seconds, {}, &report);
      break;
    case BuildOutcome::failed:
      m_failure_reported.insert(index);
      emit(EventType::failed, index, report.reason, report.seconds, report.log_path);
      break;
    case BuildOutcome::abandoned:
      // A dependency may have been dropped from the cache (a corrupt blob):
      // forget that it was cached, so that it is built again.
      for (std::size_t dep : item.deps) {
        if (m_cached[dep] && !m_backend.is_cached(m_items[dep].key)) {
          m_cached[dep] = 0;
          --m_done;
        }
      }
      if (++m_abandons[index] >= k_max_abandons) {
        m_failure_reported.insert(index);
        emit(EventType::failed, index, "gave up after " + std::to_string(k_max_abandons) +
                                               " attempts: " + report.reason,
             report.seconds, report.log_path);
        m_blocked_here.insert(index);
      } else {
        emit(EventType::log, index, "Not built, will look again: " + report.reason,
             report.seconds);
      }
      break;
    case BuildOutcome::cancelled:
      emit(EventType::log, index, "Build stopped: " + report.reason, report.seconds);
      return false;
    case BuildOutcome::publishing:  // not a final outcome; never handed here
      break;
  }
  return true;
}

void Worker::collect_finished() {
  for (auto& [index, report] : m_backend.finished()) {
    m_publishing.erase(index);
    (void)handle_report(index, report);
  }
}

void Worker::finish_publishing() {
  if (m_publishing.empty()) return;
  m_backend.drain();
  collect_finished();
}

Worker::Scan Worker::scan_once() {
  collect_finished();
  // Pass 1, in dependency order: what is cached now, and what can never be
  // built because it, or something it needs, failed.
  std::vector<char> blocked(m_items.size(), 0);
  bool anything_left = false;
  // One look at the cache for every item not known to be cached.
  std::vector<std::string> keys;
  for (std::size_t index = 0; index < m_items.size(); ++index)
    if (!m_cached[index] && !m_publishing.contains(index)) keys.push_back(m_items[index].key);
  std::vector<WorkerBackend::KeyState> states = m_backend.states(keys);
  for (std::size_t at = 0, index = 0; index < m_items.size(); ++index) {
    if (m_cached[index]) continue;
    if (m_publishing.contains(index)) {
      anything_left = true;  // built here; counted once its publish is collected
      continue;
    }
    const WorkItem& item = m_items[index];
    const WorkerBackend::KeyState& state = states[at++];
    if (state.cached) {
      mark_cached(index);
      continue;
    }
    blocked[index] = m_blocked_here.contains(index) ? 1 : 0;
    for (std::size_t dep : item.deps) blocked[index] |= blocked[dep];
    if (!blocked[index]) {
      if (const auto& reason = state.failure) {
        blocked[index] = 1;
        // Recorded by another instance or an earlier run: a failure of this
        // run too, reported once, with its log.
        if (m_failure_reported.insert(index).second)
          emit(EventType::failed, index, "recorded failure: " + *reason, 0,
               m_backend.failure_log(item.key));
      }
    }
    anything_left |= !blocked[index];
  }
  // Pass 2: the item set up while the last build ran comes first (its
  // sandbox is built); then, in this worker's own order, claim and build
  // the first ready one.
  m_blocked = std::move(blocked);
  if (m_prepared != k_no_item) {
    std::size_t index = std::exchange(m_prepared, k_no_item);
    std::optional<Scan> scan = try_build(index);
    m_backend.drop_prepared(index);  // not built after all (a no-op once built)
    if (scan) return *scan;
  }
  for (std::size_t index : m_order)
    if (auto scan = try_build(index)) return *scan;
  // Nothing was ready for this worker. If anything buildable is left, other
  // instances hold it (or what it needs): wait for them.
  return anything_left ? Scan::waiting_on_others : Scan::nothing_left;
}

std::optional<Worker::Scan> Worker::try_build(std::size_t index) {
  if (m_backend.stop_requested()) return Scan::nothing_left;
  const WorkItem& item = m_items[index];
  if (m_cached[index] || m_blocked[index] || m_publishing.contains(index)) return std::nullopt;
  bool deps_ready = true;
  for (std::size_t dep : item.deps) deps_ready &= m_cached[dep] != 0;
  if (!deps_ready) return std::nullopt;
  if (auto retry = m_claim_retry_at.find(index);
      retry != m_claim_retry_at.end() && m_backend.clock_ms() < retry->second)
    return std::nullopt;  // backing off after a claim error
  auto claim = m_backend.claim(item.key);
  if (!claim) {
    // Bounded: a persistent error (a key the cache refuses, a full or
    // failing file system) must end the worker, not loop forever.
    int errors = ++m_claim_errors[index];
    std::string what = "cannot claim: " + claim.error().to_string();
    if (errors >= k_max_claim_errors) {
      m_failure_reported.insert(index);
      m_gave_up = item.name + ": " + claim.error().to_string() + " (gave up after " +
                  std::to_string(k_max_claim_errors) + " attempts)";
      emit(EventType::failed, index,
           what + " (gave up after " + std::to_string(k_max_claim_errors) + " attempts)");
      return Scan::claim_gave_up;
    }
    int backoff = k_claim_retry_first_ms << (errors - 1);
    m_claim_retry_at[index] = m_backend.clock_ms() + backoff;
    emit(EventType::log, index,
         what + " (attempt " + std::to_string(errors) + " of " +
             std::to_string(k_max_claim_errors) + ", retrying in " + std::to_string(backoff) +
             " ms)");
    return std::nullopt;
  }
  m_claim_errors.erase(index);
  m_claim_retry_at.erase(index);
  if (claim->status == ClaimStatus::failed) {
    if (m_failure_reported.insert(index).second)
      emit(EventType::failed, index, "failed in " + claim->holder, 0,
           m_backend.failure_log(item.key));
    return std::nullopt;
  }
  if (claim->status == ClaimStatus::downloaded) {
    m_cached[index] = 1;
    ++m_done;
    emit(EventType::downloaded, index, claim->holder, claim->seconds);
    return Scan::built_something;
  }
  if (claim->status == ClaimStatus::held_by_other) {
    if (m_bah_reported.insert({index, claim->holder}).second)
      emit(EventType::bah, index, "claimed by " + claim->holder);
    return std::nullopt;
  }
  if (claim->status == ClaimStatus::already_cached || m_backend.is_cached(item.key)) {
    // Won the claim, but the artifact appeared meanwhile: ybd's missing re-check.
    if (claim->status == ClaimStatus::won) m_backend.release(item.key);
    emit(EventType::bah, index, "already built by another instance");
    mark_cached(index);
    return std::nullopt;
  }
  return build_claimed(index);
}

Worker::Scan Worker::build_claimed(std::size_t index) {
  emit(EventType::build_start, index, m_items[index].key);
  BuildReport report = m_backend.build(index, [this, index] { prepare_next(index); });
  if (report.outcome == BuildOutcome::publishing) {
    m_publishing.insert(index);  // collected when its publish finishes
    return Scan::built_something;
  }
  if (!handle_report(index, report)) return Scan::nothing_left;
  return Scan::built_something;
}

void Worker::prepare_next(std::size_t building) {
  if (m_prepared != k_no_item || m_backend.stop_requested()) return;
  // The first item of this worker's order that is ready, as the next scan
  // would see it with `building` still unfinished, if the backend sets its
  // kind up ahead (else the next scan takes it as usual). No claim is
  // taken: an instance that is idle meanwhile must not wait for this one;
  // the next scan claims it, and drops what was set up if another
  // instance got it first. One that another instance holds now is skipped.
  for (std::size_t index : m_order) {
    if (index == building || m_cached[index] || m_blocked[index] ||
        m_publishing.contains(index) || m_claim_retry_at.contains(index))
      continue;
    bool deps_ready = true;
    for (std::size_t dep : m_items[index].deps) deps_ready &= m_cached[dep] != 0;
    if (!deps_ready) continue;
    if (!m_backend.can_prepare(index)) return;
    if (m_backend.claimed(m_items[index].key)) continue;
    m_backend.prepare(index);
    m_prepared = index;
    return;
  }
}

void Worker::drop_prepared() {
  if (m_prepared == k_no_item) return;
  m_backend.drop_prepared(std::exchange(m_prepared, k_no_item));
}

int Worker::run() {
  int status = run_until_done();
  drop_prepared();
  return status;
}

int Worker::run_until_done() {
  // What was cached before this worker started counts as done, silently.
  std::vector<std::string> keys;
  for (const auto& item : m_items) keys.push_back(item.key);
  std::vector<WorkerBackend::KeyState> states = m_backend.states(keys);
  for (std::size_t i = 0; i < m_items.size(); ++i) {
    if (states[i].cached) {
      m_cached[i] = 1;
      ++m_done;
    }
  }
  m_todo = static_cast<int>(m_items.size()) - m_done;
  emit(EventType::hello, k_no_item, std::to_string(m_options.seed));
  bool scan_waited = false;
  for (;;) {
    if (m_backend.stop_requested()) {
      drop_prepared();
      finish_publishing();
      emit(EventType::exit, k_no_item, "stopped");
      return k_worker_stopped;
    }
    collect_finished();
    if (m_cached[m_target] || m_backend.is_cached(m_items[m_target].key)) {
      drop_prepared();
      finish_publishing();
      emit(EventType::target_done, m_target, m_items[m_target].key);
      emit(EventType::exit, k_no_item, "target done");
      return k_worker_target_done;
    }
    // Whole targets come from a remote cache without their dependencies.
    if (!m_target_download_tried || scan_waited) {
      m_target_download_tried = true;
      scan_waited = false;
      if (auto got = m_backend.download(m_items[m_target].key)) {
        m_cached[m_target] = 1;
        ++m_done;
        emit(EventType::downloaded, m_target, got->holder, got->seconds);
        continue;
      }
    }
    Scan scan = scan_once();
    if (scan == Scan::claim_gave_up) {
      finish_publishing();
      emit(EventType::exit, k_no_item, "cannot claim " + m_gave_up);
      return k_worker_failed;
    }
    if (scan == Scan::built_something) continue;
    if (m_backend.stop_requested()) continue;
    if (scan == Scan::nothing_left) {
      if (m_backend.is_cached(m_items[m_target].key)) continue;
      if (!m_publishing.empty()) {
        finish_publishing();
        continue;
      }
      emit(EventType::exit, k_no_item, "nothing more can be built");
      return k_worker_failed;
    }
    // Wake up for the earliest claim retry, if one is due before the idle
    // timeout.
    std::int64_t timeout = m_options.idle_timeout_ms;
    for (const auto& [index, at] : m_claim_retry_at)
      timeout = std::min(timeout, std::max<std::int64_t>(1, at - m_backend.clock_ms()));
    m_backend.wait_for_change(static_cast<int>(timeout));
    scan_waited = true;
  }
}

}  // namespace gang
