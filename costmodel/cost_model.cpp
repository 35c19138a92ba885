#include "costmodel/cost_model.h"

namespace fdc::costmodel {

Nanos CostModel::decode_time_shifted(const Batch& batch, int64_t extra_context) const {
  Batch shifted;
  shifted.seqs.reserve(batch.seqs.size());
  for (SeqWork w : batch.seqs) {
    w.context_before += static_cast<int32_t>(extra_context);
    shifted.add(w);
  }
  return iteration_time(shifted);
}

}  // namespace fdc::costmodel
