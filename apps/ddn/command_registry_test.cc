// The command registry refuses a second command under a name already taken.
#include "apps/ddn/command.h"

#include <gtest/gtest.h>

#include "ddn/error.h"

namespace ddn::cli {
namespace {

int Zero(int, char**) {
  return 0;
}
int One(int, char**) {
  return 1;
}

TEST(CommandRegistry, RefusesADuplicateNameAndKeepsTheFirst) {
  ASSERT_TRUE(RegisterCommand({"registry_test", "first", Zero}));
  EXPECT_THROW(RegisterCommand({"registry_test", "second", One}), InternalError);
  int found = 0;
  for (const Command& c : Commands()) {
    if (c.name != "registry_test") continue;
    ++found;
    EXPECT_EQ(c.summary, "first");
  }
  EXPECT_EQ(found, 1);
}

}  // namespace
}  // namespace ddn::cli
