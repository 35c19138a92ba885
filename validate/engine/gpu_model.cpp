#include "validate/engine/gpu_model.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <chrono>
#include <cmath>
#include <cstring>
#include <future>
#include <iomanip>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "kernels/attention/attention.h"
#include "kernels/attention/classify.h"
#include "kernels/attention/layout.h"
#include "kernels/attention/plan.h"
#include "kernels/comm/comm_device.h"
#include "kernels/comm/ulysses_plan.h"
#include "kernels/common/cuda_check.h"
#include "kernels/common/device_buffer.h"
#include "kernels/common/dtype.h"
#include "kernels/ops/launch.h"
#include "kernels/ops/reference.h"
#include "validate/engine/engine_kernels.h"
#include "validate/engine/weights.h"
#if FDCSIM_HAVE_NCCL
#include "kernels/comm/nccl_check.h"
#include "kernels/comm/nccl_comm.h"
#endif

namespace fdc::engine {

using kernels::DeviceBuffer;
using kernels::DType;
namespace attn = kernels::attn;
using attn::hi_count;
namespace ops = kernels::ops;
namespace comm = kernels::comm;
using bf16 = uint16_t;  // bf16 bit patterns

// GpuModelConfig::op_times: the tag of an event that ends no layer op (metadata upload, embedding,
// LM head), and the most events a forward records per layer (a layout group's upload and 17 ops).
constexpr int kOutsideLayers = -1;
constexpr int kMaxOpEventsPerLayer = 18;

namespace {

// A device buffer that grows (never shrinks); growing waits for the device first.
template <typename T>
struct Growable {
  DeviceBuffer<T> buf;
  T* ensure(size_t n) {
    if (buf.size() < n) {
      CUDA_CHECK(cudaDeviceSynchronize());
      buf = DeviceBuffer<T>(std::max(n, buf.size() * 3 / 2));
    }
    return buf.data();
  }
};

// Ints of one metadata upload: built in pinned host memory (16-byte aligned regions, see take),
// copied to the device in one piece on the stream. The host side is rewritten only after the
// previous iteration has finished (forward() waits for it), so no copy is pending on it.
struct MetaBuffer {
  int* host = nullptr;
  size_t cap = 0, off = 0;
  Growable<int> dev;
  MetaBuffer() = default;
  MetaBuffer(const MetaBuffer&) = delete;
  MetaBuffer& operator=(const MetaBuffer&) = delete;
  ~MetaBuffer() {
    if (host) cudaFreeHost(host);
  }
  void reset(size_t need) {
    if (cap < need) {
      if (host) CUDA_CHECK(cudaFreeHost(host));
      host = nullptr;
      cap = std::max(need, cap * 3 / 2);
      CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&host), cap * sizeof(int)));
    }
    off = 0;
  }
  size_t take(size_t count) {
    off = (off + 3) & ~size_t{3};  // the kernels read int4 / DecodeUnit vectors
    const size_t at = off;
    off += count;
    return at;
  }
  int* upload(cudaStream_t st) {
    FDC_CHECK(off <= cap, "metadata overflow: " << off << " ints in " << cap);
    int* d = dev.ensure(std::max<size_t>(off, 1));
    if (off) CUDA_CHECK(cudaMemcpyAsync(d, host, off * sizeof(int), cudaMemcpyHostToDevice, st));
    return d;
  }
};

DeviceBuffer<bf16> upload_bf16(const std::vector<float>& v) {
  std::vector<uint16_t> bits(v.size());
  for (size_t i = 0; i < v.size(); ++i) bits[i] = kernels::float_to_bf16_bits(v[i]);
  DeviceBuffer<bf16> d(v.size());
  if (!v.empty()) CUDA_CHECK(cudaMemcpy(d.data(), bits.data(), bits.size() * 2, cudaMemcpyHostToDevice));
  return d;
}

double gib(int64_t b) { return static_cast<double>(b) / (1024.0 * 1024.0 * 1024.0); }

}  // namespace

struct GpuModel::Impl {
  struct Layer {
    int group = 0;  // index into layouts
    DeviceBuffer<bf16> attn_norm, attn_norm_bias, w_qkv, b_qkv, rot_qk, w_o, b_o;
    DeviceBuffer<bf16> mlp_norm, mlp_norm_bias, w_up, b_up, w_down, b_down;
    DeviceBuffer<uint16_t> kv;  // [num_blocks][page_elems_hi]
    // TMA descriptors of kv for the Hopper prefill kernel (null where it does not run, and for
    // token-class layers, whose prompts attend over the staging cache).
    std::unique_ptr<attn::PrefillTensorMaps> prefill_maps;
    QkvWidths widths;
    int64_t o_width = 0;
  };
  struct LayoutGroup {
    attn::HeadLayout layout;  // every head (projections, RoPE)
    attn::HeadLayout local;   // this rank's KV heads and their q heads (= layout without SP); shared pages when hybrid
    DeviceBuffer<attn::HeadInfo> heads, local_heads;
    // Per-iteration plans of this layout (host), and their offsets in the metadata upload.
    attn::DecodePlan decode;
    attn::PrefillPlan prefill;
    comm::UlyssesPlan ulysses;  // SP only
    attn::DecodePath decode_path = attn::DecodePath::kCudaCores;  // choose_decode_path of `local`
    attn::DecodePlanOptions plan_opt{};                            // for that kernel and the device
    size_t off_units = 0, off_pair_indptr = 0, off_pair_units = 0, off_tiles = 0;
    size_t off_pack = 0, off_unpack = 0, off_out_unpack = 0;  // SP: segment lists
    int64_t vecs_pack = 0, vecs_unpack = 0, vecs_out_unpack = 0;
    // Token classes (kernels/attention/classify.h): hi slots per block, the staging layout the prompts are
    // prefilled in (this rank's heads at hi ranks, separate pages), and per-iteration metadata
    // offsets: class and class slot of every row, important tokens per prefilled prompt.
    bool hybrid = false;
    int hi_slots = 0;
    std::optional<attn::HeadLayout> stage{};
    DeviceBuffer<attn::HeadInfo> stage_heads{};
    std::unique_ptr<attn::PrefillTensorMaps> stage_maps{};  // of the staging pool, as prefill_maps
    size_t off_cls = 0, off_cpos = 0, off_nhi = 0;
    // This group's plans are built on the planning threads at the start of the iteration and
    // uploaded when its first layer is launched; their own upload.
    std::unique_ptr<MetaBuffer> meta = std::make_unique<MetaBuffer>();
    int* gd = nullptr;        // this iteration's copy on the device (the classifier writes the class rows)
    int64_t planned = -1;     // iteration the plans belong to
    std::future<double> plan{};  // this iteration's planning task (host ms), until it is collected
  };

  GpuModelConfig cfg;
  const costmodel::ModelSpec& m;
  cudaStream_t stream = nullptr;
  cudaEvent_t ev_start = nullptr, ev_end = nullptr;
  // GpuModelConfig::op_times: the events a forward records after its ops, created once for the
  // most it can record, and the op kind (or kOutsideLayers) each one ends.
  std::vector<cudaEvent_t> op_events;
  std::vector<int> op_tags;
  bool op_events_on = true;  // GpuModel::set_op_events
  ops::GemmRunner gemm;
  double gemm_warm_s = 0;  // warm_gemms(), wall seconds
  std::vector<LayoutGroup> groups;
  std::vector<Layer> layers;
  DeviceBuffer<bf16> embed, positions, final_norm, final_norm_bias, lm_head;
  DeviceBuffer<float> cos_sin;
  int max_position = 0;
  // Activations, sized for max_tokens rows.
  DeviceBuffer<bf16> x, h, qkv, q, k, o, tmp, up, act, rows, logits;
  DeviceBuffer<bf16> v, send, recv, qh, kh, vh, oh;  // SP: Ulysses buffers
  DeviceBuffer<int> next_ids, local_ids;
  // Per-iteration metadata: built in pinned host memory, one copy to the device.
  int* pinned = nullptr;
  size_t pinned_ints = 0;
  Growable<int> meta;
  Growable<float> partial_o, partial_lse;
  // Token classes: the staging cache (one layer at a time) and the prefill classifier.
  bool any_hybrid = false;
  int64_t stage_pages = 0;
  DeviceBuffer<uint16_t> stage_pool;
  attn::TokenClassifier classifier;
  int64_t weight_bytes = 0;
  int64_t kv_block_bytes = 0;
  int last_rows = 0;
  std::vector<int> last_index;
  int64_t iteration = 0;

