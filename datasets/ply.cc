#include "datasets/ply.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>

#include "ddn/error.h"

namespace ddn::datasets {
namespace {

enum class Type { kInt8, kUint8, kInt16, kUint16, kInt32, kUint32, kFloat32, kFloat64 };

bool ParseType(const std::string& s, Type* t) {
  static const struct {
    const char* name;
    Type type;
  } kTypes[] = {
      {"char", Type::kInt8},     {"int8", Type::kInt8},       {"uchar", Type::kUint8},    {"uint8", Type::kUint8},
      {"short", Type::kInt16},   {"int16", Type::kInt16},     {"ushort", Type::kUint16},  {"uint16", Type::kUint16},
      {"int", Type::kInt32},     {"int32", Type::kInt32},     {"uint", Type::kUint32},    {"uint32", Type::kUint32},
      {"float", Type::kFloat32}, {"float32", Type::kFloat32}, {"double", Type::kFloat64}, {"float64", Type::kFloat64}};
  for (const auto& k : kTypes) {
    if (s == k.name) {
      *t = k.type;
      return true;
    }
  }
  return false;
}

size_t SizeOf(Type t) {
  switch (t) {
    case Type::kInt8:
    case Type::kUint8:
      return 1;
    case Type::kInt16:
    case Type::kUint16:
      return 2;
    case Type::kInt32:
    case Type::kUint32:
    case Type::kFloat32:
      return 4;
    case Type::kFloat64:
      return 8;
  }
  return 0;
}

struct Property {
  std::string name;
  Type type = Type::kFloat32;
  bool is_list = false;
  Type count_type = Type::kUint8;
};

struct Element {
  std::string name;
  int64_t count = 0;
  std::vector<Property> properties;
};

enum class Format { kAscii, kBinaryLittle, kBinaryBig };

// Reads scalars from the body in the file's format.
class Body {
 public:
  Body(const std::string& path, const char* begin, const char* end, Format format)
      : path_(path), p_(begin), end_(end), format_(format) {}

  double Read(Type t, const char* what) { return format_ == Format::kAscii ? ReadText(what) : ReadBinary(t, what); }

 private:
  [[noreturn]] void Fail(const std::string& message) const {
    throw InvalidInput("PLY file '" + path_ + "': " + message);
  }

  double ReadText(const char* what) {
    while (p_ < end_ && std::isspace(static_cast<unsigned char>(*p_))) ++p_;
    if (p_ >= end_) Fail(std::string("the data end early (reading ") + what + ")");
    char* stop = nullptr;
    errno = 0;
    const double v = std::strtod(p_, &stop);
    if (stop == p_ || (stop < end_ && !std::isspace(static_cast<unsigned char>(*stop)))) {
      const char* e = p_;
      while (e < end_ && !std::isspace(static_cast<unsigned char>(*e)) && e - p_ < 20) ++e;
      Fail(std::string("malformed number '") + std::string(p_, e) + "' (reading " + what + ")");
    }
    p_ = stop;
    return v;
  }

  double ReadBinary(Type t, const char* what) {
    const size_t n = SizeOf(t);
    if (static_cast<size_t>(end_ - p_) < n) Fail(std::string("the data end early (reading ") + what + ")");
    unsigned char b[8];
    std::memcpy(b, p_, n);
    p_ += n;
    const bool little = format_ == Format::kBinaryLittle;
    const uint16_t probe = 1;
    const bool host_little = *reinterpret_cast<const unsigned char*>(&probe) == 1;
    if (little != host_little) std::reverse(b, b + n);
    switch (t) {
      case Type::kInt8: {
        int8_t v;
        std::memcpy(&v, b, 1);
        return v;
      }
      case Type::kUint8: {
        uint8_t v;
        std::memcpy(&v, b, 1);
        return v;
      }
      case Type::kInt16: {
        int16_t v;
        std::memcpy(&v, b, 2);
        return v;
      }
      case Type::kUint16: {
        uint16_t v;
        std::memcpy(&v, b, 2);
        return v;
      }
      case Type::kInt32: {
        int32_t v;
        std::memcpy(&v, b, 4);
        return v;
      }
      case Type::kUint32: {
        uint32_t v;
        std::memcpy(&v, b, 4);
        return v;
      }
      case Type::kFloat32: {
        float v;
        std::memcpy(&v, b, 4);
        return v;
      }
      case Type::kFloat64: {
        double v;
        std::memcpy(&v, b, 8);
        return v;
      }
    }
    return 0;
  }

