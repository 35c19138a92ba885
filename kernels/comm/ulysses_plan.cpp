#include "kernels/comm/ulysses_plan.h"

#include <numeric>

#include "core/error.h"

namespace fdc::kernels::comm {
namespace {

constexpr int kGranule = 8;  // 16-byte vectors of 16-bit elements

Segment seg(Buf src, int64_t so, int64_t sld, Buf dst, int64_t doff, int64_t dld, int64_t rows, int64_t cols) {
  return Segment{static_cast<int>(src), static_cast<int>(dst), so, sld, doff, dld, rows, cols};
}

void validate(const UlyssesShape& s) {
  FDC_INPUT_CHECK(s.ranks >= 1, "ulysses: ranks must be >= 1, found " << s.ranks);
  FDC_INPUT_CHECK(static_cast<int>(s.tokens.size()) == s.ranks,
                  "ulysses: " << s.tokens.size() << " token counts for " << s.ranks << " ranks");
  for (size_t i = 0; i < s.tokens.size(); ++i)
    FDC_INPUT_CHECK(s.tokens[i] >= 0, "ulysses: rank " << i << " holds " << s.tokens[i] << " tokens");
  FDC_INPUT_CHECK(s.num_kv_heads >= 1 && s.num_q_heads % s.num_kv_heads == 0 && s.num_q_heads >= s.num_kv_heads,
                  "ulysses: num_q_heads " << s.num_q_heads << " must be a positive multiple of num_kv_heads "
                                          << s.num_kv_heads);
  FDC_INPUT_CHECK(s.num_kv_heads >= s.ranks,
                  "ulysses: " << s.num_kv_heads << " KV heads over " << s.ranks
                              << " GPUs: every GPU needs at least one KV head (KV replication is not supported)");
  FDC_INPUT_CHECK(static_cast<int>(s.rk.size()) == s.num_kv_heads && static_cast<int>(s.rv.size()) == s.num_kv_heads,
                  "ulysses: rk/rv need one rank per KV head (" << s.num_kv_heads << "), found " << s.rk.size() << "/"
                                                               << s.rv.size());
  for (int h = 0; h < s.num_kv_heads; ++h)
    FDC_INPUT_CHECK(s.rk[h] >= kGranule && s.rk[h] % kGranule == 0 && s.rv[h] >= kGranule && s.rv[h] % kGranule == 0,
                    "ulysses: KV head " << h << " has rk " << s.rk[h] << ", rv " << s.rv[h]
                                        << " (positive multiples of " << kGranule << " expected)");
}

}  // namespace

int kv_head_begin(int num_kv_heads, int ranks, int p) {
  const int base = num_kv_heads / ranks, extra = num_kv_heads % ranks;
  return p * base + std::min(p, extra);
}

UlyssesPlan plan_ulysses(const UlyssesShape& shape) {
  validate(shape);
  UlyssesPlan plan;
  plan.shape = shape;
  const int P = shape.ranks, group = shape.num_q_heads / shape.num_kv_heads;
  plan.total_tokens = std::accumulate(shape.tokens.begin(), shape.tokens.end(), int64_t{0});
  // Column prefix sums over KV heads: q/out take group x the head's rank.
  std::vector<int64_t> qc(shape.num_kv_heads + 1, 0), kc(qc), vc(qc), oc(qc);
  for (int h = 0; h < shape.num_kv_heads; ++h) {
    qc[h + 1] = qc[h] + int64_t{group} * shape.rk[h];
    kc[h + 1] = kc[h] + shape.rk[h];
    vc[h + 1] = vc[h] + shape.rv[h];
    oc[h + 1] = oc[h] + int64_t{group} * shape.rv[h];
  }
  plan.q_row = qc.back();
  plan.k_row = kc.back();
  plan.v_row = vc.back();
  plan.o_row = oc.back();
  plan.ranks.resize(P);
  int64_t tok = 0;
  for (int p = 0; p < P; ++p) {
    RankPlan& r = plan.ranks[p];
    r.kv_begin = kv_head_begin(shape.num_kv_heads, P, p);
    r.kv_end = kv_head_begin(shape.num_kv_heads, P, p + 1);
    r.token_begin = tok;
    r.tokens = shape.tokens[p];
    tok += r.tokens;
    r.q_col = qc[r.kv_begin];
    r.k_col = kc[r.kv_begin];
    r.v_col = vc[r.kv_begin];
    r.o_col = oc[r.kv_begin];
    r.qw = qc[r.kv_end] - r.q_col;
    r.kw = kc[r.kv_end] - r.k_col;
    r.vw = vc[r.kv_end] - r.v_col;
    r.ow = oc[r.kv_end] - r.o_col;
  }
  const int64_t T = plan.total_tokens;
  for (int s = 0; s < P; ++s) {
    RankPlan& r = plan.ranks[s];
    const int64_t Ts = r.tokens;
    int64_t off = 0;
    for (int p = 0; p < P; ++p) {  // pack: p's head columns of my tokens
      const RankPlan& d = plan.ranks[p];
      const int64_t w = d.qw + d.kw + d.vw;
      r.send_offsets.push_back(off);
      r.send_counts.push_back(Ts * w);
      r.pack.push_back(seg(Buf::kQ, d.q_col, plan.q_row, Buf::kSend, off, w, Ts, d.qw));
      r.pack.push_back(seg(Buf::kK, d.k_col, plan.k_row, Buf::kSend, off + d.qw, w, Ts, d.kw));
      r.pack.push_back(seg(Buf::kV, d.v_col, plan.v_row, Buf::kSend, off + d.qw + d.kw, w, Ts, d.vw));
      off += Ts * w;
    }
    r.elems[static_cast<int>(Buf::kSend)] = off;
    const int64_t w = r.qw + r.kw + r.vw;
    off = 0;
    for (int p = 0; p < P; ++p) {  // unpack: source p's tokens, my heads
      const RankPlan& src = plan.ranks[p];
      r.recv_offsets.push_back(off);
      r.recv_counts.push_back(src.tokens * w);
      r.unpack.push_back(seg(Buf::kRecv, off, w, Buf::kQHeads, src.token_begin * r.qw, r.qw, src.tokens, r.qw));
      r.unpack.push_back(seg(Buf::kRecv, off + r.qw, w, Buf::kKHeads, src.token_begin * r.kw, r.kw, src.tokens, r.kw));
      r.unpack.push_back(
          seg(Buf::kRecv, off + r.qw + r.kw, w, Buf::kVHeads, src.token_begin * r.vw, r.vw, src.tokens, r.vw));
      off += src.tokens * w;
    }
    // Out direction: my out_heads rows of p's tokens go to p; I receive my tokens x p's heads.
    int64_t roff = 0;
    for (int p = 0; p < P; ++p) {
      const RankPlan& o = plan.ranks[p];
      r.out_send_offsets.push_back(o.token_begin * r.ow);
      r.out_send_counts.push_back(o.tokens * r.ow);
      r.out_recv_offsets.push_back(roff);
      r.out_recv_counts.push_back(Ts * o.ow);
      r.out_unpack.push_back(seg(Buf::kRecv, roff, o.ow, Buf::kOut, o.o_col, plan.o_row, Ts, o.ow));
      roff += Ts * o.ow;
    }
    auto& e = r.elems;
    e[static_cast<int>(Buf::kQ)] = Ts * plan.q_row;
    e[static_cast<int>(Buf::kK)] = Ts * plan.k_row;
    e[static_cast<int>(Buf::kV)] = Ts * plan.v_row;
    e[static_cast<int>(Buf::kRecv)] = std::max(off, roff);
    e[static_cast<int>(Buf::kQHeads)] = T * r.qw;
    e[static_cast<int>(Buf::kKHeads)] = T * r.kw;
    e[static_cast<int>(Buf::kVHeads)] = T * r.vw;
    e[static_cast<int>(Buf::kOutHeads)] = T * r.ow;
    e[static_cast<int>(Buf::kOut)] = Ts * plan.o_row;
  }
  return plan;
}

void apply_segments(const std::vector<Segment>& segs, RankBuffers& bufs) {
  for (const Segment& s : segs) {
    const auto& src = bufs[static_cast<size_t>(s.src)];
    auto& dst = bufs[static_cast<size_t>(s.dst)];
    for (int64_t r = 0; r < s.rows; ++r)
      for (int64_t c = 0; c < s.cols; ++c) {
        const int64_t si = s.src_offset + r * s.src_ld + c, di = s.dst_offset + r * s.dst_ld + c;
        FDC_CHECK(si < static_cast<int64_t>(src.size()) && di < static_cast<int64_t>(dst.size()),
                  "segment copy out of bounds: src " << si << "/" << src.size() << ", dst " << di << "/" << dst.size());
        dst[static_cast<size_t>(di)] = src[static_cast<size_t>(si)];
      }
  }
}

void host_all_to_all(const UlyssesPlan& plan, std::vector<RankBuffers>& bufs, bool out_direction) {
  const int P = plan.shape.ranks;
  const auto send_buf = static_cast<size_t>(out_direction ? Buf::kOutHeads : Buf::kSend);
  const auto recv_buf = static_cast<size_t>(Buf::kRecv);
  for (int p = 0; p < P; ++p)
    for (int s = 0; s < P; ++s) {
      const RankPlan& from = plan.ranks[s];
      const RankPlan& to = plan.ranks[p];
      const int64_t n = out_direction ? from.out_send_counts[p] : from.send_counts[p];
      const int64_t want = out_direction ? to.out_recv_counts[s] : to.recv_counts[s];
      FDC_CHECK(n == want, "all-to-all counts disagree: rank " << s << " sends " << n << " to " << p << ", which expects "
                                                               << want);
      const int64_t so = out_direction ? from.out_send_offsets[p] : from.send_offsets[p];
      const int64_t ro = out_direction ? to.out_recv_offsets[s] : to.recv_offsets[s];
      for (int64_t i = 0; i < n; ++i)
        bufs[p][recv_buf][static_cast<size_t>(ro + i)] = bufs[s][send_buf][static_cast<size_t>(so + i)];
    }
}

void ulysses_reference_forward(const UlyssesPlan& plan, std::vector<RankBuffers>& bufs) {
  const int P = plan.shape.ranks;
  for (int p = 0; p < P; ++p) {
    const RankPlan& me = plan.ranks[p];
    struct Part {
      Buf in, out;
      int64_t row, col, width;
    };
    const Part parts[] = {{Buf::kQ, Buf::kQHeads, plan.q_row, me.q_col, me.qw},
                          {Buf::kK, Buf::kKHeads, plan.k_row, me.k_col, me.kw},
                          {Buf::kV, Buf::kVHeads, plan.v_row, me.v_col, me.vw}};
    for (const Part& part : parts) {
      auto& out = bufs[p][static_cast<size_t>(part.out)];
      out.assign(static_cast<size_t>(plan.total_tokens * part.width), 0);
      for (int s = 0; s < P; ++s) {
        const RankPlan& src = plan.ranks[s];
        const auto& in = bufs[s][static_cast<size_t>(part.in)];
        for (int64_t i = 0; i < src.tokens; ++i)
          for (int64_t c = 0; c < part.width; ++c)
            out[static_cast<size_t>((src.token_begin + i) * part.width + c)] =
                in[static_cast<size_t>(i * part.row + part.col + c)];
      }
    }
  }
}

void ulysses_reference_backward(const UlyssesPlan& plan, std::vector<RankBuffers>& bufs) {
  const int P = plan.shape.ranks;
  for (int s = 0; s < P; ++s) {
    const RankPlan& me = plan.ranks[s];
    auto& out = bufs[s][static_cast<size_t>(Buf::kOut)];
    out.assign(static_cast<size_t>(me.tokens * plan.o_row), 0);
    for (int p = 0; p < P; ++p) {
      const RankPlan& owner = plan.ranks[p];
      const auto& heads = bufs[p][static_cast<size_t>(Buf::kOutHeads)];
      for (int64_t i = 0; i < me.tokens; ++i)
        for (int64_t c = 0; c < owner.ow; ++c)
          out[static_cast<size_t>(i * plan.o_row + owner.o_col + c)] =
              heads[static_cast<size_t>((me.token_begin + i) * owner.ow + c)];
    }
  }
}

}  // namespace fdc::kernels::comm
