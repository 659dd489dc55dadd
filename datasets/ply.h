// datasets/ply.h: triangle meshes and point clouds from PLY files, and true normals from the mesh faces.
//
// PLY (the Stanford polygon format) is a header that declares elements and their properties, then the data, as
// text ("format ascii 1.0") or binary ("binary_little_endian 1.0", "binary_big_endian 1.0"). ReadPly reads the
// "vertex" element's x, y, z (and nx, ny, nz when present; any other vertex property is skipped) and the "face"
// element's vertex_indices (or vertex_index) list, fanning polygons into triangles; any other element is skipped.
// Scalar types: char/int8, uchar/uint8, short/int16, ushort/uint16, int/int32, uint/uint32, float/float32,
// double/float64. This covers the scans and meshes Debian's opencv-doc ships (surface_matching/data/*.ply,
// viz/data/bunny.ply: ASCII, with faces).
//
// Face normals at the vertices (VertexNormalsFromFaces): for each triangle (a, b, c) the cross product
// (b − a) × (c − a), whose length is twice the triangle's area, is added to its three vertices; each vertex's sum
// is then normalised. So a vertex normal is the area-weighted mean of the normals of the faces around it, oriented
// by the faces' winding. A vertex in no face (or whose faces are all degenerate) has no normal: `valid` says which.
//
// Errors are InvalidInput with one line naming the file and the problem (cannot open, not a PLY file, unsupported
// format or type, missing x/y/z, a truncated or malformed body, a face index out of range, a non-finite
// coordinate).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ddn::datasets {

struct PlyMesh {
  std::vector<double> points;      // V × 3 vertex positions, row-major
  std::vector<double> normals;     // V × 3 as stored in the file (nx, ny, nz; not normalised), or empty
  std::vector<int64_t> triangles;  // T × 3 vertex indices
  int64_t num_vertices() const { return static_cast<int64_t>(points.size() / 3); }
  int64_t num_triangles() const { return static_cast<int64_t>(triangles.size() / 3); }
};

// Reads a PLY file. Throws InvalidInput (see above).
PlyMesh ReadPly(const std::string& path);

// Unit vertex normals from the faces (V × 3); valid[v] = 0 for a vertex without a normal (its row is 0).
std::vector<double> VertexNormalsFromFaces(const PlyMesh& mesh, std::vector<uint8_t>* valid);

}  // namespace ddn::datasets
