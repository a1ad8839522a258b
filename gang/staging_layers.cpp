#include "gang/staging_layers.hpp"

#include <algorithm>
#include <limits>
#include <unordered_map>

namespace gang {

std::vector<std::vector<std::size_t>> layer_groups(const BuildGraph& graph,
                                                   const std::vector<std::size_t>& stage,
                                                   std::size_t max_layers) {
  const auto& comps = graph.components;
  std::unordered_map<std::string, std::size_t> strata;
  for (std::size_t i = 0; i < comps.size(); ++i)
    if (comps[i].kind == Kind::stratum) strata.emplace(comps[i].name, i);
  // The chunks a stratum stages (bootstrap chunks are never staged).
  auto staged_members = [&](std::size_t stratum) {
    std::vector<std::size_t> out;
    for (std::size_t m : comps[stratum].chunks)
      if (comps[m].build_mode != BuildMode::bootstrap) out.push_back(m);
    std::sort(out.begin(), out.end());
    return out;
  };
  std::vector<std::vector<std::size_t>> groups;
  bool whole_strata_only = true;  // so far: the leading run of whole strata
  for (std::size_t i = 0; i < stage.size();) {
    std::size_t j = i;
    while (j < stage.size() && comps[stage[j]].stratum == comps[stage[i]].stratum) ++j;
    std::vector<std::size_t> run(stage.begin() + static_cast<std::ptrdiff_t>(i),
                                 stage.begin() + static_cast<std::ptrdiff_t>(j));
    auto stratum = strata.find(comps[stage[i]].stratum);
    if (run.size() > 1 && stratum != strata.end() && staged_members(stratum->second) == run) {
      if (whole_strata_only && !groups.empty()) {
        groups.back().insert(groups.back().end(), run.begin(), run.end());
      } else {
        groups.push_back(std::move(run));
      }
    } else {
      whole_strata_only = false;
      for (std::size_t item : run) groups.push_back({item});
    }
    i = j;
  }
  if (max_layers == 0) max_layers = 1;
  while (groups.size() > max_layers) {
    std::size_t best = 0;
    std::size_t best_size = std::numeric_limits<std::size_t>::max();
    for (std::size_t k = 0; k + 1 < groups.size(); ++k) {
      std::size_t size = groups[k].size() + groups[k + 1].size();
      if (size < best_size) {
        best = k;
        best_size = size;
      }
    }
    groups[best].insert(groups[best].end(), groups[best + 1].begin(), groups[best + 1].end());
    groups.erase(groups.begin() + static_cast<std::ptrdiff_t>(best) + 1);
  }
  return groups;
}

}  // namespace gang
