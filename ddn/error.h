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
//   InternalError     a bug: an invariant of ddn's own code does not hold (DDN_CHECK below), an API used
//                     out of its contract by the program (not by its user). Neither the request nor the
//                     numerics are to blame; the CLI reports "internal error" and exits 1.
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

// A programmer's error, not the user's: a broken invariant or an API used out of its contract (CLI exit 1).
class InternalError : public Error {
 public:
  using Error::Error;
};

namespace internal {
[[noreturn]] inline void CheckFailed(const char* condition, const char* file, int line, const std::string& message) {
  std::string where = file;
  const size_t slash = where.find_last_of('/');
  if (slash != std::string::npos) where = where.substr(slash + 1);
  throw InternalError(where + ":" + std::to_string(line) + ": check '" + condition + "' failed" +
                      (message.empty() ? "" : ": " + message));
}
}  // namespace internal

}  // namespace ddn

// DDN_CHECK(condition, message): throws ddn::InternalError naming the file, line, condition and message when the
// condition is false. For invariants of ddn's own code, in every build type (not only with assertions on); never
// for checks of a request (those throw InvalidInput) or of the numerics (NumericalFailure). `message` is a
// std::string expression, evaluated only on failure.
#define DDN_CHECK(condition, message)                                                          \
  do {                                                                                         \
    if (!(condition)) ::ddn::internal::CheckFailed(#condition, __FILE__, __LINE__, (message)); \
  } while (false)
