// Tests of the fingerprint and the per-problem factor cache (factor_cache.h).
#include "nodes/linalg/factor_cache.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

namespace ddn::linalg {
namespace {

TEST(Fingerprint, TellsProblemsApart) {
  std::vector<double> a(101);
  for (size_t i = 0; i < a.size(); ++i) a[i] = std::sin(static_cast<double>(i));
  std::set<uint64_t> seen;
  seen.insert(Fingerprint().Add(a.data(), 101).value());
  // Every single-bit change of one value, in every position of the four lanes and the tail.
  for (size_t i : {0, 1, 2, 3, 50, 99, 100}) {
    for (int bit : {0, 1, 31, 52, 63}) {
      std::vector<double> b = a;
      uint64_t u;
      std::memcpy(&u, &b[i], 8);
      u ^= 1ull << bit;
      std::memcpy(&b[i], &u, 8);
      EXPECT_TRUE(seen.insert(Fingerprint().Add(b.data(), 101).value()).second) << i << " " << bit;
    }
  }
  // Swapped values, and the same values split differently between arrays.
  std::vector<double> s = a;
  std::swap(s[4], s[5]);
  EXPECT_TRUE(seen.insert(Fingerprint().Add(s.data(), 101).value()).second);
  EXPECT_NE(Fingerprint().Add(a.data(), 50).Add(a.data() + 50, 51).value(),
            Fingerprint().Add(a.data(), 51).Add(a.data() + 51, 50).value());
  EXPECT_EQ(Fingerprint().Add(a.data(), 101).value(), Fingerprint().Add(a.data(), 101).value());
  const double zero = 0.0, negative_zero = -0.0;
  EXPECT_NE(Fingerprint().Add(&zero, 1).value(), Fingerprint().Add(&negative_zero, 1).value());
}

TEST(FactorCache, ServesOnlyTheStoredKey) {
  FactorCache cache;
  std::vector<double> out;
  EXPECT_FALSE(cache.Lookup(3, 42, &out));
  const std::vector<double> f = {1, 2, 3};
  cache.Store(3, 42, f.data(), 3);
  EXPECT_TRUE(cache.Lookup(3, 42, &out));
  EXPECT_EQ(out, f);
  EXPECT_FALSE(cache.Lookup(3, 43, &out));
  EXPECT_FALSE(cache.Lookup(2, 42, &out));
  cache.Store(3, 7, f.data(), 2);
  EXPECT_FALSE(cache.Lookup(3, 42, &out));
  EXPECT_TRUE(cache.Lookup(3, 7, &out));
  EXPECT_EQ(out.size(), 2u);
}

TEST(FactorCache, ConcurrentUseIsSafe) {
  FactorCache cache;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&cache, t]() {
      std::vector<double> out;
      for (int i = 0; i < 2000; ++i) {
        const int64_t index = i % 17;
        const uint64_t key = static_cast<uint64_t>(t * 100000 + i);
        const std::vector<double> f(5, static_cast<double>(key));
        cache.Store(index, key, f.data(), 5);
        if (cache.Lookup(index, key, &out)) {
          for (double v : out) EXPECT_EQ(v, static_cast<double>(key));
        }
      }
    });
  }
  for (auto& th : threads) th.join();
}

}  // namespace
}  // namespace ddn::linalg
