#include "ddn/status.h"

namespace ddn {

void ProblemStatus::Set(StatusFlag flag, const std::string& why) {
  flags |= flag;
  if (why.empty()) return;
  if (note.find(why) != std::string::npos) return;
  if (!note.empty()) note += "; ";
  note += why;
}

std::vector<std::string> FlagNames(uint32_t flags) {
  static const std::pair<StatusFlag, const char*> kNames[] = {
      {kNonRegular, "non_regular"},     {kDegenerate, "degenerate"},      {kNonSmooth, "non_smooth"},
      {kNonUnique, "non_unique"},       {kNotCertified, "not_certified"}, {kAllOutliers, "all_outliers"},
      {kNotConverged, "not_converged"}, {kUnverified, "unverified"},
  };
  std::vector<std::string> names;
  for (const auto& [flag, name] : kNames)
    if (flags & flag) names.push_back(name);
  return names;
}

}  // namespace ddn
