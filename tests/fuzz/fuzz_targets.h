// tests/fuzz/fuzz_targets.h: the front ends that read untrusted text, as fuzz targets.
//
//   FuzzEvalRequest   bytes → `ddn eval`'s path: ParseJson, ParseRequestHeader, the parameter types, MakeNode,
//                     ParseRequestTensors, the grad_outputs shapes, Forward and Backward (1 thread, inputs up to
//                     4096 numbers; nodes with an iterative forward, qp and deq_tanh, are also differentiated
//                     unrolled or truncated), ResultToJson. Any registered node may be named; "fuzz_pool" (a weighted
//                     mean over N points of D coordinates, with a bool and a float parameter) is always there.
//   FuzzCsv           bytes → the tabular reader: ParseCsv, SplitTarget on the last column, AlignColumns.
//
// The contract checked: no crash, no sanitizer report, and the only exceptions are ddn::InvalidInput and
// ddn::NumericalFailure, whose messages are one line of at most 4096 bytes. Each returns "" when the contract
// held, else a description of the breach (an unexpected exception type, a bad message).
//
// Two drivers: libFuzzer executables (libfuzzer_main.cc, built with clang by scripts/fuzz), and the GoogleTest
// fuzz_regression_test, which runs the corpus in tests/fuzz/corpus (the regression cases of issue 18) and a
// bounded number of seeded mutations of it, under any compiler (and under the sanitizers in build-asan/).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace ddn::fuzz {

std::string FuzzEvalRequest(const uint8_t* data, size_t size);
std::string FuzzCsv(const uint8_t* data, size_t size);

}  // namespace ddn::fuzz
