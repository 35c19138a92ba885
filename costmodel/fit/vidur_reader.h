// Vidur profiling CSVs as fit input (github.com/microsoft/vidur, data/profiling/): `mlp.csv`
// (per-layer op times of one model over token counts and TP degrees) and the collective sweeps
// `all_reduce.csv`, `send_recv.csv` (also `all_gather.csv`). Times are in milliseconds (median
// columns used). The kind of file is told by its columns, not its name. Errors name the file, the
// line and the column.
#pragma once

#include <string>

#include "costmodel/fit/raw_reader.h"

namespace fdc::fit {

enum class VidurCsvKind { kNone, kMlp, kCollective };

// What the header of `path` says it is (kNone: not a Vidur profiling CSV). Throws when unreadable.
VidurCsvKind vidur_csv_kind(const std::string& path);

// Appends the samples of one Vidur CSV:
//  - mlp.csv: attn_pre_proj, attn_post_proj, mlp_up_proj, mlp_down_proj as gemm/<op>/vidur (M, N, K
//    from n_head, n_kv_head, n_embd, n_expanded_embd, num_tokens, num_tensor_parallel_workers);
//    mlp_act as mlp_act/swiglu (gated) or mlp_act/gelu; input_layernorm and
//    post_attention_layernorm as norm/rmsnorm (gated, Llama family) or norm/layernorm; add as
//    residual; attn_rope as rope_rotate/rope_only. Missing op columns are skipped; emb is not an op
//    of the cost model.
//  - collectives: <collective>/g<num_workers> with `size` bytes (nccl-tests' size; Vidur writes
//    bytes), or <collective>/g<n>/inter_node when devices_per_node < num_workers.
void read_vidur_csv(const std::string& path, RawProfile& out, RawSource& source);

}  // namespace fdc::fit
