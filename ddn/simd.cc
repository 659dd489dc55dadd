// ddn/simd.cc: the CPU test and the environment switch of ddn/simd.h.
#include "ddn/simd.h"

#include <cstdlib>
#include <cstring>

namespace ddn::internal {

bool DetectAvx2() {
#if defined(DDN_HAVE_SIMD_DISPATCH)
  const char* off = std::getenv("DDN_DISABLE_AVX2");
  if (off && std::strcmp(off, "1") == 0) return false;
  __builtin_cpu_init();
  return __builtin_cpu_supports("x86-64-v3");
#else
  return false;
#endif
}

}  // namespace ddn::internal
