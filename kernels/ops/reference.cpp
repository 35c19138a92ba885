#include "kernels/ops/reference.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace fdc::kernels::ops {
namespace {

float load(DType t, const void* base, int64_t i) { return bits_to_float(t, static_cast<const uint16_t*>(base)[i]); }
void store(DType t, void* base, int64_t i, double v) {
  static_cast<uint16_t*>(base)[i] = float_to_bits(t, static_cast<float>(v));
}

}  // namespace

void gemm_reference(const GemmParams& p) {
  validate(p);
  for (int64_t i = 0; i < p.m; ++i)
    for (int64_t j = 0; j < p.n; ++j) {
      double acc = 0;
      for (int64_t l = 0; l < p.k; ++l)
        acc += static_cast<double>(load(p.dtype, p.x, i * p.k + l)) * load(p.dtype, p.w, j * p.k + l);
      store(p.dtype, p.out, i * p.n + j, acc);
    }
}

void rope_rotate_reference(const RopeRotateParams& p) {
  validate(p);
  const int d = p.head_dim, half = d / 2, group = p.num_q_heads / p.num_kv_heads;
  std::vector<float> roped(static_cast<size_t>(d));
  for (int t = 0; t < p.num_tokens; ++t) {
    const int pos = p.positions[t];
    FDC_INPUT_CHECK(pos >= 0 && pos < p.max_position,
                    "rope_rotate: position " << pos << " of token " << t << " is outside [0, " << p.max_position << ")");
    const float* cs = p.cos_sin + static_cast<int64_t>(pos) * d;
    for (int kv = 0; kv < p.num_kv_heads; ++kv) {
      const attn::HeadInfo& h = p.heads[kv];
      FDC_INPUT_CHECK(h.rk >= attn::kRankGranule && h.rk <= p.max_rank && h.rk % attn::kRankGranule == 0,
                      "rope_rotate: rank " << h.rk << " of KV head " << kv << " is outside [8, max_rank="
                                           << p.max_rank << "] or not a multiple of 8");
      // Vectors of this KV head's group: its q heads, then the k head itself.
      for (int v = 0; v <= group; ++v) {
        const bool is_k = v == group;
        const int64_t col = is_k ? static_cast<int64_t>(p.num_q_heads + kv) * d : static_cast<int64_t>(kv * group + v) * d;
        const int64_t row = static_cast<int64_t>(t) * p.qkv_row + col;
        for (int i = 0; i < half; ++i) {
          const float x1 = load(p.dtype, p.qkv, row + i), x2 = load(p.dtype, p.qkv, row + i + half);
          const float c = cs[i], s = cs[half + i];
          roped[static_cast<size_t>(i)] = round_to(p.dtype, x1 * c - x2 * s);
          roped[static_cast<size_t>(i + half)] = round_to(p.dtype, x2 * c + x1 * s);
        }
        for (int j = 0; j < h.rk; ++j) {
          double acc = 0;
          if (p.rotation) {
            const int64_t rbase = static_cast<int64_t>(d) * h.k_offset;
            for (int i = 0; i < d; ++i)
              acc += static_cast<double>(roped[static_cast<size_t>(i)]) *
                     load(p.dtype, p.rotation, rbase + static_cast<int64_t>(i) * h.rk + j);
          } else {
            acc = roped[static_cast<size_t>(j)];
          }
          if (!is_k) {
            store(p.dtype, p.q_out, static_cast<int64_t>(t) * p.q_row + h.q_offset + v * h.rk + j, acc);
            continue;
          }
          if (p.k_out) store(p.dtype, p.k_out, static_cast<int64_t>(t) * p.k_row + h.k_offset + j, acc);
          if (p.hi_pool) {
            const int seq = p.seq_of[t], slot = p.pos_of[t];
            const int page = p.hi_page_indices[p.hi_page_indptr[seq] + slot / p.block_size];
            store(p.dtype, p.hi_pool,
                  static_cast<int64_t>(page) * p.page_elems_hi + attn::page_k_elem(h, 0, slot % p.block_size) + j,
                  acc);
          }
        }
      }
    }
  }
}

void norm_reference(const NormParams& p) {
  validate(p);
  for (int64_t r = 0; r < p.rows; ++r) {
    const int64_t base = r * p.dim;
    double mean = 0, sq = 0;
    if (p.kind == NormKind::kLayerNorm) {
      for (int i = 0; i < p.dim; ++i) mean += load(p.dtype, p.x, base + i);
      mean /= p.dim;
    }
    for (int i = 0; i < p.dim; ++i) {
      const double c = load(p.dtype, p.x, base + i) - mean;
      sq += c * c;
    }
    const double inv = 1.0 / std::sqrt(sq / p.dim + static_cast<double>(p.eps));
    for (int i = 0; i < p.dim; ++i) {
      double y = (load(p.dtype, p.x, base + i) - mean) * inv * load(p.dtype, p.weight, i);
      if (p.bias) y += load(p.dtype, p.bias, i);
      store(p.dtype, p.out, base + i, y);
    }
  }
}

void residual_reference(const ResidualParams& p) {
  validate(p);
  for (int64_t i = 0; i < p.count; ++i)
    store(p.dtype, p.out, i, static_cast<double>(load(p.dtype, p.a, i)) + load(p.dtype, p.b, i));
}

void act_reference(const ActParams& p) {
  validate(p);
  const int64_t in_row = p.kind == ActKind::kSwiGlu ? 2 * static_cast<int64_t>(p.ffn) : p.ffn;
  for (int64_t r = 0; r < p.rows; ++r)
    for (int i = 0; i < p.ffn; ++i) {
      const double g = load(p.dtype, p.in, r * in_row + i);
      double y = 0;
      if (p.kind == ActKind::kSwiGlu) {
        y = g / (1.0 + std::exp(-g)) * load(p.dtype, p.in, r * in_row + p.ffn + i);
      } else {
        y = std::max(g, 0.0);
      }
      store(p.dtype, p.out, r * p.ffn + i, y);
    }
}

std::vector<float> make_cos_sin_cache(int max_position, int head_dim, double theta) {
  FDC_INPUT_CHECK(max_position >= 1 && head_dim >= 2 && head_dim % 2 == 0 && theta > 1.0,
                  "make_cos_sin_cache: max_position " << max_position << ", head_dim " << head_dim << ", theta "
                                                      << theta << " (positive, even head_dim, theta > 1 expected)");
  const int half = head_dim / 2;
  std::vector<float> t(static_cast<size_t>(max_position) * static_cast<size_t>(head_dim));
  for (int pos = 0; pos < max_position; ++pos)
    for (int i = 0; i < half; ++i) {
      const double angle = pos * std::pow(theta, -2.0 * i / head_dim);
      t[static_cast<size_t>(pos) * head_dim + i] = static_cast<float>(std::cos(angle));
      t[static_cast<size_t>(pos) * head_dim + half + i] = static_cast<float>(std::sin(angle));
    }
  return t;
}

}  // namespace fdc::kernels::ops
