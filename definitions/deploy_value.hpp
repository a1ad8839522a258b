// deploy_value.hpp: how a cluster's deploy parameter reaches a deployment
// extension. Parameters may be any YAML value (SWIFT_STORAGE_DEVICES is a
// list of mappings). ybd and morph hand each one to the extension as an
// environment variable "KEY=str(value)", where str() is Python's rendering
// of the value PyYAML loaded. render_deploy_value produces that text:
//
//   - a scalar at the top level stays as written (`1G`, `yes`, `/dev/sda`);
//   - inside a list or mapping, Python's repr of what PyYAML's YAML 1.1
//     resolver makes of it: quoted strings and plain text as 'text', plain
//     ints in decimal (0x1f and 017 converted), floats by Python's repr,
//     yes/no/true/false/on/off as True/False, null and ~ as None;
//   - lists as [a, b], mappings as {'k': v} in document order (the order
//     of Python 3.7+; Python 2's hash order cannot be reproduced);
//   - null at the top level is the empty string.
//
// Concurrency: pure functions.
#pragma once

#include <string>

#include "definitions/yaml.hpp"

namespace gang {

// The text an extension sees for deploy parameter `value` (see above).
[[nodiscard]] std::string render_deploy_value(const YamlNode& value);

}  // namespace gang
