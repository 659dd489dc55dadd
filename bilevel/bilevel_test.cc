#include "bilevel/bilevel.h"
#include <gtest/gtest.h>
TEST(Bilevel, Builds) {}
