#include "costmodel/ops.h"

namespace fdc::costmodel {

std::string_view op_name(OpKind k) {
  switch (k) {
    case OpKind::kNorm:
      return "norm";
    case OpKind::kQkvProj:
      return "qkv_proj";
    case OpKind::kRopeRotate:
      return "rope_rotate";
    case OpKind::kAllToAllQkv:
      return "all_to_all_qkv";
    case OpKind::kKvAppend:
      return "kv_append";
    case OpKind::kKvClassify:
      return "kv_classify";
    case OpKind::kAttnPrefill:
      return "attn_prefill";
    case OpKind::kAttnDecode:
      return "attn_decode";
    case OpKind::kAllToAllOut:
      return "all_to_all_out";
    case OpKind::kOutProj:
      return "out_proj";
    case OpKind::kAllReduce:
      return "all_reduce";
    case OpKind::kResidual:
      return "residual";
    case OpKind::kMlpUp:
      return "mlp_up";
    case OpKind::kMlpAct:
      return "mlp_act";
    case OpKind::kMlpDown:
      return "mlp_down";
    case OpKind::kLmHead:
      return "lm_head";
    case OpKind::kAllGather:
      return "all_gather";
    case OpKind::kIterationOverhead:
      return "iteration_overhead";
    case OpKind::kCount:
      break;
  }
  return "?";
}

}  // namespace fdc::costmodel
