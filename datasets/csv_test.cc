// The CSV reader (datasets/csv.h): numbers, the dialect (quotes, separators, missing values) and errors that name
// the file, row and column.
#include <gtest/gtest.h>

#include <string>

#include "datasets/csv.h"
#include "ddn/error.h"

namespace ddn::datasets {
namespace {

// ---- CSV -----------------------------------------------------------------------------------------

std::string ErrorOf(const std::string& text, const std::string& target = "y") {
  try {
    SplitTarget(ParseCsv(text, "f.csv"), target);
  } catch (const InvalidInput& e) {
    return e.what();
  }
  return "";
}

TEST(Csv, ParsesHeaderAndNumbers) {
  const CsvTable t = ParseCsv("a, b ,\"y\"\r\n1,2,3\n\n4.5,-6e-1,7\n", "f.csv");
  ASSERT_EQ(t.columns.size(), 3u);
  EXPECT_EQ(t.columns[1], "b");
  EXPECT_EQ(t.columns[2], "y");
  EXPECT_EQ(t.values.rows(), 2);
  EXPECT_DOUBLE_EQ(t.values(1, 1), -0.6);
  EXPECT_EQ(t.lines[1], 4);
}

TEST(Csv, ErrorsNameTheFileAndRow) {
  EXPECT_EQ(ErrorOf("a,y\n1,2\n3,abc\n"), "f.csv: row 3: column 'y': 'abc' is not a number");
  EXPECT_EQ(ErrorOf("a,y\n1,2\n3\n"), "f.csv: row 3: 1 fields, the header has 2");
  EXPECT_EQ(ErrorOf("a,y\n1,\n"),
            "f.csv: row 2: column 'y': missing value '' (--na drop skips rows with missing values)");
  EXPECT_EQ(ErrorOf("a,y\n1,nan\n"),
            "f.csv: row 2: column 'y': missing value 'nan' (--na drop skips rows with missing values)");
  EXPECT_EQ(ErrorOf("a,y\n1,inf\n"), "f.csv: row 2: column 'y': 'inf' is not finite");
  EXPECT_EQ(ErrorOf("a,y\n"), "f.csv: no data rows (empty split)");
  EXPECT_EQ(ErrorOf(""), "f.csv: empty file (no header row)");
  EXPECT_EQ(ErrorOf("a,a\n1,2\n"), "f.csv: row 1: duplicate column 'a' in the header");
  EXPECT_EQ(ErrorOf("a,b\n1,2\n"), "f.csv: no column 'y' (columns: a, b)");
  EXPECT_EQ(ErrorOf("y\n1\n"), "f.csv: no feature columns besides 'y'");
  EXPECT_THROW(ReadCsv("/nonexistent/file.csv"), InvalidInput);
}

TEST(Csv, AlignsValidationColumnsByName) {
  const Dataset train = SplitTarget(ParseCsv("a,b,y\n1,2,3\n", "t.csv"), "y");
  Dataset val = SplitTarget(ParseCsv("b,y,a\n20,30,10\n", "v.csv"), "y");
  AlignColumns(train, &val);
  EXPECT_DOUBLE_EQ(val.X(0, 0), 10);
  EXPECT_DOUBLE_EQ(val.X(0, 1), 20);
  Dataset bad = SplitTarget(ParseCsv("a,c,y\n1,2,3\n", "v.csv"), "y");
  EXPECT_THROW(AlignColumns(train, &bad), InvalidInput);
}

// ---- CSV dialects and missing values --------------------------------------------------------------------

std::string CsvError(const std::string& text, const CsvOptions& options = {}) {
  try {
    ParseCsv(text, "f.csv", options);
  } catch (const InvalidInput& e) {
    return e.what();
  }
  return "";
}

TEST(Csv, QuotedFields) {
  const CsvTable t = ParseCsv("\"a,b\",\"say \"\"hi\"\"\", y\n\"1.5\", 2 ,\"3\"\n", "f.csv");
  ASSERT_EQ(t.columns.size(), 3u);
  EXPECT_EQ(t.columns[0], "a,b");
  EXPECT_EQ(t.columns[1], "say \"hi\"");
  EXPECT_EQ(t.values(0, 0), 1.5);
  EXPECT_EQ(t.values(0, 2), 3.0);
  EXPECT_EQ(
      CsvError("a,y\n\"1,2\n"),
      "f.csv: row 2: field 1: a quoted field does not close on its line (fields spanning lines are not supported)");
  EXPECT_EQ(CsvError("a,y\n\"1\"x,2\n"), "f.csv: row 2: field 1: text after the closing quote");
  EXPECT_EQ(CsvError("a,y\n\"1,5\",2\n"), "f.csv: row 2: column 'a': '1,5' is not a number");
}

TEST(Csv, MissingValuesAreRefusedNamingRowAndColumnOrDropped) {
  for (const char* token : {"", "NA", "na", "N/A", "NaN", "null", "?"}) {
    EXPECT_EQ(CsvError(std::string("a,y\n1,2\n3,") + token + "\n"),
              std::string("f.csv: row 3: column 'y': missing value '") + token +
                  "' (--na drop skips rows with missing values)");
  }
  CsvOptions drop;
  drop.missing = MissingValues::kDrop;
  const CsvTable t = ParseCsv("a,y\n1,2\nNA,4\n5,?\n7,8\n", "f.csv", drop);
  EXPECT_EQ(t.dropped_rows, 2);
  ASSERT_EQ(t.values.rows(), 2);
  EXPECT_EQ(t.values(1, 0), 7.0);
  EXPECT_EQ(t.lines[1], 5);
  EXPECT_EQ(CsvError("a,y\nNA,1\n", drop), "f.csv: no data rows left: all 1 have missing values (--na drop)");
  // A missing value in a column that is not read does not count.
  CsvOptions skip = drop;
  skip.skip = {"a"};
  EXPECT_EQ(ParseCsv("a,y\nNA,4\n", "f.csv", skip).dropped_rows, 0);
}

TEST(Csv, SemicolonsAndTabsAreDetected) {
  const CsvTable semi = ParseCsv("a;b;y\n1,5;2;3\n", "f.csv");
  EXPECT_EQ(semi.separator, ';');
  EXPECT_EQ(semi.values(0, 0), 1.5);  // a decimal comma
  const CsvTable tabs = ParseCsv("a\tb\ty\n1.5\t2\t3\n", "f.csv");
  EXPECT_EQ(tabs.separator, '\t');
  EXPECT_EQ(tabs.values(0, 2), 3.0);
  EXPECT_EQ(CsvError("a,b;c\n1,2;3\n"),
            "f.csv: row 1: cannot tell the separator: the header has as many of two of ',', ';' and tabs (1, 1, 0)");
  EXPECT_EQ(CsvError("a,b,y\n1;2;3\n"), "f.csv: row 2: column 'a': '1;2;3' is not a number");
  CsvOptions text_column;
  text_column.skip = {"a"};
  EXPECT_EQ(CsvError("a,b,y\n1;2;3\n", text_column),
            "f.csv: row 2: 1 fields, the header has 3 (a ';'-separated row in a ','-separated file?)");
}

}  // namespace
}  // namespace ddn::datasets