  // Host threads that build the layout groups' plans: with per-layer head layouts (per-head
  // tables, token classes) an iteration has a plan per layer, and building them one after another
  // on the launching thread kept the GPU waiting. Half the hardware threads, at most 8 (with
  // sequence parallelism every rank has its own).
  boost::asio::thread_pool planners{std::clamp(std::thread::hardware_concurrency() / 2, 1u, 8u)};

  explicit Impl(const GpuModelConfig& c) : cfg(c), m(cfg.model) {}

  // Every projection shape of the model, run once per row bucket up to the rows it can see (this
  // rank's share of max_tokens; the LM head: max_seqs), so that cuBLASLt's algorithm choice and the
  // first launch of each of its kernels happen here and not in a measured iteration.
  void warm_gemms() {
    const int64_t D = m.hidden, F = m.ffn_hidden;
    const int64_t up_n = m.mlp == costmodel::MlpKind::kGated ? 2 * F : F;
    const int64_t max_rows = (cfg.max_tokens + cfg.sp_size - 1) / cfg.sp_size;
    std::set<std::pair<int64_t, int64_t>> done;
    auto warm = [&](const void* in, const DeviceBuffer<bf16>& w, void* out, int64_t n_out, int64_t k_in,
                    int64_t max_m) {
      if (!done.insert({n_out, k_in}).second) return;
      ops::GemmParams p;
      p.dtype = DType::kBF16;
      p.n = n_out;
      p.k = k_in;
      p.x = in;
      p.w = w.data();
      p.out = out;
      gemm.warm(p, max_m, stream);
    };
    for (const Layer& L : layers) {
      warm(h.data(), L.w_qkv, qkv.data(), L.widths.total(), D, max_rows);
      warm(o.data(), L.w_o, tmp.data(), D, L.o_width, max_rows);
      warm(h.data(), L.w_up, up.data(), up_n, D, max_rows);
      warm(act.data(), L.w_down, tmp.data(), D, F, max_rows);
    }
    warm(rows.data(), lm_head, logits.data(), m.vocab, D, cfg.max_seqs);
  }
  ~Impl() {
    if (pinned) cudaFreeHost(pinned);
    if (ev_start) cudaEventDestroy(ev_start);
    if (ev_end) cudaEventDestroy(ev_end);
    for (cudaEvent_t e : op_events) cudaEventDestroy(e);
    if (stream) cudaStreamDestroy(stream);
  }

  void fill_random(DeviceBuffer<bf16>& b, uint64_t salt, float scale) {
    if (b.size() == 0) return;
    kern::fill_uniform(b.data(), static_cast<int64_t>(b.size()), cfg.seed * 1000003ULL + salt, scale, stream);
  }
  void fill_ones(DeviceBuffer<bf16>& b) {
    if (b.size() == 0) return;
    kern::fill_const(b.data(), static_cast<int64_t>(b.size()), 1.f, stream);
  }
  DeviceBuffer<bf16> alloc(int64_t n) {
    weight_bytes += n * 2;
    return DeviceBuffer<bf16>(static_cast<size_t>(n));
  }
};

