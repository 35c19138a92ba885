// Public launchers: validate parameters (unsupported values throw fdc::InputError), then hand
// over to the per-dtype template dispatch.
#include <cuda.h>
#include <cudaTypedefs.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/attention/attention.h"
#include "kernels/attention/dispatch.h"
#include "kernels/common/cuda_check.h"

namespace fdc::kernels::attn {

namespace {

int log2_block(int block_size) {
  FDC_INPUT_CHECK(is_supported_block_size(block_size),
                  "attention: block size " << block_size << " is not supported; expected 16, 32 or 64");
  int l = 0;
  while ((1 << l) < block_size) ++l;
  return l;
}

void check_common(const char* what, DType dtype, int num_q_heads, int num_kv_heads, int max_rank, float sm_scale) {
  FDC_INPUT_CHECK(dtype == DType::kBF16 || dtype == DType::kFP16,
                  what << ": dtype " << to_string(dtype) << " is not supported; expected bf16 or fp16");
  FDC_INPUT_CHECK(num_kv_heads >= 1 && num_q_heads % num_kv_heads == 0,
                  what << ": num_q_heads = " << num_q_heads << " is not a multiple of num_kv_heads = " << num_kv_heads);
  const int group = num_q_heads / num_kv_heads;
  FDC_INPUT_CHECK(group == 1 || group == 2 || group == 4 || group == 8,
                  what << ": GQA group " << group << " is not supported; expected 1, 2, 4 or 8");
  FDC_INPUT_CHECK(max_rank >= kMinRank && max_rank <= kMaxRank && max_rank % kRankGranule == 0,
                  what << ": rank / head dim " << max_rank << " is not supported; expected a multiple of "
                       << kRankGranule << " in [" << kMinRank << ", " << kMaxRank << "]");
  FDC_INPUT_CHECK(std::isfinite(sm_scale) && sm_scale > 0.f, what << ": sm_scale = " << sm_scale << " must be positive");
}

// Compute capability (major * 10 + minor) of the current device, looked up once per device
// (devices 0..63; others are looked up every time).
int current_device_cc() {
  constexpr int kCached = 64;
  static std::atomic<int> cached[kCached];  // 0 = not looked up yet
  int dev = 0;
  CUDA_CHECK(cudaGetDevice(&dev));
  const bool cacheable = dev >= 0 && dev < kCached;
  int cc = cacheable ? cached[dev].load(std::memory_order_relaxed) : 0;
  if (cc == 0) {
    int major = 0, minor = 0;
    CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
    cc = major * 10 + minor;
    if (cacheable) cached[dev].store(cc, std::memory_order_relaxed);
  }
  return cc;
}

#ifdef FDC_HAVE_PREFILL_SM90
constexpr bool kHaveSm90Prefill = true;
#else
constexpr bool kHaveSm90Prefill = false;
#endif

}  // namespace

DecodePath resolve_decode_path(DecodePath path) {
  FDC_INPUT_CHECK(path == DecodePath::kAuto || path == DecodePath::kCudaCores || path == DecodePath::kMma,
                  "decode: unknown kernel path " << static_cast<int>(path));
  return path == DecodePath::kAuto ? DecodePath::kCudaCores : path;
}

PrefillPath resolve_prefill_path(PrefillPath path) {
  // The wgmma kernel is built for sm_90a, which runs on sm_90 devices (H100, H200) only.
  const bool wgmma_ok = kHaveSm90Prefill && current_device_cc() == 90;
  if (path == PrefillPath::kWgmma) {
    FDC_INPUT_CHECK(wgmma_ok, "prefill: the wgmma kernel needs an sm_90 device and a build with sm_90 in "
                              "FDCSIM_CUDA_ARCHITECTURES (device is sm_"
                                  << current_device_cc() << ", built " << (kHaveSm90Prefill ? "with" : "without")
                                  << " it)");
    return path;
  }
  if (path == PrefillPath::kAuto && wgmma_ok) return PrefillPath::kWgmma;
  return PrefillPath::kMmaSync;
}

int detail::class_slots(const char* what, const char* cls, int slots, int block_size) {
  if (slots == 0) return block_size;
  FDC_INPUT_CHECK(slots > 0 && slots <= block_size, what << ": " << slots << " " << cls << " slots per page; expected 1 .. "
                                                         << block_size << " (the block size), or 0 for the block size");
  return slots;
}

SlotIndex decode_uneven_slot_index() {
  const char* env = std::getenv("FDCSIM_DECODE_SLOT_INDEX");
  const std::string forced = env ? env : "";
  FDC_INPUT_CHECK(forced.empty() || forced == "multiply" || forced == "divide",
                  "FDCSIM_DECODE_SLOT_INDEX: expected 'multiply' or 'divide', found '" << forced << "'");
  return forced == "multiply" ? SlotIndex::kMultiply : SlotIndex::kDivide;
}

const char* to_string(SlotIndex s) {
  return s == SlotIndex::kShift ? "shift" : s == SlotIndex::kMultiply ? "multiply" : "divide";
}

void launch_decode(const DecodeParams& params, cudaStream_t stream) {
  check_common("decode", params.dtype, params.num_q_heads, params.num_kv_heads, params.max_rank, params.sm_scale);
  log2_block(params.cache.block_size);  // validates it
  DecodeParams p = params;
  p.path = resolve_decode_path(p.path);
  p.cache.slots_hi = detail::class_slots("decode", "hi", p.cache.slots_hi, p.cache.block_size);
  p.cache.slots_lo = detail::class_slots("decode", "lo", p.cache.slots_lo, p.cache.block_size);
  FDC_INPUT_CHECK(p.num_seqs >= 1 && p.num_units >= 1, "decode: num_seqs = " << p.num_seqs << ", num_units = " << p.num_units);
  FDC_INPUT_CHECK(p.q_row % 8 == 0 && p.o_row % 8 == 0, "decode: q_row and o_row must be multiples of 8");
  FDC_INPUT_CHECK(p.q && p.out && p.cache.hi_pool && p.cache.hi_page_indptr && p.cache.hi_page_indices && p.heads &&
                      p.units && p.pair_indptr && p.pair_units,
                  "decode: a required pointer is null");
  FDC_INPUT_CHECK(p.max_units_per_pair <= 1 || (p.partial_o && p.partial_lse),
                  "decode: the plan splits pairs but no partial workspace was given");
  if (p.dtype == DType::kBF16) detail::run_decode_bf16(p, stream);
  else detail::run_decode_fp16(p, stream);
}

void launch_prefill(const PrefillParams& p, cudaStream_t stream) {
  check_common("prefill", p.dtype, p.num_q_heads, p.num_kv_heads, p.max_rank, p.sm_scale);
  const int lb = log2_block(p.cache.block_size);
  FDC_INPUT_CHECK(p.num_seqs >= 1 && p.num_tiles >= 0, "prefill: num_seqs = " << p.num_seqs);
  FDC_INPUT_CHECK(p.q_row % 8 == 0 && p.o_row % 8 == 0, "prefill: q_row and o_row must be multiples of 8");
  if (p.num_tiles == 0) return;
  FDC_INPUT_CHECK(p.q && p.out && p.cu_q && p.kv_len && p.cache.hi_pool && p.cache.hi_page_indptr &&
                      p.cache.hi_page_indices && p.heads && p.tiles,
                  "prefill: a required pointer is null");
  FDC_INPUT_CHECK(p.path == PrefillPath::kAuto || p.path == PrefillPath::kMmaSync || p.path == PrefillPath::kWgmma,
                  "prefill: unknown kernel path " << static_cast<int>(p.path));
  if (resolve_prefill_path(p.path) == PrefillPath::kWgmma) {
    FDC_INPUT_CHECK(p.cache.page_elems_hi > 0 && p.cache.page_elems_hi * 2 < (int64_t{1} << 31),
                    "prefill: a page of " << p.cache.page_elems_hi
                                          << " elements is too large for the wgmma kernel (its byte offsets are "
                                             "32-bit; expected under 2^30 elements per page)");
#ifdef FDC_HAVE_PREFILL_SM90
    if (p.dtype == DType::kBF16) detail::run_prefill_sm90_bf16(p, lb, stream);
    else detail::run_prefill_sm90_fp16(p, lb, stream);
#endif
    return;
  }
  if (p.dtype == DType::kBF16) detail::run_prefill_bf16(p, lb, stream);
  else detail::run_prefill_fp16(p, lb, stream);
}

DeviceDecodePlan::DeviceDecodePlan(const DecodePlan& plan, int group)
    : units_(plan.units),
      pair_indptr_(plan.pair_indptr),
      pair_units_(plan.pair_units),
      num_units_(static_cast<int>(plan.units.size())),
      max_units_per_pair_(plan.max_units_per_pair),
      width_classes_(plan.width_classes) {
  if (max_units_per_pair_ > 1) {
    partial_o_ = DeviceBuffer<float>(static_cast<size_t>(num_units_) * group * kMaxRank);
    partial_lse_ = DeviceBuffer<float>(static_cast<size_t>(num_units_) * group);
  }
}

void DeviceDecodePlan::fill(DecodeParams& p) const {
  p.units = units_.data();
  p.num_units = num_units_;
  p.pair_indptr = pair_indptr_.data();
  p.pair_units = pair_units_.data();
  p.max_units_per_pair = max_units_per_pair_;
  p.width_classes = width_classes_;
  p.partial_o = const_cast<float*>(partial_o_.data());
  p.partial_lse = const_cast<float*>(partial_lse_.data());
}

namespace {

// cuTensorMapEncodeTiled from the driver the runtime loaded (no link-time libcuda dependency).
PFN_cuTensorMapEncodeTiled_v12000 tensor_map_encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult status{};
    CUDA_CHECK(cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &status));
    FDC_CHECK(status == cudaDriverEntryPointSuccess && f != nullptr,
              "prefill: the CUDA driver has no cuTensorMapEncodeTiled (TMA needs a driver for CUDA 12 or later)");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

}  // namespace

