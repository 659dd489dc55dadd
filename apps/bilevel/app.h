// apps/bilevel/app.h: the `ddn bilevel` subcommand, as a function (apps/ddn/bilevel_command.cc registers it).
//
//   ddn bilevel ridge|logistic|tv-denoise|robust-regression [options]
//   ddn bilevel NODE --request FILE --outer-loss mse|validation_mse|validation_log_loss [options]
//
// Tabular problems read --train and --val CSV files (header row; the features are all columns but
// --target) or, by default, the copies shipped in datasets/tabular/ (ridge and robust regression:
// diabetes, target `progression`; logistic: breast cancer, target `benign`; `--dataset digits` for the
// multinomial case). tv-denoise learns λ on --train-image and validates on --val-images (default:
// datasets/images/camera.png, then coins.png and moon.png), with seeded Gaussian noise.
//
// Output: progress on stderr, one JSON object on stdout:
//   {"problem", "hyperparameters", "outer_loss", "solution": {"weights": {COLUMN: value}, "intercept": value},
//    "history": [...], "inner_solves", ...}
// (`outer_loss` is the validation MSE for ridge and robust regression, the validation mean log-loss for
// logistic regression, the training image's MSE against the clean image for tv-denoise). --grid N adds a
// grid search ("grid": {...}); --plot FILE.png draws the optimisation.
// A registered node is a bi-level problem of its positive differentiable inputs with a named outer loss
// (bilevel/outer_loss.h, bilevel/node_problem.h); --request gives its params and inputs (batch size 1) and the
// loss's "target" or "validation" arrays; the JSON's "solution" holds the node's outputs.
// Exit codes: 0 ok, 1 numerical failure, 2 bad input (one line on stderr naming the file and row).
#pragma once

#include <ostream>
#include <string>

namespace ddn::bilevel {

// argv[0] is the subcommand's name ("bilevel"); the rest are its arguments. Returns the exit code.
int RunBilevelCommand(int argc, char** argv, std::ostream& out, std::ostream& err);

// The folder holding tabular/ and images/: $DDN_DATA_DIR if set, else share/ddn/datasets next to the bin/ folder
// of an installed ddn-bilevel, else the source tree's datasets/ folder if it exists (compiled in), else
// "datasets" relative to the working directory.
std::string DefaultDataDir();

}  // namespace ddn::bilevel
