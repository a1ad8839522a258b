#include "gang/worker.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>

namespace gang {
namespace {

// An in-memory cache shared by "other instances" through plain calls.
class FakeBackend : public WorkerBackend {
 public:
  explicit FakeBackend(std::vector<WorkItem>& items) : m_items(items) {}

  bool is_cached(const std::string& key) override { return cached.contains(key); }
  std::optional<std::string> failure(const std::string& key) override {
    auto it = failed.find(key);
    if (it == failed.end()) return std::nullopt;
    return it->second;
  }
  std::string failure_log(const std::string& key) override {
    return failed.contains(key) ? "/logs/" + key + ".log" : "";
  }
  Result<ClaimReply> claim(const std::string& key) override {
    if (cached.contains(key)) return ClaimReply{ClaimStatus::already_cached, {}};
    auto it = claims.find(key);
    if (it != claims.end()) return ClaimReply{ClaimStatus::held_by_other, it->second};
    claims[key] = "me";
    if (publish_on_claim.contains(key)) cached.insert(key);  // another instance finished meanwhile
    return ClaimReply{ClaimStatus::won, {}};
  }
  void release(const std::string& key) override { claims.erase(key); }
  BuildReport build(std::size_t index) override {
    const WorkItem& item = m_items[index];
    for (std::size_t dep : item.deps) EXPECT_TRUE(cached.contains(m_items[dep].key)) << item.name;
    built.push_back(item.name);
    if (fail.contains(item.name)) {
      failed[item.key] = "exit 1";
      return {BuildOutcome::failed, 0.5, "install-commands failed", "/logs/" + item.name};
    }
    if (race_lost.contains(item.name)) {
      cached.insert(item.key);
      return {BuildOutcome::already_present, 0.25, {}, {}};
    }
    cached.insert(item.key);
    if (background) {
      // Published in the background: visible in the cache at once (the
      // index commit), reported to the worker only a poll later.
      for (std::size_t dep : item.deps)
        EXPECT_FALSE(pending.contains(dep)) << item.name << " started before its dependency was collected";
      pending[index] = 1;
      return {BuildOutcome::publishing, 0, {}, {}};
    }
    return {BuildOutcome::published, 0.1, {}, {}};
  }
  std::vector<std::pair<std::size_t, BuildReport>> finished() override {
    std::vector<std::pair<std::size_t, BuildReport>> out;
    for (auto it = pending.begin(); it != pending.end();) {
      if (it->second-- > 0) {
        ++it;
        continue;
      }
      EXPECT_TRUE(claims.contains(m_items[it->first].key)) << "the claim is held until collected";
      out.push_back({it->first, {BuildOutcome::published, 0.1, {}, {}}});
      it = pending.erase(it);
    }
    return out;
  }
  void drain() override {
    ++drains;
    for (auto& [index, polls] : pending) polls = 0;
  }
  void wait_for_change(int) override {
    ++waits;
    if (on_wait) on_wait();
  }
  bool stop_requested() override { return stop; }

  std::set<std::string> cached;
  std::map<std::string, std::string> failed;
  std::map<std::string, std::string> claims;
  std::set<std::string> fail;
  std::set<std::string> race_lost;
  std::set<std::string> publish_on_claim;
  std::vector<std::string> built;
  std::function<void()> on_wait;
  int waits = 0;
  bool stop = false;
  bool background = false;                 // build() returns `publishing`
  std::map<std::size_t, int> pending;      // publishing: polls of finished() left
  int drains = 0;

