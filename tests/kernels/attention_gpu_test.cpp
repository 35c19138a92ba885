// GPU suite of the attention kernels against the CPU reference: awkward lengths, batches, ranks,
// GQA groups, block sizes, token classes, balanced and naive plans; outputs poisoned with NaN
// before every run; tolerance atol + rtol*|ref| per dtype; NaN never passes.
#include <doctest/doctest.h>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "kernels/attention/attention.h"
#include "kernels/attention/device_cache.h"
#include "kernels/attention/plan.h"
#include "kernels/attention/reference.h"
#include "kernels/common/cuda_check.h"
#include "tests/kernels/attention_test_data.h"

using namespace fdc::kernels;
using namespace fdc::kernels::attn;
using namespace fdc::kernels::attn::test;

namespace {

struct Tol {
  double atol, rtol;
};
Tol tolerance(DType t) { return t == DType::kBF16 ? Tol{4e-3, 1.6e-2} : Tol{1e-3, 4e-3}; }

std::vector<uint16_t> to_bits(DType t, const std::vector<float>& x) {
  std::vector<uint16_t> b(x.size());
  for (size_t i = 0; i < x.size(); ++i) b[i] = float_to_bits(t, x[i]);
  return b;
}
std::vector<float> to_floats(DType t, const std::vector<uint16_t>& b) {
  std::vector<float> x(b.size());
  for (size_t i = 0; i < b.size(); ++i) x[i] = bits_to_float(t, b[i]);
  return x;
}

// Device copy of a cache, its pools converted to the dtype's 16-bit patterns.
DevicePagedCache device_cache(const HeadLayout& L, const CacheData& c, DType t) {
  return DevicePagedCache(L, c.pt, DeviceBuffer<uint16_t>(to_bits(t, c.hi_pool)),
                          DeviceBuffer<uint16_t>(to_bits(t, c.lo_pool)));
}

constexpr uint16_t kPoison = 0xFFFF;  // NaN in both bf16 and fp16

// The launch fields decode and prefill share: shapes, scale, q in, out, and the paged cache.
template <typename Params>
void set_attention_params(Params& p, const HeadLayout& L, DType t, int num_seqs, float scale, const void* q, void* out,
                          const DevicePagedCache& dc) {
  p.dtype = t;
  p.num_seqs = num_seqs;
  p.num_q_heads = L.num_q_heads();
  p.num_kv_heads = L.num_kv_heads();
  p.q_row = L.q_row();
  p.o_row = L.o_row();
  p.max_rank = std::max(L.max_rk(), L.max_rv());
  p.sm_scale = scale;
  p.q = q;
  p.out = out;
  p.cache = dc.params(L);
  p.heads = dc.heads.data();
}

void check_close(const std::vector<float>& got, const std::vector<float>& want, DType t, const std::string& what) {
  const Tol tol = tolerance(t);
  int64_t at = -1;
  const double worst = worst_error_ratio(got, want, tol.atol, tol.rtol, &at);
  INFO(what << ": worst |err|/(atol+rtol|ref|) = " << worst << " at element " << at
            << (at >= 0 ? " got " + std::to_string(got[static_cast<size_t>(at)]) + " want " +
                              std::to_string(want[static_cast<size_t>(at)])
                        : std::string()));
  CHECK(worst <= 1.0);
}

void run_decode_case(const HeadLayout& L, const std::vector<int>& hi, const std::vector<int>& lo, DType t,
                     bool balanced, uint64_t seed) {
  const CacheData c = make_cache(L, hi, lo, t, seed);
  const int n = static_cast<int>(hi.size());
  const std::vector<float> q = make_rows(n, L.q_row(), t, seed + 1, 1.f);
  const float scale = 0.0884f;
  std::vector<float> want(static_cast<size_t>(n) * L.o_row());
  reference_decode(L, c.pt, c.pool(0), c.pool(1), q.data(), scale, want.data());

  DevicePagedCache dc = device_cache(L, c, t);
  DeviceBuffer<uint16_t> dq(to_bits(t, q));
  // Both kernels, each with its own plan options, against the same reference.
  for (DecodePath path : {DecodePath::kCudaCores, DecodePath::kMma}) {
    DeviceBuffer<uint16_t> dout(std::vector<uint16_t>(want.size(), kPoison));
    const DecodePlanOptions opt = decode_plan_options_for_device(0, path);
    const DecodePlan plan = balanced ? plan_decode_balanced(L, hi, lo, opt) : plan_decode_naive(L, hi, lo, opt);
    DeviceDecodePlan dplan(plan, L.group());
    DecodeParams p;
    set_attention_params(p, L, t, n, scale, dq.data(), dout.data(), dc);
    p.path = path;
    dplan.fill(p);
    launch_decode(p, nullptr);
    CUDA_CHECK(cudaDeviceSynchronize());
    check_close(to_floats(t, dout.download()), want, t,
                std::string("decode ") + (path == DecodePath::kMma ? "mma " : "cuda-cores ") + to_string(t) +
                    (balanced ? " balanced" : " naive") + " units " + std::to_string(plan.units.size()));
  }
}

HeadLayout ranks_layout(int q_heads, int kv_heads, int block, int base, bool classes) {
  std::vector<HeadRanks> r;
  for (int h = 0; h < kv_heads; ++h) {
    const int rk = 16 + ((base / 8 + 3 * h) % 15) * 8;  // 16..128 in steps of 8
    const int rv = 16 + ((base / 8 + 5 * h + 7) % 15) * 8;
    r.push_back(classes ? HeadRanks{rk, rv, std::max(8, rk / 2 / 8 * 8), std::max(8, rv / 4 / 8 * 8)}
                        : HeadRanks{rk, rv, rk, rv});
  }
  return HeadLayout(q_heads, kv_heads, r, block);
}

}  // namespace