GpuModel::GpuModel(const GpuModelConfig& c) : impl_(std::make_unique<Impl>(c)) {
  Impl& I = *impl_;
  const auto& m = I.m;
  CUDA_CHECK(cudaSetDevice(c.device));
  CUDA_CHECK(cudaStreamCreateWithFlags(&I.stream, cudaStreamNonBlocking));
  CUDA_CHECK(cudaEventCreate(&I.ev_start));
  CUDA_CHECK(cudaEventCreate(&I.ev_end));
  if (c.op_times) {
    const size_t count = 1 + static_cast<size_t>(kMaxOpEventsPerLayer) * static_cast<size_t>(m.num_layers);
    I.op_events.reserve(count);
    for (size_t i = 0; i < count; ++i) {
      cudaEvent_t e = nullptr;
      CUDA_CHECK(cudaEventCreate(&e));
      I.op_events.push_back(e);
    }
    I.op_tags.assign(count, kOutsideLayers);
  }
  FDC_INPUT_CHECK(m.head_dim == 64 || m.head_dim == 128,
                  c.config_name << ": the engine runs head_dim 64 or 128, model " << m.name << " has " << m.head_dim);
  FDC_INPUT_CHECK(static_cast<int>(c.dims.layers.size()) == m.num_layers, "policy dims do not match the model");

  // Distinct head layouts (identical layers share plans).
  for (int l = 0; l < m.num_layers; ++l) {
    const auto& ld = c.dims.layers[static_cast<size_t>(l)];
    std::vector<attn::HeadRanks> ranks;
    for (const auto& hd : ld.kv_heads) ranks.push_back({hd.qk_hi, hd.v_hi, hd.qk_lo, hd.v_lo});
    attn::HeadLayout L(m.num_heads, m.num_kv_heads, ranks, c.block_size);
    // Token classes: hi_slots of each block at hi ranks (a layer whose blocks are all hi slots
    // never holds a lo token and runs as one without classes).
    const int hi_slots = costmodel::important_slots(ld.important_fraction, c.block_size);
    const bool hybrid = L.has_token_classes() && hi_slots < c.block_size;
    // This rank's KV heads (Ulysses: contiguous blocks, the first Hk % P ranks one more).
    const int kb = comm::kv_head_begin(m.num_kv_heads, c.sp_size, c.sp_rank);
    const int ke = comm::kv_head_begin(m.num_kv_heads, c.sp_size, c.sp_rank + 1);
    std::vector<attn::HeadRanks> local_ranks(ranks.begin() + kb, ranks.begin() + ke);
    int g = -1;
    for (size_t i = 0; i < I.groups.size(); ++i) {
      bool same = I.groups[i].hybrid == hybrid && (!hybrid || I.groups[i].hi_slots == hi_slots);
      for (int h = 0; h < m.num_kv_heads && same; ++h) {
        const auto& a = I.groups[i].layout.ranks(h);
        const auto& b = L.ranks(h);
        same = a.rk == b.rk && a.rv == b.rv && (!hybrid || (a.rk_lo == b.rk_lo && a.rv_lo == b.rv_lo));
      }
      if (same) g = static_cast<int>(i);
    }
    if (g < 0) {
      g = static_cast<int>(I.groups.size());
      const int lq = m.group_size() * (ke - kb);
      std::vector<attn::HeadRanks> hi_ranks = local_ranks;
      for (auto& r : hi_ranks) {
        r.rk_lo = r.rk;
        r.rv_lo = r.rv;
      }
      attn::HeadLayout local = hybrid ? attn::HeadLayout::shared(lq, ke - kb, local_ranks, c.block_size, hi_slots)
                                      : attn::HeadLayout(lq, ke - kb, hi_ranks, c.block_size);
      DeviceBuffer<attn::HeadInfo> heads(L.head_info()), local_heads(local.head_info());
      Impl::LayoutGroup grp{L, local, std::move(heads), std::move(local_heads), {}, {}, {}};
      grp.hybrid = hybrid;
      grp.hi_slots = hybrid ? hi_slots : c.block_size;
      if (hybrid) {
        grp.stage.emplace(lq, ke - kb, hi_ranks, c.block_size);
        grp.stage_heads = DeviceBuffer<attn::HeadInfo>(grp.stage->head_info());
        I.any_hybrid = true;
      }
      I.groups.push_back(std::move(grp));
    }
    Impl::Layer layer;
    layer.group = g;
    layer.widths = qkv_widths(m, ld);
    layer.o_width = attn_out_width(m, ld);
    I.layers.push_back(std::move(layer));
  }
  for (const auto& L : I.layers) I.kv_block_bytes += I.groups[static_cast<size_t>(L.group)].local.page_elems(attn::TokenClass::kHi) * 2;
  FDC_INPUT_CHECK(c.sp_size == 1 || c.comm, "sequence parallelism needs a communicator");
  FDC_INPUT_CHECK(m.num_kv_heads >= c.sp_size,
                  c.config_name << ": sp=" << c.sp_size << " needs at least as many KV heads; " << m.name << " has "
                                << m.num_kv_heads);

  // Memory check before any large allocation: weights + KV + activations must fit.
  const int64_t D = m.hidden, F = m.ffn_hidden, V = m.vocab, T = c.max_tokens;
  const int64_t up_n = m.mlp == costmodel::MlpKind::kGated ? 2 * F : F;
  int64_t weights = 2 * V * D * (m.tied_embeddings ? 1 : 2) + (m.rope ? 0 : 2 * (m.max_model_len + 2) * D);
  int64_t max_qkv = 0, max_o = 0;
  for (const auto& L : I.layers) {
    weights += 2 * (L.widths.total() * D + D * L.o_width + up_n * D + D * F + 4 * D);
    if (m.rope) weights += 2 * static_cast<int64_t>(m.head_dim) * L.widths.k;
    else weights += 2 * (L.widths.total() + 2 * D + up_n);
    max_qkv = std::max(max_qkv, L.widths.total());
    max_o = std::max(max_o, L.o_width);
  }
  const int64_t kv = I.kv_block_bytes * c.num_blocks;
  const int64_t sp_acts = c.sp_size > 1 ? 2 * T * (3 * max_qkv + 3 * max_qkv + max_o) : 0;  // v, send, recv, heads
  // Token classes: a staging cache for one layer of the iteration's prompts at hi ranks.
  int64_t stage_page_elems = 0;
  for (const auto& g : I.groups)
    if (g.hybrid) stage_page_elems = std::max(stage_page_elems, g.stage->page_elems(attn::TokenClass::kHi));
  I.stage_pages = I.any_hybrid ? T / c.block_size + c.max_seqs : 0;
  const int64_t acts = 2 * T * (3 * D + max_qkv + 3 * max_o + up_n + F) + 2 * static_cast<int64_t>(c.max_seqs) * (D + V) +
                       sp_acts + 2 * I.stage_pages * stage_page_elems + (I.any_hybrid ? 24 * T : 0);
  size_t free_b = 0, total_b = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const int64_t need = weights + kv + acts + (int64_t{512} << 20);  // + cuBLAS workspace and plans
  if (need > static_cast<int64_t>(free_b)) {
    std::ostringstream os;
    os.precision(3);
    os << c.config_name << " does not fit on GPU " << c.device << " (" << device_name() << "): model " << m.name
       << " needs " << gib(weights) << " GiB of weights + " << gib(kv) << " GiB of KV cache (" << c.num_blocks
       << " blocks of " << I.kv_block_bytes << " bytes) + " << gib(acts) << " GiB of activations, and "
       << gib(static_cast<int64_t>(free_b)) << " GiB of " << gib(static_cast<int64_t>(total_b))
       << " GiB are free; lower memory.gpu_memory_utilization or set memory.num_blocks_override";
    throw InputError(os.str());
  }

  // Weights: random with the configured shapes, or loaded (rotations folded in on the host).
  std::unique_ptr<SafetensorsFile> file;
  if (!c.weights.empty()) file = std::make_unique<SafetensorsFile>(c.weights);
  uint64_t salt = 1;
  auto inv_sqrt = [](int64_t n) { return 1.f / std::sqrt(static_cast<float>(n)); };
  if (file) {
    GlobalWeights g = load_globals(*file, m);
    I.embed = upload_bf16(g.embed);
    I.lm_head = upload_bf16(g.lm_head);
    I.positions = upload_bf16(g.positions);
    I.final_norm = upload_bf16(g.final_norm);
    I.final_norm_bias = upload_bf16(g.final_norm_bias);
    I.weight_bytes += 2 * static_cast<int64_t>(g.embed.size() + g.lm_head.size() + g.positions.size());
  } else {
    I.embed = I.alloc(V * D);
    I.fill_random(I.embed, salt++, 1.f);
    I.lm_head = I.alloc(V * D);
    I.fill_random(I.lm_head, salt++, inv_sqrt(D));
    if (!m.rope) {
      I.positions = I.alloc((m.max_model_len + 2) * D);
      I.fill_random(I.positions, salt++, 0.1f);
      I.final_norm_bias = I.alloc(D);
      I.fill_random(I.final_norm_bias, salt++, 0.01f);
    }
    I.final_norm = I.alloc(D);
    I.fill_ones(I.final_norm);
  }
  for (int l = 0; l < m.num_layers; ++l) {
    Impl::Layer& L = I.layers[static_cast<size_t>(l)];
    const auto& ld = c.dims.layers[static_cast<size_t>(l)];
    const bool rotate = !full_rank(m, ld);
    if (file) {
      const LayerRotations rot = rotate ? make_layer_rotations(m, ld, c.seed, l) : LayerRotations{};
      LayerWeights w = load_layer(*file, m, ld, rot, l);
      auto up = [&](DeviceBuffer<bf16>& dst, const std::vector<float>& v) {
        dst = upload_bf16(v);
        I.weight_bytes += 2 * static_cast<int64_t>(v.size());
      };
      up(L.attn_norm, w.attn_norm);
      up(L.attn_norm_bias, w.attn_norm_bias);
      up(L.w_qkv, w.w_qkv);
      up(L.b_qkv, w.b_qkv);
      up(L.rot_qk, w.rot_qk);
      up(L.w_o, w.w_o);
      up(L.b_o, w.b_o);
      up(L.mlp_norm, w.mlp_norm);
      up(L.mlp_norm_bias, w.mlp_norm_bias);
      up(L.w_up, w.w_up);
      up(L.b_up, w.b_up);
      up(L.w_down, w.w_down);
      up(L.b_down, w.b_down);
    } else {
      // Random weights straight in their FDC shapes: R^T W of a random W is as random as W, and
      // timing does not depend on values.
      L.attn_norm = I.alloc(D);
      I.fill_ones(L.attn_norm);
      L.mlp_norm = I.alloc(D);
      I.fill_ones(L.mlp_norm);
      L.w_qkv = I.alloc(L.widths.total() * D);
      I.fill_random(L.w_qkv, salt++, inv_sqrt(D));
      L.w_o = I.alloc(D * L.o_width);
      I.fill_random(L.w_o, salt++, inv_sqrt(L.o_width));
      L.w_up = I.alloc(up_n * D);
      I.fill_random(L.w_up, salt++, inv_sqrt(D));
      L.w_down = I.alloc(D * F);
      I.fill_random(L.w_down, salt++, inv_sqrt(F));
      if (m.rope && rotate) {
        const LayerRotations rot = make_layer_rotations(m, ld, c.seed, l);
        std::vector<float> r;
        for (const auto& hr : rot.k) r.insert(r.end(), hr.r.begin(), hr.r.end());
        L.rot_qk = upload_bf16(r);
        I.weight_bytes += 2 * static_cast<int64_t>(r.size());
      }
      if (!m.rope) {
        for (auto* b : {&L.attn_norm_bias, &L.mlp_norm_bias, &L.b_o, &L.b_down}) {
          *b = I.alloc(D);
          I.fill_random(*b, salt++, 0.01f);
        }
        L.b_qkv = I.alloc(L.widths.total());
        I.fill_random(L.b_qkv, salt++, 0.01f);
        L.b_up = I.alloc(up_n);
        I.fill_random(L.b_up, salt++, 0.01f);
      }
    }
    const auto& grp = I.groups[static_cast<size_t>(L.group)];
    L.kv = DeviceBuffer<uint16_t>(static_cast<size_t>(c.num_blocks * grp.local.page_elems(attn::TokenClass::kHi)));
  }
  if (m.rope) {
    I.max_position = std::max(m.max_model_len, 1);
    I.cos_sin = DeviceBuffer<float>(ops::make_cos_sin_cache(I.max_position, m.head_dim, rope_theta(m)));
  }
  I.x = DeviceBuffer<bf16>(static_cast<size_t>(T * D));
  I.h = DeviceBuffer<bf16>(static_cast<size_t>(T * D));
  I.tmp = DeviceBuffer<bf16>(static_cast<size_t>(T * D));
  I.qkv = DeviceBuffer<bf16>(static_cast<size_t>(T * max_qkv));
  I.q = DeviceBuffer<bf16>(static_cast<size_t>(T * max_qkv));
  I.k = DeviceBuffer<bf16>(static_cast<size_t>(T * max_qkv));
  I.o = DeviceBuffer<bf16>(static_cast<size_t>(T * max_o));
  I.up = DeviceBuffer<bf16>(static_cast<size_t>(T * up_n));
  I.act = DeviceBuffer<bf16>(static_cast<size_t>(T * F));
  I.rows = DeviceBuffer<bf16>(static_cast<size_t>(c.max_seqs) * D);
  I.logits = DeviceBuffer<bf16>(static_cast<size_t>(c.max_seqs) * V);
  I.next_ids = DeviceBuffer<int>(static_cast<size_t>(c.max_seqs));
  I.local_ids = DeviceBuffer<int>(static_cast<size_t>(c.max_seqs));
  if (c.sp_size > 1) {
    for (auto* b : {&I.v, &I.send, &I.recv, &I.qh, &I.kh, &I.vh, &I.oh})
      *b = DeviceBuffer<bf16>(static_cast<size_t>(T * max_qkv));
  }
  if (I.any_hybrid) I.stage_pool = DeviceBuffer<uint16_t>(static_cast<size_t>(I.stage_pages * stage_page_elems));
  // The Hopper prefill kernel copies K/V tiles by TMA, from descriptors of each pool made once here.
  if (attn::resolve_prefill_path(attn::PrefillPath::kAuto) == attn::PrefillPath::kWgmma) {
    for (auto& L : I.layers) {
      const auto& grp = I.groups[static_cast<size_t>(L.group)];
      if (!grp.hybrid) L.prefill_maps = std::make_unique<attn::PrefillTensorMaps>(grp.local, L.kv.data(), c.num_blocks);
    }
    for (auto& g : I.groups)
      if (g.hybrid)
        g.stage_maps = std::make_unique<attn::PrefillTensorMaps>(*g.stage, I.stage_pool.data(), I.stage_pages);
  }
  for (auto& g : I.groups) {
    g.decode_path = attn::choose_decode_path(g.local, c.decode_path);
    g.plan_opt = attn::decode_plan_options_for_device(c.device, g.decode_path);
  }
  const auto warm_start = std::chrono::steady_clock::now();
  I.warm_gemms();
  CUDA_CHECK(cudaStreamSynchronize(I.stream));
  I.gemm_warm_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - warm_start).count();
}

