// FDC_HOST_DEVICE marks small layout helpers that host code (references, planners, tests) and
// device code (kernels) must compute identically: one definition, compiled by both compilers.
#pragma once

#if defined(__CUDACC__)
#define FDC_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define FDC_HOST_DEVICE inline
#endif
