// nodes/linalg/factor_cache.h: hand a forward pass's factorisation to the backward pass of the same problem.
//
// The linear-algebra nodes spend most of their forward pass on one factorisation per problem (the Cholesky
// factor of the normal matrix for least squares, the full eigendecomposition for eigen), and their backward
// pass needs exactly that factorisation again. The node contract (ddn/node.h) gives Backward the inputs and
// the outputs, not a per-problem context, so these nodes keep the factorisation themselves: a FactorCache
// holds one slot per batch index, and each slot the factor of the last problem solved at that index together
// with a 64-bit fingerprint of that problem's inputs and outputs.
//
// Backward recomputes the fingerprint from what it is given (one pass over the inputs, a small fraction of
// the factorisation's cost) and reuses the factor only when it matches; otherwise it recomputes the factor.
// So a backward is always the backward of the problem it is handed, whatever happened in between: another
// batch solved at the same index, inputs edited in place, inputs copied to new memory (the fingerprint
// is of values, not addresses), a node object shared by several threads or graphs (each slot has its own
// mutex; a lost race only costs a recomputation). A false match needs two different problems with equal
// 64-bit fingerprints.
//
// Memory: one factor per batch index seen, kept for the node's lifetime (for least squares with C = 64,
// 256 problems hold 8.7 MB).
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

namespace ddn::linalg {

// A 64-bit fingerprint of the bit patterns of arrays of doubles: four independent multiply–xor lanes (so that
// the loop is not one long dependency chain) folded by the splitmix64 finaliser. Not cryptographic: it tells a
// problem from a different one, it does not resist an adversary.
class Fingerprint {
 public:
  Fingerprint& Add(const double* values, int64_t n);
  uint64_t value() const;

 private:
  uint64_t lane_[4] = {0x9E3779B97F4A7C15ull, 0xBF58476D1CE4E5B9ull, 0x94D049BB133111EBull, 0x2545F4914F6CDD1Dull};
  uint64_t count_ = 0;
};

class FactorCache {
 public:
  // Keeps `n` values as the factor of problem `index`, under `key` (the problem's fingerprint). Const: a
  // node's const Solve fills it; the slots are the only state, guarded by their mutexes.
  void Store(int64_t index, uint64_t key, const double* data, int64_t n) const;
  // Copies the factor of problem `index` into *out and returns true if it was stored under `key`.
  bool Lookup(int64_t index, uint64_t key, std::vector<double>* out) const;

 private:
  struct Slot {
    std::mutex mutex;
    bool valid = false;
    uint64_t key = 0;
    std::vector<double> data;
  };
  Slot* GetSlot(int64_t index) const;

  mutable std::mutex mutex_;                          // guards the slot table, not the slots
  mutable std::vector<std::unique_ptr<Slot>> slots_;  // grown on demand; a slot never moves
};

}  // namespace ddn::linalg
