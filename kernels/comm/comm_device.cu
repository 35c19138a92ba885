#include <algorithm>

#include "core/error.h"
#include "kernels/comm/comm_device.h"
#include "kernels/common/cuda_check.h"
#include "kernels/common/device_utils.cuh"

namespace fdc::kernels::comm {
namespace {

constexpr int kThreads = 256;

struct PtrTable {
  void* p[kNumBufs];
};

// blockIdx.y = segment; 16-byte vectors over the segment's rows x cols, grid-stride in x.
__global__ void segment_copy_kernel(const Segment* segs, PtrTable bufs) {
  const Segment s = segs[blockIdx.y];
  const int64_t vpr = s.cols / 8, vecs = s.rows * vpr;
  const uint16_t* src = static_cast<const uint16_t*>(bufs.p[s.src]);
  uint16_t* dst = static_cast<uint16_t*>(bufs.p[s.dst]);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < vecs;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t r = i / vpr, c = (i % vpr) * 8;
    *reinterpret_cast<uint4*>(dst + s.dst_offset + r * s.dst_ld + c) =
        *reinterpret_cast<const uint4*>(src + s.src_offset + r * s.src_ld + c);
  }
}

template <typename T>
__device__ __forceinline__ float to_f(T v) {
  return static_cast<float>(v);
}

template <typename T>
__global__ void fill_pattern_kernel(T* buf, PatternRegion r) {
  const int64_t n = r.rows * r.cols;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = i / r.cols, col = i % r.cols;
    buf[row * r.ld + col] = dev::from_float<T>(matrix_pattern(r.row0 + row, r.col0 + col, r.salt));
  }
}

template <typename T>
__global__ void check_pattern_kernel(const T* buf, PatternRegion r, unsigned long long* count) {
  const int64_t n = r.rows * r.cols;
  unsigned long long bad = 0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t row = i / r.cols, col = i % r.cols;
    if (!(to_f(buf[row * r.ld + col]) == matrix_pattern(r.row0 + row, r.col0 + col, r.salt))) ++bad;
  }
  if (bad) atomicAdd(count, bad);
}

template <typename T>
__global__ void fill_allreduce_kernel(T* buf, int64_t n, int rank) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    buf[i] = dev::from_float<T>(allreduce_input(rank, i));
}

template <typename T>
__global__ void check_allreduce_kernel(const T* buf, int64_t n, int ranks, unsigned long long* count) {
  unsigned long long bad = 0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    if (!(to_f(buf[i]) == allreduce_sum(ranks, i))) ++bad;
  if (bad) atomicAdd(count, bad);
}

unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>(std::clamp<int64_t>((n + kThreads - 1) / kThreads, 1, 4096));
}

void check_dtype(DType t) {
  FDC_INPUT_CHECK(t == DType::kBF16 || t == DType::kFP16,
                  "collectives: dtype " << to_string(t) << " is not supported (bf16 or fp16)");
}

}  // namespace

int64_t check_segments(const std::vector<Segment>& segs) {
  FDC_INPUT_CHECK(segs.size() <= 65535, "segment copy: " << segs.size() << " segments (at most 65535)");
  int64_t max_vecs = 0;
  for (const Segment& s : segs) {
    FDC_INPUT_CHECK(s.cols % 8 == 0 && s.src_ld % 8 == 0 && s.dst_ld % 8 == 0 && s.src_offset % 8 == 0 &&
                        s.dst_offset % 8 == 0,
                    "segment copy: offsets, leading dims and widths must be multiples of 8 elements (found cols "
                        << s.cols << ", ld " << s.src_ld << "/" << s.dst_ld << ", offsets " << s.src_offset << "/"
                        << s.dst_offset << ")");
    max_vecs = std::max(max_vecs, s.rows * (s.cols / 8));
  }
  return max_vecs;
}

void launch_segments(const Segment* dev_segs, int num, int64_t max_vecs, const BufPtrs& bufs, cudaStream_t stream) {
  if (num == 0 || max_vecs == 0) return;
  PtrTable t{};
  for (int i = 0; i < kNumBufs; ++i) t.p[i] = bufs[static_cast<size_t>(i)];
  const dim3 grid(std::min<unsigned>(blocks_for(max_vecs), 1024u), static_cast<unsigned>(num));
  segment_copy_kernel<<<grid, kThreads, 0, stream>>>(dev_segs, t);
  CUDA_CHECK_LAUNCH();
}

DeviceSegments::DeviceSegments(const std::vector<Segment>& segs)
    : segs_(segs.empty() ? std::vector<Segment>{Segment{}} : segs),
      num_(static_cast<int>(segs.size())),
      max_vecs_(check_segments(segs)) {
  for (const Segment& s : segs) elems_ += s.rows * s.cols;
}

void DeviceSegments::launch(const BufPtrs& bufs, cudaStream_t stream) const {
  launch_segments(segs_.data(), num_, max_vecs_, bufs, stream);
}

void fill_pattern(void* buf, DType t, const PatternRegion& r, cudaStream_t stream) {
  check_dtype(t);
  if (r.rows * r.cols == 0) return;
  if (t == DType::kBF16)
    fill_pattern_kernel<<<blocks_for(r.rows * r.cols), kThreads, 0, stream>>>(static_cast<__nv_bfloat16*>(buf), r);
  else
    fill_pattern_kernel<<<blocks_for(r.rows * r.cols), kThreads, 0, stream>>>(static_cast<__half*>(buf), r);
  CUDA_CHECK_LAUNCH();
}

void count_pattern_mismatches(const void* buf, DType t, const PatternRegion& r, unsigned long long* count,
                              cudaStream_t stream) {
  check_dtype(t);
  if (r.rows * r.cols == 0) return;
  if (t == DType::kBF16)
    check_pattern_kernel<<<blocks_for(r.rows * r.cols), kThreads, 0, stream>>>(
        static_cast<const __nv_bfloat16*>(buf), r, count);
  else
    check_pattern_kernel<<<blocks_for(r.rows * r.cols), kThreads, 0, stream>>>(static_cast<const __half*>(buf), r,
                                                                                count);
  CUDA_CHECK_LAUNCH();
}

void fill_allreduce_input(void* buf, DType t, int64_t count, int rank, cudaStream_t stream) {
  check_dtype(t);
  if (count == 0) return;
  if (t == DType::kBF16)
    fill_allreduce_kernel<<<blocks_for(count), kThreads, 0, stream>>>(static_cast<__nv_bfloat16*>(buf), count, rank);
  else
    fill_allreduce_kernel<<<blocks_for(count), kThreads, 0, stream>>>(static_cast<__half*>(buf), count, rank);
  CUDA_CHECK_LAUNCH();
}

void count_allreduce_mismatches(const void* buf, DType t, int64_t count, int ranks, unsigned long long* mismatches,
                                cudaStream_t stream) {
  check_dtype(t);
  if (count == 0) return;
  if (t == DType::kBF16)
    check_allreduce_kernel<<<blocks_for(count), kThreads, 0, stream>>>(static_cast<const __nv_bfloat16*>(buf), count,
                                                                       ranks, mismatches);
  else
    check_allreduce_kernel<<<blocks_for(count), kThreads, 0, stream>>>(static_cast<const __half*>(buf), count, ranks,
                                                                       mismatches);
  CUDA_CHECK_LAUNCH();
}

}  // namespace fdc::kernels::comm