 private:
  std::vector<WorkItem>& m_items;
};

// a, b independent; c needs a and b; target t needs c.
std::vector<WorkItem> diamond() {
  return {{"a", "a.1", {}}, {"b", "b.1", {}}, {"c", "c.1", {0, 1}}, {"t", "t.1", {2}}};
}

struct Recorded {
  std::vector<Event> events;
  int count(EventType type) const {
    int n = 0;
    for (const auto& e : events) n += e.type == type;
    return n;
  }
};

TEST(Worker, BuildsEveryComponentOnceInDependencyOrder) {
  auto items = diamond();
  FakeBackend backend(items);
  Recorded rec;
  Worker worker(items, 3, backend, {1, 42, 10}, [&](const Event& e) { rec.events.push_back(e); });
  EXPECT_EQ(worker.run(), k_worker_target_done);
  EXPECT_EQ(backend.built.size(), 4u);
  EXPECT_EQ(std::set<std::string>(backend.built.begin(), backend.built.end()).size(), 4u);
  EXPECT_EQ(backend.built.back(), "t");
  EXPECT_EQ(rec.count(EventType::build_done), 4);
  EXPECT_EQ(rec.count(EventType::target_done), 1);
  EXPECT_TRUE(backend.claims.empty()) << "every claim released";
}

TEST(Worker, ABuildPublishedInTheBackgroundCountsOnlyOnceCollected) {
  // Each build's publish finishes in the background, its artifact already
  // in the cache before the worker hears of it: the worker neither rebuilds
  // it nor reports it as built elsewhere, starts nothing that needs it
  // before then, releases its claim only then, and collects every publish
  // before it exits.
  auto items = diamond();
  FakeBackend backend(items);
  backend.background = true;
  Recorded rec;
  Worker worker(items, 3, backend, {1, 42, 10}, [&](const Event& e) { rec.events.push_back(e); });
  EXPECT_EQ(worker.run(), k_worker_target_done);
  EXPECT_EQ(backend.built.size(), 4u);
  EXPECT_EQ(std::set<std::string>(backend.built.begin(), backend.built.end()).size(), 4u);
  EXPECT_EQ(rec.count(EventType::build_done), 4);
  EXPECT_EQ(rec.count(EventType::cached), 0);
  EXPECT_EQ(rec.count(EventType::target_done), 1);
  EXPECT_TRUE(backend.pending.empty());
  EXPECT_TRUE(backend.claims.empty()) << "every claim released";
  // The target's own publish was collected before target_done.
  std::size_t done_t = 0, target_done = 0;
  for (std::size_t i = 0; i < rec.events.size(); ++i) {
    if (rec.events[i].type == EventType::build_done && rec.events[i].component == "t") done_t = i;
    if (rec.events[i].type == EventType::target_done) target_done = i;
  }
  EXPECT_LT(done_t, target_done);
}

TEST(Worker, SeedDeterminesTheOrder) {
  std::vector<WorkItem> items;
  for (int i = 0; i < 20; ++i) items.push_back({"c" + std::to_string(i), "k" + std::to_string(i), {}});
  FakeBackend backend(items);
  Worker a(items, 0, backend, {1, 7, 10}, {});
  Worker b(items, 0, backend, {2, 7, 10}, {});
  Worker c(items, 0, backend, {3, 8, 10}, {});
  EXPECT_EQ(a.order(), b.order());
  EXPECT_NE(a.order(), c.order());
}

TEST(Worker, LogsBahOnceForAClaimHeldByAnotherAndWaits) {
  auto items = diamond();
  FakeBackend backend(items);
  backend.claims["a.1"] = "host:123 #2";
  backend.on_wait = [&] {  // the other instance finishes a
    backend.claims.erase("a.1");
    backend.cached.insert("a.1");
  };
  Recorded rec;
  Worker worker(items, 3, backend, {1, 1, 10}, [&](const Event& e) { rec.events.push_back(e); });
  EXPECT_EQ(worker.run(), k_worker_target_done);
  EXPECT_EQ(rec.count(EventType::bah), 1);
  EXPECT_GE(backend.waits, 1);
  EXPECT_EQ(std::count(backend.built.begin(), backend.built.end(), "a"), 0);
  for (const auto& e : rec.events)
    if (e.type == EventType::bah) {
      EXPECT_NE(e.message.find("host:123 #2"), std::string::npos);
    }
}

TEST(Worker, RechecksTheCacheAfterWinningAClaim) {
  auto items = diamond();
  FakeBackend backend(items);
  backend.publish_on_claim.insert("b.1");
  Recorded rec;
  Worker worker(items, 3, backend, {1, 3, 10}, [&](const Event& e) { rec.events.push_back(e); });
  EXPECT_EQ(worker.run(), k_worker_target_done);
  EXPECT_EQ(std::count(backend.built.begin(), backend.built.end(), "b"), 0);
  EXPECT_EQ(rec.count(EventType::bah), 1);
}

TEST(Worker, ReportsWastedWorkWhenPublishLosesTheRace) {
  auto items = diamond();
  FakeBackend backend(items);
  backend.race_lost.insert("c");
  Recorded rec;
  Worker worker(items, 3, backend, {1, 3, 10}, [&](const Event& e) { rec.events.push_back(e); });
  EXPECT_EQ(worker.run(), k_worker_target_done);
  ASSERT_EQ(rec.count(EventType::bah), 1);
  for (const auto& e : rec.events)
    if (e.type == EventType::bah) {
      EXPECT_DOUBLE_EQ(e.seconds, 0.25);
    }
}

TEST(Worker, BuildsWhatItCanAfterAFailureThenExitsNonZero) {
  std::vector<WorkItem> items = {{"a", "a.1", {}}, {"bad", "bad.1", {}}, {"x", "x.1", {}},
                                 {"t", "t.1", {0, 1, 2}}};
  FakeBackend backend(items);
  backend.fail.insert("bad");
  Recorded rec;
  Worker worker(items, 3, backend, {1, 5, 10}, [&](const Event& e) { rec.events.push_back(e); });
  EXPECT_EQ(worker.run(), k_worker_failed);
  EXPECT_TRUE(backend.cached.contains("a.1"));
  EXPECT_TRUE(backend.cached.contains("x.1"));
  EXPECT_FALSE(backend.cached.contains("t.1"));
  EXPECT_EQ(std::count(backend.built.begin(), backend.built.end(), "bad"), 1) << "never retried";
  EXPECT_EQ(rec.count(EventType::failed), 1);
  EXPECT_EQ(backend.waits, 0) << "no waiting when nothing can change";
}

TEST(Worker, DoesNotRetryAFailureRecordedByAnotherInstance) {
  auto items = diamond();
  FakeBackend backend(items);
  backend.failed["a.1"] = "failed in #2";
  Recorded rec;
  Worker worker(items, 3, backend, {1, 5, 10}, [&](const Event& e) { rec.events.push_back(e); });
  EXPECT_EQ(worker.run(), k_worker_failed);
  EXPECT_EQ(std::count(backend.built.begin(), backend.built.end(), "a"), 0);
  EXPECT_EQ(std::count(backend.built.begin(), backend.built.end(), "b"), 1);
  // It is a failure of this run too, reported once, with its log, for the summary.
  ASSERT_EQ(rec.count(EventType::failed), 1);
  for (const auto& e : rec.events)
    if (e.type == EventType::failed) {
      EXPECT_EQ(e.component, "a");
      EXPECT_EQ(e.message, "recorded failure: failed in #2");
      EXPECT_EQ(e.detail, "/logs/a.1.log");
    }
}

TEST(Worker, StopsWhenAsked) {
  auto items = diamond();
  FakeBackend backend(items);
  backend.claims["a.1"] = "other";
  backend.on_wait = [&] { backend.stop = true; };
  Worker worker(items, 3, backend, {1, 5, 10}, {});
  EXPECT_EQ(worker.run(), k_worker_stopped);
}

TEST(Worker, ExitsAtOnceWhenTheTargetIsAlreadyCached) {
  auto items = diamond();
  FakeBackend backend(items);
  backend.cached.insert("t.1");
  Worker worker(items, 3, backend, {1, 5, 10}, {});
  EXPECT_EQ(worker.run(), k_worker_target_done);
  EXPECT_TRUE(backend.built.empty());
}


TEST(Worker, PrefersComponentsOnTheLongestChain) {
  // "chain1 -> chain2 -> chain3 -> t" is the critical path; the leaves l0..l5
  // feed t directly. Whatever the seed, the chain comes first.
  std::vector<WorkItem> items = {{"chain1", "c1", {}}, {"chain2", "c2", {0}}, {"chain3", "c3", {1}}};
  std::vector<std::size_t> t_deps = {2};
  for (int i = 0; i < 6; ++i) {
    items.push_back({"l" + std::to_string(i), "l" + std::to_string(i), {}});
    t_deps.push_back(items.size() - 1);
  }
  items.push_back({"t", "t", t_deps});
  for (std::uint64_t seed = 0; seed < 20; ++seed) {
    FakeBackend backend(items);
    Worker worker(items, items.size() - 1, backend, {1, seed, 10}, {});
    EXPECT_EQ(worker.order().front(), 0u) << "seed " << seed;
    EXPECT_EQ(worker.run(), k_worker_target_done);
    EXPECT_EQ(backend.built.front(), "chain1") << "seed " << seed;
  }
}

TEST(Worker, PrefersTheLongestChainByMeasuredTimeOnceKnown) {
  // Three short steps in a chain (1 s each) against one slow leaf (10 s): by
  // count the chain is longer, by measured time the leaf is; a component
  // never built before counts as the mean of the known ones.
  std::vector<WorkItem> items = {{"c1", "c1", {}, 1.0}, {"c2", "c2", {0}, 1.0},
                                 {"c3", "c3", {1}, 1.0}, {"slow", "slow", {}, 10.0},
                                 {"new", "new", {}, 0.0}, {"t", "t", {2, 3, 4}, 0.0}};
  for (std::uint64_t seed = 0; seed < 10; ++seed) {
    FakeBackend backend(items);
    Worker worker(items, items.size() - 1, backend, {1, seed, 10}, {});
    EXPECT_EQ(worker.order().front(), 3u) << "seed " << seed;
    EXPECT_EQ(worker.run(), k_worker_target_done);
    EXPECT_EQ(backend.built.front(), "slow") << "seed " << seed;
  }
  // Without history the count decides: the chain first.
  for (auto& item : items) item.estimate_s = 0;
  FakeBackend cold_backend(items);
  Worker cold(items, items.size() - 1, cold_backend, {1, 0, 10}, {});
  EXPECT_EQ(cold.order().front(), 0u);
}

// A backend whose builds are abandoned a given number of times first.
class AbandoningBackend : public FakeBackend {
 public:
  AbandoningBackend(std::vector<WorkItem>& items, int abandons) : FakeBackend(items), m_left(abandons) {}
  BuildReport build(std::size_t index) override {
    if (m_left > 0) {
      --m_left;
      ++abandoned;
      return {BuildOutcome::abandoned, 0, "cannot stage dep: corrupt blob", {}};
    }
    return FakeBackend::build(index);
  }
  int abandoned = 0;

