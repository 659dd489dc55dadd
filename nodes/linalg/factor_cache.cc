#include "nodes/linalg/factor_cache.h"

namespace ddn::linalg {

Fingerprint& Fingerprint::Add(const double* values, int64_t n) {
  constexpr uint64_t kOdd[4] = {0xD6E8FEB86659FD93ull, 0xA0761D6478BD642Full, 0xE7037ED1A0B428DBull,
                                0x8EBC6AF09C88C6E3ull};
  uint64_t h0 = lane_[0], h1 = lane_[1], h2 = lane_[2], h3 = lane_[3];
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    uint64_t b[4];
    std::memcpy(b, values + i, sizeof b);
    h0 = (h0 ^ b[0]) * kOdd[0];
    h1 = (h1 ^ b[1]) * kOdd[1];
    h2 = (h2 ^ b[2]) * kOdd[2];
    h3 = (h3 ^ b[3]) * kOdd[3];
    // A rotation keeps the high bits of each product from never reaching the low ones.
    h0 = (h0 << 29) | (h0 >> 35);
    h1 = (h1 << 29) | (h1 >> 35);
    h2 = (h2 << 29) | (h2 >> 35);
    h3 = (h3 << 29) | (h3 >> 35);
  }
  for (; i < n; ++i) {
    uint64_t b;
    std::memcpy(&b, values + i, sizeof b);
    h0 = (h0 ^ b) * kOdd[0];
    h0 = (h0 << 29) | (h0 >> 35);
  }
  lane_[0] = h0;
  lane_[1] = h1;
  lane_[2] = h2;
  lane_[3] = h3;
  count_ += static_cast<uint64_t>(n) + 1;  // + 1: [a][b, c] differs from [a, b][c]
  lane_[0] ^= count_;
  return *this;
}

uint64_t Fingerprint::value() const {
  uint64_t z = lane_[0] ^ (lane_[1] * 3) ^ (lane_[2] * 5) ^ (lane_[3] * 7) ^ count_;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

FactorCache::Slot* FactorCache::GetSlot(int64_t index) const {
  std::lock_guard<std::mutex> lock(mutex_);
  if (static_cast<int64_t>(slots_.size()) <= index) slots_.resize(index + 1);
  if (!slots_[index]) slots_[index] = std::make_unique<Slot>();
  return slots_[index].get();
}

void FactorCache::Store(int64_t index, uint64_t key, const double* data, int64_t n) const {
  Slot* slot = GetSlot(index);
  std::lock_guard<std::mutex> lock(slot->mutex);
  slot->data.assign(data, data + n);
  slot->key = key;
  slot->valid = true;
}

bool FactorCache::Lookup(int64_t index, uint64_t key, std::vector<double>* out) const {
  Slot* slot = GetSlot(index);
  std::lock_guard<std::mutex> lock(slot->mutex);
  if (!slot->valid || slot->key != key) return false;
  out->assign(slot->data.begin(), slot->data.end());
  return true;
}

}  // namespace ddn::linalg