TEST_CASE("decode matches the reference over awkward lengths, ranks, groups and block sizes") {
  const std::vector<int> lengths{1, 3, 17, 129, 1000, 4097};
  uint64_t seed = 100;
  for (DType t : {DType::kBF16, DType::kFP16}) {
    for (int group : {1, 4, 8}) {
      for (int block : {16, 32}) {
        for (bool balanced : {true, false}) {
          CAPTURE(group);
          CAPTURE(block);
          const HeadLayout L = ranks_layout(2 * group, 2, block, static_cast<int>(seed % 120), false);
          run_decode_case(L, lengths, std::vector<int>(lengths.size(), 0), t, balanced, ++seed);
        }
      }
    }
  }
}

TEST_CASE("decode with uniform ranks 16..128 and batches 1..64") {
  uint64_t seed = 500;
  for (int rank : {16, 32, 48, 64, 96, 128}) {
    for (int batch : {1, 7, 64}) {
      CAPTURE(rank);
      CAPTURE(batch);
      std::vector<int> hi;
      for (int b = 0; b < batch; ++b) hi.push_back(1 + (b * 389 + rank) % 700);
      run_decode_case(HeadLayout::uniform(8, 8, rank, rank, 16), hi, std::vector<int>(hi.size(), 0), DType::kBF16, true,
                      ++seed);
    }
  }
}

TEST_CASE("decode of units in one width class, 48 or 96: the kernels of that width, three stages, swizzled rows") {
  // Every unit 33..48 (65..96) wide: the tensor-core path runs the kernel built for that width alone.
  uint64_t seed = 700;
  const std::vector<int> lengths{1, 3, 17, 129, 1000, 4097};
  const std::vector<int> none(lengths.size(), 0);
  for (unsigned width : {kDecodeWidth48, kDecodeWidth96}) {
    const std::vector<HeadRanks> ranks = width == kDecodeWidth48
                                             ? std::vector<HeadRanks>{{48, 40, 48, 40}, {40, 48, 40, 48}}
                                             : std::vector<HeadRanks>{{96, 80, 96, 80}, {72, 96, 72, 96}};
    for (DType t : {DType::kBF16, DType::kFP16}) {
      for (int group : {1, 4, 8}) {
        for (int block : {16, 32}) {
          CAPTURE(width);
          CAPTURE(group);
          CAPTURE(block);
          const HeadLayout L(2 * group, 2, ranks, block);
          REQUIRE(plan_decode_balanced(L, lengths, none, decode_plan_options_for_device(0, DecodePath::kMma))
                      .width_classes == width);
          for (bool balanced : {true, false}) run_decode_case(L, lengths, none, t, balanced, ++seed);
        }
      }
    }
  }
  // Token classes in separate pools, both classes in one width class.
  run_decode_case(HeadLayout(4, 2, {{48, 48, 40, 40}, {48, 40, 48, 40}}, 16), {1, 0, 17, 129, 1000, 4097},
                  {3, 5, 0, 300, 3000, 1}, DType::kBF16, true, ++seed);
  run_decode_case(HeadLayout(4, 2, {{96, 96, 80, 72}, {96, 88, 96, 88}}, 16), {1, 0, 17, 129, 1000, 4097},
                  {3, 5, 0, 300, 3000, 1}, DType::kBF16, true, ++seed);
}

