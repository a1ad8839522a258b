#include "gang/chunk_builder.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>

#include "gang/baserock_meta.hpp"
#include "gang/staging_layers.hpp"
#include "gang/step_trouble.hpp"
#include "sandbox/sandbox.hpp"
#include "util/fs.hpp"
#include "util/path_name.hpp"

namespace gang {

namespace {

bool is_build_step(std::string_view step) {
  return step == "pre-build-commands" || step == "build-commands" || step == "post-build-commands";
}

SandboxMode sandbox_mode(BuildMode mode) {
  switch (mode) {
    case BuildMode::bootstrap: return SandboxMode::bootstrap;
    case BuildMode::test: return SandboxMode::test;
    case BuildMode::staging: break;
  }
  return SandboxMode::staging;
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

Result<void> list_into(int dirfd, const std::string& prefix, std::vector<std::string>& out) {
  auto entries = read_dir(dirfd);
  if (!entries) return std::unexpected(entries.error());
  for (const auto& entry : *entries) {
    std::string rel = prefix.empty() ? entry.name : prefix + "/" + entry.name;
    out.push_back(rel);
    if (!entry.is_dir) continue;
    Fd sub(::openat(dirfd, entry.name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (sub.get() < 0) return make_errno_error("cannot read " + rel);
    if (auto listed = list_into(sub.get(), rel, out); !listed) return listed;
  }
  return {};
}

// A path for an error message: whole when short, else its start and end.
std::string abbreviated(const std::string& path) {
  if (path.size() <= 240) return path;
  return path.substr(0, 160) + "..." + path.substr(path.size() - 60);
}

Result<void> check_entries(int dirfd, const std::string& rel) {
  auto entries = read_dir(dirfd);
  if (!entries)
    return make_error("cannot read " + abbreviated(rel) + ": " + entries.error().message);
  for (const auto& entry : *entries) {
    const std::string& name = entry.name;
    std::string path = rel.empty() ? name : rel + "/" + name;
    if (name.size() > k_max_artifact_name)
      return make_error("DESTDIR holds a name of " + std::to_string(name.size()) +
                        " bytes, longer than " + std::to_string(k_max_artifact_name) +
                        ": " + abbreviated(path));
    if (path.size() > k_max_artifact_path)
      return make_error("DESTDIR holds a path of " + std::to_string(path.size()) +
                        " bytes, longer than gang can stage (" +
                        std::to_string(k_max_artifact_path) + "): " + abbreviated(path));
    struct stat st;
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
      return make_errno_error("cannot inspect " + abbreviated(path));
    if (S_ISDIR(st.st_mode)) {
      int sub = ::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub < 0) return make_errno_error("cannot read " + abbreviated(path));
      auto checked = check_entries(sub, path);
      ::close(sub);
      if (!checked) return checked;
    } else if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
      const char* what = S_ISFIFO(st.st_mode)   ? "a FIFO"
                         : S_ISSOCK(st.st_mode) ? "a socket"
                                                : "a device node";
      return make_error("DESTDIR holds " + std::string(what) + ", which an artifact cannot hold: " +
                        abbreviated(path));
    }
  }
  return {};
}

}  // namespace

Result<void> check_publishable(const std::string& install_dir) {
  int fd = ::open(install_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return make_errno_error("cannot read " + install_dir);
  auto checked = check_entries(fd, "");
  ::close(fd);
  return checked;
}

Result<std::vector<std::string>> list_tree(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return make_errno_error("cannot read " + dir);
  std::vector<std::string> out;
  if (auto listed = list_into(fd.get(), "", out); !listed) return std::unexpected(listed.error());
  return out;
}

Result<void> record_products(const Component& c, const SplitRules& defaults,
                             const std::string& install_dir) {
  const std::string& name = c.chunk_def != nullptr ? c.chunk_def->name : c.name;
  static const std::vector<SplitRule> k_none;
  auto rules = SplitRuleSet::compile(name, c.chunk_def != nullptr ? c.chunk_def->products : k_none,
                                     defaults.chunk);
  if (!rules) {
    Error e = rules.error();
    if (c.chunk_def != nullptr && e.file.empty()) {
      e.file = c.chunk_def->where.file;
      e.line = c.chunk_def->where.line;
    }
    return std::unexpected(e);
  }
  auto paths = list_tree(install_dir);
  if (!paths) return std::unexpected(paths.error());
  BaserockMeta meta{split_paths(*rules, *paths), c.repo, c.ref, c.cache_key.value_or("")};
  if (auto made = make_dirs(install_dir + "/baserock"); !made) return made;
  return write_file(install_dir + "/" + baserock_meta_path(name), encode_baserock_meta(meta));
}

// Keeps a failed build's sandbox for `gang shell` at `kept` (an older kept
// one is replaced), its spec saved; removes it if it cannot be kept.
// Returns whether it was kept.
bool keep_failed_sandbox(const std::string& cache_root, const SandboxSpec* spec,
                         const std::string& sandbox_dir, const std::string& kept) {
  if (spec != nullptr) (void)save_spec(*spec);
  (void)remove_sandbox(kept);
  if (make_dirs(cache_root + "/failed") && ::rename(sandbox_dir.c_str(), kept.c_str()) == 0)
    return true;
  (void)remove_sandbox(sandbox_dir);
  return false;
}

namespace {

// One chunk's build: prepare() sets it up to its commands (log, sandbox
// directory, staged trees, checkout, the sandbox held); run() runs them and
// publishes. Two kinds of trouble. fail(): the component itself failed (its
// commands or its source); recorded in the cache so that no instance
// retries it. abandon(): the machine failed (disk, sandbox set-up, a
// vanished dependency, a kill from outside: step_trouble.hpp); nothing is
// recorded and the worker looks again later.
class ChunkBuild final : public PreparedChunk {
 public:
  // claimed: whether this worker holds the chunk's claim already (else
  // prepare() writes nothing shared and records nothing: run() comes only
  // once the claim is won).
  ChunkBuild(const BuildContext& ctx, const GitMirrors& git, std::size_t index,
             std::string log_path, bool claimed)
      : m_claimed(claimed),
        m_ctx(ctx),
        m_git(git),
        m_index(index),
        m_c(ctx.graph.components[index]),
        m_key(*m_c.cache_key),
        m_log_path(std::move(log_path)),
        m_start(std::chrono::steady_clock::now()) {}

  ~ChunkBuild() override {
    if (!m_held) return;
    // Dropped before it ran (rare: the worker is about to exit, or another
    // instance won the claim): the held sandbox is killed and its
    // directory removed at once (the trees are let go with this object).
    m_held.reset();
    (void)remove_sandbox(m_dir);
  }
  ChunkBuild(const ChunkBuild&) = delete;
  ChunkBuild& operator=(const ChunkBuild&) = delete;

  // nullopt when set up (run() goes on); else how the build ended.
  std::optional<BuildReport> prepare();
  BuildReport run(const std::function<void()>& meanwhile) override;

 private:
  BuildReport cancelled(const std::string& why) {
    (void)remove_sandbox(m_dir);  // at once: the worker is about to stop
    return {BuildOutcome::cancelled, 0, why, m_log_path};
  }
  // Moves the log into place (once): from now on it is this attempt's.
  bool place_log() {
    if (m_log_placed) return true;
    m_log_placed = ::rename(m_log_draft.c_str(), m_log_path.c_str()) == 0;
    if (m_log_placed && m_held) m_held->log_moved_to(m_log_path);
    return m_log_placed;
  }
  BuildReport fail(const std::string& reason) {
    // A step killed by our own stop (Ctrl-C) is not the component's failure.
    if (m_ctx.stop.load()) return cancelled("stop requested");
    (void)place_log();  // (the record names it: not an earlier attempt's)
    if (!m_dir.empty()) {
      std::string kept = kept_sandbox_dir(m_ctx.cache.root(), m_c.id);
      if (keep_failed_sandbox(m_ctx.cache.root(), m_kept_spec, m_dir, kept))
        m_ctx.log(m_c.id, "Sandbox kept at " + kept + " (gang shell " + m_c.id + ")");
    }
    (void)m_ctx.cache.failures().record(m_key, m_log_path, first_line(reason), m_ctx.holder);
    return {BuildOutcome::failed, 0, reason, m_log_path};
  }
  BuildReport abandon(const std::string& reason) {
    if (!m_dir.empty()) m_ctx.remover.add(m_dir);
    return {BuildOutcome::abandoned, 0, reason, m_log_path};
  }
  BuildReport publish_or_hand_over();

  const bool m_claimed;
  BuildContext m_ctx;
  const GitMirrors& m_git;
  const std::size_t m_index;
  const Component& m_c;
  const std::string m_key;
  const std::string m_log_path;
  // The log as the sandbox writes it, in the sandbox directory; moved to
  // m_log_path (replacing an earlier attempt's) when the commands start.
  std::string m_log_draft;
  bool m_log_placed = false;
  std::chrono::steady_clock::time_point m_start;
  std::chrono::steady_clock::time_point m_prepared_at;
  std::string m_dir;  // the sandbox directory, once made
  SandboxSpec m_spec;
  const SandboxSpec* m_kept_spec = nullptr;  // saved for `gang shell` if the build fails
  std::vector<TreeCache::Use> m_trees_in_use;
  double m_stage_seconds = 0;
  std::optional<HeldSteps> m_held;  // the sandbox, built, its commands waiting
  std::optional<std::uint64_t> m_oom_kills_before;
};

std::optional<BuildReport> ChunkBuild::prepare() {
  const Component& c = m_c;
  if (auto made = make_dirs(m_ctx.cache.logs_dir()); !made) return abandon(made.error().to_string());
  auto sandbox_dir = m_ctx.cache.build_dirs().make(c.name);
  if (!sandbox_dir) return abandon(sandbox_dir.error().to_string());
  m_dir = *sandbox_dir;
  const std::string& dir = m_dir;
  m_log_draft = dir + "/build.log";
  if (auto made = write_file(m_log_draft, ""); !made) return abandon(made.error().to_string());

  SandboxSpec& spec = m_spec;
  spec.name = c.name;
  spec.sandbox_dir = dir;
  spec.base = m_ctx.options.base;
  spec.build_dir = dir + "/" + name_to_leaf(c.name) + ".build";
  spec.install_dir = dir + "/" + name_to_leaf(c.name) + ".inst";
  spec.prefix = c.prefix;
  spec.arch = m_ctx.options.arch;
  spec.max_jobs = c.max_jobs ? *c.max_jobs : m_ctx.options.max_jobs;
  spec.mode = sandbox_mode(c.build_mode);
  spec.log_path = m_log_path;
  if (c.source) spec.source_date_epoch = c.source->commit_time;

  // The dependencies, as cached read-only trees (a stratum's chunks merged
  // into one), stacked as overlay lower layers: the last group on top, as
  // if staged one after the other. The trees stay locked (in use) until
  // this build is over.
  std::vector<std::size_t> stage = staging_set(m_ctx.graph, m_index);
  auto stage_start = std::chrono::steady_clock::now();
  if (!stage.empty()) {
    auto groups = layer_groups(m_ctx.graph, stage);
    m_ctx.log(c.id, "Staging " + std::to_string(stage.size()) + " dependencies as " +
                        std::to_string(groups.size()) + " layers");
    for (auto group = groups.rbegin(); group != groups.rend(); ++group) {
      std::vector<std::string> keys;
      for (std::size_t dep : *group) keys.push_back(*m_ctx.graph.components[dep].cache_key);
      auto tree = m_ctx.trees.tree(keys, m_ctx.options.verify);
      if (!tree) {
        // A damaged artifact is dropped by stage(), so the worker rebuilds
        // the dependency and comes back.
        std::string names;
        for (std::size_t dep : *group)
          names += (names.empty() ? "" : ", ") + m_ctx.graph.components[dep].name;
        return abandon("cannot stage " + names + ": " + tree.error().to_string());
      }
      spec.lower_layers.push_back(tree->path);
      m_trees_in_use.push_back(std::move(*tree));
    }
  }
  m_stage_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - stage_start).count();
  if (auto made = make_dirs(spec.install_dir); !made) return abandon(made.error().to_string());
  if (!c.repo.empty()) {
    m_ctx.log(c.id, "Checking out " + c.repo + " " + c.ref +
                        (c.source ? " (" + c.source->commit.substr(0, 12) + ")" : ""));
    auto checked = m_git.checkout(c.repo, c.source->commit, spec.build_dir, c.submodules);
    if (!checked) {
      std::string why = "checkout failed: " + checked.error().to_string();
      return is_machine_trouble(why) || !m_claimed ? abandon(why) : fail(why);
    }
  } else if (auto made = make_dirs(spec.build_dir); !made) {
    return abandon(made.error().to_string());
  }
  m_kept_spec = &spec;  // saved for `gang shell` only if the build fails

  // Every step runs in one sandbox (one set of namespaces and mounts).
  std::vector<Step> steps;
  for (std::size_t step = 0; step < k_step_count; ++step) {
    const Commands& commands = c.steps[step];
    if (commands.empty()) continue;
    std::string step_name(k_step_names[step]);
    StepKind kind = is_build_step(step_name) ? StepKind::build : StepKind::other;
    steps.push_back({std::move(step_name), kind, commands});
  }
  auto held = hold_steps(spec, steps, m_log_draft);
  if (!held) return abandon("cannot start the sandbox: " + held.error().to_string());
  m_held = std::move(*held);
  m_prepared_at = std::chrono::steady_clock::now();
  return std::nullopt;
}

BuildReport ChunkBuild::run(const std::function<void()>& meanwhile) {
  if (!m_held) return abandon("the build was not prepared");
  // A fresh log for this attempt, in place before anything is written to it.
  if (!place_log())
    return abandon(make_errno_error("cannot move the build log to " + m_log_path).error().to_string());
  // What the build took: its set-up, and its run from now (not the time it
  // was held waiting for the previous build's commands).
  auto now = std::chrono::steady_clock::now();
  m_start = now - (m_prepared_at - m_start);
  m_oom_kills_before = oom_kill_count();
  StepControl control;
  control.should_stop = m_ctx.should_stop;
  if (meanwhile) control.on_start = [&meanwhile](pid_t) { meanwhile(); };
  auto result = m_held->run(control);
  m_held.reset();
  if (!result) return abandon("cannot start the sandbox: " + result.error().to_string());
  if (result->cancelled || (!result->ok && m_ctx.stop.load()))
    return cancelled(m_ctx.stop.load() ? "stop requested" : "the target no longer needs it");
  if (!result->ok) {
    if (auto cause = outside_cause(*result, m_oom_kills_before, m_ctx.cache.root()))
      return abandon(*cause);
    return fail(result->describe());
  }
  // A build that finished is published even if the target appeared
  // meanwhile (it may serve another target); only a stop request drops it.
  if (m_ctx.stop.load()) return cancelled("stop requested");
  return publish_or_hand_over();
}

BuildReport ChunkBuild::publish_or_hand_over() {
  const BuildContext& ctx = m_ctx;
  const Component& c = m_c;
  const SandboxSpec& spec = m_spec;
  const std::string& dir = m_dir;
  const std::string& key = m_key;
  const std::string& log_path = m_log_path;
  const double stage_seconds = m_stage_seconds;
  const auto start = m_start;
  auto duration = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  // The publish, as a job that outlives this call when published in the
  // background: it captures values, the cache, the remover and the graph's
  // component and split rules (which outlive every job) only. It first
  // walks the install directory: output that could be published but never
  // staged (a path too long, a FIFO) and split rules that do not apply are
  // the component's failure, deterministic (recorded, not retried).
  auto publish = [&cache = ctx.cache, &remover = ctx.remover, &stop = ctx.stop, key,
                  install_dir = spec.install_dir, meta = ctx.meta_for(duration, c.id), dir,
                  name = c.name, kept = kept_sandbox_dir(ctx.cache.root(), c.id), log_path,
                  stage_seconds, start, &component = c, split_rules = ctx.graph.split_rules,
                  saved_spec = spec, holder = ctx.holder]() -> BuildReport {
    if (stop.load()) {
      remover.add(dir);
      return {BuildOutcome::cancelled, 0, "stop requested", log_path};
    }
    std::string trouble;
    if (auto publishable = check_publishable(install_dir); !publishable) {
      trouble = "cannot publish: " + publishable.error().to_string();
    } else if (component.chunk_def != nullptr && split_rules != nullptr) {
      if (auto split = record_products(component, *split_rules, install_dir); !split)
        trouble = "cannot split the artifact: " + split.error().to_string();
    }
    if (!trouble.empty()) {
      if (is_machine_trouble(trouble)) {
        remover.add(dir);
        return {BuildOutcome::abandoned, 0, trouble, log_path};
      }
      (void)keep_failed_sandbox(cache.root(), &saved_spec, dir, kept);
      (void)cache.failures().record(key, log_path, first_line(trouble), holder);
      return {BuildOutcome::failed, 0, trouble, log_path};
    }
    auto publish_start = std::chrono::steady_clock::now();
    auto published = cache.insert(key, install_dir, meta, Ownership::take);
    double publish_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - publish_start).count();
    remover.add(dir);
    if (!published)
      return {BuildOutcome::abandoned, 0, "cannot publish: " + published.error().to_string(),
              log_path};
    // Built now: the sandbox kept from an earlier failed attempt is stale.
    // It moves into a build directory named after this worker (at once),
    // and goes in the background; if this worker exits first, the next
    // worker's clearing of dead workers' build directories removes it.
    if (path_exists(kept)) {
      auto stale = cache.build_dirs().make(name + "-kept");
      if (stale && ::rename(kept.c_str(), (*stale + "/kept").c_str()) == 0) {
        remover.add(*stale);
      } else {
        (void)remove_sandbox(kept);
        if (stale) (void)remove_sandbox(*stale);
      }
    }
    BuildReport report{*published == PublishOutcome::inserted ? BuildOutcome::published
                                                              : BuildOutcome::already_present,
                       0, {}, log_path, stage_seconds, publish_seconds};
    report.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    report.finished_ms = now_ms();
    return report;
  };
  if (ctx.publish_later) {
    ctx.publish_later(std::move(publish));
    return {BuildOutcome::publishing, 0, {}, log_path, stage_seconds, 0};
  }
  return publish();
}

}  // namespace

std::variant<BuildReport, std::unique_ptr<PreparedChunk>> prepare_chunk(
    const BuildContext& ctx, const GitMirrors& git, std::size_t index, const std::string& log_path,
    bool claimed) {
  auto build = std::make_unique<ChunkBuild>(ctx, git, index, log_path, claimed);
  if (auto ended = build->prepare()) return std::move(*ended);
  return std::unique_ptr<PreparedChunk>(std::move(build));
}

BuildReport build_chunk(const BuildContext& ctx, const GitMirrors& git, std::size_t index,
                        const std::string& log_path) {
  auto prepared = prepare_chunk(ctx, git, index, log_path, true);
  if (auto* ended = std::get_if<BuildReport>(&prepared)) return std::move(*ended);
  return std::get<std::unique_ptr<PreparedChunk>>(prepared)->run(ctx.meanwhile);
}

}  // namespace gang
