// The loops of ddn/graph/dense.h. This file is compiled twice: into ddn_graph for the x86-64 baseline, and with
// DDN_DENSE_AVX2 into the shared library ddn_graph_avx2 for x86-64-v3 (AVX2 + FMA), which exports only the
// table at the end (dense_avx2.map). Nothing here may depend on which copy it is beyond the table's name.
#include <Eigen/Dense>
#include <cmath>
#include <cstdint>

#include "ddn/graph/dense.h"

namespace ddn::graph::dense {
namespace {

using RowMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using Map = Eigen::Map<RowMatrix>;
using ConstMap = Eigen::Map<const RowMatrix>;

void LinearForward(const double* x, const double* w, const double* b, int64_t rows, int64_t in, int64_t out,
                   double* y) {
  // Y starts as the bias and the product is added to it: Eigen's `=` of a large product zero-fills Y in a pass of
  // its own before accumulating into it (a memset that was 3 % of a max-pooling training run), and the bias then
  // took a second pass; `+=` accumulates into what is there.
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < out; ++j) y[r * out + j] = b[j];
  Map(y, rows, out).noalias() += ConstMap(x, rows, in) * ConstMap(w, in, out);
}

void LinearBackward(const double* x, const double* g, const double* w, int64_t rows, int64_t in, int64_t out,
                    double* gw, double* gb, double* gx, bool assign_gx) {
  const ConstMap G(g, rows, out);
  Map(gw, in, out).noalias() = ConstMap(x, rows, in).transpose() * G;
  for (int64_t j = 0; j < out; ++j) gb[j] = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < out; ++j) gb[j] += g[r * out + j];
  if (!gx) return;
  if (assign_gx) {
    Map(gx, rows, in).noalias() = G * ConstMap(w, in, out).transpose();
  } else {
    Map(gx, rows, in).noalias() += G * ConstMap(w, in, out).transpose();
  }
}

// The column sums below run down a row-major matrix one row at a time: f independent accumulators, a contiguous
// loop that vectorises across the features (a per-column reduction would stride by f and wait on one addition
// chain per column). Rows are added in order.
void ColumnMoments(const double* __restrict x, int64_t rows, int64_t f, double* __restrict mean,
                   double* __restrict var) {
  for (int64_t j = 0; j < f; ++j) mean[j] = var[j] = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < f; ++j) mean[j] += x[r * f + j];
  for (int64_t j = 0; j < f; ++j) mean[j] /= static_cast<double>(rows);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < f; ++j) {
      const double d = x[r * f + j] - mean[j];
      var[j] += d * d;
    }
  }
  for (int64_t j = 0; j < f; ++j) var[j] /= static_cast<double>(rows);  // biased: the batch's σ²
}

void Normalise(const double* __restrict x, const double* __restrict mean, const double* __restrict inv_std,
               const double* __restrict gamma, const double* __restrict beta, int64_t rows, int64_t f,
               double* __restrict y) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < f; ++j) {
      const double h = (x[r * f + j] - mean[j]) * inv_std[j];
      y[r * f + j] = h * gamma[j] + beta[j];
    }
  }
}

void GradientSums(const double* __restrict g, const double* __restrict x, const double* __restrict mean,
                  const double* __restrict inv_std, int64_t rows, int64_t f, double* __restrict sum_g,
                  double* __restrict sum_gx) {
  for (int64_t j = 0; j < f; ++j) sum_g[j] = sum_gx[j] = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < f; ++j) {
      const double h = (x[r * f + j] - mean[j]) * inv_std[j];
      sum_g[j] += g[r * f + j];
      sum_gx[j] += g[r * f + j] * h;
    }
  }
}

void NormaliseBackward(const double* __restrict g, const double* __restrict x, const double* __restrict mean,
                       const double* __restrict inv_std, const double* __restrict mean_g,
                       const double* __restrict mean_gx, const double* __restrict scale, int64_t rows, int64_t f,
                       double* __restrict gx, bool assign) {
  if (!mean_g) {
    if (assign) {
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < f; ++j) gx[r * f + j] = g[r * f + j] * scale[j];
    } else {
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < f; ++j) gx[r * f + j] += g[r * f + j] * scale[j];
    }
    return;
  }
  if (assign) {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < f; ++j) {
        const double h = (x[r * f + j] - mean[j]) * inv_std[j];
        gx[r * f + j] = ((g[r * f + j] - mean_g[j]) - h * mean_gx[j]) * scale[j];
      }
    }
  } else {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t j = 0; j < f; ++j) {
        const double h = (x[r * f + j] - mean[j]) * inv_std[j];
        gx[r * f + j] += ((g[r * f + j] - mean_g[j]) - h * mean_gx[j]) * scale[j];
      }
    }
  }
}

void ReluForward(const double* __restrict x, int64_t n, double* __restrict y) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > 0 ? x[i] : 0.0;
}