  std::string path_;
  const char* p_;
  const char* end_;
  Format format_;
};

}  // namespace

PlyMesh ReadPly(const std::string& path) {
  auto fail = [&](const std::string& message) -> void { throw InvalidInput("PLY file '" + path + "': " + message); };
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InvalidInput("cannot open PLY file '" + path + "': " + std::strerror(errno));
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail("read error");

  // ---- Header ----
  size_t pos = 0;
  auto next_line = [&](std::string* line) {
    if (pos >= data.size()) return false;
    size_t eol = data.find('\n', pos);
    if (eol == std::string::npos) eol = data.size();
    *line = data.substr(pos, eol - pos);
    if (!line->empty() && line->back() == '\r') line->pop_back();
    pos = eol + 1;
    return true;
  };
  std::string line;
  if (!next_line(&line) || line != "ply") fail("not a PLY file (the first line is not 'ply')");
  Format format = Format::kAscii;
  bool have_format = false, ended = false;
  std::vector<Element> elements;
  while (next_line(&line)) {
    std::istringstream words(line);
    std::string key;
    words >> key;
    if (key.empty() || key == "comment" || key == "obj_info") continue;
    if (key == "end_header") {
      ended = true;
      break;
    }
    if (key == "format") {
      std::string f, version;
      words >> f >> version;
      if (f == "ascii") {
        format = Format::kAscii;
      } else if (f == "binary_little_endian") {
        format = Format::kBinaryLittle;
      } else if (f == "binary_big_endian") {
        format = Format::kBinaryBig;
      } else {
        fail("unsupported format '" + f + "'");
      }
      have_format = true;
    } else if (key == "element") {
      Element e;
      if (!(words >> e.name >> e.count) || e.count < 0) fail("malformed element line '" + line + "'");
      elements.push_back(e);
    } else if (key == "property") {
      if (elements.empty()) fail("a property before any element");
      Property p;
      std::string type;
      words >> type;
      if (type == "list") {
        std::string count_type, item_type;
        words >> count_type >> item_type >> p.name;
        if (!ParseType(count_type, &p.count_type) || !ParseType(item_type, &p.type)) {
          fail("unsupported list type in '" + line + "'");
        }
        p.is_list = true;
      } else {
        if (!ParseType(type, &p.type)) fail("unsupported property type '" + type + "'");
        words >> p.name;
      }
      if (p.name.empty()) fail("malformed property line '" + line + "'");
      elements.back().properties.push_back(p);
    } else {
      fail("unknown header keyword '" + key + "'");
    }
  }
  if (!ended) fail("no 'end_header' line");
  if (!have_format) fail("no 'format' line");

  // ---- Body ----
  Body body(path, data.data() + pos, data.data() + data.size(), format);
  PlyMesh mesh;
  bool have_vertices = false;
  for (const Element& e : elements) {
    if (e.name == "vertex") {
      have_vertices = true;
      int ix = -1, iy = -1, iz = -1, inx = -1, iny = -1, inz = -1;
      for (size_t k = 0; k < e.properties.size(); ++k) {
        const std::string& n = e.properties[k].name;
        const int kk = static_cast<int>(k);
        if (e.properties[k].is_list) continue;
        if (n == "x") ix = kk;
        if (n == "y") iy = kk;
        if (n == "z") iz = kk;
        if (n == "nx") inx = kk;
        if (n == "ny") iny = kk;
        if (n == "nz") inz = kk;
      }
      if (ix < 0 || iy < 0 || iz < 0) fail("the vertex element has no x, y, z properties");
      const bool normals = inx >= 0 && iny >= 0 && inz >= 0;
      mesh.points.resize(3 * e.count);
      if (normals) mesh.normals.resize(3 * e.count);
      std::vector<double> values(e.properties.size());
      for (int64_t v = 0; v < e.count; ++v) {
        for (size_t k = 0; k < e.properties.size(); ++k) {
          const Property& p = e.properties[k];
          if (p.is_list) {
            const int64_t count = static_cast<int64_t>(body.Read(p.count_type, "a vertex list length"));
            for (int64_t j = 0; j < count; ++j) body.Read(p.type, "a vertex list item");
            continue;
          }
          values[k] = body.Read(p.type, "a vertex");
        }
        const double xyz[3] = {values[ix], values[iy], values[iz]};
        for (int c = 0; c < 3; ++c) {
          if (!std::isfinite(xyz[c])) {
            fail("vertex " + std::to_string(v) + " has a non-finite coordinate");
          }
          mesh.points[3 * v + c] = xyz[c];
        }
        if (normals) {
          mesh.normals[3 * v] = values[inx];
          mesh.normals[3 * v + 1] = values[iny];
          mesh.normals[3 * v + 2] = values[inz];
        }
      }
    } else if (e.name == "face") {
      for (int64_t f = 0; f < e.count; ++f) {
        for (const Property& p : e.properties) {
          if (!p.is_list) {
            body.Read(p.type, "a face property");
            continue;
          }
          const double count_value = body.Read(p.count_type, "a face's vertex count");
          if (!(count_value >= 0 && count_value < 1e6)) fail("face " + std::to_string(f) + " has a bad vertex count");
          const int64_t count = static_cast<int64_t>(count_value);
          std::vector<int64_t> idx(count);
          for (int64_t j = 0; j < count; ++j) idx[j] = static_cast<int64_t>(body.Read(p.type, "a face's vertex index"));
          if (p.name != "vertex_indices" && p.name != "vertex_index") continue;
          for (int64_t j = 1; j + 1 < count; ++j) {
            mesh.triangles.push_back(idx[0]);
            mesh.triangles.push_back(idx[j]);
            mesh.triangles.push_back(idx[j + 1]);
          }
        }
      }
    } else {
      for (int64_t r = 0; r < e.count; ++r) {
        for (const Property& p : e.properties) {
          if (p.is_list) {
            const int64_t count = static_cast<int64_t>(body.Read(p.count_type, "a list length"));
            for (int64_t j = 0; j < count; ++j) body.Read(p.type, "a list item");
          } else {
            body.Read(p.type, "a property");
          }
        }
      }
    }
  }
  if (!have_vertices) fail("no vertex element");
  for (size_t k = 0; k < mesh.triangles.size(); ++k) {
    if (mesh.triangles[k] < 0 || mesh.triangles[k] >= mesh.num_vertices()) {
      fail("face vertex index " + std::to_string(mesh.triangles[k]) + " is out of range (" +
           std::to_string(mesh.num_vertices()) + " vertices)");
    }
  }
  return mesh;
}

std::vector<double> VertexNormalsFromFaces(const PlyMesh& mesh, std::vector<uint8_t>* valid) {
  const int64_t V = mesh.num_vertices();
  std::vector<double> n(3 * V, 0.0);
  const double* p = mesh.points.data();
  for (int64_t t = 0; t < mesh.num_triangles(); ++t) {
    const int64_t a = mesh.triangles[3 * t], b = mesh.triangles[3 * t + 1], c = mesh.triangles[3 * t + 2];
    double u[3], v[3];
    for (int k = 0; k < 3; ++k) {
      u[k] = p[3 * b + k] - p[3 * a + k];
      v[k] = p[3 * c + k] - p[3 * a + k];
    }
    const double cross[3] = {u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0]};
    for (int64_t vertex : {a, b, c})
      for (int k = 0; k < 3; ++k) n[3 * vertex + k] += cross[k];
  }
  valid->assign(V, 0);
  for (int64_t v = 0; v < V; ++v) {
    const double len = std::sqrt(n[3 * v] * n[3 * v] + n[3 * v + 1] * n[3 * v + 1] + n[3 * v + 2] * n[3 * v + 2]);
    if (len > 0 && std::isfinite(len)) {
      for (int k = 0; k < 3; ++k) n[3 * v + k] /= len;
      (*valid)[v] = 1;
    } else {
      for (int k = 0; k < 3; ++k) n[3 * v + k] = 0;
    }
  }
  return n;
}

}  // namespace ddn::datasets
