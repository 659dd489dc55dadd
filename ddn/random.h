// ddn/random.h: the one seeded random number generator of ddn, whose streams are the same on every platform.
//
// std::mt19937_64 is specified bit for bit by the C++ standard, but std::uniform_real_distribution and
// std::normal_distribution are not (libstdc++ and libc++ differ). The gradient checker's cases, the nodes' check
// cases, initialisation, shuffling, sampling, outlier injection and the benchmarks' workloads go through this
// class so that a seed means the same numbers everywhere (`ddn check NODE --seed 1` included):
//   Uniform()    = (top 53 bits of the next 64-bit draw) · 2⁻⁵³ ∈ [0, 1),
//   Normal()     = Box–Muller on two uniforms (the second value of each pair is cached),
//   Below(n)     = an integer in [0, n) by rejection (no modulo bias).
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace ddn {

class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}

  // The next raw 64-bit draw of the engine (std::mt19937_64, specified bit for bit by the standard).
  uint64_t operator()() { return engine_(); }

  double Uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  double Uniform(double lo, double hi) { return lo + (hi - lo) * Uniform(); }

  double Normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = Uniform();
    while (u1 <= 0.0) u1 = Uniform();
    const double u2 = Uniform();
    const double r = std::sqrt(-2.0 * std::log(u1)), t = 2.0 * M_PI * u2;
    spare_ = r * std::sin(t);
    has_spare_ = true;
    return r * std::cos(t);
  }

  uint64_t Below(uint64_t n) {
    const uint64_t limit = ~uint64_t{0} - (~uint64_t{0} % n);
    uint64_t v;
    do v = engine_();
    while (v >= limit);
    return v % n;
  }

  // Fisher–Yates.
  template <typename T>
  void Shuffle(std::vector<T>* v) {
    for (size_t i = v->size(); i > 1; --i) std::swap((*v)[i - 1], (*v)[Below(i)]);
  }

 private:
  std::mt19937_64 engine_;
  bool has_spare_ = false;
  double spare_ = 0;
};

}  // namespace ddn
