#include "apps/ddn/json_io.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "ddn/error.h"
#include "ddn/params.h"
#include "ddn/strings.h"

namespace ddn::cli {
namespace {

// Deeper nesting is surely a mistake (and would recurse deeply below).
constexpr std::size_t kMaxRank = 16;

// ---- Locating a parse error ----------------------------------------------------------------------
// nlohmann's DOM parser reports where a defect is as a byte offset (and, for syntax errors, a line and
// column) but not which value it was reading. After a failed parse we read the text again with this
// SAX handler, which keeps the path of the value being read ("inputs.x[2][0]") and stops at the error.
class PathTracker : public nlohmann::json_sax<RequestJson> {
 public:
  bool null() override { return Value(); }
  bool boolean(bool) override { return Value(); }
  bool number_integer(number_integer_t) override { return Value(); }
  bool number_unsigned(number_unsigned_t) override { return Value(); }
  bool number_float(number_float_t, const string_t&) override { return Value(); }
  bool string(string_t&) override { return Value(); }
  bool binary(binary_t&) override { return Value(); }
  bool start_object(std::size_t) override {
    stack_.push_back({false, 0, ""});
    return true;
  }
  bool key(string_t& key) override {
    stack_.back().key = key;
    return true;
  }
  bool end_object() override {
    stack_.pop_back();
    return Value();
  }
  bool start_array(std::size_t) override {
    stack_.push_back({true, 0, ""});
    return true;
  }
  bool end_array() override {
    stack_.pop_back();
    return Value();
  }
  bool parse_error(std::size_t position, const std::string& token, const nlohmann::detail::exception& e) override {
    failed_ = true;
    position_ = position;
    token_ = token;
    error_id_ = e.id;
    for (const Frame& f : stack_) {
      if (f.array) {
        path_ += "[" + std::to_string(f.count) + "]";
      } else if (!f.key.empty()) {
        path_ += (path_.empty() ? "" : ".") + f.key;
      } else {
        break;  // between keys: the path ends at this object
      }
    }
    return false;
  }

  bool failed() const { return failed_; }
  std::size_t position() const { return position_; }
  const std::string& token() const { return token_; }
  const std::string& path() const { return path_; }
  int error_id() const { return error_id_; }

 private:
  struct Frame {
    bool array;
    std::size_t count;  // arrays: index of the element being read
    std::string key;    // objects: key of the value being read ("" between values)
  };
  bool Value() {
    if (!stack_.empty()) {
      if (stack_.back().array) {
        ++stack_.back().count;
      } else {
        stack_.back().key.clear();
      }
    }
    return true;
  }

