// Reads raw `fdcsim profile` folders (Google Benchmark JSON + provenance.json, docs/profile.md)
// into samples grouped by op. Cases skipped or failed at run time (error_occurred) are counted and
// left out; a malformed or partial entry is an InputError naming the file and the benchmark.
#pragma once

#include <string>
#include <vector>

#include "core/config.h"

namespace fdc::fit {

// One measured case. `group` is the fitted op: "gemm/<op>/<library>", "rope_rotate/{rope_only,rotate}",
// "norm/<variant>", "residual", "mlp_act/<variant>", "<collective>/g<gpus>",
// "ulysses/{pack,unpack_qkv,unpack_out,a2a_qkv,a2a_out}/sp<gpus>".
struct Sample {
  std::string group;
  std::string where;  // "<file>: <benchmark name>"
  double time_us = 0;
  double bytes = 0;  // bytes moved (ops.h formulas) or the per-GPU buffer size (collectives)
  double flops = 0;
  double m = 0, n = 0, k = 0;  // GEMMs only
};

struct RawSource {
  std::string folder;
  Json provenance;  // provenance.json as written by `fdcsim profile`
  int used = 0, excluded = 0;
};

struct RawProfile {
  std::vector<RawSource> sources;
  std::vector<Sample> samples;
  double peak_tflops = 0;  // peak/gemm_bf16 (0 when absent)
  double peak_gbps = 0;    // peak/device_copy (0 when absent)
  std::string gpu_name;
};

// Reads one raw benchmark file (ops.json or comm-<g>gpu.json) and appends its samples.
void read_raw_benchmark_file(const std::string& path, RawProfile& out, RawSource& source);
// Reads every folder (provenance.json + ops.json / comm-*gpu.json); all must be of one GPU model.
RawProfile read_raw_profiles(const std::vector<std::string>& folders);

}  // namespace fdc::fit
