// ddn/error.h: the one error model of ddn.
//
// Errors that stop a call are C++ exceptions, all derived from ddn::Error:
//
//   InvalidInput      the request is wrong: a malformed or ragged array, a wrong shape, a NaN or Inf,
//                     an empty batch, an unknown node or parameter, an impossible parameter value,
//                     a problem that is infeasible as posed. The caller must change the request.
//                     The CLI maps it to exit code 2.
//   NumericalFailure  the request was valid but the numerics failed: a solver did not converge to the
//                     accuracy gradients need, a factorisation broke down. The CLI maps it to exit 1.
//
// The message always names the problem (which input, which parameter, which batch element), in one
// line, so that it can be shown to a user as it is.
//
// Outcomes that are not errors (a singular Hessian handled by a minimum-norm solution, a degenerate
// active set, a kink of the objective at the solution) are not exceptions: they are reported per
// problem in ddn::ProblemStatus (status.h), next to the answer.
#pragma once

#include <stdexcept>
#include <string>

namespace ddn {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The request is wrong; the caller must change it (CLI exit 2).
class InvalidInput : public Error {
 public:
  using Error::Error;
};

// The numerics failed on a valid request (CLI exit 1).
class NumericalFailure : public Error {
 public:
  using Error::Error;
};

}  // namespace ddn