PrefillTensorMaps::PrefillTensorMaps(const HeadLayout& L, const void* hi_pool, int64_t hi_pages) {
  static_assert(sizeof(CUtensorMap) == 128, "a CUtensorMap is 128 bytes");
  FDC_INPUT_CHECK(hi_pool != nullptr && hi_pages >= 1,
                  "prefill tensor maps: the hi pool is null or has " << hi_pages << " pages");
  FDC_INPUT_CHECK(reinterpret_cast<uintptr_t>(hi_pool) % 16 == 0,
                  "prefill tensor maps: the hi pool is not 16-byte aligned");
  const PFN_cuTensorMapEncodeTiled_v12000 encode = tensor_map_encoder();
  const int64_t page_bytes = L.page_elems(TokenClass::kHi) * 2;
  const int block = L.block_size();
  std::vector<unsigned char> host(static_cast<size_t>(L.num_kv_heads()) * 2 * sizeof(CUtensorMap));
  for (int h = 0; h < L.num_kv_heads(); ++h) {
    const HeadInfo& hd = L.head_info()[static_cast<size_t>(h)];
    for (int kv = 0; kv < 2; ++kv) {
      const int rank = kv == 0 ? hd.rk : hd.rv;
      const int64_t offset = kv == 0 ? hd.page_k_hi : hd.page_v_hi;
      // [pages][block slots][rank] 16-bit elements; boxes of 64 columns x one page's slots.
      const cuuint64_t dims[3] = {static_cast<cuuint64_t>(rank), static_cast<cuuint64_t>(block),
                                  static_cast<cuuint64_t>(hi_pages)};
      const cuuint64_t strides[2] = {static_cast<cuuint64_t>(rank) * 2, static_cast<cuuint64_t>(page_bytes)};
      const cuuint32_t box[3] = {64, static_cast<cuuint32_t>(block), 1};
      const cuuint32_t elem_strides[3] = {1, 1, 1};
      CUtensorMap map;
      const CUresult r = encode(&map, CU_TENSOR_MAP_DATA_TYPE_UINT16, 3,
                                const_cast<char*>(static_cast<const char*>(hi_pool)) + offset * 2, dims, strides, box,
                                elem_strides, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                                CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
      FDC_CHECK(r == CUDA_SUCCESS, "prefill tensor maps: cuTensorMapEncodeTiled failed (error "
                                       << static_cast<int>(r) << ") for KV head " << h << (kv == 0 ? " K" : " V")
                                       << ", rank " << rank << ", block " << block << ", " << hi_pages << " pages");
      std::memcpy(host.data() + (static_cast<size_t>(h) * 2 + kv) * sizeof(CUtensorMap), &map, sizeof(CUtensorMap));
    }
  }
  maps_ = DeviceBuffer<unsigned char>(host);
}

DecodePlanOptions decode_plan_options_for_device(int device, DecodePath path) {
  int sms = 0, smem_per_sm = 0;
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  CUDA_CHECK(cudaDeviceGetAttribute(&smem_per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device));
  DecodePlanOptions opt;
  opt.num_sms = sms;
  if (resolve_decode_path(path) == DecodePath::kMma) {
    // 128 threads of at most 168 registers and kDecodeMmaSmemBytes each: three blocks per SM on
    // sm_90 (228 KiB), two on an A100 (164 KiB); the runtime reserves 1 KiB per block.
    opt.ctas_per_sm = std::max(1, std::min(3, smem_per_sm / (kDecodeMmaSmemBytes + 1024)));
    opt.tile_tokens = 64;
  } else {
    opt.ctas_per_sm = 4;  // 128 threads, <= 48 KiB shared memory per block
    opt.tile_tokens = kDecodeTileTokens;
  }
  return opt;
}

}  // namespace fdc::kernels::attn
