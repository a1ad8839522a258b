#include "gang/background_remover.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "util/fs.hpp"

namespace gang {
namespace {

TEST(BackgroundRemover, RemovesQueuedDirectoriesInTheBackground) {
  TempDir dir;
  std::vector<std::string> dirs;
  for (int i = 0; i < 5; ++i) {
    dirs.push_back(dir.path() + "/d" + std::to_string(i));
    ASSERT_TRUE(make_dirs(dirs.back() + "/a/b"));
    ASSERT_TRUE(write_file(dirs.back() + "/a/b/f", "x"));
  }
  BackgroundRemover remover([](const std::string& d) { (void)remove_tree(d); });
  for (const auto& d : dirs) remover.add(d);
  remover.drain();
  for (const auto& d : dirs) EXPECT_FALSE(path_exists(d)) << d;
}

TEST(BackgroundRemover, AddDoesNotWaitForTheRemoval) {
  std::atomic<bool> release{false};
  std::atomic<int> removed{0};
  BackgroundRemover remover([&](const std::string&) {
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ++removed;
  });
  auto start = std::chrono::steady_clock::now();
  remover.add("one");
  remover.add("two");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(500));
  EXPECT_EQ(removed, 0);
  release = true;
  remover.drain();
  EXPECT_EQ(removed, 2);
}

TEST(BackgroundRemover, DestructionFinishesTheCurrentDirectoryAndAbandonsTheRest) {
  std::atomic<int> started{0};
  std::atomic<int> finished{0};
  {
    BackgroundRemover remover([&](const std::string&) {
      ++started;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      ++finished;
    });
    for (int i = 0; i < 10; ++i) remover.add("d" + std::to_string(i));
    while (started == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  EXPECT_EQ(started, finished) << "nothing is cut off half-way";
  EXPECT_LT(finished, 10) << "the queue is abandoned at exit";
}

}  // namespace
}  // namespace gang