  std::vector<Frame> stack_;
  bool failed_ = false;
  std::size_t position_ = 0;
  std::string token_;
  std::string path_;
  int error_id_ = 0;
};

// "line L, column C" of a byte offset (both 1-based, as nlohmann counts them).
std::string LineColumn(const std::string& text, std::size_t position) {
  position = std::min(position, text.size());
  std::size_t line = 1, column = 0;
  for (std::size_t i = 0; i < position; ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 0;
    } else {
      ++column;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(std::max<std::size_t>(column, 1));
}

// The detail of a nlohmann exception message, without "[json.exception.parse_error.101] parse error
// at line 1, column 9: ".
std::string Detail(const std::string& what) {
  std::string s = what;
  if (!s.empty() && s[0] == '[') {
    const auto end = s.find("] ");
    if (end != std::string::npos) s = s.substr(end + 2);
  }
  if (s.rfind("parse error", 0) == 0) {
    const auto colon = s.find(": ");
    if (colon != std::string::npos) s = s.substr(colon + 2);
  }
  return s;
}

// Names the array that holds a path such as "inputs.x[0][3]": {"input 'x'", "[0][3]"}.
bool SplitTensorPath(const std::string& path, std::string* what, std::string* index) {
  for (const auto& [prefix, noun] : {std::pair<std::string, std::string>{"inputs.", "input"},
                                     std::pair<std::string, std::string>{"grad_outputs.", "grad_outputs"}}) {
    if (path.rfind(prefix, 0) != 0) continue;
    const std::string rest = path.substr(prefix.size());
    const auto bracket = rest.find('[');
    *what = noun + " " + QuoteForMessage(rest.substr(0, bracket));
    *index = bracket == std::string::npos ? "" : rest.substr(bracket);
    return true;
  }
  return false;
}

std::string Describe(const RequestJson& j) {
  // Containers are summarised (their text may be long); scalars are shown as JSON, cut and escaped.
  if (j.is_object()) return "object of " + std::to_string(j.size()) + " keys";
  if (j.is_array()) return "array of " + std::to_string(j.size()) + " elements";
  std::string text = j.dump();
  if (text.size() > 24) text = text.substr(0, 21) + "...";
  return std::string(j.type_name()) + " " + EscapeForMessage(text);
}

std::string IndexString(const std::vector<int64_t>& index) {
  std::string s;
  for (int64_t i : index) s += "[" + std::to_string(i) + "]";
  return s;
}

void FillTensor(const RequestJson& j, std::size_t axis, const Shape& shape, const std::string& what,
                std::vector<int64_t>* index, std::vector<double>* out) {
  if (axis == shape.size()) {
    if (j.is_number()) {
      const double v = j.get<double>();
      if (!std::isfinite(v)) {
        throw InvalidInput(what + " has a non-finite number at " + IndexString(*index) + " (" + FormatDouble(v) + ")");
      }
      out->push_back(v);
      return;
    }
    if (j.is_array()) {
      throw InvalidInput(what + " is ragged: element " + IndexString(*index) + " is an array but element " +
                         IndexString(std::vector<int64_t>(index->size(), 0)) + " is a number (axis " +
                         std::to_string(axis) + ")");
    }
    throw InvalidInput(what + " has a non-numeric element at " + IndexString(*index) + ": " + Describe(j) +
                       " (expected a number)");
  }
  if (!j.is_array()) {
    if (j.is_number()) {
      throw InvalidInput(what + " is ragged along axis " + std::to_string(axis) + ": element " + IndexString(*index) +
                         " is a number but element " + IndexString(std::vector<int64_t>(index->size(), 0)) +
                         " is an array of length " + std::to_string(shape[axis]));
    }
    throw InvalidInput(what + " has a non-numeric element at " + IndexString(*index) + ": " + Describe(j) +
                       " (expected an array of numbers)");
  }
  if (static_cast<int64_t>(j.size()) != shape[axis]) {
    throw InvalidInput(what + " is ragged along axis " + std::to_string(axis) + ": element " + IndexString(*index) +
                       " has length " + std::to_string(j.size()) + " but element " +
                       IndexString(std::vector<int64_t>(index->size(), 0)) + " has length " +
                       std::to_string(shape[axis]));
  }
  for (std::size_t i = 0; i < j.size(); ++i) {
    index->push_back(static_cast<int64_t>(i));
    FillTensor(j[i], axis + 1, shape, what, index, out);
    index->pop_back();
  }
}

Json BuildArray(const double*& p, const Shape& shape, std::size_t axis) {
  if (axis == shape.size()) return Json(*p++);
  Json a = Json::array();
  a.get_ref<Json::array_t&>().reserve(static_cast<std::size_t>(shape[axis]));
  for (int64_t i = 0; i < shape[axis]; ++i) a.push_back(BuildArray(p, shape, axis + 1));
  return a;
}

TensorMap ParseTensorObject(const RequestJson& request, const std::string& key, const std::string& noun,
                            bool* present) {
  TensorMap tensors;
  auto it = request.find(key);
  *present = it != request.end();
  if (!*present) return tensors;
  if (!it->is_object()) {
    throw InvalidInput("\"" + key + "\" must be an object mapping names to nested arrays, got " +
                       std::string(it->type_name()));
  }
  for (const auto& [name, value] : it->items()) {
    const std::string what = noun + " " + QuoteForMessage(name);
    Tensor t = JsonToTensor(value, what);
    if (t.rank() >= 1 && t.dim(0) == 0) throw InvalidInput(what + " is an empty batch (B = 0)");
    tensors[name] = std::move(t);
  }
  return tensors;
}

}  // namespace

const std::vector<std::string> kRequestKeys = {"node", "params", "inputs", "grad_outputs"};

// JSON allows an object to repeat a key and nlohmann keeps the last value; in a request ("x" given twice,
// "params" twice) that is surely a mistake, so the parse callback refuses it, naming the key and its object. It
// also refuses nesting deeper than kMaxJsonDepth, before the parser has built (and anything recursed over) it.
class RequestParseCheck {
 public:
  bool operator()(int depth, RequestJson::parse_event_t event, RequestJson& parsed) {
    switch (event) {
      case RequestJson::parse_event_t::object_start:
      case RequestJson::parse_event_t::array_start:
        if (depth >= kMaxJsonDepth) {
          std::string where;  // the keys of the outer levels, e.g. inputs.x
          for (size_t f = 1; f < frames_.size() && f < 3 && !frames_[f].name.empty(); ++f) {
            where += (where.empty() ? "" : ".") + frames_[f].name;
          }
          throw InvalidInput("the request nests arrays and objects more than " + std::to_string(kMaxJsonDepth) +
                             " levels deep" + (where.empty() ? "" : " (in " + QuoteForMessage(where) + ")"));
        }
        frames_.push_back({{}, last_key_});
        break;
      case RequestJson::parse_event_t::object_end:
      case RequestJson::parse_event_t::array_end:
        if (!frames_.empty()) frames_.pop_back();
        break;
      case RequestJson::parse_event_t::key: {
        last_key_ = parsed.get<std::string>();
        if (!frames_.empty() && !frames_.back().keys.insert(last_key_).second) {
          const std::string& owner = frames_.back().name;
          throw InvalidInput("JSON key " + QuoteForMessage(last_key_) + " appears twice in " +
                             (frames_.size() == 1 ? std::string("the request") : "object " + QuoteForMessage(owner)));
        }
        break;
      }
      case RequestJson::parse_event_t::value:
        break;
    }
    return true;
  }

