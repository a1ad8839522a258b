// bench_cache.cpp: times one artifact-cache operation inside one process, so
// that scripts/bench-cache can tell the cost of the operation from the cost
// of starting the gang binary. Prints the seconds the operation took (the
// cache is opened before the clock starts).
//
//   gang_bench_cache insert copy|take CACHE KEY DIR
//   gang_bench_cache stage CACHE KEY DEST [--repeat N]   (DEST.1 .. DEST.N if N > 1;
//                                                         prints the best time)
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cache/artifact_cache.hpp"

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: gang_bench_cache insert copy|take CACHE KEY DIR\n"
               "       gang_bench_cache stage CACHE KEY DEST [--repeat N]\n");
  return 2;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace gang;
  if (argc < 5) return usage();
  std::string action = argv[1];
  if (action == "insert" && argc == 6) {
    std::string how = argv[2];
    if (how != "copy" && how != "take") return usage();
    auto cache = ArtifactCache::open(argv[3]);
    if (!cache) {
      std::fprintf(stderr, "gang_bench_cache: %s\n", cache.error().to_string().c_str());
      return 1;
    }
    ArtifactMeta meta;
    meta.built_by = cache->holder();
    auto start = std::chrono::steady_clock::now();
    auto inserted = cache->insert(argv[4], argv[5], meta,
                                  how == "take" ? Ownership::take : Ownership::copy);
    double took = seconds_since(start);
    if (!inserted) {
      std::fprintf(stderr, "gang_bench_cache: %s\n", inserted.error().to_string().c_str());
      return 1;
    }
    std::printf("%.4f\n", took);
    return 0;
  }
  if (action == "stage" && (argc == 5 || argc == 7)) {
    int repeat = 1;
    if (argc == 7) {
      if (std::string(argv[5]) != "--repeat") return usage();
      repeat = std::atoi(argv[6]);
      if (repeat < 1) return usage();
    }
    auto cache = ArtifactCache::open(argv[2]);
    if (!cache) {
      std::fprintf(stderr, "gang_bench_cache: %s\n", cache.error().to_string().c_str());
      return 1;
    }
    double best = 0;
    for (int i = 1; i <= repeat; ++i) {
      std::string dest = repeat == 1 ? argv[4] : std::string(argv[4]) + "." + std::to_string(i);
      auto start = std::chrono::steady_clock::now();
      auto staged = cache->stage(argv[3], dest);
      double took = seconds_since(start);
      if (!staged) {
        std::fprintf(stderr, "gang_bench_cache: %s\n", staged.error().to_string().c_str());
        return 1;
      }
      if (i == 1 || took < best) best = took;
    }
    std::printf("%.4f\n", best);
    return 0;
  }
  return usage();
}
