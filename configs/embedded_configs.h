// Configs compiled into the binary (configs/CMakeLists.txt lists them), looked up by kind and name:
// ("models", "llama-2-13b") is configs/models/llama-2-13b.json.
#pragma once

#include <string_view>
#include <vector>

namespace fdc::configs {

struct EmbeddedConfig {
  std::string_view kind;  // models, hardware, policies, experiments
  std::string_view name;  // file name without .json
  std::string_view path;  // path in the source tree, for messages
  std::string_view text;  // the JSON
};

const std::vector<EmbeddedConfig>& embedded_configs();
const EmbeddedConfig* find_embedded_config(std::string_view kind, std::string_view name);

}  // namespace fdc::configs
