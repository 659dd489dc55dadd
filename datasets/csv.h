// datasets/csv.h: numeric CSV tables (for the tabular bi-level problems, bilevel/tabular.h), with errors a user
// can act on. Eigen and ddn only (library ddn_data).
//
// A table is a header row of column names followed by rows of numbers. The dialect, one policy for every file:
//   - Separator: ',' — or ';' or a tab, detected from the header row (the one of the three it holds most often
//     outside quotes; a tie between two is refused). With ';' a decimal comma is accepted ("3,14" is 3.14).
//   - Quotes: a field may be enclosed in double quotes (RFC 4180): separators inside are part of the field, ""
//     is a literal quote. A quoted field must close on its line (fields spanning lines are refused).
//   - Spaces around fields, CRLF line ends, blank lines and a UTF-8 byte-order mark are accepted.
//   - Missing values: an empty field or one of NA, N/A, NaN, null, ? (any case). By default they are refused
//     with the file, row and column named; CsvOptions::missing = kDrop skips every row with a missing value in a
//     column that is read (the count is in CsvTable::dropped_rows). inf and numbers out of range are refused.
//   - Columns not read (CsvOptions::columns / skip) are not parsed: they may hold any text.
// Every error is a ddn::InvalidInput whose one-line message names the file and the row, counted as lines of
// the file with the header as row 1:
//
//   data/val.csv: row 17: column 'bmi': 'n/a' is not a number
//   data/val.csv: row 17: column 'bmi': missing value 'NA' (--na drop skips rows with missing values)
//   data/val.csv: row 9: 10 fields, the header has 11
//   data/train.csv: no column 'target' (columns: age, sex, bmi, ...)
//   data/val.csv: no data rows
//
// SplitTarget turns a table into a design matrix X (all columns but the target, in file order) and a
// target vector y; AlignColumns reorders a validation table's columns to match the training table's.
//
// Memory: ReadCsv reads the file twice (the second time usually from the page cache): the first pass counts
// the rows, so that the numbers are parsed straight into a matrix of the final size; the reader holds the
// matrix and one line of text (with kDrop and rows actually dropped, the matrix is copied once at the end).
#pragma once

#include <Eigen/Core>
#include <string>
#include <vector>

namespace ddn::datasets {

enum class MissingValues {
  kRefuse,  // a missing value is an error naming the file, row and column (the default)
  kDrop,    // rows with a missing value (in a column that is read) are left out
};

struct CsvOptions {
  // Read only these columns (in file order; each must be in the header). Empty: every column.
  std::vector<std::string> columns;
  // Do not read these columns (each must be in the header unless `skip_absent_ok`).
  std::vector<std::string> skip;
  bool skip_absent_ok = false;
  MissingValues missing = MissingValues::kRefuse;
};

struct CsvTable {
  std::string path;                  // for messages
  std::vector<std::string> columns;  // header names of the columns read, unique, in file order
  Eigen::MatrixXd values;            // rows × columns
  std::vector<int> lines;            // file line (1-based) of each data row, for messages
  char separator = ',';              // ',', ';' or '\t' (detected from the header)
  int dropped_rows = 0;              // rows left out for missing values (MissingValues::kDrop)
};

// Reads a CSV file; throws InvalidInput naming the file (and row) on any problem, including a file
// without data rows (or none left after dropping those with missing values).
CsvTable ReadCsv(const std::string& path, const CsvOptions& options = {});
// Parses CSV text; `path` is used in messages only.
CsvTable ParseCsv(const std::string& text, const std::string& path, const CsvOptions& options = {});

// Whether a field's text (without quotes and surrounding spaces) is a missing value: empty, NA, N/A, NaN, null
// or ?, in any case.
bool IsMissingValue(const char* begin, const char* end);

// A supervised data set: features and target.
struct Dataset {
  std::string path;
  std::vector<std::string> feature_names;
  std::string target_name;
  Eigen::MatrixXd X;  // n × p
  Eigen::VectorXd y;  // n
  std::vector<int> lines;
};

// Splits `table` into features (every column but `target`) and target. Throws InvalidInput if the
// target column is missing or there is no feature column.
Dataset SplitTarget(const CsvTable& table, const std::string& target);

// Reorders `val`'s features to `train`'s order; throws InvalidInput naming `val`'s file if a training
// feature is missing from it or it has an extra one.
void AlignColumns(const Dataset& train, Dataset* val);

}  // namespace ddn::datasets
