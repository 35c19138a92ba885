// NCCL_CHECK(call): throws fdc::InternalError naming the call, file:line and NCCL's message.
#pragma once

#include <nccl.h>

#include <string>

#include "core/error.h"

#define NCCL_CHECK(call)                                                                                   \
  do {                                                                                                     \
    const ncclResult_t fdc_nccl_res_ = (call);                                                             \
    if (fdc_nccl_res_ != ncclSuccess)                                                                      \
      ::fdc::detail::throw_check_failure(#call, __FILE__, __LINE__,                                        \
                                         std::string("NCCL error: ") + ncclGetErrorString(fdc_nccl_res_)); \
  } while (0)
