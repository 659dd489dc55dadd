// `ddn-bilevel`: the `ddn bilevel` command as an executable of its own; `ddn bilevel ARGS` runs
// `ddn-bilevel ARGS` from the same folder (apps/ddn/bilevel_command.cc). Only this program links OpenCV's
// image codecs (PNG plots, images of any format for tv-denoise), which load ~150 shared libraries: ~0.1 s of
// start-up that every `ddn eval` would otherwise pay.
#include <glog/logging.h>

#include <cstdlib>
#include <iostream>

#include "bilevel/app.h"

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  // Errors are one line on stderr (docs/design.md §2): keep Ceres' glog warnings off it, unless asked.
  if (!std::getenv("DDN_LOG")) FLAGS_minloglevel = google::GLOG_FATAL;
  return ddn::bilevel::RunBilevelCommand(argc, argv, std::cout, std::cerr);
}
