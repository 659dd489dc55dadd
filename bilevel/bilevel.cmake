# bilevel/: bi-level problems (hyperparameter optimisation): the outer machinery and the built-in problems.
#
#   ddn_bilevel      (ddn::bilevel) the engine and the built-in problems: Eigen, ddn, ddn_data and the regression
#                    and image nodes' solvers.
# The `ddn bilevel` tool (options, plots, image files) is apps/bilevel/.
add_library(ddn_bilevel STATIC
  ${CMAKE_CURRENT_LIST_DIR}/bilevel.cc
  ${CMAKE_CURRENT_LIST_DIR}/tabular.cc
  ${CMAKE_CURRENT_LIST_DIR}/tv_denoise.cc
  ${CMAKE_CURRENT_LIST_DIR}/node_problem.cc
  ${CMAKE_CURRENT_LIST_DIR}/outer_loss.cc
  ${CMAKE_CURRENT_LIST_DIR}/registry.cc)
# The inner problems are those of the regression nodes (nodes/regression/regression.h) and of the tv_denoise node
# (nodes/image/tv_denoise.h), linked whole so that the nodes are registered wherever the problems are (as
# ddn_link_nodes links them).
# (The installed ddn::bilevel names the installed target: export does not rewrite names inside genexes.)
target_link_libraries(ddn_bilevel PUBLIC ddn ddn_data
                      "$<BUILD_INTERFACE:$<LINK_LIBRARY:WHOLE_ARCHIVE,ddn_nodes_regression>>"
                      "$<INSTALL_INTERFACE:$<LINK_LIBRARY:WHOLE_ARCHIVE,ddn::nodes_regression>>"
                      "$<BUILD_INTERFACE:$<LINK_LIBRARY:WHOLE_ARCHIVE,ddn_nodes_image>>"
                      "$<INSTALL_INTERFACE:$<LINK_LIBRARY:WHOLE_ARCHIVE,ddn::nodes_image>>")

if(DDN_BUILD_TESTS)
  # The README's user-defined bi-level problem (a declarative node + an outer loss).
  ddn_add_test(bilevel_node_problem_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/node_problem_test.cc
    LIBS ddn_bilevel)
endif()

if(DDN_BUILD_TESTS AND DDN_BUILD_APPS)
  # Hypergradients against finite differences, the optimiser against grid searches (TV images read by OpenCV:
  # datasets/image_io.h, built with the apps).
  ddn_add_test(bilevel_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/bilevel_test.cc
    LIBS ddn_bilevel ddn_datasets)
  target_compile_definitions(bilevel_test PRIVATE DDN_TEST_DATA_DIR="${PROJECT_SOURCE_DIR}/datasets")
endif()