GpuModel::~GpuModel() = default;

void GpuModel::set_op_events(bool on) {
  FDC_CHECK(impl_->cfg.op_times || !on, "per-op events on a model built without GpuModelConfig::op_times");
  impl_->op_events_on = on;
}

std::string GpuModel::device_name() const {
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDeviceProperties(&prop, impl_->cfg.device));
  return prop.name;
}

std::string GpuModel::gemm_planning() const {
  const Impl& I = *impl_;
  std::ostringstream out;
  out << ops::to_string(I.gemm.planning());
  if (I.gemm.planning() == ops::GemmRunner::Planning::kTuned)
    out << ": " << I.gemm.tuned_buckets() << " row buckets timed (" << I.gemm.retuned_buckets()
        << " not the heuristic's first answer)";
  out << ", warm-up " << std::fixed << std::setprecision(1) << I.gemm_warm_s << " s";
  return out.str();
}

std::string GpuModel::decode_kernels() const {
  const Impl& I = *impl_;
  int mma = 0, cuda = 0;
  for (const auto& L : I.layers)
    (I.groups[static_cast<size_t>(L.group)].decode_path == attn::DecodePath::kMma ? mma : cuda) += 1;
  std::string out;
  auto add = [&](const char* what, int n) {
    if (n == 0) return;
    out += (out.empty() ? "" : ", ") + std::string(what) + " (" + std::to_string(n) + (n == 1 ? " layer)" : " layers)");
  };
  add("tensor cores", mma);
  add("CUDA cores", cuda);
  return out;
}

int64_t GpuModel::weight_bytes() const { return impl_->weight_bytes; }
int64_t GpuModel::kv_bytes_per_block() const { return impl_->kv_block_bytes; }

std::vector<int> GpuModel::last_logits_index() const { return impl_->last_index; }

std::vector<float> GpuModel::last_logits() const {
  const Impl& I = *impl_;
  const size_t n = static_cast<size_t>(I.last_rows) * static_cast<size_t>(I.m.vocab);
  std::vector<uint16_t> bits(n);
  if (n) CUDA_CHECK(cudaMemcpy(bits.data(), I.logits.data(), n * 2, cudaMemcpyDeviceToHost));
  std::vector<float> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = kernels::bf16_bits_to_float(bits[i]);
  return out;
}

