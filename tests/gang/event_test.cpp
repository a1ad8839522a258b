#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <csignal>

#include "gang/event.hpp"
#include "gang/gang_view.hpp"

namespace gang {
namespace {

TEST(Event, RoundTripsThroughALineWithEscapes) {
  Event e;
  e.type = EventType::failed;
  e.instance = 3;
  e.time_ms = 1234567;
  e.component = "lib\tfoo";
  e.message = "line one\nline two \\ done";
  e.detail = "/cache/logs/x.log";
  e.seconds = 1.5;
  e.done = 2;
  e.todo = 5;
  e.total = 9;
  e.stage_seconds = 0.25;
  e.publish_seconds = 0.125;
  e.key = "lib\tfoo.0123";
  std::string line = serialise_event(e);
  ASSERT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one event, one line";
  auto parsed = parse_event(std::string_view(line).substr(0, line.size() - 1));
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->type, EventType::failed);
  EXPECT_EQ(parsed->instance, 3);
  EXPECT_EQ(parsed->time_ms, 1234567);
  EXPECT_EQ(parsed->component, e.component);
  EXPECT_EQ(parsed->message, e.message);
  EXPECT_EQ(parsed->detail, e.detail);
  EXPECT_DOUBLE_EQ(parsed->seconds, 1.5);
  EXPECT_EQ(parsed->todo, 5);
  EXPECT_EQ(parsed->total, 9);
  EXPECT_DOUBLE_EQ(parsed->stage_seconds, 0.25);
  EXPECT_DOUBLE_EQ(parsed->publish_seconds, 0.125);
  EXPECT_EQ(parsed->key, e.key);
}

TEST(Event, RejectsLinesThatAreNotEvents) {
  EXPECT_FALSE(parse_event("make: *** [all] Error 1"));
  EXPECT_FALSE(parse_event("@gang\tnonsense\t1\t2\t\t\t\t0\t0\t0\t0"));
  EXPECT_FALSE(parse_event("@gang\tlog\t1"));
}

TEST(GangView, RendersYbdShapedLinesAndASummary) {
  GangView view(1000);
  Event hello{EventType::hello, 1, 1000, "", "42", "", 0, 1, 3, 4, 0, 0, {}};
  EXPECT_NE(view.on_event(hello)->find("seed 42"), std::string::npos);
  Event start{EventType::build_start, 1, 2000, "libfoo", "libfoo.abc", "", 0, 0, 3, 4, 0, 0, {}};
  EXPECT_EQ(*view.on_event(start), "00:00:01 [0/3/4] [#1] [libfoo] Starting build (libfoo.abc)");
  EXPECT_NE(view.status(2500).find("libfoo(#1)"), std::string::npos);
  Event done{EventType::build_done, 1, 63000, "libfoo", "", "", 61.0, 2, 3, 4, 0, 0, {}};
  EXPECT_NE(view.on_event(done)->find("Elapsed time for build 00:01:01"), std::string::npos);
  Event bah{EventType::bah, 2, 64000, "libbar", "claimed by host:1 #1", "", 2.0, 2, 2, 4, 0, 0, {}};
  EXPECT_NE(view.on_event(bah)->find("[#2] [libbar] Bah! claimed by host:1 #1"), std::string::npos);
  Event failed{EventType::failed, 2, 65000, "libbaz", "build-commands failed\n  the log's tail", "/l/baz.log", 0, 2, 2, 4, 0, 0, {}};
  (void)view.on_event(failed);
  std::string summary = view.summary(70000);
  // Counts per instance; the names go to the --log file only.
  EXPECT_NE(summary.find("instance 1: built 1, Bah! 0, busy 61.0 s, seed 42"), std::string::npos)
      << summary;
  EXPECT_NE(summary.find("instance 2: built 0, Bah! 1, busy 0.0 s"), std::string::npos) << summary;
  EXPECT_EQ(summary.find("libfoo"), std::string::npos) << summary;
  EXPECT_EQ(view.component_lists(),
            (std::vector<std::string>{"instance 1 built: libfoo", "instance 2 built: (none)",
                                      "instance 2 lost (Bah!): libbar"}));
  EXPECT_NE(summary.find("Bah! 1 lost race, 2.0 s of work wasted"), std::string::npos);
  EXPECT_NE(summary.find("failures: 1\n    libbaz: build-commands failed\n      log:   /l/baz.log\n"
                         "      shell: gang shell libbaz"),
            std::string::npos)
      << summary;
  EXPECT_EQ(view.bah_count(), 1);
  // Another instance reporting the same (recorded) failure is a log line, not a second failure.
  Event again{EventType::failed, 1, 66000, "libbaz", "recorded failure: x", "/l/baz.log", 0, 1, 3, 4, 0, 0, {}};
  EXPECT_NE(view.on_event(again)->find("[libbaz] Skipping: recorded failure: x"), std::string::npos);
  EXPECT_EQ(view.failures().size(), 1u);
}

// ybd's counter: todo is what this run has to build, done what it built or
// found out of todo. On a partly cached cache (18 of 21 cached), with a
// second worker starting after the first built something, it never shows
// done > todo nor counts what was cached before the run.
TEST(GangView, CounterCountsOnlyThisRunsWorkOutOfTodo) {
  GangView view(0, 21);
  auto event = [](EventType type, int instance, const char* component, int done, int todo) {
    Event e;
    e.type = type;
    e.instance = instance;
    e.time_ms = 1000;
    e.component = component;
    e.done = done;
    e.todo = todo;
    e.total = 21;
    return e;
  };
  EXPECT_EQ(view.counter(), "[0/0/21]") << "before any worker reported";
  EXPECT_EQ(view.on_event(event(EventType::hello, 1, "", 18, 3))->substr(9, 9), "[0/3/21] ");
  (void)view.on_event(event(EventType::build_start, 1, "a", 18, 3));
  EXPECT_EQ(view.on_event(event(EventType::build_done, 1, "a", 19, 3))->substr(9, 9), "[1/3/21] ");
  // Worker 2 starts now: it finds 19 cached and 2 to do; the gang's todo stays 3.
  (void)view.on_event(event(EventType::hello, 2, "", 19, 2));
  EXPECT_EQ(view.counter(), "[1/3/21]");
  (void)view.on_event(event(EventType::build_done, 2, "b", 20, 2));
  EXPECT_EQ(view.counter(), "[2/3/21]");
  // Worker 1 finds b built by worker 2: counted once, not twice.
  EXPECT_FALSE(view.on_event(event(EventType::cached, 1, "b", 20, 3)));
  EXPECT_EQ(view.counter(), "[2/3/21]");
  (void)view.on_event(event(EventType::build_done, 1, "c", 21, 3));
  EXPECT_EQ(view.counter(), "[3/3/21]");
  EXPECT_EQ(view.done_this_run(), 3);
  EXPECT_EQ(view.todo(), 3);
  EXPECT_EQ(view.status(2000).substr(0, 8), "[3/3/21]");
  EXPECT_EQ(view.frontend_line("x", 2000), "00:00:02 [3/3/21] x");
}

TEST(GangView, AFullyCachedTargetShowsNothingToDo) {
  GangView view(0, 5);
  Event hello;
  hello.type = EventType::hello;
  hello.done = 5;
  hello.todo = 0;
  hello.total = 5;
  (void)view.on_event(hello);
  EXPECT_EQ(view.counter(), "[0/0/5]");
}


TEST(EventWriter, NeverBlocksWhenTheReaderFallsBehindAndLosesNothing) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  ::fcntl(fds[1], F_SETPIPE_SZ, 4096);  // a small pipe fills at once
  EventWriter writer(fds[1]);
  Event e;
  e.type = EventType::log;
  e.message = std::string(200, 'x');
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 2000; ++i) {
    e.instance = i;
    writer.send(e);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  EXPECT_TRUE(writer.pending()) << "the rest waits in memory, not in the pipe";

  // The frontend catches up: every event arrives, in order.
  int next = 0;
  std::string buffer;
  ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (next < 2000 && std::chrono::steady_clock::now() < deadline) {
    writer.flush();
    char chunk[4096];
    ssize_t n = ::read(fds[0], chunk, sizeof chunk);
    if (n > 0) buffer.append(chunk, static_cast<std::size_t>(n));
    std::size_t nl;
    while ((nl = buffer.find('\n')) != std::string::npos) {
      auto parsed = parse_event(std::string_view(buffer).substr(0, nl));
      ASSERT_TRUE(parsed);
      EXPECT_EQ(parsed->instance, next++);
      buffer.erase(0, nl + 1);
    }
  }
  EXPECT_EQ(next, 2000);
  EXPECT_FALSE(writer.pending());
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(EventWriter, DropsEverythingOnceTheReaderIsGone) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  ::close(fds[0]);
  ::signal(SIGPIPE, SIG_IGN);
  EventWriter writer(fds[1]);
  Event e;
  e.message = std::string(200, 'x');
  for (int i = 0; i < 2000; ++i) writer.send(e);  // far more than a pipe holds
  EXPECT_FALSE(writer.pending()) << "nothing piles up for a frontend that is gone";
  ::close(fds[1]);
}

}  // namespace
}  // namespace gang
