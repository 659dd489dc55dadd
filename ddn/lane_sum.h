// ddn/lane_sum.h: sums over an array with several independent accumulators, for memory-speed reductions.
//
// A loop `s += t(i)` is one chain of dependent additions: each waits for the previous one (3–4 cycles), so
// summing a row of 1024 doubles takes ~4000 cycles however fast memory is — slower than reading it. Neither
// GCC's auto-vectoriser nor `#pragma omp simd reduction` splits the chain into more than one vector
// accumulator. LaneSum keeps kLanes = 8 partial sums (t(i) goes to lane i mod 8) and adds them pairwise at
// the end; the compiler turns the eight lanes into independent vector registers. The order of
// the additions is fixed by n alone, so results are deterministic, but not the left-to-right order: the
// last bits may differ from a sequential sum.
//
// Use:
//   const double ss = LaneSum(n, [&](int64_t i) { return x[i] * x[i]; });
// Keep the term pure (no stores: they keep the loop from vectorising) and compute several sums as several
// passes over a row that is in cache: each is then a clean vector loop. Counts summed as doubles are exact
// below 2^53. In a kernel compiled twice (ddn/simd.h) the lanes vectorise 4 wide in the AVX2 copy, 2 wide in
// the baseline.
#pragma once

#include <cstdint>

namespace ddn {

template <typename Term>
inline double LaneSum(int64_t n, Term term) {
  constexpr int kLanes = 8;
  double acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += term(i + j);
  double tail = 0;
  for (; i < n; ++i) tail += term(i);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

}  // namespace ddn
