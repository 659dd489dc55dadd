// ddn/workload.h: the one synthetic workload of the benchmarks (`ddn bench`, the Google Benchmark targets).
//
// A pooling-like input (B, N) or (B, N, D) holds, per problem, N points around a centre c ~ N(0, I): an inlier is
// c + N(0, I); with probability `outlier_fraction` a point is instead an outlier at distance U(5, 10) from c in a
// uniformly random direction (for D = 1: ±U(5, 10)). The numbers come from ddn::Rng (random.h), so a seed gives
// the same workload on every platform, and a figure measured by `ddn bench robust_pool --shape B,N` and one from
// robust_pool_benchmark at the same shape time the same kind of data.
#pragma once

#include <cstdint>

#include "ddn/random.h"
#include "ddn/tensor.h"

namespace ddn {

// Fills t, of shape (B, N) or (B, N, D...), as above (the trailing axes are one point's coordinates).
void FillClusters(Tensor* t, double outlier_fraction, Rng* rng);

// A new (b, n) tensor (d = 1) or (b, n, d) tensor filled by FillClusters from Rng(seed).
Tensor ClusteredPoints(int64_t b, int64_t n, int64_t d, double outlier_fraction, uint64_t seed);

}  // namespace ddn
