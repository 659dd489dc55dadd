// apps/ddn/json_io.h: the JSON side of the `ddn` CLI (docs/design.md §2), in one place.
//
// What. `ddn eval` reads one request and writes one result:
//
//   request  {"node": NAME, "params": {NAME: number|string|bool, ...},
//             "inputs": {NAME: nested array, ...}, "grad_outputs": {NAME: nested array, ...}}
//   result   {"outputs": {NAME: nested array, ...}, "grad_inputs": {NAME: nested array, ...},
//             "status": [{"ok": bool, "flags": [...], "residual": r|null, "iterations": k, "note": "..."}, ...]}
//
// Arrays are nested JSON arrays, batch-first and row-major: the tensor of shape (B, N, D) is a list of B
// lists of N lists of D numbers; element [b][i][d] of the JSON is element (b, i, d) of the tensor.
// "params" and "grad_outputs" may be omitted; "grad_inputs" is written only when "grad_outputs" was
// given. "residual" is null when the node did not measure it.
//
// Numbers. Doubles are written in the shortest decimal form that parses back to the same double
// (nlohmann::json's writer), so a result fed back as a request loses nothing. Parameters given as JSON
// numbers become the strings ddn::Params parses: integers in decimal, other numbers with
// ddn::FormatDouble (round-trip), booleans as "true"/"false".
//
// Errors. Every defect of a request is a ddn::InvalidInput whose one-line message names the problem
// and where it is: malformed JSON (line, column and the path of the value being read, e.g.
// "inputs.x[2][0]"), a number that overflows a double ("1e999": JSON has no Inf, and a double cannot
// hold it) named by its input and index, a top level that is not an object, unknown top-level keys,
// ragged arrays (which input, which axis, which element), non-numeric elements, empty batches.
// Shape agreement between inputs, unknown nodes and parameter values are checked by the engine
// (ddn/batch.h, ddn/params.h), which throws InvalidInput in the same style.
//
// Use:
//   Json j = ParseJson(text);                          // throws InvalidInput "malformed JSON ..."
//   RequestHeader h = ParseRequestHeader(j);           // node name, params as strings
//   auto node = ddn::MakeNode(h.node, h.params);       // unknown node / parameter / bad value
//   RequestTensors t = ParseRequestTensors(j);         // inputs and grad_outputs as Tensors
//   ... ddn::Forward / ddn::Backward ...
//   std::cout << ResultToJson(forward, grads).dump();
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ddn/batch.h"
#include "ddn/node.h"
#include "ddn/status.h"
#include "ddn/tensor.h"

namespace ddn::cli {

// Results: objects keep the order in which keys were written (outputs, grad_inputs, status).
using Json = nlohmann::ordered_json;
// Requests: objects are std::maps, so that a request with n keys parses in O(n log n) (an ordered_json object
// looks every new key up linearly: 1e5 keys took 17 s).
using RequestJson = nlohmann::json;

// The deepest nesting of arrays and objects a request may have (a tensor is at most 16 arrays deep, inside
// "inputs": 18); deeper text is refused while parsing, before anything recurses over it.
constexpr int kMaxJsonDepth = 64;

// Parses JSON text. Throws InvalidInput with the line, column and path of the defect; a number that
// overflows a double is reported as non-finite, naming the input ("input 'x' ...") when it is in
// "inputs" or "grad_outputs"; a key given twice in one object and nesting deeper than kMaxJsonDepth are
// refused.
RequestJson ParseJson(const std::string& text);

// A nested array of numbers as a Tensor. `what` names the array in messages ("input 'x'"). A bare
// number is a rank-0 tensor. Throws InvalidInput for ragged arrays (naming the axis and element),
// non-numeric elements (naming the index), non-finite values and nesting deeper than 16.
Tensor JsonToTensor(const RequestJson& json, const std::string& what);

// A Tensor as a nested array (a bare number for rank 0).
Json TensorToJson(const Tensor& tensor);

// A parameter value given in JSON as the text ddn::Params parses. Throws InvalidInput for arrays,
// objects and null, naming the parameter and the node.
std::string ParamValueToString(const RequestJson& value, const std::string& param, const std::string& node);

// Checks the JSON types of a request's "params" against the node's parameter types, where the string form would
// hide a mistake: a bool parameter given a number ("manifold": 1.0 would read as true) is refused. Throws
// InvalidInput naming the parameter, the node and the value.
void CheckParamTypes(const RequestJson& request, const NodeSpec& spec);

// The keys a request may have.
extern const std::vector<std::string> kRequestKeys;

struct RequestHeader {
  std::string node;
  std::map<std::string, std::string> params;  // as given (defaults are filled by ddn::Params)
};

// Checks the top level (an object with only the keys of kRequestKeys, "node" a string, "params" an
// object of scalars) and returns the node and its parameters. Throws InvalidInput.
RequestHeader ParseRequestHeader(const RequestJson& request);

struct RequestTensors {
  TensorMap inputs;
  TensorMap grad_outputs;
  bool has_grad_outputs = false;  // "grad_outputs" was present (even if empty)
};

// Converts "inputs" and "grad_outputs" (each an object of nested arrays). A missing "inputs" is an
// empty map (the engine then names the missing input). An input whose batch axis is empty is an
// error here ("input 'x' is an empty batch"). Throws InvalidInput.
RequestTensors ParseRequestTensors(const RequestJson& request);

// {"ok", "flags", "residual", "iterations", "note"} of one problem.
Json StatusToJson(const ProblemStatus& status);

// The result of `ddn eval`; `grad_inputs` may be null (no "grad_inputs" key).
Json ResultToJson(const ForwardResult& forward, const TensorMap* grad_inputs);

// "(B, N, D)": a per-problem dims list with the batch axis in front.
std::string BatchShapeString(const std::vector<std::string>& dims);

// A node's spec for `ddn nodes --json`.
Json NodeSpecToJson(const NodeSpec& spec);

// A validated parameter set as JSON, with values typed by their spec (float/int → number,
// bool → boolean, choice → string). For `ddn bench` lines.
Json ParamsToJson(const NodeSpec& spec, const Params& params);

}  // namespace ddn::cli
