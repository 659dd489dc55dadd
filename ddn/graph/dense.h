// ddn/graph/dense.h: the dense loops of the graph's layers — Linear's matrix products and BatchNorm's passes —
// built twice, for the x86-64 baseline (SSE2) and for x86-64-v3 (AVX2 + FMA), and chosen at run time.
//
// The element-wise layers' loops (ReLU, max over points) are here too: built for SSE2 they were 12 % of a
// max-pooling epoch, and with AVX2 (4 lanes, blends for the max's index) about half of that.
//
// Why. Training a point-cloud network spends most of its time in these loops (Eigen's matrix product alone was
// 40 % of an epoch). A portable build compiles Eigen for SSE2: two doubles per instruction and no fused
// multiply–add. Compiled for AVX2 + FMA the same source trains about 1.9× faster (measured: ops.cc alone built
// with -mavx2 -mfma, max-pooling epoch 0.43 → 0.23 s). Eigen cannot be compiled for two targets in one library:
// its templates would be instantiated twice under the same names and the linker would keep one of them for
// every caller, so an AVX2 instruction could run on a CPU without it. So the AVX2 copy lives in its own shared
// library, libddn_graph_avx2, which exports one symbol (ddn_graph_dense_avx2, the table below; everything else
// is local, dense_avx2.map) and is called only when ddn::UseAvx2() is true (ddn/simd.h: the CPU has x86-64-v3
// and DDN_DISABLE_AVX2 is not "1"). The two copies agree to rounding, not bits (FMA contraction; Eigen's
// blocking differs with the vector width); each is deterministic and independent of the thread count.
//
// Storage: every matrix is row-major and dense (a tensor's last axis is its columns). Internal to ddn_graph.
#pragma once

#include <cstdint>

namespace ddn::graph::dense {

struct Kernels {
  // y (rows × out) = x (rows × in) · w (in × out) + 1 bᵀ.
  void (*linear_forward)(const double* x, const double* w, const double* b, int64_t rows, int64_t in, int64_t out,
                         double* y);
  // gw (in × out) = xᵀ g and gb (out) = gᵀ 1 (both assigned); gx (rows × in) += g wᵀ when gx is not null, or
  // gx = g wᵀ with assign_gx (gx's values unset before).
  void (*linear_backward)(const double* x, const double* g, const double* w, int64_t rows, int64_t in, int64_t out,
                          double* gw, double* gb, double* gx, bool assign_gx);
  // Batch norm over the rows of x (rows × f), training: mean and biased variance per column into mean, var.
  void (*column_moments)(const double* x, int64_t rows, int64_t f, double* mean, double* var);
  // y = x̂ ⊙ gamma + beta, row by row, with x̂ = (x − mean) ⊙ inv_std. x̂ is not stored: the backward passes below
  // recompute it from x with the same expression (the same bits), which costs a subtraction and a multiplication per
  // value where storing it cost a write of the whole matrix (for the point-cloud network's widest layer, 2048 × 64,
  // 1 MB a step) and reading it back.
  void (*normalise)(const double* x, const double* mean, const double* inv_std, const double* gamma, const double* beta,
                    int64_t rows, int64_t f, double* y);
  // sum_g = Σ_rows g and sum_gx = Σ_rows g ⊙ x̂ (assigned), x̂ = (x − mean) ⊙ inv_std.
  void (*gradient_sums)(const double* g, const double* x, const double* mean, const double* inv_std, int64_t rows,
                        int64_t f, double* sum_g, double* sum_gx);
  // gx += ((g − mean_g) − x̂ ⊙ mean_gx) ⊙ scale (training; x̂ = (x − mean) ⊙ inv_std) or gx += g ⊙ scale (mean_g =
  // mean_gx = null; x, mean and inv_std are not read then); with assign, = instead of +=.
  void (*normalise_backward)(const double* g, const double* x, const double* mean, const double* inv_std,
                             const double* mean_g, const double* mean_gx, const double* scale, int64_t rows, int64_t f,
                             double* gx, bool assign);
  // y = max(x, 0) elementwise, n values (NaN gives 0: x > 0 is false).
  void (*relu_forward)(const double* x, int64_t n, double* y);
  // gx += g where x > 0, n values; with assign, gx = (x > 0 ? g : 0).
  void (*relu_backward)(const double* x, const double* g, int64_t n, double* gx, bool assign);
  // For each of `batch` blocks of x (points × f, row-major): y (f) = the largest value of each column and argmax (f)
  // the first row holding it (a later equal value does not replace it; a NaN in the first row stays).
  void (*max_over_points)(const double* x, int64_t batch, int64_t points, int64_t f, double* y, int64_t* argmax);
  // Batch norm followed by the max over points, fused (ops.h, BatchNormMaxOverPoints). For each block b of x
  // (points × f): argbest (f) = the first row maximising sign_j · x_bnj (sign_j ∈ {−1, 0, 1}: the sign of γ_j, so
  // that it is the row where γ x̂ + β is largest) and best (f) = x at that row (unsigned).
  void (*signed_max_over_points)(const double* x, const double* sign, int64_t batch, int64_t points, int64_t f,
                                 double* best, int64_t* argbest);
  // normalise_backward for the gradient g_bnj = (n == argbest_bj ? g_bj : 0) (g, argbest: batch × f), without
  // forming it: the same values.
  void (*normalise_max_backward)(const double* g, const int64_t* argbest, int64_t batch, int64_t points,
                                 const double* x, const double* mean, const double* inv_std, const double* mean_g,
                                 const double* mean_gx, const double* scale, int64_t f, double* gx, bool assign);
};

// The copy for this CPU: the AVX2 one when the library was built with it and ddn::UseAvx2(), else the baseline.
const Kernels& Select();

// Both copies, for tests; Avx2() is null when the AVX2 library was not built (another compiler or CPU family,
// or a -DDDN_NATIVE=ON build, whose baseline copy already uses the machine's instructions).
const Kernels& Baseline();
const Kernels* Avx2();

}  // namespace ddn::graph::dense