TEST_CASE("decode with token classes: unimportant tokens use the first r_lo dims") {
  uint64_t seed = 900;
  for (DType t : {DType::kBF16, DType::kFP16}) {
    for (int group : {1, 4}) {
      for (bool balanced : {true, false}) {
        const HeadLayout L = ranks_layout(3 * group, 3, 16, 40, true);
        REQUIRE(L.has_token_classes());
        run_decode_case(L, {1, 0, 17, 129, 1000, 4097}, {3, 5, 0, 300, 3000, 1}, t, balanced, ++seed);
      }
    }
  }
}

TEST_CASE("decode over shared pages: a block's hi and lo slots in one page, slot counts not powers of two") {
  // Both ways of finding a token's page (slot_page, and the division it replaced), at widths 32..128.
  const char* env = std::getenv("FDCSIM_DECODE_SLOT_INDEX");
  const std::string saved = env ? env : "";
  uint64_t seed = 1300;
  for (const char* index : {"multiply", "divide"}) {
    ::setenv("FDCSIM_DECODE_SLOT_INDEX", index, 1);
    for (int block : {16, 32}) {
      for (int hi_slots : {1, 4, 5, 10, 11, block - 1}) {
        for (int ranks_base : {24, 104}) {
          for (bool balanced : {true, false}) {
            CAPTURE(index);
            CAPTURE(block);
            CAPTURE(hi_slots);
            CAPTURE(ranks_base);
            const HeadLayout base = ranks_layout(8, 2, block, ranks_base, true);
            std::vector<HeadRanks> r;
            for (int h = 0; h < base.num_kv_heads(); ++h) r.push_back(base.ranks(h));
            const HeadLayout L = HeadLayout::shared(8, 2, r, block, hi_slots);
            REQUIRE(L.page_elems(TokenClass::kHi) == L.page_elems(TokenClass::kLo));
            run_decode_case(L, {1, 0, 17, 129, 1000, 300}, {0, 3, 40, 129, 2900, 1}, DType::kBF16, balanced, ++seed);
          }
        }
      }
    }
  }
  ::setenv("FDCSIM_DECODE_SLOT_INDEX", "by-table", 1);
  const HeadLayout L = HeadLayout::shared(8, 2, {{64, 64, 32, 32}, {64, 64, 32, 32}}, 16, 6);
  CHECK_THROWS_WITH_AS(run_decode_case(L, {5}, {7}, DType::kBF16, true, 1), doctest::Contains("by-table"),
                       fdc::InputError);
  if (env)
    ::setenv("FDCSIM_DECODE_SLOT_INDEX", saved.c_str(), 1);
  else
    ::unsetenv("FDCSIM_DECODE_SLOT_INDEX");
}

