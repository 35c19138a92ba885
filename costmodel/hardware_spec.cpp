#include "costmodel/hardware_spec.h"

namespace fdc::costmodel {

HardwareSpec parse_hardware(const ConfigNode& n) {
  HardwareSpec h;
  h.name = n.get<std::string>("name");
  h.gpu = n.get<std::string>("gpu");
  n.get_or<std::string>("comment", "");
  if (n.has("sources")) n.raw("sources");
  h.gpus_per_server = n.get<int>("gpus_per_server", Bounds::at_least(1));
  h.gpu_memory_gib = n.get<double>("gpu_memory_gib", Bounds::positive());
  h.hbm_bandwidth_gb_per_s = n.get<double>("hbm_bandwidth_gb_per_s", Bounds::positive());
  h.bf16_dense_tflops = n.get<double>("bf16_dense_tflops", Bounds::positive());
  h.nvlink_bandwidth_gb_per_s = n.get<double>("nvlink_bandwidth_gb_per_s", Bounds::positive());
  h.network_bandwidth_gbit_per_s = n.get<double>("network_bandwidth_gbit_per_s", Bounds::positive());
  h.price_per_hour_usd = n.get<double>("price_per_hour_usd", Bounds::non_negative());
  h.profile = n.get_or<std::string>("profile", "");
  n.finish();
  return h;
}

}  // namespace fdc::costmodel
