// A server type: its GPUs and links. Figures come from configs/hardware/*.json, each with its
// source in a comment field; nothing here has a built-in default.
#pragma once

#include <string>

#include "core/config.h"

namespace fdc::costmodel {

struct HardwareSpec {
  std::string name;  // e.g. "p4de.24xlarge"
  std::string gpu;   // e.g. "A100-SXM4-80GB"
  int gpus_per_server = 0;
  double gpu_memory_gib = 0;                // per GPU
  double hbm_bandwidth_gb_per_s = 0;        // per GPU, datasheet
  double bf16_dense_tflops = 0;             // per GPU, dense (no sparsity), datasheet
  double nvlink_bandwidth_gb_per_s = 0;     // per GPU, per direction, through the server's switch
  double network_bandwidth_gbit_per_s = 0;  // per server, between servers
  double price_per_hour_usd = 0;            // per server
  std::string profile;                      // name of a fitted cost profile ("" = roofline from this spec)
};

HardwareSpec parse_hardware(const ConfigNode& node);

}  // namespace fdc::costmodel
