// Provenance of a raw profile: where and with what it was measured.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <string>

#include "bench/ops/runner.h"
#include "core/wall_clock.h"
#include "kernels/attention/attention.h"
#include "kernels/attention/classify.h"
#include "kernels/common/cuda_check.h"
#include "kernels/ops/launch.h"
#ifdef FDCSIM_HAVE_NCCL
#include <nccl.h>
#endif
#ifdef FDCSIM_HAVE_NVML
#include <nvml.h>
#endif

#ifndef FDCSIM_GIT_COMMIT
#define FDCSIM_GIT_COMMIT "unknown"
#endif

namespace fdc::profile {
namespace {

std::string version_string(int v) {  // CUDA's 1000 * major + 10 * minor
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}


}  // namespace

nlohmann::json collect_provenance(const std::string& command_line) {
  nlohmann::json j;
  j["date_utc"] = utc_now();
  j["git_commit"] = FDCSIM_GIT_COMMIT;
  j["command_line"] = command_line;
  char host[256] = {0};
  if (gethostname(host, sizeof host - 1) == 0) j["hostname"] = host;
  int driver = 0, runtime = 0;
  CUDA_CHECK(cudaDriverGetVersion(&driver));
  CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  j["cuda_driver_api"] = version_string(driver);
  j["cuda_runtime"] = version_string(runtime);
  {
    std::ifstream f("/proc/driver/nvidia/version");
    std::string line;
    if (f && std::getline(f, line)) j["nvidia_driver"] = line;
  }
  {
    cublasHandle_t h = nullptr;
    int v = 0;
    if (cublasCreate(&h) == CUBLAS_STATUS_SUCCESS) {
      if (cublasGetVersion(h, &v) == CUBLAS_STATUS_SUCCESS) j["cublas"] = v;
      cublasDestroy(h);
    }
    j["cublaslt"] = static_cast<uint64_t>(cublasLtGetVersion());
    j["gemm_planning"] = kernels::ops::to_string(kernels::ops::GemmRunner::planning_from_env());
    j["classify_method"] = kernels::attn::to_string(kernels::attn::TokenClassifier::method_from_env());
    j["decode_slot_index"] = kernels::attn::to_string(kernels::attn::decode_uneven_slot_index());
  }
#ifdef FDCSIM_HAVE_NCCL
  int nv = 0;
  if (ncclGetVersion(&nv) == ncclSuccess) j["nccl"] = nv;
#else
  j["nccl"] = "not built";
#endif
  int n = 0;
  CUDA_CHECK(cudaGetDeviceCount(&n));
  j["gpu_count"] = n;
#ifdef FDCSIM_HAVE_NVML
  const bool nvml = nvmlInit_v2() == NVML_SUCCESS;
  if (nvml) {
    char dv[96] = {0};
    if (nvmlSystemGetDriverVersion(dv, sizeof dv) == NVML_SUCCESS) j["nvidia_driver"] = dv;
  }
#endif
  nlohmann::json gpus = nlohmann::json::array();
  for (int d = 0; d < n; ++d) {
    cudaDeviceProp p{};
    CUDA_CHECK(cudaGetDeviceProperties(&p, d));
    nlohmann::json g;
    g["index"] = d;
    g["name"] = p.name;
    g["compute_capability"] = std::to_string(p.major) + "." + std::to_string(p.minor);
    g["sms"] = p.multiProcessorCount;
    g["memory_bytes"] = static_cast<uint64_t>(p.totalGlobalMem);
    char bus[32] = {0};
    if (cudaDeviceGetPCIBusId(bus, sizeof bus, d) == cudaSuccess) g["pci_bus_id"] = bus;
    int sm_khz = 0, mem_khz = 0;
    if (cudaDeviceGetAttribute(&sm_khz, cudaDevAttrClockRate, d) == cudaSuccess) g["sm_clock_max_mhz"] = sm_khz / 1000;
    if (cudaDeviceGetAttribute(&mem_khz, cudaDevAttrMemoryClockRate, d) == cudaSuccess)
      g["memory_clock_max_mhz"] = mem_khz / 1000;
    g["clock_source"] = "cudaDeviceGetAttribute (peak clocks)";
#ifdef FDCSIM_HAVE_NVML
    nvmlDevice_t dev;
    if (nvml && nvmlDeviceGetHandleByPciBusId_v2(bus, &dev) == NVML_SUCCESS) {
      unsigned int mhz = 0;
      if (nvmlDeviceGetClockInfo(dev, NVML_CLOCK_SM, &mhz) == NVML_SUCCESS) g["sm_clock_now_mhz"] = mhz;
      if (nvmlDeviceGetClockInfo(dev, NVML_CLOCK_MEM, &mhz) == NVML_SUCCESS) g["memory_clock_now_mhz"] = mhz;
      if (nvmlDeviceGetMaxClockInfo(dev, NVML_CLOCK_SM, &mhz) == NVML_SUCCESS) g["sm_clock_max_mhz"] = mhz;
      unsigned int mw = 0;
      if (nvmlDeviceGetPowerManagementLimit(dev, &mw) == NVML_SUCCESS) g["power_limit_w"] = mw / 1000;
      g["clock_source"] = "NVML";
    }
#endif
    gpus.push_back(g);
  }
#ifdef FDCSIM_HAVE_NVML
  if (nvml) nvmlShutdown();
#endif
  j["gpus"] = gpus;
  return j;
}

}  // namespace fdc::profile
