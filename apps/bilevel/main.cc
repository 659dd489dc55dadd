// `ddn-bilevel`: the `ddn bilevel` command as an executable of its own; `ddn bilevel ARGS` runs
// `ddn-bilevel ARGS` from the same folder (apps/ddn/bilevel_command.cc). Only this program links OpenCV's
// image codecs (PNG plots, images of any format for tv-denoise), which load ~150 shared libraries: ~0.1 s of
// start-up that every `ddn eval` would otherwise pay.
#include <glog/logging.h>
#include <Eigen/Core>
#include <opencv2/core/utils/logger.hpp>

#include <cstdlib>
#include <iostream>

#include "apps/bilevel/app.h"

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  // Errors are one line on stderr (docs/design.md §2): keep Ceres' glog warnings off it, unless asked.
  if (!std::getenv("DDN_LOG")) FLAGS_minloglevel = google::GLOG_FATAL;
  // Nor OpenCV's own log lines (a codec's warning on an unreadable image).
  cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_SILENT);
  // The tabular problems multiply tall, narrow matrices (1e6 × 11): Eigen's threaded products only add
  // synchronisation there, and threads spin-waiting on a loaded machine cost more CPU than the work itself
  // (robust regression on 1e6 rows: 97 s of CPU with two threads, 4 s with one).
  Eigen::setNbThreads(1);
  return ddn::bilevel::RunBilevelCommand(argc, argv, std::cout, std::cerr);
}