void GpuModel::forward(const std::vector<SeqStep>& seqs, std::vector<int32_t>& next_tokens, StepTimes* times) {
  Impl& I = *impl_;
  const auto& m = I.m;
  const auto host_start = std::chrono::steady_clock::now();
  const int bs = I.cfg.block_size;
  // Decode steps first (one query each), then prefill chunks: the two attention kernels then read
  // contiguous query rows, and the page tables of each part are slices of one table.
  std::vector<int> order;
  order.reserve(seqs.size());
  for (size_t i = 0; i < seqs.size(); ++i)
    if (seqs[i].new_tokens == 1) order.push_back(static_cast<int>(i));
  const int nd = static_cast<int>(order.size());
  for (size_t i = 0; i < seqs.size(); ++i)
    if (seqs[i].new_tokens > 1) order.push_back(static_cast<int>(i));
  const int n = static_cast<int>(order.size());
  const int np = n - nd;
  if (I.any_hybrid)
    for (int j = nd; j < n; ++j) {
      const SeqStep& q = seqs[static_cast<size_t>(order[static_cast<size_t>(j)])];
      FDC_INPUT_CHECK(q.context_before == 0,
                      I.cfg.config_name << ": a token-class policy classifies a prompt once it is prefilled whole "
                                           "(scheduler.chunked_prefill = false), but a prefill continues after "
                                        << q.context_before << " cached tokens");
    }
  int T = 0, total_pages = 0, emit_rows = 0;
  for (int s : order) {
    const SeqStep& q = seqs[static_cast<size_t>(s)];
    FDC_CHECK(q.new_tokens >= 1, "empty sequence step");
    T += q.new_tokens;
    const int pages = (q.context_before + q.new_tokens + bs - 1) / bs;
    FDC_CHECK(q.num_blocks >= pages, "sequence has " << q.num_blocks << " blocks for " << pages << " pages");
    total_pages += pages;
    emit_rows += q.emits ? 1 : 0;
  }
  FDC_CHECK(T <= I.cfg.max_tokens && n <= I.cfg.max_seqs,
            "batch of " << T << " tokens / " << n << " sequences over the engine's " << I.cfg.max_tokens << " / "
                        << I.cfg.max_seqs);

  // Sequence parallelism: this rank's slice of the token rows (contiguous; the first T % P ranks
  // take one more).
  const int P = I.cfg.sp_size, rank = I.cfg.sp_rank;
  auto slice_begin = [&](int r) { return static_cast<int64_t>(T / P) * r + std::min(r, T % P); };
  auto slice_tokens = [&](int r) { return slice_begin(r + 1) - slice_begin(r); };
  const int64_t t0 = slice_begin(rank), Ts = slice_tokens(rank);

  // Host metadata (ints): ids, positions, seq_of, pos_of [T]; indptr [n+1]; indices; kv_len [n];
  // cu_q [np+1]; emit rows [emit_rows]; token-class staging tables. Each layout group's plans
  // follow in their own upload (plan_group below).
  auto ints_of = [](size_t bytes) { return (bytes + sizeof(int) - 1) / sizeof(int); };
  size_t need = static_cast<size_t>(4 * T + (n + 1) + total_pages + n + (np + 1) + 3 * emit_rows);
  const int Tp = T - nd;  // prefill rows (decode steps have one row each, first)
  int stage_used = 0;
  if (I.any_hybrid) {
    for (int j = nd; j < n; ++j) stage_used += (seqs[static_cast<size_t>(order[static_cast<size_t>(j)])].new_tokens + bs - 1) / bs;
    FDC_CHECK(stage_used <= I.stage_pages, "staging cache of " << I.stage_pages << " pages for " << stage_used);
    need += static_cast<size_t>(n + 1 + stage_used + Tp) + 12;
  }
  need += 3 * 11 + 16;  // alignment of every region (see take), empty-list slots
  if (I.pinned_ints < need) {
    if (I.pinned) CUDA_CHECK(cudaFreeHost(I.pinned));
    I.pinned = nullptr;
    I.pinned_ints = std::max(need, I.pinned_ints * 3 / 2);
    CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&I.pinned), I.pinned_ints * sizeof(int)));
  }
  int* h = I.pinned;
  size_t off = 0;
  auto take = [&](size_t count) {
    // 16-byte aligned starts (the kernels read int4 / DecodeUnit vectors).
    off = (off + 3) & ~size_t{3};
    const size_t at = off;
    off += count;
    return at;
  };
  const size_t o_ids = take(static_cast<size_t>(T)), o_pos = take(static_cast<size_t>(T)),
               o_seq = take(static_cast<size_t>(T)), o_slot = take(static_cast<size_t>(T));
  const size_t o_indptr = take(static_cast<size_t>(n) + 1), o_indices = take(static_cast<size_t>(std::max(total_pages, 1)));
  const size_t o_kvlen = take(static_cast<size_t>(std::max(n, 1))), o_cuq = take(static_cast<size_t>(np) + 1);
  const size_t o_emit = take(static_cast<size_t>(std::max(emit_rows, 1)));
  {
    int t = 0, page = 0, e = 0;
    h[o_indptr] = 0;
    h[o_cuq] = 0;
    for (int j = 0; j < n; ++j) {
      const SeqStep& q = seqs[static_cast<size_t>(order[static_cast<size_t>(j)])];
      for (int i = 0; i < q.new_tokens; ++i, ++t) {
        h[o_ids + t] = q.token_ids[i];
        h[o_pos + t] = q.context_before + i;
        h[o_seq + t] = j;
        h[o_slot + t] = q.context_before + i;
      }
      const int pages = (q.context_before + q.new_tokens + bs - 1) / bs;
      for (int p = 0; p < pages; ++p) h[o_indices + page++] = q.blocks[p];
      h[o_indptr + j + 1] = page;
      h[o_kvlen + j] = q.context_before + q.new_tokens;
      if (j >= nd) h[o_cuq + (j - nd) + 1] = h[o_cuq + (j - nd)] + q.new_tokens;
      if (q.emits) h[o_emit + e++] = t - 1;
    }
  }
  // Emitting rows must come out in the caller's sequence order.
  {
    std::vector<std::pair<int, int>> by_seq;  // (caller index, row)
    int e = 0;
    for (int j = 0; j < n; ++j) {
      const SeqStep& q = seqs[static_cast<size_t>(order[static_cast<size_t>(j)])];
      if (q.emits) by_seq.push_back({order[static_cast<size_t>(j)], h[o_emit + e++]});
    }
    std::sort(by_seq.begin(), by_seq.end());
    for (size_t i = 0; i < by_seq.size(); ++i) h[o_emit + i] = by_seq[i].second;
  }
  // Token classes: the staging page table (prompts only), each prefill row's prompt, and per
  // hybrid layout the class and class slot of every row (decode rows here; the prefill rows'
  // are written on the device by the classifier) and the important count of every prompt.
  size_t o_sindptr = 0, o_sindices = 0, o_pseg = 0;
  if (I.any_hybrid) {
    o_sindptr = take(static_cast<size_t>(n) + 1);
    o_sindices = take(static_cast<size_t>(std::max(stage_used, 1)));
    o_pseg = take(static_cast<size_t>(std::max(Tp, 1)));
    int page = 0, row = 0;
    h[o_sindptr] = 0;
    for (int j = 0; j < n; ++j) {
      if (j >= nd) {
        const SeqStep& q = seqs[static_cast<size_t>(order[static_cast<size_t>(j)])];
        for (int p = 0; p < (q.new_tokens + bs - 1) / bs; ++p, ++page) h[o_sindices + page] = page;
        for (int i = 0; i < q.new_tokens; ++i) h[o_pseg + row++] = j - nd;
      }
      h[o_sindptr + j + 1] = page;
    }
  }
  // The emitting rows in this rank's token slice: local row, and index among all emitting rows.
  const size_t o_emit_local = take(static_cast<size_t>(std::max(emit_rows, 1)));
  const size_t o_emit_index = take(static_cast<size_t>(std::max(emit_rows, 1)));
  int local_emit = 0;
  for (int i = 0; i < emit_rows; ++i) {
    const int row = h[o_emit + i];
    if (row >= t0 && row < t0 + Ts) {
      h[o_emit_local + local_emit] = static_cast<int>(row - t0);
      h[o_emit_index + local_emit] = i;
      ++local_emit;
    }
  }
  FDC_CHECK(off <= I.pinned_ints, "metadata overflow");
  int* d = I.meta.ensure(off);
  const int group = m.group_size();
  const auto host_end = std::chrono::steady_clock::now();
  ++I.iteration;

  cudaStream_t st = I.stream;
  // The forward's timed span starts here, or (GpuModelConfig::plans_before_start) once every
  // group's plans are uploaded, below.
  auto start_timing = [&] {
    CUDA_CHECK(cudaEventRecord(I.ev_start, st));
    CUDA_CHECK(cudaMemcpyAsync(d, h, off * sizeof(int), cudaMemcpyHostToDevice, st));
  };
  if (!I.cfg.plans_before_start) start_timing();
  // GpuModelConfig::op_times: an event after each op, tagged with the op it ends.
  size_t op_marks = 0;
  auto mark = [&](int tag) {
    if (!I.cfg.op_times || !I.op_events_on) return;
    FDC_CHECK(op_marks < I.op_events.size(), "more than " << I.op_events.size() << " op events in a forward");
    CUDA_CHECK(cudaEventRecord(I.op_events[op_marks], st));
    I.op_tags[op_marks++] = tag;
  };
  auto mark_op = [&](costmodel::OpKind k) { mark(static_cast<int>(k)); };
  using costmodel::OpKind;

  const int64_t D = m.hidden, F = m.ffn_hidden;
  const int64_t up_n = m.mlp == costmodel::MlpKind::kGated ? 2 * F : F;
  const DType dt = DType::kBF16;
  auto gemm = [&](const void* xin, const DeviceBuffer<bf16>& w, void* out, int64_t rows, int64_t nout, int64_t kin,
                  const DeviceBuffer<bf16>& bias) {
    if (rows == 0) return;  // SP: a rank may hold no token rows of a small batch
    ops::GemmParams p;
    p.dtype = dt;
    p.m = rows;
    p.n = nout;
    p.k = kin;
    p.x = xin;
    p.w = w.data();
    p.out = out;
    I.gemm.run(p, ops::GemmBackend::kCublasLt, st);
    if (bias.size() > 0) {
      kern::add_bias(static_cast<bf16*>(out), bias.data(), rows, nout, st);
    }
  };
  auto norm = [&](const void* xin, void* out, const DeviceBuffer<bf16>& w, const DeviceBuffer<bf16>& b, int64_t rows) {
    ops::NormParams p;
    p.dtype = dt;
    p.kind = m.norm == costmodel::NormKind::kRmsNorm ? ops::NormKind::kRmsNorm : ops::NormKind::kLayerNorm;
    p.rows = rows;
    p.dim = static_cast<int>(D);
    p.eps = 1e-5f;
    p.x = xin;
    p.weight = w.data();
    p.bias = b.size() > 0 ? b.data() : nullptr;
    p.out = out;
    ops::launch_norm(p, st);
  };
  auto residual = [&](void* a, const void* b, int64_t count) {
    ops::ResidualParams p;
    p.dtype = dt;
    p.count = count;
    p.a = a;
    p.b = b;
    p.out = a;
    ops::launch_residual(p, st);
  };

  // One layout group's plans and per-row class metadata, built and uploaded when the group's first
  // layer of the iteration is launched: the host plans group g + 1 while the GPU runs group g.
  float* partial_o = nullptr;
  float* partial_lse = nullptr;
  double group_host_ms = 0;
  auto plan_group = [&](Impl::LayoutGroup& g) -> double {
    const auto start = std::chrono::steady_clock::now();
    std::vector<int> num_hi(static_cast<size_t>(nd)), num_lo(static_cast<size_t>(nd), 0);
    for (int j = 0; j < nd; ++j) {
      const int len = seqs[static_cast<size_t>(order[static_cast<size_t>(j)])].context_before + 1;
      num_hi[static_cast<size_t>(j)] = g.hybrid ? hi_count(len, g.hi_slots, bs) : len;
      num_lo[static_cast<size_t>(j)] = len - num_hi[static_cast<size_t>(j)];
    }
    g.decode = nd > 0 ? attn::plan_decode_balanced(g.local, num_hi, num_lo, g.plan_opt) : attn::DecodePlan{};
    std::vector<int> cu_q(static_cast<size_t>(np) + 1, 0), kv_len(static_cast<size_t>(np));
    for (int j = 0; j < np; ++j) {
      const SeqStep& q = seqs[static_cast<size_t>(order[static_cast<size_t>(nd + j)])];
      cu_q[static_cast<size_t>(j) + 1] = cu_q[static_cast<size_t>(j)] + q.new_tokens;
      kv_len[static_cast<size_t>(j)] = q.context_before + q.new_tokens;
    }
    g.prefill = np > 0 ? attn::plan_prefill(g.hybrid ? *g.stage : g.local, cu_q, kv_len, attn::kPrefillTileQ, true)
                       : attn::PrefillPlan{};
    if (P > 1) {
      comm::UlyssesShape shape;
      shape.ranks = P;
      for (int r = 0; r < P; ++r) shape.tokens.push_back(slice_tokens(r));
      shape.num_q_heads = m.num_heads;
      shape.num_kv_heads = m.num_kv_heads;
      for (int kh = 0; kh < m.num_kv_heads; ++kh) {
        shape.rk.push_back(g.layout.ranks(kh).rk);
        shape.rv.push_back(g.layout.ranks(kh).rv);
      }
      g.ulysses = comm::plan_ulysses(shape);
      const auto& rp = g.ulysses.ranks[static_cast<size_t>(rank)];
      g.vecs_pack = comm::check_segments(rp.pack);
      g.vecs_unpack = comm::check_segments(rp.unpack);
      g.vecs_out_unpack = comm::check_segments(rp.out_unpack);
    }
      size_t gneed = 4 * g.decode.units.size() + g.decode.pair_indptr.size() + g.decode.pair_units.size() +
                   ints_of(g.prefill.tiles.size() * sizeof(attn::PrefillTile)) + 16;
    if (P > 1) {
      const auto& rp = g.ulysses.ranks[static_cast<size_t>(rank)];
      gneed += ints_of((rp.pack.size() + rp.unpack.size() + rp.out_unpack.size()) * sizeof(comm::Segment)) + 12;
    }
    if (g.hybrid) gneed += static_cast<size_t>(2 * T + np) + 12;
    MetaBuffer& mb = *g.meta;
    mb.reset(gneed);
    int* gh = mb.host;
    g.off_units = mb.take(4 * g.decode.units.size());
    std::memcpy(gh + g.off_units, g.decode.units.data(), g.decode.units.size() * sizeof(attn::DecodeUnit));
    g.off_pair_indptr = mb.take(g.decode.pair_indptr.size());
    std::memcpy(gh + g.off_pair_indptr, g.decode.pair_indptr.data(), g.decode.pair_indptr.size() * sizeof(int));
    g.off_pair_units = mb.take(g.decode.pair_units.size());
    std::memcpy(gh + g.off_pair_units, g.decode.pair_units.data(), g.decode.pair_units.size() * sizeof(int));
    g.off_tiles = mb.take(ints_of(g.prefill.tiles.size() * sizeof(attn::PrefillTile)));
    std::memcpy(gh + g.off_tiles, g.prefill.tiles.data(), g.prefill.tiles.size() * sizeof(attn::PrefillTile));
    if (P > 1) {
      // Segments hold int64 fields: their regions start 16-byte aligned like every region.
      const auto& rp = g.ulysses.ranks[static_cast<size_t>(rank)];
      auto put = [&](const std::vector<comm::Segment>& v) {
        const size_t at = mb.take(ints_of(v.size() * sizeof(comm::Segment)));
        std::memcpy(gh + at, v.data(), v.size() * sizeof(comm::Segment));
        return at;
      };
      g.off_pack = put(rp.pack);
      g.off_unpack = put(rp.unpack);
      g.off_out_unpack = put(rp.out_unpack);
    }
    if (g.hybrid) {
      // Class and class slot of every row (decode rows here; the prefill rows' are written on the
      // device by the classifier) and the important count of every prompt.
      g.off_cls = mb.take(static_cast<size_t>(T));
      g.off_cpos = mb.take(static_cast<size_t>(T));
      g.off_nhi = mb.take(static_cast<size_t>(std::max(np, 1)));
      for (int j = 0; j < nd; ++j) {
        const int len = seqs[static_cast<size_t>(order[static_cast<size_t>(j)])].context_before;
        const int hi_before = hi_count(len, g.hi_slots, bs);
        const bool hi = hi_count(len + 1, g.hi_slots, bs) > hi_before;
        gh[g.off_cls + j] = hi ? 0 : 1;
        gh[g.off_cpos + j] = hi ? hi_before : len - hi_before;
      }
      for (int j = nd; j < n; ++j)
        gh[g.off_nhi + (j - nd)] =
            hi_count(seqs[static_cast<size_t>(order[static_cast<size_t>(j)])].new_tokens, g.hi_slots, bs);
    }
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  };
  // Every group's plans start building now, in the order of their first layer, on the planning
  // threads (they read this iteration's batch and write only their own group). The guard waits
  // for any still running should a launch below throw: the tasks use this function's locals.
  std::vector<Impl::LayoutGroup*> pending;
  for (auto& L : I.layers) {
    Impl::LayoutGroup& g = I.groups[static_cast<size_t>(L.group)];
    if (g.plan.valid()) continue;
    std::packaged_task<double()> task([&plan_group, &g, device = I.cfg.device] {
      // A pool thread's current device is device 0 until set: the metadata buffers it may
      // (re)allocate are pinned through this rank's device, not another GPU's context.
      CUDA_CHECK(cudaSetDevice(device));
      return plan_group(g);
    });
    g.plan = task.get_future();
    boost::asio::post(I.planners, std::move(task));
    pending.push_back(&g);
  }
  struct WaitAll {
    std::vector<Impl::LayoutGroup*>& groups;
    ~WaitAll() {
      for (auto* g : groups)
        if (g->plan.valid()) {
          g->plan.wait();
          g->plan = std::future<double>();  // not collected: the iteration failed
        }
    }
  } wait_all{pending};
  // A group's first layer: wait for its plans (rethrowing a planning error), upload them, and grow
  // the split-KV workspace for the largest plan so far (growing waits for the device: no kernel
  // of this iteration still uses the old one). group_host_ms is the time the launching thread
  // waited for plans plus the uploads: what planning adds to the iteration's critical path.
  auto finish_group = [&](Impl::LayoutGroup& g) {
    const auto start = std::chrono::steady_clock::now();
    g.plan.get();
    g.gd = g.meta->upload(I.stream);
    const size_t units = std::max<size_t>(g.decode.units.size(), 1);
    partial_o = I.partial_o.ensure(units * group * attn::kMaxRank);
    partial_lse = I.partial_lse.ensure(units * group);
    g.planned = I.iteration;
    group_host_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  };
  if (I.cfg.plans_before_start) {
    for (auto* g : pending) finish_group(*g);
    start_timing();
  }
  kern::embed(d + o_ids + t0, d + o_pos + t0, I.embed.data(), m.rope ? nullptr : I.positions.data(), I.x.data(),
              static_cast<int>(Ts), static_cast<int>(D), st);
  mark(kOutsideLayers);