 private:
  struct Frame {
    std::set<std::string> keys;
    std::string name;  // the key under which this object or array sits
  };
  std::vector<Frame> frames_;
  std::string last_key_;
};

RequestJson ParseJson(const std::string& text) {
  try {
    RequestParseCheck check;
    return RequestJson::parse(text, std::ref(check));
  } catch (const nlohmann::json::exception& e) {
    PathTracker tracker;
    RequestJson::sax_parse(text, &tracker);
    std::size_t position = tracker.failed() ? tracker.position() : text.size();
    if (tracker.failed() && tracker.error_id() == 406 && !tracker.token().empty()) {
      // Point at the start of the overflowing number, not past its end.
      const std::size_t start = text.rfind(tracker.token(), std::min(position, text.size()));
      if (start != std::string::npos) position = start + 1;
    }
    const std::string where = LineColumn(text, position);
    const std::string token = EscapeForMessage(tracker.token(), 40);
    const std::string path = EscapeForMessage(tracker.path());
    if (tracker.failed() && tracker.error_id() == 406) {
      // A number too large for a double (JSON has no Inf or NaN).
      std::string what, index;
      if (SplitTensorPath(tracker.path(), &what, &index)) {
        throw InvalidInput(what + " has a non-finite number " + token + " at " +
                           (index.empty() ? "its top level" : EscapeForMessage(index)) + " (JSON " + where + ")");
      }
      throw InvalidInput("non-finite number " + token + " at " + (path.empty() ? "the top level" : path) + " (JSON " +
                         where + ")");
    }
    const std::string in = path.empty() ? "" : " (reading " + path + ")";
    throw InvalidInput("malformed JSON at " + where + in + ": " + EscapeForMessage(Detail(e.what()), 300));
  }
}

Tensor JsonToTensor(const RequestJson& json, const std::string& what) {
  Shape shape;
  for (const RequestJson* p = &json; p->is_array(); p = &(*p)[0]) {
    shape.push_back(static_cast<int64_t>(p->size()));
    if (shape.size() > kMaxRank) {
      throw InvalidInput(what + " is nested more than " + std::to_string(kMaxRank) + " arrays deep");
    }
    if (p->empty()) break;
  }
  // The shape is read from the first element along each axis: a ragged array can claim far more elements than it
  // has (FillTensor finds the ragged element). Reserve for at most what the claim allows, saturating.
  int64_t claimed = 1;
  for (int64_t d : shape) {
    if (d > 0 && __builtin_mul_overflow(claimed, d, &claimed)) claimed = INT64_MAX;
  }
  std::vector<double> values;
  values.reserve(static_cast<std::size_t>(std::min<int64_t>(claimed, int64_t{1} << 20)));
  std::vector<int64_t> index;
  FillTensor(json, 0, shape, what, &index, &values);
  return Tensor(shape, std::move(values));
}

Json TensorToJson(const Tensor& tensor) {
  const double* p = tensor.data();
  if (tensor.rank() == 0 && tensor.size() == 0) return Json::array();
  return BuildArray(p, tensor.shape(), 0);
}

std::string ParamValueToString(const RequestJson& value, const std::string& param, const std::string& node) {
  if (value.is_boolean()) return value.get<bool>() ? "true" : "false";
  if (value.is_number_integer()) return value.dump();  // also unsigned: exact decimal
  if (value.is_number_float()) return FormatDouble(value.get<double>());
  if (value.is_string()) return value.get<std::string>();
  throw InvalidInput("parameter " + QuoteForMessage(param) + " of node '" + node +
                     "' must be a number, string or boolean, got " + std::string(value.type_name()));
}

void CheckParamTypes(const RequestJson& request, const NodeSpec& spec) {
  auto params = request.find("params");
  if (params == request.end() || !params->is_object()) return;
  for (const auto& p : spec.params) {
    auto value = params->find(p.name);
    if (value == params->end()) continue;
    if (p.type == ParamType::kBool && value->is_number()) {
      throw InvalidInput("parameter '" + p.name + "' of node '" + spec.name + "' must be true or false, got the " +
                         Describe(*value) + " (write true or false)");
    }
  }
}

RequestHeader ParseRequestHeader(const RequestJson& request) {
  if (!request.is_object()) {
    throw InvalidInput("the request must be a JSON object {\"node\": ..., \"inputs\": {...}}, got " +
                       std::string(request.type_name()));
  }
  for (const auto& [key, value] : request.items()) {
    if (std::find(kRequestKeys.begin(), kRequestKeys.end(), key) == kRequestKeys.end()) {
      throw InvalidInput("unknown key " + QuoteForMessage(key) + " in the request (allowed: " + Join(kRequestKeys) +
                         ")");
    }
  }
  RequestHeader header;
  auto node = request.find("node");
  if (node == request.end()) throw InvalidInput("the request has no \"node\" (the node's name; see `ddn nodes`)");
  if (!node->is_string()) throw InvalidInput("\"node\" must be a string, got " + std::string(node->type_name()));
  header.node = node->get<std::string>();
  auto params = request.find("params");
  if (params != request.end()) {
    if (!params->is_object()) {
      throw InvalidInput("\"params\" must be an object of parameter values, got " + std::string(params->type_name()));
    }
    for (const auto& [name, value] : params->items()) {
      header.params[name] = ParamValueToString(value, name, header.node);
    }
  }
  return header;
}

RequestTensors ParseRequestTensors(const RequestJson& request) {
  RequestTensors t;
  bool present = false;
  t.inputs = ParseTensorObject(request, "inputs", "input", &present);
  t.grad_outputs = ParseTensorObject(request, "grad_outputs", "grad_outputs", &t.has_grad_outputs);
  return t;
}

Json StatusToJson(const ProblemStatus& status) {
  Json j = Json::object();
  j["ok"] = status.ok();
  j["flags"] = FlagNames(status.flags);
  if (status.residual >= 0 && std::isfinite(status.residual)) {
    j["residual"] = status.residual;
  } else {
    j["residual"] = nullptr;
  }
  j["iterations"] = status.iterations;
  j["note"] = status.note;
  return j;
}

Json ResultToJson(const ForwardResult& forward, const TensorMap* grad_inputs) {
  Json result = Json::object();
  Json outputs = Json::object();
  for (const auto& [name, t] : forward.outputs) outputs[name] = TensorToJson(t);
  result["outputs"] = std::move(outputs);
  if (grad_inputs) {
    Json grads = Json::object();
    for (const auto& [name, t] : *grad_inputs) grads[name] = TensorToJson(t);
    result["grad_inputs"] = std::move(grads);
  }
  Json status = Json::array();
  for (const auto& s : forward.status) status.push_back(StatusToJson(s));
  result["status"] = std::move(status);
  return result;
}

std::string BatchShapeString(const std::vector<std::string>& dims) {
  std::string s = "(B";
  for (const auto& d : dims) s += ", " + d;
  return s + ")";
}

Json NodeSpecToJson(const NodeSpec& spec) {
  Json j = Json::object();
  j["name"] = spec.name;
  j["summary"] = spec.summary;
  Json params = Json::array();
  for (const auto& p : spec.params) {
    Json q = Json::object();
    q["name"] = p.name;
    q["type"] = ParamTypeName(p.type);
    q["default"] = p.default_value;
    q["doc"] = p.doc;
    if (!p.choices.empty()) q["choices"] = p.choices;
    params.push_back(std::move(q));
  }
  j["params"] = std::move(params);
  Json inputs = Json::array();
  for (const auto& in : spec.inputs) {
    Json q = Json::object();
    q["name"] = in.name;
    q["shape"] = BatchShapeString(in.dims);
    q["dims"] = in.dims;
    q["differentiable"] = in.differentiable;
    q["optional"] = in.optional;
    q["doc"] = in.doc;
    inputs.push_back(std::move(q));
  }
  j["inputs"] = std::move(inputs);
  Json outputs = Json::array();
  for (const auto& out : spec.outputs) {
    Json q = Json::object();
    q["name"] = out.name;
    q["shape"] = BatchShapeString(out.dims);
    q["dims"] = out.dims;
    q["doc"] = out.doc;
    outputs.push_back(std::move(q));
  }
  j["outputs"] = std::move(outputs);
  return j;
}

Json ParamsToJson(const NodeSpec& spec, const Params& params) {
  Json j = Json::object();
  for (const auto& p : spec.params) {
    if (!params.Has(p.name)) continue;
    if (p.type == ParamType::kFloat) {
      j[p.name] = params.GetDouble(p.name);
    } else if (p.type == ParamType::kInt) {
      j[p.name] = params.GetInt(p.name);
    } else if (p.type == ParamType::kBool) {
      j[p.name] = params.GetBool(p.name);
    } else {
      j[p.name] = params.GetString(p.name);
    }
  }
  return j;
}

}  // namespace ddn::cli