TEST_CASE("two-class append writes hi and lo tokens of shared pages like the reference") {
  const HeadLayout base = ranks_layout(4, 2, 16, 64, true);
  std::vector<HeadRanks> r;
  for (int h = 0; h < base.num_kv_heads(); ++h) r.push_back(base.ranks(h));
  const HeadLayout L = HeadLayout::shared(4, 2, r, 16, 5);
  const DType t = DType::kBF16;
  const std::vector<int> hi{7, 0, 23}, lo{20, 3, 50};
  CacheData c = make_cache(L, hi, lo, t, 77);
  // Tokens to append: a mix of both classes over every sequence, into slots the cache holds.
  std::vector<int> seq_of, cls_of, pos_of;
  for (int s = 0; s < 3; ++s)
    for (int cls = 0; cls < 2; ++cls) {
      const int n = cls == 0 ? hi[static_cast<size_t>(s)] : lo[static_cast<size_t>(s)];
      for (int i = 0; i < n; i += 3) {
        seq_of.push_back(s);
        cls_of.push_back(cls);
        pos_of.push_back(i);
      }
    }
  const int total = static_cast<int>(seq_of.size());
  const std::vector<float> k = make_rows(total, L.k_row(), t, 5, 1.f);
  const std::vector<float> v = make_rows(total, L.v_row(), t, 6, 1.f);
  CacheData want = c;
  reference_append(L, want.pt, seq_of, cls_of, pos_of, k.data(), v.data(), want.pool(0), want.pool(1));
  DevicePagedCache dc = device_cache(L, c, t);
  DeviceBuffer<uint16_t> dk(to_bits(t, k)), dv(to_bits(t, v));
  DeviceBuffer<int> dseq(seq_of), dcls(cls_of), dpos(pos_of);
  AppendParams ap = dc.append_params(L);
  REQUIRE(ap.lo_pool == ap.hi_pool);  // shared pages: one pool
  ap.dtype = t;
  ap.num_tokens = total;
  ap.k = dk.data();
  ap.v = dv.data();
  ap.seq_of = dseq.data();
  ap.pos_of = dpos.data();
  ap.cls_of = dcls.data();
  launch_append(ap, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  const std::vector<uint16_t> pool = dc.hi.download();
  const std::vector<uint16_t> want_bits = to_bits(t, want.hi_pool);
  REQUIRE(pool.size() == want_bits.size());
  size_t diff = 0, changed = 0;
  for (size_t i = 0; i < pool.size(); ++i) {
    if (std::isnan(want.hi_pool[i])) continue;
    diff += pool[i] != want_bits[i];
    changed += want.hi_pool[i] != c.hi_pool[i];
  }
  CHECK(changed > 0);
  CHECK(diff == 0);
}

namespace {

// Chunked prefill: sequence s has prefix[s] tokens already cached and new[s] new tokens, whose
// k/v rows go in through the append kernel before the attention.
void write_f32(const std::string& path, const std::vector<float>& x) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(x.data()), static_cast<std::streamsize>(x.size() * sizeof(float)));
  REQUIRE(f.good());
}

// The prefill kernels this device runs: mma.sync always, wgmma on sm_90 builds and devices.
std::vector<PrefillPath> prefill_paths() {
  std::vector<PrefillPath> paths{PrefillPath::kMmaSync};
  if (resolve_prefill_path(PrefillPath::kAuto) == PrefillPath::kWgmma) paths.push_back(PrefillPath::kWgmma);
  return paths;
}
const char* path_name(PrefillPath p) { return p == PrefillPath::kWgmma ? "wgmma" : "mma"; }

