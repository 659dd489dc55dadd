// ddn/simd.h: the switch honours DDN_DISABLE_AVX2, and the two copies of a dispatched kernel agree to rounding.
// ctest runs this binary twice: as is, and with DDN_DISABLE_AVX2=1 (ddn_core_test.baseline_kernels).
#include "ddn/simd.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ddn/lane_sum.h"
#include "ddn/random.h"

namespace ddn {
namespace {

DDN_SIMD_BODY double SumSquaresBody(const double* x, int64_t n) {
  return LaneSum(n, [&](int64_t i) { return x[i] * x[i]; });
}
DDN_SIMD_DISPATCH(double, SumSquares, (const double* x, int64_t n), (x, n))

TEST(Simd, UseAvx2HonoursTheEnvironment) {
  const char* off = std::getenv("DDN_DISABLE_AVX2");
  if (off && std::strcmp(off, "1") == 0) {
    EXPECT_FALSE(UseAvx2()) << "DDN_DISABLE_AVX2=1 must force the baseline copies";
    return;
  }
#if defined(DDN_HAVE_SIMD_DISPATCH)
  EXPECT_EQ(UseAvx2(), static_cast<bool>(__builtin_cpu_supports("x86-64-v3")));
#else
  EXPECT_FALSE(UseAvx2());
#endif
}

TEST(Simd, UseAvx2IsReadOnce) {
  const char* old = std::getenv("DDN_DISABLE_AVX2");
  const std::string saved = old ? old : "";
  const bool first = UseAvx2();
  ::setenv("DDN_DISABLE_AVX2", first ? "1" : "0", 1);
  EXPECT_EQ(UseAvx2(), first);
  if (old) {
    ::setenv("DDN_DISABLE_AVX2", saved.c_str(), 1);
  } else {
    ::unsetenv("DDN_DISABLE_AVX2");
  }
}

TEST(Simd, CopiesAgreeToRounding) {
  Rng rng(7);
  std::vector<double> x(1027);
  for (double& v : x) v = rng.Normal();
  double exact = 0;
  for (double v : x) exact += v * v;
  const int64_t n = static_cast<int64_t>(x.size());
  EXPECT_NEAR(SumSquares(x.data(), n), exact, 1e-12 * exact);
#if defined(DDN_HAVE_SIMD_DISPATCH)
  EXPECT_NEAR(SumSquaresBaseline(x.data(), n), exact, 1e-12 * exact);
  if (__builtin_cpu_supports("x86-64-v3")) {
    EXPECT_NEAR(SumSquaresAvx2(x.data(), n), exact, 1e-12 * exact);
  }
  EXPECT_EQ(SumSquares(x.data(), n), UseAvx2() ? SumSquaresAvx2(x.data(), n) : SumSquaresBaseline(x.data(), n));
#endif
}

}  // namespace
}  // namespace ddn