 private:
  int m_left;
};

TEST(Worker, LooksAgainAfterAnAbandonedBuild) {
  auto items = diamond();
  AbandoningBackend backend(items, 1);
  Worker worker(items, 3, backend, {1, 9, 10}, {});
  EXPECT_EQ(worker.run(), k_worker_target_done);
  EXPECT_EQ(backend.abandoned, 1);
}

TEST(Worker, GivesUpOnAComponentAbandonedTooOften) {
  std::vector<WorkItem> items = {{"only", "o", {}}};
  AbandoningBackend backend(items, 100);
  Recorded rec;
  Worker worker(items, 0, backend, {1, 9, 10}, [&](const Event& e) { rec.events.push_back(e); });
  EXPECT_EQ(worker.run(), k_worker_failed);
  EXPECT_EQ(backend.abandoned, k_max_abandons);
  EXPECT_EQ(rec.count(EventType::failed), 1);
}


TEST(Worker, RebuildsADependencyThatVanishedFromTheCache) {
  std::vector<WorkItem> items = {{"dep", "d", {}}, {"user", "u", {0}}};
  struct Vanishing : FakeBackend {
    using FakeBackend::FakeBackend;
    BuildReport build(std::size_t index) override {
      if (index == 1 && !dropped) {  // staging finds dep's artifact corrupt and drops it
        dropped = true;
        cached.erase("d");
        return {BuildOutcome::abandoned, 0, "cannot stage dep", {}};
      }
      return FakeBackend::build(index);
    }
    bool dropped = false;
  } backend(items);
  Worker worker(items, 1, backend, {1, 2, 10}, {});
  EXPECT_EQ(worker.run(), k_worker_target_done);
  EXPECT_EQ(std::count(backend.built.begin(), backend.built.end(), "dep"), 2);
}

// A backend whose claims of some keys fail with an error (a key the cache
// refuses, or a full file system), `errors_left` times (-1: forever).
class ClaimErrorBackend : public FakeBackend {
 public:
  ClaimErrorBackend(std::vector<WorkItem>& items, std::string key, int errors)
      : FakeBackend(items), m_key(std::move(key)), m_left(errors) {}
  Result<ClaimReply> claim(const std::string& key) override {
    if (key == m_key && m_left != 0) {
      if (m_left > 0) --m_left;
      ++claim_errors;
      return make_error("LMDB: cannot commit: No space left on device");
    }
    return FakeBackend::claim(key);
  }
  // A simulated clock: each wait lasts its whole timeout.
  void wait_for_change(int timeout_ms) override {
    waited_ms += timeout_ms;
    FakeBackend::wait_for_change(timeout_ms);
  }
  std::int64_t clock_ms() override { return waited_ms; }
  int claim_errors = 0;
  std::int64_t waited_ms = 0;

