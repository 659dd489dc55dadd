#include "datasets/csv.h"

#include <algorithm>
#include <cctype>
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

namespace ddn::datasets {
namespace {

std::string Quote(const std::string& s) {
  return QuoteForMessage(s, 40);
}

bool Blank(const std::string& line) {
  for (const char c : line) {
    if (c != ' ' && c != '\t' && c != '\r') return false;
  }
  return true;
}

bool Space(char c, char separator) {
  return c == ' ' || c == '\r' || (c == '\t' && separator != '\t');
}

// Calls fn(index, begin, end) for each field of `line` split at `separator` outside double quotes; [begin, end)
// is the field without surrounding spaces and without its enclosing quotes (a "" inside stays as two characters).
// Returns the number of fields. Throws InvalidInput (prefixed by `where`) for a quote that does not close on the
// line or text after a closing quote.
template <typename Fn>
size_t ForEachField(const std::string& line, char separator, const std::string& where, Fn&& fn) {
  const char* data = line.data();
  const size_t n = line.size();
  size_t i = 0, count = 0;
  while (true) {
    size_t b = i;
    while (b < n && Space(data[b], separator)) ++b;
    size_t next;  // position of the separator ending this field, or n
    if (b < n && data[b] == '"') {
      size_t q = b + 1;
      while (true) {
        q = line.find('"', q);
        if (q == std::string::npos) {
          throw InvalidInput(where + "field " + std::to_string(count + 1) +
                             ": a quoted field does not close on its line (fields spanning lines are not supported)");
        }
        if (q + 1 < n && data[q + 1] == '"') {
          q += 2;
          continue;
        }
        break;
      }
      size_t k = q + 1;
      while (k < n && Space(data[k], separator)) ++k;
      if (k < n && data[k] != separator) {
        throw InvalidInput(where + "field " + std::to_string(count + 1) + ": text after the closing quote");
      }
      fn(count, data + b + 1, data + q);
      next = k;
    } else {
      size_t e = line.find(separator, b);
      if (e == std::string::npos) e = n;
      size_t t = e;
      while (t > b && Space(data[t - 1], separator)) --t;
      fn(count, data + b, data + t);
      next = e;
    }
    ++count;
    if (next >= n) break;
    i = next + 1;
  }
  return count;
}

// The separator of a header line: ',', ';' or tab, whichever occurs most often outside quotes (',' for a line
// with none). A tie between two of them is refused.
char DetectSeparator(const std::string& line, const std::string& where) {
  int commas = 0, semicolons = 0, tabs = 0;
  bool quoted = false;
  for (const char c : line) {
    if (c == '"') quoted = !quoted;
    if (quoted) continue;
    commas += c == ',';
    semicolons += c == ';';
    tabs += c == '\t';
  }
  const int most = std::max({commas, semicolons, tabs});
  if (most == 0) return ',';
  if ((commas == most) + (semicolons == most) + (tabs == most) > 1) {
    throw InvalidInput(where + "cannot tell the separator: the header has as many of two of ',', ';' and tabs (" +
                       std::to_string(commas) + ", " + std::to_string(semicolons) + ", " + std::to_string(tabs) + ")");
  }
  return commas == most ? ',' : semicolons == most ? ';' : '\t';
}

std::string HeaderName(const char* b, const char* e) {
  std::string name;
  for (const char* c = b; c < e; ++c) {
    name += *c;
    if (*c == '"' && c + 1 < e && c[1] == '"') ++c;  // "" in a quoted name is one quote
  }
  return name;
}

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
CsvTable ParseStream(std::istream& in, Eigen::Index rows, const std::string& path, const CsvOptions& options) {
  CsvTable t;
  t.path = path;
  const std::string shown = EscapeForMessage(path);
  std::string line;
  int line_no = 0;
  bool have_header = false;
  Eigen::Index row = 0;
  std::vector<Eigen::Index> slot;  // matrix column of each file column, −1: not read
  size_t file_columns = 0;
  std::vector<std::string> names;  // every header name (for messages)
  const bool drop = options.missing == MissingValues::kDrop;
  while (std::getline(in, line)) {
    ++line_no;
    if (Blank(line)) continue;
    const std::string where = shown + ": row " + std::to_string(line_no) + ": ";
    if (!have_header) {
      if (line_no == 1 && line.size() >= 3 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);  // UTF-8 BOM
      t.separator = DetectSeparator(line, where);
      std::set<std::string> seen;
      ForEachField(line, t.separator, where, [&](size_t, const char* b, const char* e) {
        std::string name = HeaderName(b, e);
        if (name.empty()) throw InvalidInput(where + "empty column name in the header");
        if (!seen.insert(name).second) throw InvalidInput(where + "duplicate column " + Quote(name) + " in the header");
        names.push_back(std::move(name));
      });
      auto listed = [&] {
        std::string list;
        for (size_t j = 0; j < names.size() && j < 12; ++j) list += (j ? ", " : "") + names[j];
        if (names.size() > 12) list += ", ...";
        return EscapeForMessage(list);
      };
      for (const auto& c : options.columns) {
        if (!seen.count(c)) throw InvalidInput(shown + ": no column " + Quote(c) + " (columns: " + listed() + ")");
      }
      for (const auto& c : options.skip) {
        if (!seen.count(c) && !options.skip_absent_ok) {
          throw InvalidInput(shown + ": no column " + Quote(c) + " to leave out (columns: " + listed() + ")");
        }
      }
      file_columns = names.size();
      slot.assign(file_columns, -1);
      for (size_t j = 0; j < file_columns; ++j) {
        const auto& name = names[j];
        const bool wanted = (options.columns.empty() || std::find(options.columns.begin(), options.columns.end(),
                                                                  name) != options.columns.end()) &&
                            std::find(options.skip.begin(), options.skip.end(), name) == options.skip.end();
        if (!wanted) continue;
        slot[j] = static_cast<Eigen::Index>(t.columns.size());
        t.columns.push_back(name);
      }
      have_header = true;
      t.values.resize(rows, static_cast<Eigen::Index>(t.columns.size()));
      t.lines.reserve(static_cast<size_t>(rows));
      continue;
    }
    if (row >= rows) throw InvalidInput(shown + ": the file changed while it was read");
    bool missing = false;
    const size_t count = ForEachField(line, t.separator, where, [&](size_t j, const char* b, const char* e) {
      if (j >= file_columns || slot[j] < 0 || missing) return;
      const std::string& column = t.columns[static_cast<size_t>(slot[j])];
      if (IsMissingValue(b, e)) {
        if (drop) {
          missing = true;
          return;
        }
        throw InvalidInput(where + "column " + Quote(column) + ": missing value " + Quote(std::string(b, e)) +
                           " (--na drop skips rows with missing values)");
      }
      // Parsed in place (std::from_chars: a decimal or exponent form; an optional leading '+' is skipped). With
      // ';' as the separator a decimal comma is read as a point (in a small copy: no allocation).
      const char* digits = (b < e && *b == '+') ? b + 1 : b;
      const char* stop_at = e;
      char buffer[64];
      if (t.separator == ';' && std::find(digits, e, ',') != e && e - digits < 64) {
        std::copy(digits, e, buffer);
        std::replace(buffer, buffer + (e - digits), ',', '.');
        stop_at = buffer + (e - digits);
        digits = buffer;
      }
      double v = 0;
      const auto [stop, error] = std::from_chars(digits, stop_at, v);
      if (error != std::errc() || stop != stop_at) {
        throw InvalidInput(where + "column " + Quote(column) + ": " + Quote(std::string(b, e)) +
                           (error == std::errc::result_out_of_range ? " is not finite" : " is not a number"));
      }
      if (!std::isfinite(v)) {
        throw InvalidInput(where + "column " + Quote(column) + ": " + Quote(std::string(b, e)) + " is not finite");
      }
      t.values(row, slot[j]) = v;
    });
    if (count != file_columns) {
      throw InvalidInput(where + std::to_string(count) + " fields, the header has " + std::to_string(file_columns) +
                         (count == 1 && t.separator == ',' && line.find(';') != std::string::npos
                              ? " (a ';'-separated row in a ','-separated file?)"
                              : ""));
    }
    if (missing) {
      ++t.dropped_rows;
      --rows;  // the matrix keeps its size until the end
      continue;
    }
    t.lines.push_back(line_no);
    ++row;
  }
  if (in.bad()) throw InvalidInput(shown + ": read error");
  if (!have_header) throw InvalidInput(shown + ": empty file (no header row)");
  if (t.lines.empty()) {
    if (t.dropped_rows > 0) {
      throw InvalidInput(shown + ": no data rows left: all " + std::to_string(t.dropped_rows) +
                         " have missing values (--na drop)");
    }
    throw InvalidInput(shown + ": no data rows (empty split)");
  }
  if (row != rows) throw InvalidInput(shown + ": the file changed while it was read");
  if (t.values.rows() != row) t.values = t.values.topRows(row).eval();
  return t;
}

}  // namespace

bool IsMissingValue(const char* begin, const char* end) {
  auto is = [&](const char* word) {
    const size_t n = std::strlen(word);
    if (static_cast<size_t>(end - begin) != n) return false;
    for (size_t i = 0; i < n; ++i) {
      if (std::tolower(static_cast<unsigned char>(begin[i])) != word[i]) return false;
    }
    return true;
  };
  return begin == end || is("na") || is("n/a") || is("nan") || is("null") || is("?");
}

CsvTable ParseCsv(const std::string& text, const std::string& path, const CsvOptions& options) {
  std::istringstream count(text);
  const Eigen::Index rows = CountDataRows(count);
  std::istringstream in(text);
  return ParseStream(in, rows, path, options);
}

CsvTable ReadCsv(const std::string& path, const CsvOptions& options) {
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
  return ParseStream(in, rows, path, options);
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
  if (target_col < 0)
    throw InvalidInput(shown + ": no column " + Quote(target) + " (columns: " + EscapeForMessage(names) + ")");
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

}  // namespace ddn::datasets
