// Prompt classification of hybrid token classes (DESIGN.md "hybrid layer-token ratios"): the
// kernels the engine (validate/engine/gpu_model.cpp) runs after a prompt's prefill, and that the
// `kv_classify` case of `fdcsim profile` (bench/ops) times. A layer of a token-class policy keeps
// hi_slots of every KV block's block_size token slots at the important (hi) ranks and the rest at
// the unimportant (lo) ranks, in shared pages (HeadLayout::shared), so a sequence's blocks hold
// exactly what the simulator's KV layout charges for them.
//
// Which tokens are important is decided at prefill: a whole prompt is prefilled at hi ranks (in a
// staging cache), then its hi_count(prompt) tokens of largest importance go to hi slots and the
// others keep only their first r_lo dims. Importance is the energy a token would lose in this
// layer's lo form: sum over the KV heads of ||k[r_qk_lo, r_qk)||^2 + ||v[r_v_lo, r_v)||^2 (SVD dims
// are ordered, so that is what truncation drops). A decoded token cannot be scored against the
// future; it is important when that keeps the sequence's hi count at hi_count(length), so decoded
// tokens follow the layer's share. With sequence parallelism each rank scores with its own heads.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "kernels/attention/layout.h"

namespace fdc::kernels::attn {

// Important tokens among a sequence's first n: round(n * hi_slots / block_size), the simulator's
// share. Non-decreasing in n in steps of 0 or 1, and never more than the hi slots (nor fewer lo
// slots than needed) of ceil(n / block_size) blocks.
inline int hi_count(int64_t n, int hi_slots, int block_size) {
  return static_cast<int>((2 * n * hi_slots + block_size) / (2 * block_size));
}

// Device workspace and kernels of the prefill classification.
//
// Two methods give the same classes and slots. kCount (the default): a row's rank in its segment is
// the number of the segment's rows of larger importance, plus those of equal importance before it,
// counted by tiles of rows against tiles of the segment's rows in shared memory: three launches
// (importance, counts, classes) whose work grows with the square of a segment's length, a few
// microseconds for prompts of a few thousand rows. Batches of more than kMaxCountRows rows use
// kSort: CUB's segmented radix sort (one block per segment, several passes), about 20 us more than
// the count for a one-row prompt on an H100. `FDCSIM_CLASSIFY=count|sort` picks the method of a default-made
// classifier (side-by-side measurements).
class TokenClassifier {
 public:
  enum class Method { kCount, kSort };
  // Batches of more rows than this are sorted whatever the method.
  static constexpr int kMaxCountRows = 16384;

  // The method named by FDCSIM_CLASSIFY ("count" or "sort"; kCount when unset); throws
  // fdc::InputError naming the variable for anything else.
  static Method method_from_env();

  TokenClassifier() : TokenClassifier(method_from_env()) {}
  explicit TokenClassifier(Method method) : method_(method) {}
  TokenClassifier(const TokenClassifier&) = delete;
  TokenClassifier& operator=(const TokenClassifier&) = delete;
  ~TokenClassifier();

  Method method() const { return method_; }

  // Prefill rows [0, rows) (bf16 packed k/v rows, strides k_row / v_row elements) form `segments`
  // prompts: segment s is rows [cu[s], cu[s + 1]), seg_of[r] its segment. Segment s keeps n_hi[s]
  // rows hi (largest importance first, ties in row order): cls_of[r] = 0, pos_of[r] = rank among
  // the hi rows; the others cls_of[r] = 1, pos_of[r] = rank among the lo rows. All pointers are on
  // the device; runs on `st` without waiting.
  void classify(const uint16_t* k, int k_row, const uint16_t* v, int v_row, const HeadInfo* heads, int num_heads,
                int rows, const int* cu, int segments, const int* seg_of, const int* n_hi, int* cls_of, int* pos_of,
                cudaStream_t st);

  // Grows the workspace for `rows` rows in `segments` segments (cu: the device offsets classify
  // will take). classify calls it; growing waits for `st`, so a caller that times classify calls
  // it first, outside the timed region.
  void reserve(int rows, int segments, const int* cu, cudaStream_t st);

 private:
  bool sorts(int rows) const { return method_ == Method::kSort || rows > kMaxCountRows; }

  Method method_;
  float* keys_ = nullptr;  // [2][cap_rows]: importance in, sorted out
  int* values_ = nullptr;  // [2][cap_rows]: row index in, sorted out (kCount: the ranks)
  void* temp_ = nullptr;
  size_t temp_bytes_ = 0;
  int cap_rows_ = 0;
};

const char* to_string(TokenClassifier::Method m);

}  // namespace fdc::kernels::attn