 private:
  std::string m_key;
  int m_left;
};

TEST(Worker, GivesUpWithinBoundsWhenAClaimKeepsFailing) {
  auto items = diamond();
  ClaimErrorBackend backend(items, "a.1", -1);
  // Today's loop retries forever: stop it after far more waits than allowed.
  backend.on_wait = [&] { backend.stop = backend.waits > 50; };
  Recorded rec;
  Worker worker(items, 3, backend, {1, 4, 1000}, [&](const Event& e) { rec.events.push_back(e); });
  EXPECT_EQ(worker.run(), k_worker_failed);
  EXPECT_EQ(backend.claim_errors, k_max_claim_errors);
  EXPECT_LT(backend.waited_ms, 10'000) << "well under 10 s in all";
  EXPECT_GE(backend.waited_ms, 3'000) << "with a backoff between attempts";
  EXPECT_TRUE(backend.claims.empty());
  ASSERT_EQ(rec.count(EventType::failed), 1);
  for (const auto& e : rec.events) {
    if (e.type == EventType::failed) {
      EXPECT_EQ(e.component, "a");
      EXPECT_NE(e.message.find("No space left on device"), std::string::npos) << e.message;
    }
    if (e.type == EventType::exit) {
      EXPECT_NE(e.message.find("cannot claim a"), std::string::npos);
    }
  }
}

TEST(Worker, BuildsTheTargetAfterATransientClaimError) {
  auto items = diamond();
  ClaimErrorBackend backend(items, "c.1", 2);
  Worker worker(items, 3, backend, {1, 4, 1000}, {});
  EXPECT_EQ(worker.run(), k_worker_target_done);
  EXPECT_EQ(backend.claim_errors, 2);
  EXPECT_EQ(std::count(backend.built.begin(), backend.built.end(), "c"), 1);
}

// A backend that sets builds up ahead (pipelining): build(index, meanwhile)
// calls meanwhile as if the item's commands were running.
class PipelineBackend : public FakeBackend {
 public:
  explicit PipelineBackend(std::vector<WorkItem>& items) : FakeBackend(items), m_all(items) {}
  using FakeBackend::build;
  BuildReport build(std::size_t index, const std::function<void()>& meanwhile) override {
    const WorkItem& item = m_all[index];
    if (prepared_now == index) {
      ran_prepared.push_back(item.name);
      prepared_now = k_none;
    }
    building = index;
    if (meanwhile) meanwhile();
    if (during_build) during_build(item.name);
    building = k_none;
    return build(index);
  }
  bool can_prepare(std::size_t index) override { return !not_ahead.contains(m_all[index].name); }
  void prepare(std::size_t index) override {
    const WorkItem& item = m_all[index];
    EXPECT_EQ(prepared_now, k_none) << "one item set up at a time";
    EXPECT_FALSE(claims.contains(item.key)) << item.name << " set up while claimed";
    EXPECT_NE(building, index);
    for (std::size_t dep : item.deps)
      EXPECT_TRUE(cached.contains(m_all[dep].key)) << item.name << " set up before " << m_all[dep].name;
    prepared.push_back(item.name);
    prepared_now = index;
  }
  void drop_prepared(std::size_t index) override {
    if (prepared_now != index) return;  // (not set up, or built already)
    dropped.push_back(m_all[index].name);
    prepared_now = k_none;
  }
  bool claimed(const std::string& key) override { return claims.contains(key); }

  static constexpr std::size_t k_none = static_cast<std::size_t>(-1);
  std::set<std::string> not_ahead;  // can_prepare() says no
  std::vector<std::string> prepared, ran_prepared, dropped;
  std::function<void(const std::string&)> during_build;
  std::size_t prepared_now = k_none;
  std::size_t building = k_none;

 private:
  std::vector<WorkItem>& m_all;
};

// Leaves l0..l3, independent; the target t needs them all.
std::vector<WorkItem> leaves() {
  return {{"l0", "l0.1", {}}, {"l1", "l1.1", {}}, {"l2", "l2.1", {}},
          {"l3", "l3.1", {}}, {"t", "t.1", {0, 1, 2, 3}}};
}

TEST(Worker, SetsTheNextReadyItemUpWhileTheCurrentOneRunsAndBuildsItNext) {
  auto items = leaves();
  PipelineBackend backend(items);
  backend.not_ahead = {"t"};
  Worker worker(items, 4, backend, {1, 42, 10}, {});
  EXPECT_EQ(worker.run(), k_worker_target_done);
  // Every leaf after the first was set up while the one before it ran, and
  // built next; t is never set up ahead; nothing was dropped.
  ASSERT_EQ(backend.built.size(), 5u);
  EXPECT_EQ(backend.prepared, std::vector<std::string>(backend.built.begin() + 1,
                                                       backend.built.begin() + 4));
  EXPECT_EQ(backend.ran_prepared, backend.prepared);
  EXPECT_EQ(backend.built.back(), "t");
  EXPECT_TRUE(backend.dropped.empty());
  EXPECT_TRUE(backend.claims.empty()) << "every claim released";
}

TEST(Worker, NeverSetsUpAnItemThatNeedsTheOneRunning) {
  // a -> b -> t: nothing is ready while a (or b) runs.
  std::vector<WorkItem> items = {{"a", "a.1", {}}, {"b", "b.1", {0}}, {"t", "t.1", {1}}};
  PipelineBackend backend(items);
  Worker worker(items, 2, backend, {1, 42, 10}, {});
  EXPECT_EQ(worker.run(), k_worker_target_done);
  EXPECT_EQ(backend.built, (std::vector<std::string>{"a", "b", "t"}));
  EXPECT_TRUE(backend.prepared.empty());
}

TEST(Worker, SkipsItemsOtherInstancesHoldWhenSettingUpAhead) {
  auto items = leaves();
  PipelineBackend backend(items);
  backend.not_ahead = {"t"};
  Worker probe(items, 4, backend, {1, 42, 10}, {});
  // The second leaf in this worker's order is held by another instance
  // until the first is built.
  std::string held = items[probe.order()[1]].name;
  if (held == "t") held = items[probe.order()[2]].name;
  backend.claims[held + ".1"] = "other";
  backend.during_build = [&](const std::string&) { backend.claims.erase(held + ".1"); };
  Worker worker(items, 4, backend, {1, 42, 10}, {});
  EXPECT_EQ(worker.run(), k_worker_target_done);
  ASSERT_FALSE(backend.prepared.empty());
  EXPECT_NE(backend.prepared.front(), held);
  EXPECT_EQ(std::count(backend.built.begin(), backend.built.end(), held), 1);
  EXPECT_TRUE(backend.claims.empty());
}

TEST(Worker, AnItemSetUpAheadThatAnotherInstanceClaimsFirstIsDroppedNotBuilt) {
  auto items = leaves();
  PipelineBackend backend(items);
  backend.not_ahead = {"t"};
  std::string taken;
  backend.during_build = [&](const std::string&) {
    if (!taken.empty() || backend.prepared.empty()) return;
    taken = backend.prepared.back();
    backend.claims[taken + ".1"] = "other";  // ... and builds it
  };
  backend.on_wait = [&] {
    backend.claims.erase(taken + ".1");
    backend.cached.insert(taken + ".1");
  };
  Recorded rec;
  Worker worker(items, 4, backend, {1, 42, 10}, [&](const Event& e) { rec.events.push_back(e); });
  EXPECT_EQ(worker.run(), k_worker_target_done);
  ASSERT_FALSE(taken.empty());
  EXPECT_EQ(backend.dropped, std::vector<std::string>{taken});
  EXPECT_EQ(std::count(backend.built.begin(), backend.built.end(), taken), 0);
  EXPECT_EQ(backend.built.back(), "t");
  EXPECT_GE(rec.count(EventType::bah), 1);
}

TEST(Worker, DropsTheItemSetUpAheadWhenTheTargetAppears) {
  auto items = leaves();
  PipelineBackend backend(items);
  // Another instance publishes the target while the first build runs.
  backend.during_build = [&](const std::string&) { backend.cached.insert("t.1"); };
  Worker worker(items, 4, backend, {1, 42, 10}, {});
  EXPECT_EQ(worker.run(), k_worker_target_done);
  EXPECT_EQ(backend.built.size(), 1u);
  ASSERT_EQ(backend.prepared.size(), 1u);
  EXPECT_EQ(backend.dropped, backend.prepared);
  EXPECT_TRUE(backend.claims.empty()) << "every claim released";
}

TEST(Worker, DropsTheItemSetUpAheadWhenStopped) {
  auto items = leaves();
  PipelineBackend backend(items);
  backend.during_build = [&](const std::string&) { backend.stop = true; };
  Worker worker(items, 4, backend, {1, 42, 10}, {});
  EXPECT_EQ(worker.run(), k_worker_stopped);
  ASSERT_EQ(backend.prepared.size(), 1u);
  EXPECT_EQ(backend.dropped, backend.prepared);
  EXPECT_FALSE(backend.claims.contains(backend.prepared.front() + ".1"));
}

}  // namespace
}  // namespace gang
