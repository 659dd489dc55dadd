// A node with one of the mistakes DeclarativeNode turns into compile errors (tests/compile_fail/CMakeLists.txt
// compiles this file once per DDN_CASE and expects the static_assert's message). DDN_CASE 0 is the correct node,
// which must compile.
#include "ddn/declarative.h"

namespace {

class Node : public ddn::DeclarativeNode<Node> {
 public:
  static ddn::NodeSpec Spec() {
    return {"compile_fail_node", "½‖y − x‖² with a constraint", {}, {{"x", {"D"}, "x"}}, {{"y", {"D"}, "y"}}};
  }
  explicit Node(const ddn::Params&) {}

#if DDN_CASE == 3  // kTermAxis with the term misspelt
  static constexpr const char* kTermAxis = "D";
  template <typename T>
  T Terms(const ddn::Args<T>& in, const T* y) const {
    const T r = y[0] - in[0][0];
    return ddn::Constant<T>(0.5) * r * r;
  }
#else
  template <typename T>
  T Objective(const ddn::Args<T>& in, const T* y) const {
    T f = ddn::Constant<T>(0.0);
    for (int64_t k = 0; k < in.size(0); ++k) f += (y[k] - in[0][k]) * (y[k] - in[0][k]);
    return ddn::Constant<T>(0.5) * f;
  }
#endif

#if DDN_CASE != 1  // case 1: Equalities without NumEqualities (the constraint would be dropped silently)
  int NumEqualities(const ddn::ProblemData&) const {
    return 1;
  }
#endif
  template <typename T>
  void Equalities(const ddn::Args<T>& in, const T* y, T* h) const {
    T s = ddn::Constant<T>(0.0);
    for (int64_t k = 0; k < in.size(0); ++k) s += y[k];
    h[0] = s - ddn::Constant<T>(1.0);
  }

#if DDN_CASE == 2  // NumInequalities with the inequalities misspelt
  int NumInequalities(const ddn::ProblemData&) const {
    return 1;
  }
  template <typename T>
  void Inequality(const ddn::Args<T>&, const T* y, T* g) const {
    g[0] = -y[0];
  }
#endif
};

}  // namespace

int main() {
  const Node node{ddn::Params("compile_fail_node", {}, {})};
  return node.HasGenericPath() ? 0 : 1;
}
