// ParallelFor: every item exactly once, worker indices in range, errors rethrown deterministically, nested
// and concurrent loops serialised instead of deadlocking, thread counts validated.
#include "ddn/parallel.h"

#include <gtest/gtest.h>

#include <atomic>
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
  EXPECT_EQ(ResolveThreadCount(0, 100), std::min(100, DefaultThreadCount()));
}

}  // namespace
}  // namespace ddn
