#include "deploy/plan.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

namespace gang {

namespace {

std::string where(const Location& at) { return at.file + ":" + std::to_string(at.line); }

std::string basename_of(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

Result<DeploymentStep> plan_one(const Definitions& defs, const ClusterSystem& spec,
                                const Deployment& deployment,
                                const std::vector<ParameterOverride>& overrides,
                                std::set<std::string>& used_labels) {
  DeploymentStep step;
  step.system = spec.system;
  step.label = deployment.label;
  step.parameters = spec.deploy_defaults;
  for (const auto& [key, value] : deployment.settings) step.parameters[key] = value;
  for (const auto& o : overrides) {
    if (o.label != deployment.label) continue;
    step.parameters[o.key] = o.value;
    used_labels.insert(o.label);
  }
  auto type = step.parameters.find("type");
  auto upgrade = step.parameters.find("upgrade-type");
  if (type != step.parameters.end()) {
    step.type = basename_of(type->second);
  } else if (upgrade != step.parameters.end()) {
    step.type = basename_of(upgrade->second);
    step.upgrade = true;
  } else {
    return make_error(where(spec.where) + ": deployment " + deployment.label + " of " +
                      defs.systems[spec.system].name + " has no type");
  }
  auto location = step.parameters.find(step.upgrade ? "upgrade-location" : "location");
  if (location == step.parameters.end() || location->second.empty())
    return make_error(where(spec.where) + ": deployment " + deployment.label + " of " +
                      defs.systems[spec.system].name + " has no " +
                      (step.upgrade ? "upgrade-location" : "location"));
  step.location = location->second;
  for (const ClusterSystem& sub : spec.subsystems) {
    for (const Deployment& d : sub.deploy) {
      auto planned = plan_one(defs, sub, d, overrides, used_labels);
      if (!planned) return planned;
      // Inside the parent's tree: no way out of it.
      std::string relative = planned->location;
      while (relative.starts_with("/")) relative.erase(0, 1);
      if (relative.empty() || relative == ".." || relative.starts_with("../") ||
          relative.find("/../") != std::string::npos || relative.ends_with("/.."))
        return make_error(where(sub.where) + ": subsystem deployment " + d.label +
                          " has a location outside its parent system: " + planned->location);
      planned->location = relative;
      step.subsystems.push_back(std::move(*planned));
    }
  }
  return step;
}

}  // namespace

Result<ParameterOverride> parse_override(const std::string& text) {
  auto eq = text.find('=');
  auto dot = text.find('.');
  if (eq == std::string::npos || dot == std::string::npos || dot > eq || dot == 0 || dot + 1 == eq)
    return make_error("-p " + text + ": expected LABEL.KEY=VALUE (the deployment's label in the cluster)");
  return ParameterOverride{text.substr(0, dot), text.substr(dot + 1, eq - dot - 1), text.substr(eq + 1)};
}

Result<std::vector<DeploymentStep>> plan_deployments(const Definitions& defs,
                                                     const ClusterDef& cluster,
                                                     const std::string& arch,
                                                     const std::vector<std::string>& only,
                                                     const std::vector<ParameterOverride>& overrides) {
  std::vector<DeploymentStep> out;
  std::set<std::string> used_labels, seen_labels;
  for (const ClusterSystem& spec : cluster.systems) {
    const SystemDef& system = defs.systems[spec.system];
    seen_labels.insert(system.name);
    for (const Deployment& d : spec.deploy) {
      seen_labels.insert(d.label);
      if (!only.empty()) {
        // A deployment's label (as morph deploy takes) or its system's name.
        if (std::find(only.begin(), only.end(), d.label) == only.end() &&
            std::find(only.begin(), only.end(), system.name) == only.end())
          continue;
      } else if (!system.arch.empty() && system.arch != arch) {
        continue;
      }
      auto planned = plan_one(defs, spec, d, overrides, used_labels);
      if (!planned) return std::unexpected(planned.error());
      out.push_back(std::move(*planned));
    }
  }
  for (const auto& label : only)
    if (!seen_labels.contains(label))
      return make_error(cluster.path + ": no deployment labelled " + label + ", nor a system of that name, in cluster " + cluster.name);
  for (const auto& o : overrides)
    if (!used_labels.contains(o.label))
      return make_error("-p " + o.label + "." + o.key + ": no deployment labelled " + o.label +
                        " is deployed");
  return out;
}

std::string deployment_meta(const std::map<std::string, std::string>& parameters) {
  nlohmann::json configuration = nlohmann::json::object();  // std::map order: sorted keys
  for (const auto& [key, value] : parameters) configuration[key] = value;
  nlohmann::json meta{{"configuration", configuration}};
  return meta.dump(4, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace gang