void run_prefill_case(const HeadLayout& L, const std::vector<int>& prefix, const std::vector<int>& fresh, DType t,
                      bool balanced, uint64_t seed, const char* dump_name = nullptr) {
  const int n = static_cast<int>(prefix.size());
  std::vector<int> kv(static_cast<size_t>(n)), cu{0};
  for (int s = 0; s < n; ++s) {
    kv[static_cast<size_t>(s)] = prefix[static_cast<size_t>(s)] + fresh[static_cast<size_t>(s)];
    cu.push_back(cu.back() + fresh[static_cast<size_t>(s)]);
  }
  CacheData c = make_cache(L, kv, std::vector<int>(static_cast<size_t>(n), 0), t, seed);
  const int total = cu.back();
  std::vector<int> seq_of, pos_of;
  for (int s = 0; s < n; ++s)
    for (int i = 0; i < fresh[static_cast<size_t>(s)]; ++i) {
      seq_of.push_back(s);
      pos_of.push_back(prefix[static_cast<size_t>(s)] + i);
    }
  const std::vector<float> k = make_rows(total, L.k_row(), t, seed + 2, 1.f);
  const std::vector<float> v = make_rows(total, L.v_row(), t, seed + 3, 1.f);
  const std::vector<float> q = make_rows(total, L.q_row(), t, seed + 4, 1.f);
  // Device cache holds the prefix only: poison the new tokens' slots so the append must fill them.
  CacheData before = c;
  for (size_t i = 0; i < seq_of.size(); ++i)
    for (int h = 0; h < L.num_kv_heads(); ++h) {
      std::fill_n(before.hi_pool.begin() + cache_k_index(L, c.pt, 0, seq_of[i], pos_of[i], h), L.info(h).rk, NAN);
      std::fill_n(before.hi_pool.begin() + cache_v_index(L, c.pt, 0, seq_of[i], pos_of[i], h), L.info(h).rv, NAN);
    }
  reference_append(L, c.pt, seq_of, pos_of, k.data(), v.data(), c.hi_pool.data());
  const float scale = 0.0884f;
  std::vector<float> want(static_cast<size_t>(total) * L.o_row());
  reference_prefill(L, c.pt, c.hi_pool.data(), cu, q.data(), scale, want.data());

  DevicePagedCache dc = device_cache(L, before, t);
  DeviceBuffer<uint16_t> dk(to_bits(t, k)), dv(to_bits(t, v)), dq(to_bits(t, q));
  DeviceBuffer<int> dseq(seq_of.empty() ? std::vector<int>{0} : seq_of),
      dpos(pos_of.empty() ? std::vector<int>{0} : pos_of);
  AppendParams ap = dc.append_params(L);
  ap.dtype = t;
  ap.num_tokens = total;
  ap.k = dk.data();
  ap.v = dv.data();
  ap.seq_of = dseq.data();
  ap.pos_of = dpos.data();
  launch_append(ap, nullptr);
  CUDA_CHECK(cudaDeviceSynchronize());
  {
    const std::vector<uint16_t> pool = dc.hi.download();
    const std::vector<uint16_t> want_pool = to_bits(t, c.hi_pool);
    size_t diff = 0;
    for (size_t i = 0; i < pool.size(); ++i) diff += pool[i] != want_pool[i] && !(std::isnan(c.hi_pool[i]));
    CHECK(diff == 0);
  }

  const PrefillPlan plan = plan_prefill(L, cu, kv, kPrefillTileQ, balanced);
  DeviceBuffer<PrefillTile> dtiles(plan.tiles);
  DeviceBuffer<int> dcu(cu), dkv(kv);
  // The wgmma kernel runs twice: K/V copied by cp.async, and by TMA from the pool's tensor maps
  // (whose pages past the keys hold NaN, so the zeroed tail is checked too).
  std::unique_ptr<PrefillTensorMaps> maps;
  for (PrefillPath path : prefill_paths())
    if (path == PrefillPath::kWgmma) maps = std::make_unique<PrefillTensorMaps>(L, dc.hi.data(), c.hi_pages);
  for (PrefillPath path : prefill_paths())
    for (bool tma : {false, true}) {
      if (tma && path != PrefillPath::kWgmma) continue;
      const std::string name = std::string(path_name(path)) + (tma ? "_tma" : "");
      DeviceBuffer<uint16_t> dout(std::vector<uint16_t>(want.size(), kPoison));
      PrefillParams p;
      set_attention_params(p, L, t, n, scale, dq.data(), dout.data(), dc);
      p.path = path;
      p.cu_q = dcu.data();
      p.kv_len = dkv.data();
      p.tiles = dtiles.data();
      p.num_tiles = static_cast<int>(plan.tiles.size());
      p.kv_maps = tma ? maps->data() : nullptr;
      launch_prefill(p, nullptr);
      CUDA_CHECK(cudaDeviceSynchronize());
      const std::vector<float> got = to_floats(t, dout.download());
      check_close(got, want, t, "prefill " + name + " " + to_string(t));
      // Dense dump for scripts/gpu/sdpa_reference.py --check (uniform ranks: packed rows = [T][H][d]).
      const char* dir = std::getenv("FDC_SDPA_DUMP_DIR");
      if (dump_name && dir) {
        const std::string base = std::string(dir) + "/" + dump_name + "_" + name;
        write_f32(base + ".q.f32", q);
        write_f32(base + ".k.f32", k);
        write_f32(base + ".v.f32", v);
        write_f32(base + ".out.f32", got);
        std::ofstream meta(base + ".meta");
        meta << total << " " << L.num_q_heads() << " " << L.num_kv_heads() << " " << L.info(0).rk << " " << scale << " "
             << to_string(t) << "\n";
      }
    }
}

}  // namespace