void ReluBackward(const double* __restrict x, const double* __restrict g, int64_t n, double* __restrict gx,
                  bool assign) {
  if (assign) {
    for (int64_t i = 0; i < n; ++i) gx[i] = x[i] > 0 ? g[i] : 0.0;
  } else {
    for (int64_t i = 0; i < n; ++i) gx[i] += x[i] > 0 ? g[i] : 0.0;
  }
}

// Row by row down each block, all f columns at once: both selections are blends the vectoriser forms (the
// comparison's lane mask picks the value and the index).
void MaxOverPoints(const double* __restrict x, int64_t batch, int64_t points, int64_t f, double* __restrict y,
                   int64_t* __restrict argmax) {
  for (int64_t b = 0; b < batch; ++b) {
    const double* xb = x + b * points * f;
    double* yb = y + b * f;
    int64_t* ab = argmax + b * f;
    for (int64_t j = 0; j < f; ++j) {
      yb[j] = xb[j];
      ab[j] = 0;
    }
    for (int64_t n = 1; n < points; ++n) {
      const double* row = xb + n * f;
      for (int64_t j = 0; j < f; ++j) {
        const bool larger = row[j] > yb[j];
        yb[j] = larger ? row[j] : yb[j];
        ab[j] = larger ? n : ab[j];
      }
    }
  }
}

// MaxOverPoints on sign ⊙ x, with best holding the signed maximum during the loop and x at the maximiser after.
void SignedMaxOverPoints(const double* __restrict x, const double* __restrict sign, int64_t batch, int64_t points,
                         int64_t f, double* __restrict best, int64_t* __restrict argbest) {
  for (int64_t b = 0; b < batch; ++b) {
    const double* xb = x + b * points * f;
    double* yb = best + b * f;
    int64_t* ab = argbest + b * f;
    for (int64_t j = 0; j < f; ++j) {
      yb[j] = sign[j] * xb[j];
      ab[j] = 0;
    }
    for (int64_t n = 1; n < points; ++n) {
      const double* row = xb + n * f;
      for (int64_t j = 0; j < f; ++j) {
        const double v = sign[j] * row[j];
        const bool larger = v > yb[j];
        yb[j] = larger ? v : yb[j];
        ab[j] = larger ? n : ab[j];
      }
    }
    for (int64_t j = 0; j < f; ++j) yb[j] = xb[ab[j] * f + j];
  }
}

// NormaliseBackward with the row's gradient selected from g by the maximiser's index (a compare and a blend per
// value, in vectors: the indices of a block's row are f contiguous int64).
void NormaliseMaxBackward(const double* __restrict g, const int64_t* __restrict argbest, int64_t batch, int64_t points,
                          const double* __restrict x, const double* __restrict mean, const double* __restrict inv_std,
                          const double* __restrict mean_g, const double* __restrict mean_gx,
                          const double* __restrict scale, int64_t f, double* __restrict gx, bool assign) {
  for (int64_t b = 0; b < batch; ++b) {
    const double* gb = g + b * f;
    const int64_t* ab = argbest + b * f;
    for (int64_t n = 0; n < points; ++n) {
      const int64_t r = b * points + n;
      if (!mean_g) {
        if (assign) {
          for (int64_t j = 0; j < f; ++j) gx[r * f + j] = (ab[j] == n ? gb[j] : 0.0) * scale[j];
        } else {
          for (int64_t j = 0; j < f; ++j) gx[r * f + j] += (ab[j] == n ? gb[j] : 0.0) * scale[j];
        }
      } else if (assign) {
        for (int64_t j = 0; j < f; ++j) {
          const double h = (x[r * f + j] - mean[j]) * inv_std[j];
          gx[r * f + j] = (((ab[j] == n ? gb[j] : 0.0) - mean_g[j]) - h * mean_gx[j]) * scale[j];
        }
      } else {
        for (int64_t j = 0; j < f; ++j) {
          const double h = (x[r * f + j] - mean[j]) * inv_std[j];
          gx[r * f + j] += (((ab[j] == n ? gb[j] : 0.0) - mean_g[j]) - h * mean_gx[j]) * scale[j];
        }
      }
    }
  }
}

const Kernels kTable = {LinearForward, LinearBackward,      ColumnMoments,       Normalise,
                        GradientSums,  NormaliseBackward,   ReluForward,         ReluBackward,
                        MaxOverPoints, SignedMaxOverPoints, NormaliseMaxBackward};

}  // namespace

#if defined(DDN_DENSE_AVX2)
}  // namespace ddn::graph::dense
extern "C" __attribute__((visibility("default"))) const ddn::graph::dense::Kernels* ddn_graph_dense_avx2() {
  return &ddn::graph::dense::kTable;
}
#else
const Kernels& Baseline() {
  return kTable;
}
}  // namespace ddn::graph::dense
#endif
