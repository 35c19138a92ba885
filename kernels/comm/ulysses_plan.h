// Ulysses (DeepSpeed-style sequence parallel) layout of FDC attention over P GPUs of a server.
//
// Before attention each rank holds its own tokens (a contiguous slice of the batch's token rows,
// ranks in order; counts may differ) for every head; attention needs every token for a subset of
// heads. KV heads are split over the ranks in contiguous blocks (the first Hk % P ranks get one more
// head), and the q heads of a GQA group go with their KV head, so GQA needs no K/V replication and
// uneven head counts are fine. Compressed widths follow the per-KV-head ranks (layout.h rows):
//
//   rank s inputs   q [T_s][q_row], k [T_s][k_row], v [T_s][v_row]      (all heads, own tokens)
//   pack            -> send [peer p][T_s][qw_p + kw_p + vw_p]  (p's head columns of q | k | v)
//   all-to-all      recv [source s][T_s][qw + kw + vw]          (this rank's heads, s's tokens)
//   unpack          -> q_heads [T][qw], k_heads [T][kw], v_heads [T][vw]   (T = sum of T_s)
//   attention       -> out_heads [T][ow]
//   all-to-all      out_heads rows of s's tokens go to s as they are (no pack needed)
//   unpack          recv [source p][T_s][ow_p] -> out [T_s][o_row] at p's head columns
//
// Every copy is a list of 2D strided segment copies (Segment), executed by the same kernel on the
// GPU (segment_copy.cu) and by apply_segments here; ulysses_reference computes the expected
// tensors directly from head ownership, independently of the segment lists.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace fdc::kernels::comm {

// Buffers that segment copies read and write (element type: 16-bit, one per rank).
enum class Buf : int { kQ, kK, kV, kSend, kRecv, kQHeads, kKHeads, kVHeads, kOutHeads, kOut, kCount };
inline constexpr int kNumBufs = static_cast<int>(Buf::kCount);

// rows x cols elements from src[src_offset + r * src_ld + c] to dst[dst_offset + r * dst_ld + c].
struct Segment {
  int src = 0, dst = 0;  // Buf values
  int64_t src_offset = 0, src_ld = 0, dst_offset = 0, dst_ld = 0;
  int64_t rows = 0, cols = 0;
};

struct UlyssesShape {
  int ranks = 0;                 // P
  std::vector<int64_t> tokens;   // [P] tokens held by each rank before attention (may differ, may be 0)
  int num_q_heads = 0;           // H
  int num_kv_heads = 0;          // Hk >= P
  std::vector<int> rk, rv;       // [Hk] kept q/k and v dims of each KV head (multiples of 8)
};

struct RankPlan {
  int kv_begin = 0, kv_end = 0;    // KV heads this rank attends over
  int64_t token_begin = 0;         // first global token row of this rank
  int64_t tokens = 0;              // T_s
  int64_t qw = 0, kw = 0, vw = 0, ow = 0;            // widths of this rank's heads
  int64_t q_col = 0, k_col = 0, v_col = 0, o_col = 0;  // where they start in full q/k/v/out rows
  // qkv all-to-all, in elements, per peer (send from kSend, receive into kRecv).
  std::vector<int64_t> send_counts, send_offsets, recv_counts, recv_offsets;
  std::vector<Segment> pack, unpack;
  // out all-to-all: send straight from kOutHeads, receive into kRecv.
  std::vector<int64_t> out_send_counts, out_send_offsets, out_recv_counts, out_recv_offsets;
  std::vector<Segment> out_unpack;
  std::array<int64_t, kNumBufs> elems{};  // elements each buffer needs on this rank
};

struct UlyssesPlan {
  UlyssesShape shape;
  int64_t total_tokens = 0;
  int64_t q_row = 0, k_row = 0, v_row = 0, o_row = 0;
  std::vector<RankPlan> ranks;
};

// Validates the shape (fdc::InputError naming the bad value) and plans every rank.
UlyssesPlan plan_ulysses(const UlyssesShape& shape);
// First KV head of rank p (p = P gives Hk): contiguous blocks, the first Hk % P ranks one larger.
int kv_head_begin(int num_kv_heads, int ranks, int p);

// Host execution of a segment list on 16-bit buffers (one rank's).
using RankBuffers = std::array<std::vector<uint16_t>, kNumBufs>;
void apply_segments(const std::vector<Segment>& segs, RankBuffers& bufs);
// Host all-to-all over every rank's buffers: recv of p from s = send of s to p.
void host_all_to_all(const UlyssesPlan& plan, std::vector<RankBuffers>& bufs, bool out_direction);

// Expected per-rank tensors computed from head ownership alone. Inputs: for each rank its q, k, v
// (forward) or its out_heads (backward) in bufs; fills q_heads/k_heads/v_heads or out.
void ulysses_reference_forward(const UlyssesPlan& plan, std::vector<RankBuffers>& bufs);
void ulysses_reference_backward(const UlyssesPlan& plan, std::vector<RankBuffers>& bufs);

}  // namespace fdc::kernels::comm