TEST_CASE("prefill with append matches the reference: varlen, chunked, GQA, per-head ranks") {
  std::string names;
  for (PrefillPath path : prefill_paths())
    names += std::string(" ") + path_name(path) + (path == PrefillPath::kWgmma ? " wgmma_tma" : "");
  MESSAGE("prefill kernels checked on this device:" << names);
  uint64_t seed = 2000;
  for (DType t : {DType::kBF16, DType::kFP16}) {
    for (int group : {1, 4, 8}) {
      for (int block : {16, 32}) {
        CAPTURE(group);
        CAPTURE(block);
        const HeadLayout L = ranks_layout(2 * group, 2, block, static_cast<int>(seed % 120), false);
        // fresh sequences of awkward lengths plus chunks after a cached prefix
        run_prefill_case(L, {0, 0, 0, 0, 0, 100, 7}, {1, 3, 17, 129, 1000, 3, 64}, t, block == 16, ++seed);
      }
    }
  }
  for (int rank : {16, 64, 128}) {
    CAPTURE(rank);
    run_prefill_case(HeadLayout::uniform(4, 4, rank, rank, 16), {0}, {4097}, DType::kBF16, true, ++seed);
  }
  // Prefixes that put a tile's rows off the 128-key grid (64: one warpgroup's last K/V tile is
  // masked whole for it; 100, 200: a diagonal inside both warpgroups), r_qk != r_v, per-head ranks
  // on both sides of 64 (the wgmma kernel's narrow / wide P V), and 4097 new tokens per-head.
  for (int group : {1, 4}) {
    CAPTURE(group);
    run_prefill_case(ranks_layout(2 * group, 2, 16, 40 + group, false), {64, 100, 200, 1}, {300, 129, 1000, 17},
                     DType::kBF16, true, ++seed);
    run_prefill_case(HeadLayout(group, 1, {HeadRanks{24, 72, 24, 72}}, 32), {64}, {256}, DType::kFP16, false, ++seed);
    run_prefill_case(HeadLayout(group, 1, {HeadRanks{128, 40, 128, 40}}, 16), {0}, {4097}, DType::kBF16, true, ++seed);
  }
}

TEST_CASE("full rank: dense causal attention, dumped for the PyTorch SDPA comparison") {
  // Full rank is plain attention: the CPU check above, and SDPA on the device via the dumps.
  run_prefill_case(HeadLayout::uniform(8, 8, 128, 128, 16), {0}, {1000}, DType::kBF16, true, 31, "sdpa_d128_bf16");
  run_prefill_case(HeadLayout::uniform(8, 2, 64, 64, 32), {0}, {777}, DType::kFP16, true, 32, "sdpa_d64_gqa4_fp16");
}

TEST_CASE("unsupported rank, head dim, dtype and block size are refused at launch") {
  DecodeParams d;
  d.dtype = DType::kBF16;
  d.num_seqs = 1;
  d.num_q_heads = 8;
  d.num_kv_heads = 8;
  d.max_rank = 128;
  d.sm_scale = 0.1f;
  d.cache.block_size = 16;
  auto refuses = [](DecodeParams p, const char* needle) {
    CHECK_THROWS_WITH_AS(launch_decode(p, nullptr), doctest::Contains(needle), fdc::InputError);
  };
  DecodeParams x = d;
  x.dtype = DType::kFP32;
  refuses(x, "dtype fp32");
  x = d;
  x.max_rank = 136;
  refuses(x, "136");
  x = d;
  x.max_rank = 20;
  refuses(x, "20");
  x = d;
  x.cache.block_size = 24;
  refuses(x, "block size 24");
  x = d;
  x.num_q_heads = 24;
  refuses(x, "group 3");
  x = d;
  x.path = static_cast<DecodePath>(7);
  refuses(x, "unknown kernel path 7");
  PrefillParams pp;
  pp.dtype = DType::kBF16;
  pp.num_seqs = 1;
  pp.num_q_heads = 4;
  pp.num_kv_heads = 4;
  pp.max_rank = 256;
  pp.sm_scale = 0.1f;
  pp.cache.block_size = 16;
  CHECK_THROWS_WITH_AS(launch_prefill(pp, nullptr), doctest::Contains("256"), fdc::InputError);
  // TMA descriptors need a pool and its page count.
  const HeadLayout tl = HeadLayout::uniform(4, 4, 64, 64, 16);
  CHECK_THROWS_WITH_AS(PrefillTensorMaps(tl, nullptr, 8), doctest::Contains("the hi pool is null"), fdc::InputError);
  DeviceBuffer<uint16_t> pool(static_cast<size_t>(tl.page_elems(TokenClass::kHi)));
  CHECK_THROWS_WITH_AS(PrefillTensorMaps(tl, pool.data(), 0), doctest::Contains("has 0 pages"), fdc::InputError);
  AppendParams ap;
  ap.block_size = 48;
  ap.num_kv_heads = 1;
  CHECK_THROWS_AS(launch_append(ap, nullptr), fdc::InputError);
}
