// plan.hpp: what `gang deploy CLUSTER` will do, worked out before anything
// runs: for every system of the cluster (of the requested arch, or only the
// named deployments), each deployment with its parameters merged (the
// system's deploy-defaults, then the deployment's own, then the command
// line's -p LABEL.KEY=VALUE), its write type and location, and its
// subsystems, whose locations lie inside the parent's unpacked tree. Also
// baserock/deployment.meta, as ybd writes it. Pure logic, no I/O.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "definitions/definitions.hpp"
#include "util/error.hpp"

namespace gang {

struct ParameterOverride {
  std::string label;  // the deployment's label in the cluster morph
  std::string key;
  std::string value;
};

// Parses "LABEL.KEY=VALUE" (VALUE may hold anything, '=' included).
[[nodiscard]] Result<ParameterOverride> parse_override(const std::string& text);

struct DeploymentStep {
  std::size_t system = 0;  // index into Definitions::systems
  std::string label;
  std::string type;        // the write extension's name: basename of type (or upgrade-type)
  std::string location;    // as configured; for a subsystem, relative to the parent's tree
  bool upgrade = false;    // upgrade-type given instead of type
  std::map<std::string, std::string> parameters;  // merged
  std::vector<DeploymentStep> subsystems;
};

// The deployments of `cluster`: every top-level system whose arch is `arch`
// (a system without arch matches), or, with `only` non-empty, just the
// deployments whose labels, or whose systems' names, are listed (whatever
// their arch; a name that is neither is an error).
// Overrides must each name a deployment of the plan.
[[nodiscard]] Result<std::vector<DeploymentStep>> plan_deployments(
    const Definitions& defs, const ClusterDef& cluster, const std::string& arch,
    const std::vector<std::string>& only, const std::vector<ParameterOverride>& overrides);

// The contents of baserock/deployment.meta: {"configuration": parameters},
// keys sorted, indented by four, as ybd's json.dump writes it.
[[nodiscard]] std::string deployment_meta(const std::map<std::string, std::string>& parameters);

}  // namespace gang
