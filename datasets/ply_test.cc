#include "datasets/ply.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include "ddn/error.h"
#include "tests/scratch.h"

namespace ddn::datasets {
namespace {

std::string TempFile(const std::string& name, const std::string& contents) {
  const std::filesystem::path path = std::filesystem::path(ddn::testing::ScratchDir()) / ("ddn_ply_test_" + name);
  std::ofstream(path, std::ios::binary) << contents;
  return path.string();
}

// A unit square in the z = 0 plane as one quad, plus a triangle standing on its edge, and an extra vertex in no face.
const char* kAscii =
    "ply\nformat ascii 1.0\ncomment test\nelement vertex 6\nproperty float x\nproperty float y\nproperty float z\n"
    "property float confidence\nelement face 2\nproperty list uchar int vertex_indices\nend_header\n"
    "0 0 0 1\n1 0 0 1\n1 1 0 1\n0 1 0 1\n0 0 1 0.5\n5 5 5 0\n4 0 1 2 3\n3 0 4 1\n";

TEST(Ply, ReadsAsciiWithFacesAndExtraProperties) {
  const PlyMesh mesh = ReadPly(TempFile("ascii.ply", kAscii));
  EXPECT_EQ(mesh.num_vertices(), 6);
  EXPECT_TRUE(mesh.normals.empty());
  ASSERT_EQ(mesh.num_triangles(), 3);  // the quad fanned into two, plus one
  EXPECT_EQ(mesh.triangles, (std::vector<int64_t>{0, 1, 2, 0, 2, 3, 0, 4, 1}));
  EXPECT_EQ(mesh.points[3 * 4 + 2], 1.0);
  std::vector<uint8_t> valid;
  const std::vector<double> n = VertexNormalsFromFaces(mesh, &valid);
  EXPECT_EQ(valid, (std::vector<uint8_t>{1, 1, 1, 1, 1, 0}));
  // Vertex 2 and 3 touch only the quad: +z (counter-clockwise seen from above).
  EXPECT_NEAR(n[3 * 2 + 2], 1.0, 1e-15);
  EXPECT_NEAR(n[3 * 3 + 2], 1.0, 1e-15);
  // Vertex 4 touches only the triangle (0, 4, 1) in the y = 0 plane: (4 − 0) × (1 − 0) = e_z × e_x = e_y.
  EXPECT_NEAR(n[3 * 4 + 1], 1.0, 1e-15);
  // Vertex 0: the quad (area 1, two halves) and the triangle (area ½) → (0, ½, 1)/|·|.
  EXPECT_NEAR(n[1] / n[2], 0.5, 1e-15);
}

TEST(Ply, ReadsBinaryBothEndiannessesAndNormals) {
  for (bool little : {true, false}) {
    std::string s = std::string("ply\nformat ") + (little ? "binary_little_endian" : "binary_big_endian") +
                    " 1.0\nelement vertex 3\nproperty double x\nproperty double y\nproperty double z\n"
                    "property float nx\nproperty float ny\nproperty float nz\nelement face 1\n"
                    "property list uchar uint vertex_indices\nend_header\n";
    auto put = [&](const void* v, size_t n) {
      char b[8];
      std::memcpy(b, v, n);
      const uint16_t probe = 1;
      const bool host_little = *reinterpret_cast<const unsigned char*>(&probe) == 1;
      if (little != host_little) std::reverse(b, b + n);
      s.append(b, n);
    };
    const double xyz[3][3] = {{0, 0, 0}, {2, 0, 0}, {0, 3, 0}};
    for (const auto& p : xyz) {
      for (double c : p) put(&c, 8);
      const float nrm[3] = {0, 0, 2};
      for (float c : nrm) put(&c, 4);
    }
    const uint8_t count = 3;
    put(&count, 1);
    for (uint32_t i : {0u, 1u, 2u}) put(&i, 4);
    const PlyMesh mesh = ReadPly(TempFile(little ? "le.ply" : "be.ply", s));
    ASSERT_EQ(mesh.num_vertices(), 3);
    EXPECT_EQ(mesh.points[3 * 2 + 1], 3.0);
    EXPECT_EQ(mesh.normals[2], 2.0);
    EXPECT_EQ(mesh.triangles, (std::vector<int64_t>{0, 1, 2}));
  }
}

void ExpectInvalid(const std::string& path, const std::string& part) {
  try {
    ReadPly(path);
    ADD_FAILURE() << "no error for " << path;
  } catch (const InvalidInput& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(part), std::string::npos) << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

TEST(Ply, BadFilesAreInvalidInput) {
  ExpectInvalid("/nonexistent/ddn_no_such.ply", "cannot open PLY file");
  ExpectInvalid(TempFile("notply.ply", "solid cube\nfacet\n"), "not a PLY file");
  std::string truncated = kAscii;
  truncated.resize(truncated.size() - 20);
  ExpectInvalid(TempFile("truncated.ply", truncated), "end early");
  std::string bad_index = kAscii;
  bad_index.replace(bad_index.find("3 0 4 1"), 7, "3 0 9 1");
  ExpectInvalid(TempFile("index.ply", bad_index), "out of range");
  std::string garbage = kAscii;
  garbage.replace(garbage.find("0 1 0 1\n"), 8, "0 x 0 1\n");
  ExpectInvalid(TempFile("garbage.ply", garbage), "malformed number 'x'");
  std::string no_z = kAscii;
  no_z.replace(no_z.find("property float z"), 16, "property float w");
  ExpectInvalid(TempFile("noz.ply", no_z), "no x, y, z");
  ExpectInvalid(TempFile("format.ply", "ply\nformat utf8 1.0\nend_header\n"), "unsupported format 'utf8'");
  std::string nan = kAscii;
  nan.replace(nan.find("1 1 0 1\n"), 8, "1 nan 0 1\n");
  ExpectInvalid(TempFile("nan.ply", nan), "non-finite");
}

// The scans Debian's opencv-doc ships, when installed.
TEST(Ply, ReadsOpenCvBunny) {
  const std::string path = "/usr/share/doc/opencv-doc/examples/viz/data/bunny.ply";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is not installed (Debian package opencv-doc)";
  const PlyMesh mesh = ReadPly(path);
  EXPECT_EQ(mesh.num_vertices(), 1889);
  EXPECT_EQ(mesh.num_triangles(), 3851);
  std::vector<uint8_t> valid;
  const std::vector<double> n = VertexNormalsFromFaces(mesh, &valid);
  int64_t with_normal = 0;
  for (uint8_t v : valid) with_normal += v;
  EXPECT_GT(with_normal, 1800);
}

}  // namespace
}  // namespace ddn::datasets
