# bilevel/: bi-level problems (hyperparameter optimisation), their loaders and the `ddn bilevel` runner.
#
#   ddn_bilevel      (ddn::bilevel) the engine and the built-in problems: Eigen and ddn only.
#   ddn_bilevel_app  the `ddn bilevel` tool's code: options, plots and image files (Boost, OpenCV, JSON);
#                    built with the apps (DDN_BUILD_APPS).
add_library(ddn_bilevel STATIC
  ${CMAKE_CURRENT_LIST_DIR}/bilevel.cc
  ${CMAKE_CURRENT_LIST_DIR}/tabular.cc
  ${CMAKE_CURRENT_LIST_DIR}/tv_denoise.cc
  ${CMAKE_CURRENT_LIST_DIR}/node_problem.cc)
target_link_libraries(ddn_bilevel PUBLIC ddn ddn_data)

if(DDN_BUILD_TESTS)
  # The README's user-defined bi-level problem (a declarative node + an outer loss).
  ddn_add_test(bilevel_node_problem_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/node_problem_test.cc
    LIBS ddn_bilevel)
endif()

if(NOT DDN_BUILD_APPS)
  return()
endif()

add_library(ddn_bilevel_app STATIC
  ${CMAKE_CURRENT_LIST_DIR}/plot.cc
  ${CMAKE_CURRENT_LIST_DIR}/app.cc)
target_link_libraries(ddn_bilevel_app PUBLIC ddn_bilevel ddn_datasets
  PRIVATE opencv_core opencv_imgproc opencv_imgcodecs nlohmann_json::nlohmann_json Boost::program_options)
target_include_directories(ddn_bilevel_app PRIVATE ${OpenCV_INCLUDE_DIRS})
# The shipped data (datasets/tabular, datasets/images) for runs without file arguments: $DDN_DATA_DIR, else
# share/ddn/datasets of an installed ddn, else the source tree's (bilevel/app.h, DefaultDataDir).
target_compile_definitions(ddn_bilevel_app PRIVATE DDN_BILEVEL_DATA_DIR="${PROJECT_SOURCE_DIR}/datasets"
                           DDN_BILEVEL_INSTALLED_DATA_DIR="${CMAKE_INSTALL_DATADIR}/ddn/datasets")

# `ddn-bilevel`, next to `ddn` in ${CMAKE_BINARY_DIR}/bin: `ddn bilevel` runs it, so that `ddn` itself does not
# load OpenCV's image codecs (bilevel/main.cc).
add_executable(ddn_bilevel_cli ${CMAKE_CURRENT_LIST_DIR}/main.cc)
target_link_libraries(ddn_bilevel_cli PRIVATE ddn_bilevel_app glog::glog opencv_core)
target_include_directories(ddn_bilevel_cli PRIVATE ${OpenCV_INCLUDE_DIRS})  # its log level (main.cc)
set_target_properties(ddn_bilevel_cli PROPERTIES OUTPUT_NAME ddn-bilevel RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/bin)

if(DDN_BUILD_TESTS)
  ddn_add_test(bilevel_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/bilevel_test.cc
    LIBS ddn_bilevel_app)
  target_compile_definitions(bilevel_test PRIVATE DDN_TEST_DATA_DIR="${PROJECT_SOURCE_DIR}/datasets")
  # Issue 18: bounded options, outputs checked first and written atomically, bounded inner Newton steps.
  ddn_add_test(bilevel_robustness_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/robustness_test.cc
    LIBS ddn_bilevel_app)
  target_compile_definitions(bilevel_robustness_test PRIVATE DDN_TEST_DATA_DIR="${PROJECT_SOURCE_DIR}/datasets")
  # Issue 17: the command as a new user meets it (bounds, --eval-at, columns, labels, rank, --plot, CSV dialects).
  ddn_add_test(bilevel_usability_test
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/usability_test.cc
    LIBS ddn_bilevel_app nlohmann_json::nlohmann_json)
  target_compile_definitions(bilevel_usability_test PRIVATE DDN_TEST_DATA_DIR="${PROJECT_SOURCE_DIR}/datasets")
endif()
