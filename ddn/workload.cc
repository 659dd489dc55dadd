#include "ddn/workload.h"

#include <cmath>
#include <vector>

namespace ddn {

void FillClusters(Tensor* t, double outlier_fraction, Rng* rng) {
  const int64_t batch = t->dim(0), points = t->dim(1);
  const int64_t width = t->problem_size() / points;  // coordinates per point (D, or 1)
  std::vector<double> centre(width), direction(width);
  for (int64_t b = 0; b < batch; ++b) {
    double* x = t->problem(b);
    for (auto& c : centre) c = rng->Normal();
    for (int64_t i = 0; i < points; ++i) {
      double* p = x + i * width;
      if (rng->Uniform() < outlier_fraction) {
        double norm = 0;
        for (auto& d : direction) {
          d = rng->Normal();
          norm += d * d;
        }
        norm = std::sqrt(norm);
        const double distance = rng->Uniform(5.0, 10.0);
        for (int64_t k = 0; k < width; ++k) p[k] = centre[k] + distance * (norm > 0 ? direction[k] / norm : 1.0);
      } else {
        for (int64_t k = 0; k < width; ++k) p[k] = centre[k] + rng->Normal();
      }
    }
  }
}

Tensor ClusteredPoints(int64_t b, int64_t n, int64_t d, double outlier_fraction, uint64_t seed) {
  Tensor t(d == 1 ? Shape{b, n} : Shape{b, n, d});
  Rng rng(seed);
  FillClusters(&t, outlier_fraction, &rng);
  return t;
}

}  // namespace ddn
