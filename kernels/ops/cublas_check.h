// CUBLAS_CHECK(call): throws fdc::InternalError naming the call, file:line and cuBLAS's status
// when a cuBLAS or cuBLASLt call fails (both return cublasStatus_t).
#pragma once

#include <cublas_api.h>

#include <string>

#include "core/error.h"

#define CUBLAS_CHECK(call)                                                                          \
  do {                                                                                              \
    const cublasStatus_t fdc_cublas_st_ = (call);                                                   \
    if (fdc_cublas_st_ != CUBLAS_STATUS_SUCCESS)                                                    \
      ::fdc::detail::throw_check_failure(#call, __FILE__, __LINE__,                                 \
                                         std::string("cuBLAS error ") +                            \
                                             cublasGetStatusName(fdc_cublas_st_) + ": " +           \
                                             cublasGetStatusString(fdc_cublas_st_));                \
  } while (0)
