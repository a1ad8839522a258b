// gang cache ls|show|verify|repair|gc|forget|clean: inspect and maintain the artifact cache.
#include <cxxopts.hpp>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <string>

#include "cache/artifact_cache.hpp"
#include "cache/tree_cache.hpp"
#include "gang/cache_cleaning.hpp"
#include "gang/cli.hpp"
#include "gang/json_text.hpp"
#include "gang/commands.hpp"
#include "gang/config.hpp"
#include "util/fs.hpp"

namespace gang {

namespace {

constexpr const char* k_usage =
    "usage: gang cache ls [--json]\n"
    "       gang cache show KEY\n"
    "       gang cache verify [--json]        (re-hashes every blob; drops damaged artifacts)\n"
    "       gang cache repair [--json]        (rebuilds the index from the blob store)\n"
    "       gang cache gc [--max-size SIZE] [--keep-failed AGE]\n"
    "                (SIZE like 10G, 500M; kept sandboxes of failed builds older than AGE,\n"
    "                 default 7d, like 12h, 30m, 0 for all, are removed too)\n"
    "       gang cache forget KEY\n"
    "       gang cache clean                  (removes the whole cache, kept sandboxes included)\n"
    "       gang cache insert KEY DIR         (plumbing: publish a directory tree)\n"
    "       gang cache stage KEY DEST [--link] [--verify]   (plumbing: materialise, by copy)\n"
    "All accept --cache DIR (default: gang.conf, GANG_CACHE, else $XDG_CACHE_HOME/gang).\n";

int fail(const std::string& message) {
  std::fprintf(stderr, "gang: error: %s\n", message.c_str());
  return 1;
}


std::string format_time(std::int64_t ms) {
  if (ms <= 0) return "-";
  std::time_t t = static_cast<std::time_t>(ms / 1000);
  struct tm tm {};
  ::localtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string format_duration(std::chrono::milliseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", static_cast<double>(d.count()) / 1000.0);
  return buf;
}

int cache_ls(ArtifactCache& cache, bool json) {
  auto all = cache.list();
  if (!all) return fail(all.error().to_string());
  if (json) {
    std::string out = "[";
    for (std::size_t i = 0; i < all->size(); ++i) {
      const auto& a = (*all)[i];
      out += i == 0 ? "\n" : ",\n";
      out += "  {\"key\": " + json_string(a.key) + ", \"manifest\": " + json_string(a.manifest_digest) +
             ", \"size\": " + std::to_string(a.size) + ", \"files\": " + std::to_string(a.file_count) +
             ", \"build_duration_ms\": " + std::to_string(a.meta.build_duration.count()) +
             ", \"created_ms\": " + std::to_string(a.created_ms) +
             ", \"last_used_ms\": " + std::to_string(a.last_used_ms) +
             ", \"built_by\": {\"host\": " + json_string(a.meta.built_by.host) +
             ", \"pid\": " + std::to_string(a.meta.built_by.pid) +
             ", \"instance\": " + std::to_string(a.meta.built_by.instance) +
             ", \"gang_id\": " + json_string(a.meta.built_by.gang_id) + "}, \"extra\": {";
      bool first = true;
      for (const auto& [name, value] : a.meta.extra) {
        out += (first ? "" : ", ") + json_string(name) + ": " + json_string(value);
        first = false;
      }
      out += "}}";
    }
    out += all->empty() ? "]\n" : "\n]\n";
    std::fputs(out.c_str(), stdout);
    return 0;
  }
  // The key column is as wide as the longest key, so headings line up.
  int width = 3;
  for (const auto& a : *all) width = std::max(width, static_cast<int>(a.key.size()));
  std::printf("%-*s %8s %7s %9s  %s\n", width, "KEY", "SIZE", "FILES", "BUILD", "LAST USED");
  for (const auto& a : *all)
    std::printf("%-*s %8s %7llu %9s  %s\n", width, a.key.c_str(), format_size(a.size).c_str(),
                static_cast<unsigned long long>(a.file_count),
                format_duration(a.meta.build_duration).c_str(), format_time(a.last_used_ms).c_str());
  return 0;
}

int cache_show(ArtifactCache& cache, const std::string& key) {
  auto info = cache.lookup(key);
  if (!info) return fail(info.error().to_string());
  auto failure = cache.failures().of(key);
  if (!failure) return fail(failure.error().to_string());
  auto claim = cache.claims().claim_of(key);
  if (!claim) return fail(claim.error().to_string());
  if (!*info && !*failure && !*claim) return fail("nothing is cached for " + key);
  std::printf("key:       %s\n", key.c_str());
  if (*info) {
    const auto& a = **info;
    std::printf("manifest:  %s\n", a.manifest_digest.c_str());
    std::printf("size:      %s (%llu bytes)\n", format_size(a.size).c_str(),
                static_cast<unsigned long long>(a.size));
    std::printf("files:     %llu\n", static_cast<unsigned long long>(a.file_count));
    std::printf("built:     %s in %s by %s\n", format_time(a.created_ms).c_str(),
                format_duration(a.meta.build_duration).c_str(), a.meta.built_by.describe().c_str());
    std::printf("last used: %s\n", format_time(a.last_used_ms).c_str());
    for (const auto& [name, value] : a.meta.extra)
      std::printf("extra %s: %s\n", name.c_str(), value.c_str());
  } else {
    std::printf("artifact:  not cached\n");
  }
  if (*claim)
    std::printf("claimed:   by %s, lease until %s\n", (*claim)->holder.describe().c_str(),
                format_time((*claim)->lease_until_ms).c_str());
  if (*failure)
    std::printf("failed:    %s at %s by %s (log: %s)\n", (*failure)->reason.c_str(),
                format_time((*failure)->time_ms).c_str(), (*failure)->failed_by.describe().c_str(),
                (*failure)->log_path.c_str());
  return 0;
}


int cache_verify(ArtifactCache& cache, bool json) {
  auto report = cache.verify();
  if (!report) return fail(report.error().to_string());
  // The unpacked trees too (after the blobs: a tree of a dropped artifact
  // is damaged by definition).
  TreeCache trees(cache);
  auto checked = trees.check_all();
  if (!checked) return fail(checked.error().to_string());
  bool ok = report->ok() && checked->damaged.empty();
  if (json) {
    std::printf("{\"ok\": %s, \"blobs_checked\": %llu, \"bad_blobs\": %s, \"dropped_artifacts\": %s, "
                "\"trees_checked\": %llu, \"damaged_trees\": %s}\n",
                ok ? "true" : "false", static_cast<unsigned long long>(report->blobs_checked),
                json_strings(report->bad_blobs).c_str(), json_strings(report->dropped_artifacts).c_str(),
                static_cast<unsigned long long>(checked->trees), json_strings(checked->damaged).c_str());
    return ok ? 0 : 1;
  }
  std::printf("checked %llu blobs and %llu trees\n", static_cast<unsigned long long>(report->blobs_checked),
              static_cast<unsigned long long>(checked->trees));
  for (const auto& blob : report->bad_blobs) std::printf("bad blob: %s (removed)\n", blob.c_str());
  for (const auto& key : report->dropped_artifacts) std::printf("dropped artifact: %s\n", key.c_str());
  for (const auto& id : checked->damaged) std::printf("damaged tree: %s (removed; made again when needed)\n", id.c_str());
  if (!ok) {
    std::fprintf(stderr, "gang: error: the cache had %zu bad blobs, %zu damaged artifacts and %zu damaged trees\n",
                 report->bad_blobs.size(), report->dropped_artifacts.size(), checked->damaged.size());
    return 1;
  }
  std::printf("ok\n");
  return 0;
}

int cache_repair(const std::string& root, bool json) {
  auto report = ArtifactCache::repair(root);
  if (!report) return fail(report.error().to_string());
  if (json) {
    std::printf("{\"restored\": %llu, \"kept_from_old_index\": %llu, \"manifests_found\": %llu, "
                "\"old_manifests\": %llu, \"incomplete\": %llu, \"old_index_readable\": %s, "
                "\"old_index\": %s}\n",
                static_cast<unsigned long long>(report->restored),
                static_cast<unsigned long long>(report->kept_from_old_index),
                static_cast<unsigned long long>(report->manifests_found),
                static_cast<unsigned long long>(report->old_manifests),
                static_cast<unsigned long long>(report->incomplete),
                report->old_index_readable ? "true" : "false", json_string(report->old_index).c_str());
    return 0;
  }
  std::printf("restored %llu artifacts (%llu from the old index, the rest from %llu manifests "
              "recording their key)\n",
              static_cast<unsigned long long>(report->restored),
              static_cast<unsigned long long>(report->kept_from_old_index),
              static_cast<unsigned long long>(report->manifests_found));
  if (report->incomplete != 0)
    std::printf("skipped %llu manifests whose blobs are missing\n",
                static_cast<unsigned long long>(report->incomplete));
  if (report->old_manifests != 0)
    std::printf("%llu manifests were written by an older gang and record no key: their artifacts "
                "are rebuilt when needed\n",
                static_cast<unsigned long long>(report->old_manifests));
  if (!report->old_index.empty())
    std::printf("the old index was %s and is kept at %s (remove it when satisfied)\n",
                report->old_index_readable ? "readable" : "unreadable", report->old_index.c_str());
  std::printf("claims and failure records were dropped\n");
  return 0;
}

int cache_gc(ArtifactCache& cache, const std::string& max_size, const std::string& keep_failed) {
  std::chrono::seconds age = k_default_keep_failed;
  if (!keep_failed.empty()) {
    auto parsed = parse_age(keep_failed);
    if (!parsed) return fail("--keep-failed: " + parsed.error().to_string());
    age = *parsed;
  }
  std::optional<std::uint64_t> limit;
  if (!max_size.empty()) {
    auto parsed = parse_size(max_size);
    if (!parsed) return fail("--max-size: " + parsed.error().to_string());
    limit = *parsed;
  }
  auto report = cache.gc(limit);
  if (!report) return fail(report.error().to_string());
  // Trees of evicted artifacts hold their blobs' inodes: they go too.
  TreeCache trees(cache);
  // And trees no build used for as long as kept sandboxes are kept.
  auto pruned = trees.prune(false, static_cast<std::int64_t>(age.count()));
  if (!pruned) return fail(pruned.error().to_string());
  std::printf("removed %llu unpacked trees of artifacts no longer cached or unused for long (%llu in use, kept)\n",
              static_cast<unsigned long long>(pruned->removed),
              static_cast<unsigned long long>(pruned->kept_in_use));
  for (const auto& key : report->evicted) std::printf("evicted %s\n", key.c_str());
  std::printf("removed %llu blobs (%s) and %llu temporary files; %s in blobs now\n",
              static_cast<unsigned long long>(report->blobs_removed),
              format_size(report->bytes_freed).c_str(),
              static_cast<unsigned long long>(report->temp_files_removed),
              format_size(report->bytes_after).c_str());
  if (limit && report->bytes_after > *limit)
    std::printf("still above %s: the rest is claimed or being staged\n", format_size(*limit).c_str());
  auto kept = remove_kept_sandboxes(cache.root(), age, static_cast<std::int64_t>(std::time(nullptr)));
  std::string names;
  for (const auto& name : kept.removed) names += " " + name;
  std::printf("removed %zu kept sandbox%s of failed builds older than %s%s%s\n", kept.removed.size(),
              kept.removed.size() == 1 ? "" : "es", keep_failed.empty() ? "7d" : keep_failed.c_str(),
              names.empty() ? "" : ":", names.c_str());
  for (const auto& error : kept.errors) std::fprintf(stderr, "gang: warning: %s\n", error.c_str());
  return kept.errors.empty() ? 0 : 1;
}

}  // namespace

int cmd_cache(const Args& args) {
  if (args.empty() || args[0] == "-h" || args[0] == "--help") {
    std::fputs(k_usage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  const std::string action = args[0];
  cxxopts::Options options("gang cache " + action, "inspect and maintain the artifact cache");
  options.add_options()
      ("cache", "cache directory", cxxopts::value<std::string>())
      ("json", "ls, verify, repair: machine-readable output")
      ("max-size", "gc: evict least-recently-used artifacts down to SIZE", cxxopts::value<std::string>())
      ("keep-failed", "gc: remove kept sandboxes of failed builds older than AGE", cxxopts::value<std::string>())
      ("copy", "stage: copy the files (the default; kept for old scripts)")
      ("link", "stage: hard-link the cache's own blobs instead of copying (experts: "
               "an edit to a staged file then changes the cache)")
      ("verify", "stage: re-hash every blob before using it")
      ("h,help", "show this help")
      ("positional", "", cxxopts::value<std::vector<std::string>>());
  options.parse_positional({"positional"});
  auto result = parse_options(options, Args(args.begin() + 1, args.end()), k_usage);
  if (!result) return result.error();
  const cxxopts::ParseResult& parsed = *result;
  std::vector<std::string> positional;
  if (parsed.count("positional") != 0) positional = parsed["positional"].as<std::vector<std::string>>();

  auto config = load_config(".");
  if (!config) return fail(config.error().to_string());
  std::string root = config->cache_dir;
  if (parsed.count("cache") != 0) root = parsed["cache"].as<std::string>();

  auto needs = [&](std::size_t n) { return positional.size() == n; };
  bool known = action == "ls" || action == "show" || action == "verify" || action == "gc" ||
               action == "forget" || action == "insert" || action == "stage" || action == "clean" ||
               action == "repair";
  if (!known) return fail("unknown cache command \"" + action + "\"\n" + k_usage);
  bool takes_key = action == "show" || action == "forget";
  bool takes_two = action == "insert" || action == "stage";
  if (!needs(takes_two ? 2 : takes_key ? 1 : 0))
    return fail(std::string(takes_two   ? "expected KEY and a directory"
                            : takes_key ? "expected one KEY"
                                        : "unexpected argument") +
                " for 'gang cache " + action + "'");

  if (action == "clean") {  // without opening it, which would create it
    if (!path_exists(root)) {
      std::printf("no cache at %s: nothing to remove\n", root.c_str());
      return 0;
    }
    auto kept = kept_sandboxes(root);
    auto removed = remove_cache(root);
    if (!removed) return fail(removed.error().to_string());
    std::printf("removed the cache at %s (with %zu kept sandbox%s of failed builds)\n", root.c_str(),
                kept.size(), kept.size() == 1 ? "" : "es");
    return 0;
  }
  if (action == "repair") {  // without opening it: its index may be damaged
    if (!path_exists(root)) return fail("no cache at " + root);
    return cache_repair(root, parsed.count("json") != 0);
  }
  auto cache = ArtifactCache::open(root);
  if (!cache) return fail(cache.error().to_string());
  if (action == "ls") return cache_ls(*cache, parsed.count("json") != 0);
  if (action == "show") return cache_show(*cache, positional[0]);
  if (action == "verify") return cache_verify(*cache, parsed.count("json") != 0);
  if (action == "gc")
    return cache_gc(*cache, parsed.count("max-size") != 0 ? parsed["max-size"].as<std::string>() : "",
                    parsed.count("keep-failed") != 0 ? parsed["keep-failed"].as<std::string>() : "");
  if (action == "insert") {
    ArtifactMeta meta;
    meta.built_by = cache->holder();
    auto inserted = cache->insert(positional[0], positional[1], meta);
    if (!inserted) return fail(inserted.error().to_string());
    std::printf("%s %s\n", *inserted == PublishOutcome::inserted ? "inserted" : "Bah! already present:",
                positional[0].c_str());
    return 0;
  }
  if (action == "stage") {
    auto staged = cache->stage(positional[0], positional[1],
                               parsed.count("link") != 0 ? StageMode::hardlink : StageMode::copy,
                               parsed.count("verify") != 0 ? Verify::yes : Verify::no);
    if (!staged) return fail(staged.error().to_string());
    return 0;
  }
  auto forgot = cache->forget(positional[0]);
  if (!forgot) return fail(forgot.error().to_string());
  if (!*forgot) return fail("nothing is cached for " + positional[0]);
  TreeCache trees(*cache);
  (void)trees.prune();  // its trees, unless a build uses them now
  std::printf("forgot %s\n", positional[0].c_str());
  return 0;
}

}  // namespace gang
