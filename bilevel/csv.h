// bilevel/csv.h: numeric CSV tables for the tabular bi-level problems, with errors a user can act on.
//
// A table is a header row of column names followed by rows of numbers, comma separated (spaces around
// fields and double quotes around names are ignored; CRLF line ends and blank lines are accepted).
// Every error is a ddn::InvalidInput whose one-line message names the file and the row, counted as
// lines of the file with the header as row 1:
//
//   data/val.csv: row 17: column 'bmi': 'n/a' is not a number
//   data/val.csv: row 9: 10 fields, the header has 11
//   data/train.csv: no column 'target' (columns: age, sex, bmi, ...)
//   data/val.csv: no data rows
//
// SplitTarget turns a table into a design matrix X (all columns but the target, in file order) and a
// target vector y; AlignColumns reorders a validation table's columns to match the training table's.
#pragma once

#include <Eigen/Core>
#include <string>
#include <vector>

namespace ddn::bilevel {

struct CsvTable {
  std::string path;                  // for messages
  std::vector<std::string> columns;  // header names, unique
  Eigen::MatrixXd values;            // rows × columns
  std::vector<int> lines;            // file line (1-based) of each data row, for messages
};

// Reads a CSV file; throws InvalidInput naming the file (and row) on any problem, including a file
// without data rows.
CsvTable ReadCsv(const std::string& path);
// Parses CSV text; `path` is used in messages only.
CsvTable ParseCsv(const std::string& text, const std::string& path);

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

}  // namespace ddn::bilevel
