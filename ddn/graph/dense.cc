// The choice of ddn/graph/dense.h: the AVX2 table from libddn_graph_avx2 when it was built and the CPU runs it.
#include "ddn/graph/dense.h"

#include "ddn/simd.h"

#if defined(DDN_GRAPH_AVX2_KERNELS)
extern "C" const ddn::graph::dense::Kernels* ddn_graph_dense_avx2();
#endif

namespace ddn::graph::dense {

const Kernels* Avx2() {
#if defined(DDN_GRAPH_AVX2_KERNELS)
  return ddn_graph_dense_avx2();
#else
  return nullptr;
#endif
}

const Kernels& Select() {
  static const Kernels& chosen = (UseAvx2() && Avx2()) ? *Avx2() : Baseline();
  return chosen;
}

}  // namespace ddn::graph::dense
