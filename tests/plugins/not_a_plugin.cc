// A shared library that is not a ddn plugin: no ddn_plugin_info entry point.
extern "C" int ddn_test_not_a_plugin_answer() {
  return 42;
}