#if FDCSIM_HAVE_NCCL
  auto all_to_all = [&](const void* send, const std::vector<int64_t>& sc, const std::vector<int64_t>& so, void* recv,
                        const std::vector<int64_t>& rc, const std::vector<int64_t>& ro) {
    comm::all_to_all_v(send, sc, so, recv, rc, ro, dt, *I.cfg.comm, st);
  };
#else
  auto all_to_all = [&](const void*, const std::vector<int64_t>&, const std::vector<int64_t>&, void*,
                        const std::vector<int64_t>&, const std::vector<int64_t>&) {
    FDC_CHECK(false, "sequence parallelism needs a build with NCCL");
  };
#endif
  for (auto& L : I.layers) {
    Impl::LayoutGroup& g = I.groups[static_cast<size_t>(L.group)];
    if (g.planned != I.iteration) {
      finish_group(g);
      mark(kOutsideLayers);  // the group's metadata upload is the iteration's, not the layer's
    }
    const attn::HeadLayout& lay = g.layout;
    const attn::HeadLayout& loc = g.local;
    const int64_t qkv_n = L.widths.total();
    // Projections on this rank's token rows.
    norm(I.x.data(), I.h.data(), L.attn_norm, L.attn_norm_bias, Ts);
    mark_op(OpKind::kNorm);
    gemm(I.h.data(), L.w_qkv, I.qkv.data(), Ts, qkv_n, D, L.b_qkv);
    mark_op(OpKind::kQkvProj);
    if (Ts == 0) {
      // No rows on this rank: nothing to project; it still takes part in the all-to-alls.
    } else if (m.rope) {
      ops::RopeRotateParams p;
      p.dtype = dt;
      p.num_tokens = static_cast<int>(Ts);
      p.num_q_heads = m.num_heads;
      p.num_kv_heads = m.num_kv_heads;
      p.head_dim = m.head_dim;
      p.max_rank = lay.max_rk();
      p.qkv = I.qkv.data();
      p.qkv_row = qkv_n;
      p.positions = d + o_pos + t0;
      p.cos_sin = I.cos_sin.data();
      p.max_position = I.max_position;
      p.rotation = L.rot_qk.size() > 0 ? L.rot_qk.data() : nullptr;
      p.heads = g.heads.data();
      p.q_row = lay.q_row();
      p.k_row = lay.k_row();
      p.q_out = I.q.data();
      p.k_out = I.k.data();
      ops::launch_rope_rotate(p, st);
    } else {
      // Compressed q and k come straight from the projection; split them out of the fused row.
      CUDA_CHECK(cudaMemcpy2DAsync(I.q.data(), static_cast<size_t>(lay.q_row()) * 2, I.qkv.data(),
                                   static_cast<size_t>(qkv_n) * 2, static_cast<size_t>(L.widths.q) * 2,
                                   static_cast<size_t>(Ts), cudaMemcpyDeviceToDevice, st));
      CUDA_CHECK(cudaMemcpy2DAsync(I.k.data(), static_cast<size_t>(lay.k_row()) * 2, I.qkv.data() + L.widths.q,
                                   static_cast<size_t>(qkv_n) * 2, static_cast<size_t>(L.widths.k) * 2,
                                   static_cast<size_t>(Ts), cudaMemcpyDeviceToDevice, st));
    }
    mark_op(OpKind::kRopeRotate);
    // What attention reads: without SP q/k as computed and v in place in the fused row; with SP
    // every token of this rank's heads, after the Ulysses all-to-all.
    const bf16* q_att = I.q.data();
    const bf16* k_att = I.k.data();
    const bf16* v_att = I.qkv.data() + L.widths.q + L.widths.k;
    int v_stride = static_cast<int>(qkv_n);
    bf16* out_att = I.o.data();
    comm::BufPtrs bufs{};
    if (P > 1) {
      const auto& rp = g.ulysses.ranks[static_cast<size_t>(rank)];
      if (Ts > 0)
        CUDA_CHECK(cudaMemcpy2DAsync(I.v.data(), static_cast<size_t>(lay.v_row()) * 2, v_att,
                                   static_cast<size_t>(qkv_n) * 2, static_cast<size_t>(L.widths.v) * 2,
                                   static_cast<size_t>(Ts), cudaMemcpyDeviceToDevice, st));
      bufs[static_cast<size_t>(comm::Buf::kQ)] = I.q.data();
      bufs[static_cast<size_t>(comm::Buf::kK)] = I.k.data();
      bufs[static_cast<size_t>(comm::Buf::kV)] = I.v.data();
      bufs[static_cast<size_t>(comm::Buf::kSend)] = I.send.data();
      bufs[static_cast<size_t>(comm::Buf::kRecv)] = I.recv.data();
      bufs[static_cast<size_t>(comm::Buf::kQHeads)] = I.qh.data();
      bufs[static_cast<size_t>(comm::Buf::kKHeads)] = I.kh.data();
      bufs[static_cast<size_t>(comm::Buf::kVHeads)] = I.vh.data();
      bufs[static_cast<size_t>(comm::Buf::kOutHeads)] = I.oh.data();
      bufs[static_cast<size_t>(comm::Buf::kOut)] = I.o.data();
      auto segs = [&](size_t at) { return reinterpret_cast<const comm::Segment*>(g.gd + at); };
      comm::launch_segments(segs(g.off_pack), static_cast<int>(rp.pack.size()), g.vecs_pack, bufs, st);
      all_to_all(I.send.data(), rp.send_counts, rp.send_offsets, I.recv.data(), rp.recv_counts, rp.recv_offsets);
      comm::launch_segments(segs(g.off_unpack), static_cast<int>(rp.unpack.size()), g.vecs_unpack, bufs, st);
      q_att = I.qh.data();
      k_att = I.kh.data();
      v_att = I.vh.data();
      v_stride = loc.v_row();
      out_att = I.oh.data();
      mark_op(OpKind::kAllToAllQkv);
    }
    auto append = [&](int first_row, int rows, const attn::HeadLayout& lay_c, const attn::HeadInfo* heads, void* pool,
                      const int* indptr, const int* indices, const int* cls_of, const int* pos_of) {
      attn::AppendParams p;
      p.dtype = dt;
      p.num_tokens = rows;
      p.num_kv_heads = lay_c.num_kv_heads();
      p.k_row = lay_c.k_row();
      p.v_row = v_stride;  // the row stride of v (the fused row without SP)
      p.k = k_att + static_cast<int64_t>(first_row) * lay_c.k_row();
      p.v = v_att + static_cast<int64_t>(first_row) * v_stride;
      p.seq_of = d + o_seq + first_row;
      p.pos_of = pos_of;
      p.cls_of = cls_of;
      p.hi_pool = p.lo_pool = pool;
      p.page_elems_hi = lay_c.page_elems(attn::TokenClass::kHi);
      p.page_elems_lo = lay_c.page_elems(attn::TokenClass::kLo);
      p.block_size = bs;
      p.slots_hi = lay_c.slots(attn::TokenClass::kHi);
      p.slots_lo = lay_c.slots(attn::TokenClass::kLo);
      p.hi_page_indptr = p.lo_page_indptr = indptr;
      p.hi_page_indices = p.lo_page_indices = indices;
      p.heads = heads;
      attn::launch_append(p, st);
    };
    if (!g.hybrid) {
      append(0, T, loc, g.local_heads.data(), L.kv.data(), d + o_indptr, d + o_indices, nullptr, d + o_slot);
      mark_op(OpKind::kKvAppend);
    } else {
      // Prompts: prefilled at hi ranks from the staging cache, then classified; every row then
      // goes to its class's slot of the sequence's shared pages.
      if (np > 0) {
        append(nd, T - nd, *g.stage, g.stage_heads.data(), I.stage_pool.data(), d + o_sindptr, d + o_sindices, nullptr,
               d + o_slot + nd);
        mark_op(OpKind::kKvAppend);
        I.classifier.classify(k_att + static_cast<int64_t>(nd) * loc.k_row(), loc.k_row(),
                              v_att + static_cast<int64_t>(nd) * v_stride, v_stride, g.local_heads.data(),
                              loc.num_kv_heads(), T - nd, d + o_cuq, np, d + o_pseg, g.gd + g.off_nhi,
                              g.gd + g.off_cls + nd, g.gd + g.off_cpos + nd, st);
        mark_op(OpKind::kKvClassify);
      }
      append(0, T, loc, g.local_heads.data(), L.kv.data(), d + o_indptr, d + o_indices, g.gd + g.off_cls, g.gd + g.off_cpos);
      mark_op(OpKind::kKvAppend);
    }
    attn::PagedCacheParams cache;
    cache.hi_pool = L.kv.data();
    cache.lo_pool = L.kv.data();  // shared pages hold both classes; without classes the plans have no lo units
    cache.page_elems_hi = loc.page_elems(attn::TokenClass::kHi);
    cache.page_elems_lo = loc.page_elems(attn::TokenClass::kLo);
    cache.block_size = bs;
    cache.slots_hi = loc.slots(attn::TokenClass::kHi);
    cache.slots_lo = loc.slots(attn::TokenClass::kLo);
    cache.hi_page_indices = d + o_indices;
    cache.lo_page_indices = d + o_indices;
    // The fields decode and prefill share: this rank's heads, the cache, the rows of its part.
    auto common = [&](auto& p, int num_seqs, int first_row) {
      p.dtype = dt;
      p.num_seqs = num_seqs;
      p.num_q_heads = loc.num_q_heads();
      p.num_kv_heads = loc.num_kv_heads();
      p.q_row = loc.q_row();
      p.o_row = loc.o_row();
      p.max_rank = std::max(loc.max_rk(), loc.max_rv());
      p.sm_scale = 1.f / std::sqrt(static_cast<float>(m.head_dim));
      p.q = q_att + static_cast<int64_t>(first_row) * loc.q_row();
      p.out = out_att + static_cast<int64_t>(first_row) * loc.o_row();
      p.cache = cache;
      p.heads = g.local_heads.data();
    };
    if (nd > 0) {
      attn::DecodeParams p;
      common(p, nd, 0);
      p.cache.hi_page_indptr = d + o_indptr;
      p.cache.lo_page_indptr = d + o_indptr;
      p.units = reinterpret_cast<const attn::DecodeUnit*>(g.gd + g.off_units);
      p.num_units = static_cast<int>(g.decode.units.size());
      p.pair_indptr = g.gd + g.off_pair_indptr;
      p.pair_units = g.gd + g.off_pair_units;
      p.max_units_per_pair = g.decode.max_units_per_pair;
      p.width_classes = g.decode.width_classes;  // units of one width class: that width's kernel
      p.path = g.decode_path;
      p.partial_o = partial_o;
      p.partial_lse = partial_lse;
      attn::launch_decode(p, st);
      mark_op(OpKind::kAttnDecode);
    }
    if (np > 0) {
      attn::PrefillParams p;
      common(p, np, nd);  // decode rows come first
      p.cu_q = d + o_cuq;
      p.kv_len = d + o_kvlen + nd;
      p.cache.hi_page_indptr = d + o_indptr + nd;  // absolute offsets into the shared index list
      p.cache.lo_page_indptr = d + o_indptr + nd;
      if (g.hybrid) {
        // Prompts attend over the staging cache, at hi ranks (the classes start after prefill).
        p.cache.hi_pool = I.stage_pool.data();
        p.cache.page_elems_hi = g.stage->page_elems(attn::TokenClass::kHi);
        p.cache.slots_hi = p.cache.slots_lo = 0;
        p.cache.hi_page_indptr = d + o_sindptr + nd;
        p.cache.hi_page_indices = d + o_sindices;
        p.heads = g.stage_heads.data();
      }
      p.kv_maps = g.hybrid ? (g.stage_maps ? g.stage_maps->data() : nullptr)
                           : (L.prefill_maps ? L.prefill_maps->data() : nullptr);
      p.tiles = reinterpret_cast<const attn::PrefillTile*>(g.gd + g.off_tiles);
      p.num_tiles = static_cast<int>(g.prefill.tiles.size());
      attn::launch_prefill(p, st);
      mark_op(OpKind::kAttnPrefill);
    }
    if (P > 1) {
      const auto& rp = g.ulysses.ranks[static_cast<size_t>(rank)];
      all_to_all(I.oh.data(), rp.out_send_counts, rp.out_send_offsets, I.recv.data(), rp.out_recv_counts,
                 rp.out_recv_offsets);
      comm::launch_segments(reinterpret_cast<const comm::Segment*>(g.gd + g.off_out_unpack),
                            static_cast<int>(rp.out_unpack.size()), g.vecs_out_unpack, bufs, st);
      mark_op(OpKind::kAllToAllOut);
    }
    gemm(I.o.data(), L.w_o, I.tmp.data(), Ts, D, L.o_width, L.b_o);
    mark_op(OpKind::kOutProj);
    residual(I.x.data(), I.tmp.data(), Ts * D);
    mark_op(OpKind::kResidual);
    norm(I.x.data(), I.h.data(), L.mlp_norm, L.mlp_norm_bias, Ts);
    mark_op(OpKind::kNorm);
    gemm(I.h.data(), L.w_up, I.up.data(), Ts, up_n, D, L.b_up);
    mark_op(OpKind::kMlpUp);
    {
      ops::ActParams p;
      p.dtype = dt;
      p.kind = m.mlp == costmodel::MlpKind::kGated ? ops::ActKind::kSwiGlu : ops::ActKind::kRelu;
      p.rows = Ts;
      p.ffn = static_cast<int>(F);
      p.in = I.up.data();
      p.out = I.act.data();
      ops::launch_act(p, st);
    }
    mark_op(OpKind::kMlpAct);
    gemm(I.act.data(), L.w_down, I.tmp.data(), Ts, D, F, L.b_down);
    mark_op(OpKind::kMlpDown);
    residual(I.x.data(), I.tmp.data(), Ts * D);
    mark_op(OpKind::kResidual);
  }
  // LM head on the emitting rows this rank holds; with SP the ids meet by an all-reduce (max) over
  // an array of -1s.
  next_tokens.assign(static_cast<size_t>(emit_rows), 0);
  I.last_rows = local_emit;
  I.last_index.assign(h + o_emit_index, h + o_emit_index + local_emit);
  if (emit_rows > 0) {
    if (local_emit > 0) {
      kern::gather_rows(I.x.data(), d + o_emit_local, I.rows.data(), local_emit, static_cast<int>(D), st);
      norm(I.rows.data(), I.rows.data(), I.final_norm, I.final_norm_bias, local_emit);
      gemm(I.rows.data(), I.lm_head, I.logits.data(), local_emit, m.vocab, D, DeviceBuffer<bf16>());
      kern::argmax_rows(I.logits.data(), local_emit, m.vocab, I.local_ids.data(), st);
    }
    if (P > 1) {
      CUDA_CHECK(cudaMemsetAsync(I.next_ids.data(), 0xff, static_cast<size_t>(emit_rows) * sizeof(int), st));
      kern::scatter_ids(I.local_ids.data(), d + o_emit_index, local_emit, I.next_ids.data(), st);
#if FDCSIM_HAVE_NCCL
      NCCL_CHECK(ncclAllReduce(I.next_ids.data(), I.next_ids.data(), static_cast<size_t>(emit_rows), ncclInt32,
                                   ncclMax, I.cfg.comm->get(), st));
#endif
    } else {
      CUDA_CHECK(cudaMemcpyAsync(I.next_ids.data(), I.local_ids.data(), static_cast<size_t>(emit_rows) * sizeof(int),
                                 cudaMemcpyDeviceToDevice, st));
    }
    CUDA_CHECK(cudaMemcpyAsync(next_tokens.data(), I.next_ids.data(), static_cast<size_t>(emit_rows) * sizeof(int),
                               cudaMemcpyDeviceToHost, st));
  }
  CUDA_CHECK(cudaEventRecord(I.ev_end, st));
  CUDA_CHECK(cudaEventSynchronize(I.ev_end));
  if (times) {
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, I.ev_start, I.ev_end));
    times->gpu_ms = ms;
    times->host_ms = std::chrono::duration<double, std::milli>(host_end - host_start).count() + group_host_ms;
    times->op_ms.fill(0);
    times->outside_layers_ms = 0;
    // Every interval between consecutive events (start, the ops', end) counted to the op it ends;
    // the last one (LM head and the copies after the last layer) is outside the layers.
    cudaEvent_t prev = I.ev_start;
    for (size_t i = 0; I.cfg.op_times && I.op_events_on && i <= op_marks; ++i) {
      cudaEvent_t ev = i < op_marks ? I.op_events[i] : I.ev_end;
      const int tag = i < op_marks ? I.op_tags[i] : kOutsideLayers;
      float op_ms = 0;
      CUDA_CHECK(cudaEventElapsedTime(&op_ms, prev, ev));
      (tag == kOutsideLayers ? times->outside_layers_ms : times->op_ms[static_cast<size_t>(tag)]) += op_ms;
      prev = ev;
    }
  }
}

}  // namespace fdc::engine
