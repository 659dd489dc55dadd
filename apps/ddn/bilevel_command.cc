// `ddn bilevel`: bi-level hyperparameter optimisation (bilevel/app.h has the options and the output).
#include <iostream>

#include "apps/ddn/command.h"
#include "bilevel/app.h"

namespace {

int RunBilevel(int argc, char** argv) { return ddn::bilevel::RunBilevelCommand(argc, argv, std::cout, std::cerr); }

}  // namespace

DDN_REGISTER_COMMAND(bilevel, "bilevel",
                     "hyperparameter optimisation by implicit hypergradients: ridge, logistic, tv-denoise, "
                     "robust-regression",
                     RunBilevel);
