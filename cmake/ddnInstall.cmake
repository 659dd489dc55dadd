# ddnInstall.cmake: `cmake --install build --prefix P` (included at the end of the top-level CMakeLists.txt).
#
#   P/include/ddn, P/include/nodes/<family>, P/include/bilevel, P/include/datasets/{csv,image}.h   public headers
#                                                             (ddn/version.h generated)
#   P/lib/libddn.so.*, libddn_graph.a, libddn_data.a, libddn_bilevel.a, libddn_nodes_<family>.a
#   P/lib/cmake/ddn/   ddnConfig.cmake, ddnConfigVersion.cmake, ddnTargets*.cmake, ddnNodeLibrary.cmake
#   P/bin/ddn, ddn-bilevel, ddn-pointcloud                    with the apps (DDN_BUILD_APPS)
#   P/share/ddn/datasets                                      the data `ddn bilevel` ships with (own licences)
#   P/share/doc/ddn/LICENSE
#
# Exported targets (namespace ddn::): ddn (the engine), graph, data (CSV tables, grey images), bilevel, nodes (every built-in family, linked
# whole so that their registrations survive) and one nodes_<family> per family. Families install themselves
# (ddn_add_node_library, cmake/ddnNodeLibrary.cmake); nothing here lists them.
include(CMakePackageConfigHelpers)

set(DDN_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/ddn CACHE STRING "Where ddnConfig.cmake is installed")

# The engine, its headers and the generated version header.
install(TARGETS ddn EXPORT ddnTargets
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/ddn/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/ddn
        FILES_MATCHING PATTERN "*.h")
install(FILES ${PROJECT_BINARY_DIR}/include/ddn/version.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/ddn)

# The graph and the bi-level engine.
set_target_properties(ddn_graph PROPERTIES EXPORT_NAME graph)
add_library(ddn::graph ALIAS ddn_graph)
set_target_properties(ddn_bilevel PROPERTIES EXPORT_NAME bilevel)
add_library(ddn::bilevel ALIAS ddn_bilevel)
set_target_properties(ddn_data PROPERTIES EXPORT_NAME data)
install(TARGETS ddn_graph ddn_data ddn_bilevel ddn_nodes EXPORT ddnTargets ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
if(TARGET ddn_graph_avx2)  # the graph's AVX2 loops (ddn/graph/dense.h), a shared library ddn::graph links
  set_target_properties(ddn_graph_avx2 PROPERTIES EXPORT_NAME graph_avx2)
  install(TARGETS ddn_graph_avx2 EXPORT ddnTargets LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
endif()
install(FILES datasets/csv.h datasets/image.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/datasets)
install(FILES bilevel/bilevel.h bilevel/node_problem.h bilevel/registry.h bilevel/tabular.h bilevel/tv_denoise.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/bilevel)

install(EXPORT ddnTargets NAMESPACE ddn:: DESTINATION ${DDN_INSTALL_CMAKEDIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/ddnConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/ddnConfig.cmake INSTALL_DESTINATION ${DDN_INSTALL_CMAKEDIR})
# 0.x releases: a minor release may change the node ABI, so only the same major.minor is compatible.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/ddnConfigVersion.cmake COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/ddnConfig.cmake ${PROJECT_BINARY_DIR}/ddnConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/ddnNodeLibrary.cmake
        DESTINATION ${DDN_INSTALL_CMAKEDIR})

install(FILES ${PROJECT_SOURCE_DIR}/LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR})

# The tools and the data they ship with.
foreach(tool ddn_cli ddn_bilevel_cli ddn_pointcloud)
  if(TARGET ${tool})
    install(TARGETS ${tool} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()
if(TARGET ddn_bilevel_cli)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/datasets/tabular ${PROJECT_SOURCE_DIR}/datasets/images
          DESTINATION ${CMAKE_INSTALL_DATADIR}/ddn/datasets)
endif()
