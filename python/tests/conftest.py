# Shared set-up of the Python tests (run by CTest: python/CMakeLists.txt sets PYTHONPATH to the build tree's
# package, DDN_TEST_PLUGIN to the test plugin of tests/plugins and DDN_PYTHON_EXAMPLES to python/examples).
import os

import ddn

# The test plugin's nodes (plugin_log_cosh_mean, plugin_identity) join the built-in ones for every test file.
if os.environ.get("DDN_TEST_PLUGIN"):
    ddn.load_plugin(os.environ["DDN_TEST_PLUGIN"])
