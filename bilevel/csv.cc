#include "bilevel/csv.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "ddn/error.h"

namespace ddn::bilevel {
namespace {

std::string Trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
  std::string t = s.substr(b, e - b);
  if (t.size() >= 2 && t.front() == '"' && t.back() == '"') t = t.substr(1, t.size() - 2);
  return t;
}

std::vector<std::string> SplitFields(const std::string& line) {
  std::vector<std::string> fields;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, ',')) fields.push_back(Trim(field));
  if (!line.empty() && line.back() == ',') fields.push_back("");
  return fields;
}

bool Blank(const std::string& line) { return Trim(line).empty(); }

std::string Quote(const std::string& s) {
  return "'" + (s.size() > 40 ? s.substr(0, 40) + "..." : s) + "'";
}

}  // namespace

CsvTable ParseCsv(const std::string& text, const std::string& path) {
  CsvTable t;
  t.path = path;
  std::istringstream in(text);
  std::string line;
  int line_no = 0;
  bool have_header = false;
  std::vector<double> values;
  while (std::getline(in, line)) {
    ++line_no;
    if (Blank(line)) continue;
    const std::string where = path + ": row " + std::to_string(line_no) + ": ";
    std::vector<std::string> fields = SplitFields(line);
    if (!have_header) {
      if (line_no == 1 && line.size() >= 3 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) {  // UTF-8 BOM
        fields = SplitFields(line.substr(3));
      }
      std::set<std::string> seen;
      for (const auto& f : fields) {
        if (f.empty()) throw InvalidInput(where + "empty column name in the header");
        if (!seen.insert(f).second) throw InvalidInput(where + "duplicate column " + Quote(f) + " in the header");
      }
      t.columns = fields;
      have_header = true;
      continue;
    }
    if (fields.size() != t.columns.size()) {
      throw InvalidInput(where + std::to_string(fields.size()) + " fields, the header has " +
                         std::to_string(t.columns.size()));
    }
    for (size_t j = 0; j < fields.size(); ++j) {
      const std::string& f = fields[j];
      char* end = nullptr;
      errno = 0;
      const double v = f.empty() ? 0.0 : std::strtod(f.c_str(), &end);
      if (f.empty() || end != f.c_str() + f.size()) {
        throw InvalidInput(where + "column " + Quote(t.columns[j]) + ": " + Quote(f) + " is not a number");
      }
      if (!std::isfinite(v)) {
        throw InvalidInput(where + "column " + Quote(t.columns[j]) + ": " + Quote(f) + " is not finite");
      }
      values.push_back(v);
    }
    t.lines.push_back(line_no);
  }
  if (!have_header) throw InvalidInput(path + ": empty file (no header row)");
  if (t.lines.empty()) throw InvalidInput(path + ": no data rows (empty split)");
  const Eigen::Index rows = static_cast<Eigen::Index>(t.lines.size()), cols = static_cast<Eigen::Index>(t.columns.size());
  t.values = Eigen::Map<const Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(values.data(), rows, cols);
  return t;
}

CsvTable ReadCsv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InvalidInput(path + ": cannot open (" + std::strerror(errno) + ")");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw InvalidInput(path + ": read error");
  return ParseCsv(text.str(), path);
}

Dataset SplitTarget(const CsvTable& table, const std::string& target) {
  Dataset d;
  d.path = table.path;
  d.target_name = target;
  d.lines = table.lines;
  int target_col = -1;
  std::string names;
  for (size_t j = 0; j < table.columns.size(); ++j) {
    if (table.columns[j] == target) target_col = static_cast<int>(j);
    if (j < 12) names += (j ? ", " : "") + table.columns[j];
  }
  if (table.columns.size() > 12) names += ", ...";
  if (target_col < 0) throw InvalidInput(table.path + ": no column '" + target + "' (columns: " + names + ")");
  if (table.columns.size() < 2) throw InvalidInput(table.path + ": no feature columns besides '" + target + "'");
  const Eigen::Index n = table.values.rows(), p = table.values.cols() - 1;
  d.X.resize(n, p);
  d.y = table.values.col(target_col);
  Eigen::Index k = 0;
  for (Eigen::Index j = 0; j < table.values.cols(); ++j) {
    if (j == target_col) continue;
    d.X.col(k++) = table.values.col(j);
    d.feature_names.push_back(table.columns[j]);
  }
  return d;
}

void AlignColumns(const Dataset& train, Dataset* val) {
  Eigen::MatrixXd X(val->X.rows(), static_cast<Eigen::Index>(train.feature_names.size()));
  for (size_t j = 0; j < train.feature_names.size(); ++j) {
    const auto& name = train.feature_names[j];
    size_t k = 0;
    while (k < val->feature_names.size() && val->feature_names[k] != name) ++k;
    if (k == val->feature_names.size()) {
      throw InvalidInput(val->path + ": no column '" + name + "' (a feature of " + train.path + ")");
    }
    X.col(static_cast<Eigen::Index>(j)) = val->X.col(static_cast<Eigen::Index>(k));
  }
  if (val->feature_names.size() != train.feature_names.size()) {
    for (const auto& name : val->feature_names) {
      bool found = false;
      for (const auto& t : train.feature_names) found = found || t == name;
      if (!found) throw InvalidInput(val->path + ": column '" + name + "' is not in " + train.path);
    }
  }
  val->X = X;
  val->feature_names = train.feature_names;
}

}  // namespace ddn::bilevel
