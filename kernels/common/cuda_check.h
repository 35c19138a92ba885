// CUDA_CHECK(call): throws fdc::InternalError naming the call, file:line and CUDA's message when
// a runtime call fails. CUDA_CHECK_LAUNCH() checks the last kernel launch the same way.
#pragma once

#include <cuda_runtime_api.h>

#include <sstream>

#include "core/error.h"

#define CUDA_CHECK(call)                                                                                     \
  do {                                                                                                       \
    const cudaError_t fdc_cuda_err_ = (call);                                                                \
    if (fdc_cuda_err_ != cudaSuccess) {                                                                      \
      std::ostringstream fdc_cuda_os_;                                                                       \
      fdc_cuda_os_ << "CUDA error " << cudaGetErrorName(fdc_cuda_err_) << ": " << cudaGetErrorString(fdc_cuda_err_); \
      ::fdc::detail::throw_check_failure(#call, __FILE__, __LINE__, fdc_cuda_os_.str());                    \
    }                                                                                                        \
  } while (0)

#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())
