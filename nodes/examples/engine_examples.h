// nodes/examples: nodes that exercise each path of the generic engine; see engine_examples.cc.
#pragma once

namespace ddn::examples {
// Does nothing; referencing it keeps the examples' registrations in a statically linked binary that
// does not use ddn_link_nodes().
void LinkEngineExamples();
}  // namespace ddn::examples
