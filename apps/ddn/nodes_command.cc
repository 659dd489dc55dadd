// `ddn nodes [NODE...] [--json]`: the registered nodes, their parameters, inputs and outputs.
#include <iostream>
#include <string>
#include <vector>

#include "apps/ddn/cli_util.h"
#include "apps/ddn/command.h"
#include "apps/ddn/json_io.h"
#include "ddn/node.h"
#include "ddn/strings.h"

namespace po = boost::program_options;

namespace ddn::cli {
namespace {

std::string Pad(std::string s, size_t width) {
  if (s.size() < width) s.resize(width, ' ');
  return s + " ";
}

void PrintNode(const NodeSpec& spec) {
  std::cout << spec.name << ": " << spec.summary << "\n";
  std::cout << "  origin: " << NodeOrigin(spec.name) << "\n";
  std::cout << "  params:" << (spec.params.empty() ? " (none)" : "") << "\n";
  for (const auto& p : spec.params) {
    std::cout << "    " << Pad(p.name, 14) << Pad(ParamTypeName(p.type), 6) << Pad("= " + p.default_value, 16) << p.doc;
    if (!p.choices.empty()) {
      std::cout << " {" << Join(p.choices) << "}";
    }
    std::cout << "\n";
  }
  std::cout << "  inputs:\n";
  for (const auto& in : spec.inputs) {
    std::string flags = in.differentiable ? "differentiable" : "constant";
    if (in.optional) flags += ", optional";
    std::cout << "    " << Pad(in.name, 14) << Pad(BatchShapeString(in.dims), 14) << Pad("[" + flags + "]", 27)
              << in.doc << "\n";
  }
  std::cout << "  outputs:\n";
  for (const auto& out : spec.outputs) {
    std::cout << "    " << Pad(out.name, 14) << Pad(BatchShapeString(out.dims), 14) << out.doc << "\n";
  }
}

int RunNodes(int argc, char** argv) {
  return RunGuarded("nodes", [&]() {
    po::options_description options("Options");
    bool json = false;
    std::vector<std::string> names;
    options.add_options()("help,h", "show this help")("json", po::bool_switch(&json),
                                                      "print {\"nodes\": [...]} as JSON instead of text");
    po::options_description hidden;
    hidden.add_options()("node", po::value<std::vector<std::string>>(&names), "nodes to show");
    po::options_description all;
    all.add(options).add(hidden);
    po::positional_options_description positional;
    positional.add("node", -1);
    po::variables_map vm;
    ParseCommandLine(argc, argv, all, positional, &vm);
    if (vm.count("help")) {
      PrintHelp("ddn nodes [NODE...] [--json]",
                "Lists every registered node (or the ones named): where it comes from (built-in, or the\n"
                "path of the plugin that registered it: ddn --plugin LIB.so nodes), its parameters (name,\n"
                "type, default, meaning, choices), its inputs and outputs with batch-first shapes such as\n"
                "(B, N), and whether each input is differentiable or optional.",
                options);
      return kExitOk;
    }
    if (names.empty()) names = NodeNames();
    std::vector<const NodeSpec*> specs;
    for (const auto& n : names) specs.push_back(&GetNodeSpec(n));  // throws "unknown node"
    if (json) {
      Json list = Json::array();
      for (const NodeSpec* s : specs) {
        Json node = NodeSpecToJson(*s);
        node["origin"] = NodeOrigin(s->name);  // "built-in" or the plugin's path
        list.push_back(std::move(node));
      }
      Json out = Json::object();
      out["nodes"] = std::move(list);
      std::cout << out.dump() << std::endl;
    } else {
      for (size_t i = 0; i < specs.size(); ++i) {
        if (i) std::cout << "\n";
        PrintNode(*specs[i]);
      }
      if (specs.empty()) std::cout << "(no nodes registered)\n";
      std::cout << std::flush;
    }
    return kExitOk;
  });
}

}  // namespace
}  // namespace ddn::cli

DDN_REGISTER_COMMAND(nodes, "nodes", "list the registered nodes: parameters, inputs and outputs with shapes",
                     ddn::cli::RunNodes);
