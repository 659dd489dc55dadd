// ddn/simd.h: the one SIMD dispatch of the library — which copy of a memory-speed kernel runs, AVX2+FMA or
// baseline, and how a kernel is compiled twice.
//
// What. A few kernels (the batch engine's finiteness check, the projections, Sinkhorn's passes, the robust
// pooling passes) are loops over rows that GCC vectorises 4 wide with AVX2 and 2 wide with the x86-64 baseline
// (SSE2). Each is compiled twice from one source, and one switch chooses the copy at run time:
//
//   ddn::UseAvx2()  true when the CPU has the x86-64-v3 level (AVX2, FMA, BMI1/2, ...) and the environment
//                   variable DDN_DISABLE_AVX2 is not "1"; read once, on the first call.
//
// Why one switch, read from the environment. A copy chosen only by the CPU (GCC's target_clones, resolved when
// the program loads) is never run on an AVX2 machine, so its baseline copy goes untested where the tests run.
// With DDN_DISABLE_AVX2=1 every kernel of the library takes its baseline copy, and the test suites of the
// families with such kernels run twice (CMakeLists.txt: `<test>.baseline_kernels`). The two copies agree to
// rounding, not bits: the AVX2 copy contracts a·b + c into fused multiply–adds and its reductions (LaneSum,
// `omp simd`) add in a different order. Each copy is deterministic.
//
// How to write a kernel. The body is an always-inline function; DDN_SIMD_DISPATCH defines a copy of it compiled
// for x86-64-v3 (NameAvx2), a baseline copy (NameBaseline), both file-local, and the dispatcher Name that asks
// UseAvx2() on every call (a load and a branch, nothing against a pass over a row):
//
//   DDN_SIMD_BODY double SumSquaresBody(const double* x, int64_t n) {
//     return LaneSum(n, [&](int64_t i) { return x[i] * x[i]; });
//   }
//   DDN_SIMD_DISPATCH(double, SumSquares, (const double* x, int64_t n), (x, n))
//
// The arguments are the return type, the name, the parameter list and the argument list (the same names in
// parentheses). Inline helpers that the body calls (LaneSum, ExpNonPositive, vector-extension helpers) are
// inlined into each copy and vectorise with its target. Templates (the pooling family's passes) write the two
// copies and the branch on UseAvx2() by hand, with DDN_AVX2_TARGET on the AVX2 copy and DDN_HAVE_SIMD_DISPATCH
// around it. On compilers or machines without the x86 target attribute (DDN_HAVE_SIMD_DISPATCH undefined) the
// dispatcher calls the body and UseAvx2() is false.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define DDN_HAVE_SIMD_DISPATCH 1
#if defined(__AVX2__) && defined(__FMA__)
// The whole build already targets AVX2+FMA (-DDDN_NATIVE=ON on such a CPU): arch=x86-64-v3 would lower the AVX2
// copy's instruction set below the file's (-march=native adds AES, SHA, AVX-512, ...), and GCC refuses to inline
// the always-inline body, compiled for the file's set, into it ("target specific option mismatch"). Both copies
// are then compiled for the build's target; the switch still chooses between them (hand-written AVX2 kernels
// against their portable loops).
#define DDN_AVX2_TARGET __attribute__((target("avx2,fma")))
#else
// The AVX2 copy's target: the x86-64-v3 level, the set UseAvx2() checks.
#define DDN_AVX2_TARGET __attribute__((target("arch=x86-64-v3")))
#endif
#endif

// A kernel's body, inlined into both copies.
#define DDN_SIMD_BODY [[gnu::always_inline]] inline

#if defined(DDN_HAVE_SIMD_DISPATCH)
#define DDN_SIMD_DISPATCH(ret, name, params, args)                   \
  DDN_AVX2_TARGET static ret name##Avx2 params {                     \
    return name##Body args;                                          \
  }                                                                  \
  static ret name##Baseline params {                                 \
    return name##Body args;                                          \
  }                                                                  \
  ret name params {                                                  \
    return ::ddn::UseAvx2() ? name##Avx2 args : name##Baseline args; \
  }
#else
#define DDN_SIMD_DISPATCH(ret, name, params, args) \
  ret name params {                                \
    return name##Body args;                        \
  }
#endif

namespace ddn {

namespace internal {
// The CPU test and the environment (simd.cc); UseAvx2() caches the answer.
bool DetectAvx2();
}  // namespace internal

// True when the AVX2 copies of the kernels run: the CPU has x86-64-v3 and DDN_DISABLE_AVX2 is not "1".
inline bool UseAvx2() {
  static const bool use = internal::DetectAvx2();
  return use;
}

}  // namespace ddn
