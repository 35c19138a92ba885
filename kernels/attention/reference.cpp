#include "kernels/attention/reference.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "core/error.h"

namespace fdc::kernels::attn {

void PageTable::validate(int block_size, int64_t num_hi_pages, int64_t num_lo_pages) const {
  check(block_size, block_size, num_hi_pages, num_lo_pages);
}

void PageTable::validate(const HeadLayout& layout, int64_t num_hi_pages, int64_t num_lo_pages) const {
  check(layout.slots(0), layout.slots(1), num_hi_pages, num_lo_pages);
}

void PageTable::check(int slots_hi, int slots_lo, int64_t num_hi_pages, int64_t num_lo_pages) const {
  const int n = num_seqs();
  FDC_INPUT_CHECK(static_cast<int>(num_lo.size()) == n && static_cast<int>(hi_indptr.size()) == n + 1 &&
                      static_cast<int>(lo_indptr.size()) == n + 1,
                  "page table: array sizes disagree (num_seqs = " << n << ")");
  for (int s = 0; s < n; ++s) {
    const int hi_pages = hi_indptr[s + 1] - hi_indptr[s];
    const int lo_pages = lo_indptr[s + 1] - lo_indptr[s];
    FDC_INPUT_CHECK(num_hi[s] >= 0 && num_lo[s] >= 0, "page table: sequence " << s << " has a negative token count");
    FDC_INPUT_CHECK(static_cast<int64_t>(hi_pages) * slots_hi >= num_hi[s],
                    "page table: sequence " << s << " has " << num_hi[s] << " hi tokens but only " << hi_pages
                                            << " pages of " << slots_hi);
    FDC_INPUT_CHECK(static_cast<int64_t>(lo_pages) * slots_lo >= num_lo[s],
                    "page table: sequence " << s << " has " << num_lo[s] << " lo tokens but only " << lo_pages
                                            << " pages of " << slots_lo);
  }
  for (int p : hi_indices) FDC_INPUT_CHECK(p >= 0 && p < num_hi_pages, "page table: hi page id " << p << " outside the pool");
  for (int p : lo_indices) FDC_INPUT_CHECK(p >= 0 && p < num_lo_pages, "page table: lo page id " << p << " outside the pool");
}

namespace {
void fill_class(const std::vector<int>& tokens, int block_size, std::mt19937_64& rng, std::vector<int>& indptr,
                std::vector<int>& indices, int64_t* num_pages) {
  indptr.assign(tokens.size() + 1, 0);
  for (size_t s = 0; s < tokens.size(); ++s) indptr[s + 1] = indptr[s] + (tokens[s] + block_size - 1) / block_size;
  indices.resize(static_cast<size_t>(indptr.back()));
  std::iota(indices.begin(), indices.end(), 0);
  std::shuffle(indices.begin(), indices.end(), rng);
  *num_pages = std::max<int64_t>(1, indptr.back());
}
}  // namespace

PageTable make_page_table(const std::vector<int>& num_hi, const std::vector<int>& num_lo, int block_size,
                          uint64_t seed, int64_t* num_hi_pages, int64_t* num_lo_pages) {
  FDC_INPUT_CHECK(num_hi.size() == num_lo.size(), "page table: num_hi and num_lo sizes differ");
  PageTable pt;
  pt.num_hi = num_hi;
  pt.num_lo = num_lo;
  std::mt19937_64 rng(seed);
  fill_class(num_hi, block_size, rng, pt.hi_indptr, pt.hi_indices, num_hi_pages);
  fill_class(num_lo, block_size, rng, pt.lo_indptr, pt.lo_indices, num_lo_pages);
  return pt;
}

PageTable make_shared_page_table(const HeadLayout& layout, const std::vector<int>& num_hi,
                                 const std::vector<int>& num_lo, uint64_t seed, int64_t* num_pages) {
  FDC_INPUT_CHECK(num_hi.size() == num_lo.size(), "page table: num_hi and num_lo sizes differ");
  FDC_INPUT_CHECK(layout.shared_pages(), "page table: make_shared_page_table needs a shared-page layout");
  auto pages_for = [](int tokens, int slots) {
    FDC_INPUT_CHECK(tokens == 0 || slots > 0, "page table: " << tokens << " tokens of a class with no slots");
    return tokens == 0 ? 0 : (tokens + slots - 1) / slots;
  };
  PageTable pt;
  pt.num_hi = num_hi;
  pt.num_lo = num_lo;
  pt.hi_indptr.assign(num_hi.size() + 1, 0);
  for (size_t s = 0; s < num_hi.size(); ++s)
    pt.hi_indptr[s + 1] =
        pt.hi_indptr[s] + std::max(pages_for(num_hi[s], layout.slots(0)), pages_for(num_lo[s], layout.slots(1)));
  pt.hi_indices.resize(static_cast<size_t>(pt.hi_indptr.back()));
  std::iota(pt.hi_indices.begin(), pt.hi_indices.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(pt.hi_indices.begin(), pt.hi_indices.end(), rng);
  pt.lo_indptr = pt.hi_indptr;
  pt.lo_indices = pt.hi_indices;
  *num_pages = std::max<int64_t>(1, pt.hi_indptr.back());
  return pt;
}

namespace {
int page_of(const HeadLayout& layout, const PageTable& pt, int cls, int s, int t) {
  const int b = t / layout.slots(cls);
  return cls == 0 ? pt.hi_indices[static_cast<size_t>(pt.hi_indptr[s] + b)]
                  : pt.lo_indices[static_cast<size_t>(pt.lo_indptr[s] + b)];
}
}  // namespace

int64_t cache_k_index(const HeadLayout& layout, const PageTable& pt, int cls, int s, int t, int h) {
  const TokenClass c = cls == 0 ? TokenClass::kHi : TokenClass::kLo;
  return page_of(layout, pt, cls, s, t) * layout.page_elems(c) + page_k_elem(layout.info(h), cls, t % layout.slots(cls));
}

int64_t cache_v_index(const HeadLayout& layout, const PageTable& pt, int cls, int s, int t, int h) {
  const TokenClass c = cls == 0 ? TokenClass::kHi : TokenClass::kLo;
  return page_of(layout, pt, cls, s, t) * layout.page_elems(c) + page_v_elem(layout.info(h), cls, t % layout.slots(cls));
}

void reference_decode(const HeadLayout& layout, const PageTable& pt, const float* hi_pool, const float* lo_pool,
                      const float* q, float sm_scale, float* out) {
  const int n = pt.num_seqs();
  std::vector<double> scores;
  std::vector<double> acc;
  for (int s = 0; s < n; ++s) {
    FDC_INPUT_CHECK(pt.num_hi[s] + pt.num_lo[s] >= 1, "decode reference: sequence " << s << " has no cached token");
    for (int qh = 0; qh < layout.num_q_heads(); ++qh) {
      const int h = layout.kv_head_of(qh);
      const HeadInfo& in = layout.info(h);
      const float* qrow = q + static_cast<int64_t>(s) * layout.q_row() + layout.q_offset(qh);
      scores.clear();
      for (int cls = 0; cls < 2; ++cls) {
        const int ntok = cls == 0 ? pt.num_hi[s] : pt.num_lo[s];
        const float* pool = cls == 0 ? hi_pool : lo_pool;
        const int rk = head_rank_k(in, cls);
        for (int t = 0; t < ntok; ++t) {
          const float* krow = pool + cache_k_index(layout, pt, cls, s, t, h);
          double dot = 0.0;
          for (int d = 0; d < rk; ++d) dot += static_cast<double>(qrow[d]) * krow[d];
          scores.push_back(dot * sm_scale);
        }
      }
      const double m = *std::max_element(scores.begin(), scores.end());
      double denom = 0.0;
      for (double& x : scores) {
        x = std::exp(x - m);
        denom += x;
      }
      acc.assign(static_cast<size_t>(in.rv), 0.0);
      size_t idx = 0;
      for (int cls = 0; cls < 2; ++cls) {
        const int ntok = cls == 0 ? pt.num_hi[s] : pt.num_lo[s];
        const float* pool = cls == 0 ? hi_pool : lo_pool;
        const int rv = head_rank_v(in, cls);
        for (int t = 0; t < ntok; ++t, ++idx) {
          const float* vrow = pool + cache_v_index(layout, pt, cls, s, t, h);
          for (int d = 0; d < rv; ++d) acc[static_cast<size_t>(d)] += scores[idx] * vrow[d];
        }
      }
      float* orow = out + static_cast<int64_t>(s) * layout.o_row() + layout.o_offset(qh);
      for (int d = 0; d < in.rv; ++d) orow[d] = static_cast<float>(acc[static_cast<size_t>(d)] / denom);
    }
  }
}

void reference_prefill(const HeadLayout& layout, const PageTable& pt, const float* hi_pool, const std::vector<int>& cu_q,
                       const float* q, float sm_scale, float* out) {
  const int n = pt.num_seqs();
  FDC_INPUT_CHECK(static_cast<int>(cu_q.size()) == n + 1, "prefill reference: cu_q has " << cu_q.size()
                                                                                         << " entries, expected " << n + 1);
  std::vector<double> scores;
  std::vector<double> acc;
  for (int s = 0; s < n; ++s) {
    const int q_len = cu_q[s + 1] - cu_q[s];
    const int kv_len = pt.num_hi[s];
    FDC_INPUT_CHECK(pt.num_lo[s] == 0, "prefill reference: sequence " << s << " has lo tokens");
    FDC_INPUT_CHECK(q_len <= kv_len, "prefill reference: sequence " << s << " has " << q_len << " new tokens but only "
                                                                    << kv_len << " cached");
    for (int i = 0; i < q_len; ++i) {
      const int pos = kv_len - q_len + i;
      const int64_t token = cu_q[s] + i;
      for (int qh = 0; qh < layout.num_q_heads(); ++qh) {
        const int h = layout.kv_head_of(qh);
        const HeadInfo& in = layout.info(h);
        const float* qrow = q + token * layout.q_row() + layout.q_offset(qh);
        scores.assign(static_cast<size_t>(pos + 1), 0.0);
        double m = -std::numeric_limits<double>::infinity();
        for (int t = 0; t <= pos; ++t) {
          const float* krow = hi_pool + cache_k_index(layout, pt, 0, s, t, h);
          double dot = 0.0;
          for (int d = 0; d < in.rk; ++d) dot += static_cast<double>(qrow[d]) * krow[d];
          scores[static_cast<size_t>(t)] = dot * sm_scale;
          m = std::max(m, scores[static_cast<size_t>(t)]);
        }
        double denom = 0.0;
        acc.assign(static_cast<size_t>(in.rv), 0.0);
        for (int t = 0; t <= pos; ++t) {
          const double p = std::exp(scores[static_cast<size_t>(t)] - m);
          denom += p;
          const float* vrow = hi_pool + cache_v_index(layout, pt, 0, s, t, h);
          for (int d = 0; d < in.rv; ++d) acc[static_cast<size_t>(d)] += p * vrow[d];
        }
        float* orow = out + token * layout.o_row() + layout.o_offset(qh);
        for (int d = 0; d < in.rv; ++d) orow[d] = static_cast<float>(acc[static_cast<size_t>(d)] / denom);
      }
    }
  }
}

void reference_append(const HeadLayout& layout, const PageTable& pt, const std::vector<int>& seq_of,
                      const std::vector<int>& pos_of, const float* k, const float* v, float* hi_pool) {
  reference_append(layout, pt, seq_of, std::vector<int>(seq_of.size(), 0), pos_of, k, v, hi_pool, nullptr);
}

void reference_append(const HeadLayout& layout, const PageTable& pt, const std::vector<int>& seq_of,
                      const std::vector<int>& cls_of, const std::vector<int>& pos_of, const float* k,
                      const float* v, float* hi_pool, float* lo_pool) {
  FDC_INPUT_CHECK(seq_of.size() == pos_of.size() && seq_of.size() == cls_of.size(),
                  "append reference: seq_of, cls_of and pos_of sizes differ");
  for (size_t i = 0; i < seq_of.size(); ++i) {
    const int cls = cls_of[i];
    FDC_INPUT_CHECK(cls == 0 || (cls == 1 && lo_pool), "append reference: token " << i << " has class " << cls);
    float* pool = cls == 0 ? hi_pool : lo_pool;
    for (int h = 0; h < layout.num_kv_heads(); ++h) {
      const HeadInfo& in = layout.info(h);
      float* kdst = pool + cache_k_index(layout, pt, cls, seq_of[i], pos_of[i], h);
      float* vdst = pool + cache_v_index(layout, pt, cls, seq_of[i], pos_of[i], h);
      const float* ksrc = k + static_cast<int64_t>(i) * layout.k_row() + in.k_offset;
      const float* vsrc = v + static_cast<int64_t>(i) * layout.v_row() + in.v_offset;
      std::copy(ksrc, ksrc + head_rank_k(in, cls), kdst);
      std::copy(vsrc, vsrc + head_rank_v(in, cls), vdst);
    }
  }
}

}  // namespace fdc::kernels::attn
