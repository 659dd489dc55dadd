// ddn/files.h: output files that are checked before the work and never left half written.
//
// A program that trains for minutes and then cannot write its plot has lost the minutes. The front ends (the
// demos, `ddn bilevel`) therefore check every output path before they start, and write each file atomically:
//
//   CheckOutputFile("--plot", path)        the folder exists and is writable, the path is not a folder
//   CheckOutputFolder("--save-dir", dir)   the folder exists and is writable
//   RequireDistinctOutputs({{"--data", d}}, {{"--plot", p}, ...})
//                                          no output is the same file as an input or as another output
//                                          (compared as absolute paths with symbolic links resolved); inputs may
//                                          repeat
//   WriteFileAtomically(path, bytes)       writes a temporary file next to `path` and renames it over `path`:
//                                          readers see the old file or the whole new one, never a part
//
// The checks throw ddn::InvalidInput naming the option and the path (at most ~200 bytes of it, escaped); a write
// that fails afterwards (disk full) throws ddn::Error and leaves no temporary file behind.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace ddn {

void CheckOutputFile(const std::string& option, const std::string& path);
void CheckOutputFolder(const std::string& option, const std::string& folder);
// (option, path) pairs; empty paths are skipped.
using NamedPaths = std::vector<std::pair<std::string, std::string>>;
void RequireDistinctOutputs(const NamedPaths& inputs, const NamedPaths& outputs);
void WriteFileAtomically(const std::string& path, const std::string& bytes);

// The extension of a path's file name, lower case, with the dot ("out.PNG" → ".png"); "" if none.
std::string FileExtension(const std::string& path);

}  // namespace ddn
