#include "bilevel/csv.h"

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "ddn/error.h"
#include "ddn/params.h"

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

std::string Quote(const std::string& s) { return QuoteForMessage(s, 40); }

// Data rows (non-blank lines after the header) of a stream, read through once.
Eigen::Index CountDataRows(std::istream& in) {
  std::string line;
  Eigen::Index rows = 0;
  bool header = false;
  while (std::getline(in, line)) {
    if (Blank(line)) continue;
    if (header) ++rows;
    header = true;
  }
  return rows;
}

// Parses a table from `in`, whose data rows were counted as `rows` (the matrix is allocated once, at its final
// size: the reader holds the parsed numbers and one line of text, nothing more).
CsvTable ParseStream(std::istream& in, Eigen::Index rows, const std::string& path) {
  CsvTable t;
  t.path = path;
  const std::string shown = EscapeForMessage(path);
  std::string line;
  int line_no = 0;
  bool have_header = false;
  Eigen::Index row = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (Blank(line)) continue;
    const std::string where = shown + ": row " + std::to_string(line_no) + ": ";
    if (!have_header) {
      std::vector<std::string> fields = SplitFields(line);
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
      t.values.resize(rows, static_cast<Eigen::Index>(t.columns.size()));
      t.lines.reserve(static_cast<size_t>(rows));
      continue;
    }
    if (row >= rows) throw InvalidInput(shown + ": the file changed while it was read");
    // Fields in place: split at commas, trim spaces, tabs and CR (and quotes), parse.
    size_t start = 0, count = 0;
    const size_t columns = t.columns.size();
    while (true) {
      const size_t comma = line.find(',', start);
      const size_t end = comma == std::string::npos ? line.size() : comma;
      if (count < columns) {
        // The field without surrounding spaces, tabs, CR and quotes, parsed in place (std::from_chars: a decimal
        // or exponent form; an optional leading '+' is skipped).
        const char* b = line.data() + start;
        const char* e = line.data() + end;
        while (b < e && (*b == ' ' || *b == '\t' || *b == '\r')) ++b;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) --e;
        if (e - b >= 2 && *b == '"' && e[-1] == '"') ++b, --e;
        const char* digits = (b < e && *b == '+') ? b + 1 : b;
        double v = 0;
        const auto [stop, error] = std::from_chars(digits, e, v);
        if (b == e || error != std::errc() || stop != e) {
          const std::string f(b, e);
          throw InvalidInput(where + "column " + Quote(t.columns[count]) + ": " + Quote(f) +
                             (error == std::errc::result_out_of_range ? " is not finite" : " is not a number"));
        }
        if (!std::isfinite(v)) {
          throw InvalidInput(where + "column " + Quote(t.columns[count]) + ": " + Quote(std::string(b, e)) +
                             " is not finite");
        }
        t.values(row, static_cast<Eigen::Index>(count)) = v;
      }
      ++count;
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    if (count != columns) {
      throw InvalidInput(where + std::to_string(count) + " fields, the header has " + std::to_string(columns));
    }
    t.lines.push_back(line_no);
    ++row;
  }
  if (in.bad()) throw InvalidInput(shown + ": read error");
  if (!have_header) throw InvalidInput(shown + ": empty file (no header row)");
  if (t.lines.empty()) throw InvalidInput(shown + ": no data rows (empty split)");
  if (row != rows) throw InvalidInput(shown + ": the file changed while it was read");
  return t;
}

}  // namespace

CsvTable ParseCsv(const std::string& text, const std::string& path) {
  std::istringstream count(text);
  const Eigen::Index rows = CountDataRows(count);
  std::istringstream in(text);
  return ParseStream(in, rows, path);
}

CsvTable ReadCsv(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw InvalidInput(EscapeForMessage(path) + ": is a folder, not a file");
  // Two passes over the file (the second one usually from the page cache): the first counts the rows, so that the
  // numbers are parsed straight into a matrix of the final size. Reading the text whole and growing a vector
  // held several times the file in memory.
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InvalidInput(EscapeForMessage(path) + ": cannot open (" + std::strerror(errno) + ")");
  const Eigen::Index rows = CountDataRows(in);
  if (in.bad()) throw InvalidInput(EscapeForMessage(path) + ": read error");
  in.clear();
  in.seekg(0);
  return ParseStream(in, rows, path);
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
  const std::string shown = EscapeForMessage(table.path);
  if (target_col < 0) throw InvalidInput(shown + ": no column " + Quote(target) + " (columns: " + EscapeForMessage(names) + ")");
  if (table.columns.size() < 2) throw InvalidInput(shown + ": no feature columns besides " + Quote(target));
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
      throw InvalidInput(EscapeForMessage(val->path) + ": no column " + Quote(name) + " (a feature of " +
                         EscapeForMessage(train.path) + ")");
    }
    X.col(static_cast<Eigen::Index>(j)) = val->X.col(static_cast<Eigen::Index>(k));
  }
  if (val->feature_names.size() != train.feature_names.size()) {
    for (const auto& name : val->feature_names) {
      bool found = false;
      for (const auto& t : train.feature_names) found = found || t == name;
      if (!found) {
        throw InvalidInput(EscapeForMessage(val->path) + ": column " + Quote(name) + " is not in " +
                           EscapeForMessage(train.path));
      }
    }
  }
  val->X = X;
  val->feature_names = train.feature_names;
}

}  // namespace ddn::bilevel
