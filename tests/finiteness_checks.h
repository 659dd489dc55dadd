// tests/finiteness_checks.h: what the tests of a node that checks NaN/Inf in its own kernels (ddn/finiteness.h)
// share: the bad values, the message an exception carries, and the run options of the generic path, whose engine
// checks give the messages to compare with (header-only).
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "ddn/batch.h"
#include "ddn/error.h"
#include "ddn/random.h"
#include "ddn/tensor.h"

namespace ddn::testing {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
inline const std::vector<double> kBadValues = {kNaN, -kNaN, kInf, -kInf};

// The message of the exception `run` throws, with its kind ("" if it throws nothing).
inline std::string Thrown(const std::function<void()>& run) {
  try {
    run();
  } catch (const InvalidInput& e) {
    return std::string("InvalidInput: ") + e.what();
  } catch (const NumericalFailure& e) {
    return std::string("NumericalFailure: ") + e.what();
  }
  return "";
}

// A (batch, n) tensor of standard normal values from Rng(seed).
inline Tensor Gaussian(int64_t batch, int64_t n, uint64_t seed) {
  Rng rng(seed);
  Tensor t({batch, n});
  for (double& v : t.values()) v = rng.Normal();
  return t;
}

// The generic path: the engine's own checks.
inline RunOptions Generic() {
  RunOptions o;
  o.generic = true;
  return o;
}

}  // namespace ddn::testing
