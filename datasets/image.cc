#include "datasets/image.h"

#include <algorithm>
#include <cmath>

#include "ddn/error.h"
#include "ddn/losses.h"
#include "ddn/random.h"

namespace ddn::datasets {

Image AddNoise(const Image& image, double sigma, uint64_t seed) {
  Rng rng(seed);
  auto uniform = [&] { return (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53; };  // in (0, 1)
  Image out = image;
  const double two_pi = 6.283185307179586;
  for (Eigen::Index i = 0; i < out.pixels.size(); i += 2) {
    const double r = std::sqrt(-2.0 * std::log(uniform())), a = two_pi * uniform();
    out.pixels[i] += sigma * r * std::cos(a);
    if (i + 1 < out.pixels.size()) out.pixels[i + 1] += sigma * r * std::sin(a);
  }
  return out;
}

double MeanSquaredError(const Image& a, const Image& b) {
  if (a.rows != b.rows || a.cols != b.cols)
    throw InvalidInput("images '" + a.name + "' and '" + b.name + "' differ in size");
  return ddn::MeanSquaredError(a.pixels, b.pixels);
}

double Psnr(const Image& a, const Image& b) {
  return -10.0 * std::log10(std::max(MeanSquaredError(a, b), 1e-300));
}

}  // namespace ddn::datasets
