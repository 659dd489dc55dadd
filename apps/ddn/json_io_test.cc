#include "apps/ddn/json_io.h"

#include <cmath>
#include <limits>
#include <string>

#include <gtest/gtest.h>

#include "ddn/error.h"
#include "ddn/random.h"

namespace ddn::cli {
namespace {

// The message of the InvalidInput thrown by `f` ("" if none is thrown).
template <typename F>
std::string InvalidMessage(F f) {
  try {
    f();
  } catch (const InvalidInput& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_INVALID(expr, ...)                                                                 \
  do {                                                                                            \
    const std::string message = InvalidMessage([&] { (void)(expr); });                            \
    ASSERT_FALSE(message.empty()) << #expr << " did not throw InvalidInput";                      \
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;                                  \
    for (const char* part : {__VA_ARGS__})                                                        \
      EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message; \
  } while (0)

TEST(JsonToTensor, ShapesAreBatchFirstAndRowMajor) {
  const Tensor t = JsonToTensor(Json::parse("[[1, 2, 3], [4, 5, 6]]"), "input 'x'");
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.ToVector(), (std::vector<double>{1, 2, 3, 4, 5, 6}));
  const Tensor u = JsonToTensor(Json::parse("[[[1, 2], [3, 4], [5, 6]]]"), "input 'x'");
  EXPECT_EQ(u.shape(), (Shape{1, 3, 2}));
  EXPECT_EQ(u[5], 6.0);
  const Tensor s = JsonToTensor(Json::parse("2.5"), "input 'x'");
  EXPECT_EQ(s.rank(), 0);
  EXPECT_EQ(s[0], 2.5);
  EXPECT_EQ(JsonToTensor(Json::parse("[]"), "input 'x'").shape(), (Shape{0}));
  EXPECT_EQ(JsonToTensor(Json::parse("[[], []]"), "input 'x'").shape(), (Shape{2, 0}));
  // Integers, negative zero and big integers become doubles.
  const Tensor v = JsonToTensor(Json::parse("[-0.0, 3, 18446744073709551615]"), "input 'x'");
  EXPECT_TRUE(std::signbit(v[0]));
  EXPECT_EQ(v[1], 3.0);
  EXPECT_EQ(v[2], 18446744073709551615.0);
}

TEST(JsonToTensor, RaggedArraysNameTheAxisAndElement) {
  EXPECT_INVALID(JsonToTensor(Json::parse("[[1, 2], [3]]"), "input 'x'"), "input 'x'", "ragged", "axis 1",
                 "element [1] has length 1", "element [0] has length 2");
  EXPECT_INVALID(JsonToTensor(Json::parse("[[[1, 2], [3, 4]], [[1, 2], [3]]]"), "input 'x'"), "axis 2",
                 "element [1][1]");
  EXPECT_INVALID(JsonToTensor(Json::parse("[[1, 2], 3]"), "input 'x'"), "ragged", "axis 1", "element [1] is a number");
  EXPECT_INVALID(JsonToTensor(Json::parse("[1, [2]]"), "input 'x'"), "ragged", "element [1] is an array");
}

TEST(JsonToTensor, NonNumericElementsAreNamed) {
  EXPECT_INVALID(JsonToTensor(Json::parse("[[1, \"a\"]]"), "input 'x'"), "input 'x'", "non-numeric", "[0][1]",
                 "string");
  EXPECT_INVALID(JsonToTensor(Json::parse("[[true, 1]]"), "input 'w'"), "input 'w'", "[0][0]", "boolean");
  EXPECT_INVALID(JsonToTensor(Json::parse("[null]"), "input 'x'"), "[0]", "null");
  EXPECT_INVALID(JsonToTensor(Json::parse("[[{\"a\": 1}]]"), "input 'x'"), "[0][0]", "object");
  EXPECT_INVALID(JsonToTensor(Json::parse("{\"a\": 1}"), "input 'x'"), "input 'x'", "object");
}

TEST(JsonToTensor, AbsurdNestingIsRejected) {
  const std::string deep = std::string(40, '[') + "1" + std::string(40, ']');
  EXPECT_INVALID(JsonToTensor(ParseJson(deep), "input 'x'"), "input 'x'", "nested more than 16");
  EXPECT_EQ(JsonToTensor(ParseJson("[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]"), "input 'x'").rank(), 16);
}

TEST(JsonToTensor, NonFiniteValuesAreRejected) {
  Json j = Json::array({1.0, std::numeric_limits<double>::infinity()});
  EXPECT_INVALID(JsonToTensor(j, "input 'x'"), "input 'x'", "non-finite", "[1]");
  j = Json::array({Json::array({std::nan("")})});
  EXPECT_INVALID(JsonToTensor(j, "input 'x'"), "non-finite", "[0][0]");
}

TEST(TensorToJson, NumbersRoundTripExactly) {
  Rng rng(3);
  std::vector<double> values;
  for (int i = 0; i < 200; ++i) values.push_back(rng.Normal() * std::pow(10.0, (i % 40) - 20));
  for (double v :
       {0.1, 1.0 / 3.0, -0.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1e-300, 123456789012345678.0}) {
    values.push_back(v);
  }
  const Tensor t(Shape{static_cast<int64_t>(values.size()) / 2, 2}, values);
  const std::string text = TensorToJson(t).dump();
  const Tensor back = JsonToTensor(ParseJson(text), "output");
  ASSERT_EQ(back.shape(), t.shape());
  for (int64_t i = 0; i < t.size(); ++i) {
    EXPECT_EQ(back[i], t[i]) << i;
    EXPECT_EQ(std::signbit(back[i]), std::signbit(t[i])) << i;
  }
}

TEST(TensorToJson, NestsBatchFirst) {
  const Tensor t(Shape{2, 1, 2}, std::vector<double>{1, 2, 3, 4});
  EXPECT_EQ(TensorToJson(t).dump(), "[[[1.0,2.0]],[[3.0,4.0]]]");
  EXPECT_EQ(TensorToJson(Tensor(Shape{3}, std::vector<double>{0.5, -1, 2})).dump(), "[0.5,-1.0,2.0]");
}

TEST(ParseJson, MalformedJsonSaysWhere) {
  EXPECT_INVALID(ParseJson("{\"node\": \"a\",\n \"inputs\": {\"x\": [[1, 2,]]}}"), "malformed JSON", "line 2", "column",
                 "inputs.x[0]");
  EXPECT_INVALID(ParseJson(""), "malformed JSON", "line 1");
  EXPECT_INVALID(ParseJson("{\"node\": \"a\""), "malformed JSON");
  EXPECT_INVALID(ParseJson("[NaN]"), "malformed JSON");
  EXPECT_INVALID(ParseJson("{} {}"), "malformed JSON");
}

TEST(ParseJson, DuplicateKeysAreRejectedNamingThem) {
  auto message = [](const std::string& text) -> std::string {
    try {
      ParseJson(text);
    } catch (const InvalidInput& e) {
      return e.what();
    }
    return "(accepted)";
  };
  EXPECT_EQ(message(R"({"node": "project", "node": "robust_pool"})"), "JSON key 'node' appears twice in the request");
  EXPECT_EQ(message(R"({"inputs": {"x": [[1]], "x": [[2]]}})"), "JSON key 'x' appears twice in object 'inputs'");
  EXPECT_EQ(message(R"([{"a": 1}, {"a": 2}])"), "(accepted)");  // the same key in sibling objects is fine
  EXPECT_EQ(message(R"({"p": {"a": 1}, "q": {"a": 2}})"), "(accepted)");
}

TEST(ParseJson, OverflowingNumbersNameTheInput) {
  EXPECT_INVALID(ParseJson("{\"node\": \"a\", \"inputs\": {\"x\": [[1, 1e999]]}}"), "input 'x'", "non-finite", "1e999",
                 "[0][1]");
  EXPECT_INVALID(ParseJson("{\"inputs\": {\"w\": [[0.5], [-1E400]]}}"), "input 'w'", "[1][0]");
  EXPECT_INVALID(ParseJson("{\"grad_outputs\": {\"y\": [2, 1e999]}}"), "grad_outputs 'y'", "[1]");
  EXPECT_INVALID(ParseJson("{\"inputs\": {\"x\": 1e999}}"), "input 'x'", "top level");
  EXPECT_INVALID(ParseJson("{\"params\": {\"alpha\": 1e999}}"), "non-finite", "params.alpha");
  // Underflow is a finite number (0).
  EXPECT_EQ(ParseJson("[1e-999]")[0].get<double>(), 0.0);
}

TEST(ParamValueToString, ConvertsScalars) {
  EXPECT_EQ(ParamValueToString(Json(0.1), "alpha", "n"), "0.1");
  EXPECT_EQ(ParamValueToString(Json::parse("1"), "alpha", "n"), "1");
  EXPECT_EQ(ParamValueToString(Json::parse("-3"), "alpha", "n"), "-3");
  EXPECT_EQ(ParamValueToString(Json::parse("1.0"), "alpha", "n"), "1");
  EXPECT_EQ(std::strtod(ParamValueToString(Json(1.0 / 3.0), "alpha", "n").c_str(), nullptr), 1.0 / 3.0);
  EXPECT_EQ(ParamValueToString(Json(true), "flag", "n"), "true");
  EXPECT_EQ(ParamValueToString(Json("huber"), "penalty", "n"), "huber");
  EXPECT_INVALID(ParamValueToString(Json::parse("[1]"), "alpha", "robust_pool"), "parameter 'alpha'", "robust_pool",
                 "array");
  EXPECT_INVALID(ParamValueToString(Json(nullptr), "alpha", "n"), "null");
}

TEST(ParseRequestHeader, ChecksTheTopLevel) {
  const RequestHeader h =
      ParseRequestHeader(Json::parse(R"({"node": "robust_pool", "params": {"alpha": 0.5, "penalty": "huber"}})"));
  EXPECT_EQ(h.node, "robust_pool");
  EXPECT_EQ(h.params.at("alpha"), "0.5");
  EXPECT_EQ(h.params.at("penalty"), "huber");
  EXPECT_TRUE(ParseRequestHeader(Json::parse(R"({"node": "a"})")).params.empty());
  EXPECT_INVALID(ParseRequestHeader(Json::parse("[1, 2]")), "must be a JSON object", "array");
  EXPECT_INVALID(ParseRequestHeader(Json::parse(R"({"node": "a", "input": {}})")), "unknown key 'input'");
  EXPECT_INVALID(ParseRequestHeader(Json::parse(R"({"inputs": {}})")), "no \"node\"");
  EXPECT_INVALID(ParseRequestHeader(Json::parse(R"({"node": 3})")), "\"node\" must be a string");
  EXPECT_INVALID(ParseRequestHeader(Json::parse(R"({"node": "a", "params": [1]})")), "\"params\" must be an object");
  EXPECT_INVALID(ParseRequestHeader(Json::parse(R"({"node": "a", "params": {"alpha": {}}})")), "parameter 'alpha'");
}

TEST(ParseRequestTensors, ConvertsInputsAndGradOutputs) {
  const RequestTensors t = ParseRequestTensors(
      Json::parse(R"({"node": "a", "inputs": {"x": [[1, 2]], "w": [[1, 1]]}, "grad_outputs": {"y": [1]}})"));
  EXPECT_EQ(t.inputs.size(), 2u);
  EXPECT_EQ(t.inputs.at("x").shape(), (Shape{1, 2}));
  EXPECT_TRUE(t.has_grad_outputs);
  EXPECT_EQ(t.grad_outputs.at("y").shape(), (Shape{1}));
  const RequestTensors u = ParseRequestTensors(Json::parse(R"({"node": "a"})"));
  EXPECT_TRUE(u.inputs.empty());
  EXPECT_FALSE(u.has_grad_outputs);
  EXPECT_INVALID(ParseRequestTensors(Json::parse(R"({"inputs": [1]})")), "\"inputs\" must be an object");
  EXPECT_INVALID(ParseRequestTensors(Json::parse(R"({"inputs": {"x": []}})")), "input 'x'", "empty batch");
  EXPECT_INVALID(ParseRequestTensors(Json::parse(R"({"grad_outputs": {"y": [[1], [2, 3]]}})")), "grad_outputs 'y'",
                 "ragged");
}

TEST(ResultToJson, WritesOutputsGradientsAndStatus) {
  ForwardResult forward;
  forward.outputs["y"] = Tensor(Shape{2}, std::vector<double>{1.5, -2});
  forward.status.resize(2);
  forward.status[1].Set(kNonRegular, "H is singular");
  forward.status[1].residual = 1e-15;
  forward.status[1].iterations = 7;
  const Json without = ResultToJson(forward, nullptr);
  EXPECT_FALSE(without.contains("grad_inputs"));
  TensorMap grads;
  grads["x"] = Tensor(Shape{2, 1}, std::vector<double>{0.25, 0.5});
  const Json with = ResultToJson(forward, &grads);
  EXPECT_EQ(with.dump(),
            R"({"outputs":{"y":[1.5,-2.0]},"grad_inputs":{"x":[[0.25],[0.5]]},"status":[)"
            R"({"ok":true,"flags":[],"residual":null,"iterations":0,"note":""},)"
            R"({"ok":false,"flags":["non_regular"],"residual":1e-15,"iterations":7,"note":"H is singular"}]})");
}

TEST(NodeSpecToJson, ShapesAreBatchFirst) {
  NodeSpec spec;
  spec.name = "robust_pool";
  spec.summary = "robust mean";
  spec.params = {{"penalty", ParamType::kChoice, "pseudo_huber", "the penalty", {"quadratic", "pseudo_huber"}},
                 {"alpha", ParamType::kFloat, "1", "scale", {}}};
  spec.inputs = {{"x", {"N"}, "points", true, false}, {"w", {"N"}, "weights", false, true}};
  spec.outputs = {{"y", {}, "the pooled value"}};
  const Json j = NodeSpecToJson(spec);
  EXPECT_EQ(j["inputs"][0]["shape"], "(B, N)");
  EXPECT_EQ(j["inputs"][1]["differentiable"], false);
  EXPECT_EQ(j["inputs"][1]["optional"], true);
  EXPECT_EQ(j["outputs"][0]["shape"], "(B)");
  EXPECT_EQ(j["params"][0]["choices"].size(), 2u);
  EXPECT_FALSE(j["params"][1].contains("choices"));
  EXPECT_EQ(j["params"][1]["default"], "1");
  const Params params("robust_pool", spec.params, {{"alpha", "0.5"}});
  EXPECT_EQ(ParamsToJson(spec, params).dump(), R"({"penalty":"pseudo_huber","alpha":0.5})");
}

}  // namespace
}  // namespace ddn::cli
