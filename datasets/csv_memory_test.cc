// Scale (issue 18): ridge on 1e6 CSV rows held 5.3 times the file in memory; the reader read the whole text,
// copied it, grew a vector of the numbers and copied that into the matrix. It now counts the rows in a first pass
// and parses straight into the matrix. The matrix is allocated by Eigen (malloc); everything else the reader
// allocates goes through operator new, which this test counts: its peak must stay far below the file's size.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <new>
#include <string>

#include "datasets/csv.h"
#include "ddn/random.h"
#include "tests/scratch.h"

namespace {
std::atomic<long long> g_live{0}, g_peak{0};

void* Allocate(std::size_t size) {
  // A size header in front of each block, so that delete knows what to subtract.
  void* raw = std::malloc(size + 16);
  if (!raw) throw std::bad_alloc();
  *static_cast<std::size_t*>(raw) = size;
  const long long live = g_live += static_cast<long long>(size);
  long long peak = g_peak.load();
  while (live > peak && !g_peak.compare_exchange_weak(peak, live)) {
  }
  return static_cast<char*>(raw) + 16;
}

void Release(void* p) {
  if (!p) return;
  void* raw = static_cast<char*>(p) - 16;
  g_live -= static_cast<long long>(*static_cast<std::size_t*>(raw));
  std::free(raw);
}
}  // namespace

void* operator new(std::size_t size) {
  return Allocate(size);
}
void* operator new[](std::size_t size) {
  return Allocate(size);
}
void operator delete(void* p) noexcept {
  Release(p);
}
void operator delete[](void* p) noexcept {
  Release(p);
}
void operator delete(void* p, std::size_t) noexcept {
  Release(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  Release(p);
}

namespace ddn::datasets {
namespace {

TEST(CsvReader, HoldsNoMoreThanTheParsedMatrix) {
  const std::string path = ddn::testing::ScratchDir() + "/ddn_csv_memory.csv";
  const int rows = 40000, cols = 10;
  long long file_bytes = 0;
  {
    std::ofstream out(path);
    Rng rng(1);
    for (int j = 0; j < cols; ++j) out << (j ? "," : "") << "c" << j;
    out << "\n";
    char number[32];
    for (int i = 0; i < rows; ++i) {
      for (int j = 0; j < cols; ++j) {
        std::snprintf(number, sizeof number, "%.17g", rng.Normal());
        out << (j ? "," : "") << number;
      }
      out << "\n";
    }
    file_bytes = static_cast<long long>(out.tellp());
  }
  g_peak = g_live.load();
  const long long before = g_live.load();
  const CsvTable table = ReadCsv(path);
  const long long peak = g_peak.load() - before;
  ASSERT_EQ(table.values.rows(), rows);
  ASSERT_EQ(table.values.cols(), cols);
  // Beyond the matrix (Eigen's, not counted here): the row numbers (4 bytes a row), one line, the stream's buffer.
  EXPECT_LT(peak, 8LL * rows + (1 << 20)) << "file " << file_bytes << " bytes";
  EXPECT_LT(peak, file_bytes / 5);
  std::remove(path.c_str());
}

}  // namespace
}  // namespace ddn::datasets
