// ParallelFor: every item exactly once, worker indices in range, errors rethrown deterministically, nested
// and concurrent loops serialised instead of deadlocking, thread counts validated.
#include "ddn/parallel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "ddn/error.h"

namespace ddn {
namespace {

TEST(ParallelFor, VisitsEveryItemOnceForAnyThreadCountAndChunk) {
  for (int threads : {0, 1, 2, 3, 8}) {
    for (int64_t items : {1, 2, 7, 1000, 100003}) {
      for (int64_t chunk : {1, 5, 64}) {
        std::vector<std::atomic<int>> seen(items);
        std::atomic<int> max_worker{0};
        ParallelFor(items, threads, chunk, [&](int64_t begin, int64_t end, int worker) {
          ASSERT_LT(begin, end);
          int m = max_worker.load();
          while (worker > m && !max_worker.compare_exchange_weak(m, worker)) {
          }
          for (int64_t i = begin; i < end; ++i) seen[i].fetch_add(1);
        });
        for (int64_t i = 0; i < items; ++i) ASSERT_EQ(seen[i].load(), 1) << "item " << i << " threads " << threads;
        EXPECT_LT(max_worker.load(), ResolveThreadCount(threads, items));
      }
    }
  }
}

TEST(ParallelFor, ZeroItemsCallsNothing) {
  bool called = false;
  ParallelFor(0, 2, 1, [&](int64_t, int64_t, int) { called = true; });
  EXPECT_FALSE(called);
}

TEST(ParallelFor, RethrowsTheErrorOfTheLowestRangeAfterFinishingTheOthers) {
  std::atomic<int64_t> done{0};
  try {
    ParallelFor(1000, 4, 1, [&](int64_t begin, int64_t end, int) {
      for (int64_t i = begin; i < end; ++i) {
        if (i == 700 || i == 300) throw std::runtime_error("item " + std::to_string(i));
        done.fetch_add(1);
      }
    });
    FAIL() << "no exception";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "item 300");
  }
  // Every range was processed (ranges that threw stopped at the failing item).
  EXPECT_GE(done.load(), 1000 - 2 * (1000 / (8 * 4)));
}

TEST(ParallelFor, NestedLoopsRunSeriallyInsideTheOuterOne) {
  std::atomic<int64_t> total{0};
  ParallelFor(8, 2, 1, [&](int64_t begin, int64_t end, int) {
    for (int64_t i = begin; i < end; ++i) {
      ParallelFor(100, 2, 1, [&](int64_t b, int64_t e, int worker) {
        EXPECT_EQ(worker, 0);
        total.fetch_add(e - b);
      });
    }
  });
  EXPECT_EQ(total.load(), 800);
}

TEST(ParallelFor, ConcurrentCallersFromSeveralThreadsAllComplete) {
  std::vector<std::thread> callers;
  std::atomic<int64_t> total{0};
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&] {
      for (int rep = 0; rep < 50; ++rep)
        ParallelFor(1000, 2, 1, [&](int64_t b, int64_t e, int) { total.fetch_add(e - b); });
    });
  }
  for (auto& t : callers) t.join();
  EXPECT_EQ(total.load(), 4 * 50 * 1000);
}

TEST(ParallelFor, RecordsTheThreadCountsItRanWith) {
  ResetThreadCountRecord();
  EXPECT_EQ(ThreadCountsUsed().loops, 0);
  EXPECT_EQ(ThreadCountsUsed().most, 0);
  ParallelFor(100, 1, 1, [](int64_t, int64_t, int) {});
  ParallelFor(100, 2, 1, [](int64_t, int64_t, int) {
    ParallelFor(10, 2, 1, [](int64_t, int64_t, int) {});  // nested: not a loop of its own
  });
  ParallelFor(1, 2, 1, [](int64_t, int64_t, int) {});  // one item: one thread
  const ThreadCountRecord r = ThreadCountsUsed();
  EXPECT_EQ(r.loops, 3);
  EXPECT_EQ(r.fewest, 1);
  EXPECT_EQ(r.most, 2);
  ResetThreadCountRecord();
  ParallelFor(100, 2, 1, [](int64_t, int64_t, int) {});
  EXPECT_EQ(ThreadCountsUsed().fewest, 2);
  EXPECT_EQ(ThreadCountsUsed().loops, 1);
}

TEST(ParallelFor, ThreadCountsAreValidated) {
  EXPECT_THROW(ResolveThreadCount(-1, 10), InvalidInput);
  EXPECT_THROW(ResolveThreadCount(kMaxThreads + 1, 10), InvalidInput);
  try {
    ResolveThreadCount(100000, 10);
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find("100000"), std::string::npos) << e.what();
  }
  EXPECT_EQ(ResolveThreadCount(5, 3), 3);  // never more threads than items
  EXPECT_EQ(ResolveThreadCount(1, 100), 1);
  EXPECT_GE(ResolveThreadCount(0, 100), 1);
  EXPECT_LE(ResolveThreadCount(0, 100), 100);
  EXPECT_EQ(ResolveThreadCount(0, 1), 1);
}

TEST(ParallelFor, TheDefaultLeavesBusyCoresAlone) {
  EXPECT_EQ(LoadAwareThreadCount(2, 2, 0), 2);   // idle
  EXPECT_EQ(LoadAwareThreadCount(2, 2, -1), 2);  // unknown: all cores
  EXPECT_EQ(LoadAwareThreadCount(2, 2, 1), 1);   // one core taken
  EXPECT_EQ(LoadAwareThreadCount(2, 2, 2), 1);   // both: the caller alone
  EXPECT_EQ(LoadAwareThreadCount(2, 2, 9), 1);
  EXPECT_EQ(LoadAwareThreadCount(8, 8, 3), 5);
  EXPECT_EQ(LoadAwareThreadCount(4, 64, 16), 3);  // 4 of 64 CPUs: a quarter of the others' share (16·4/64 = 1)
  EXPECT_EQ(LoadAwareThreadCount(4, 64, 0), 4);
  // Busy threads of our own, one per core, for a moment: the default drops to one thread (it would also be one
  // on a machine already busy). Skipped with a fixed count from the environment.
  if (std::getenv("DDN_NUM_THREADS") || std::getenv("OMP_NUM_THREADS")) return;
  std::atomic<bool> stop{false};
  std::vector<std::thread> busy;
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  for (int i = 0; i < cores; ++i)
    busy.emplace_back([&] {
      while (!stop.load(std::memory_order_relaxed)) {
      }
    });
  int seen = 0;
  for (int attempt = 0; attempt < 20 && seen != 1; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));  // past the 20 ms sampling interval
    seen = DefaultThreadCount();
  }
  stop = true;
  for (auto& t : busy) t.join();
  EXPECT_EQ(seen, 1);
}

}  // namespace
}  // namespace ddn
