// State of one request inside a replica. Token accounting, the same for prefill, chunked prefill,
// decode and recompute after preemption:
//   known    = prompt + generated  (tokens whose ids exist)
//   computed = tokens whose KV is in the cache, 0 <= computed < known while running
// An iteration computes some of the known - computed tokens; when computed reaches known the pass
// emits the next token (generated += 1). A prefill of P tokens emits token 1; decode step k
// computes token k and emits token k + 1. Preemption by recompute drops the KV (computed = 0).
#pragma once

#include <cstdint>
#include <vector>

#include "core/time.h"

namespace fdc::sim {

struct Sequence {
  uint64_t request_id = 0;
  int32_t prompt = 0;
  int32_t output = 0;
  int32_t generated = 0;
  int32_t computed = 0;
  int32_t preemptions = 0;
  Nanos arrival;
  Nanos first_scheduled = Nanos(-1);  // first iteration that computed any of its tokens
  Nanos first_token = Nanos(-1);
  Nanos last_token = Nanos(-1);
  std::vector<int32_t> blocks;  // KV block table

  int32_t known() const { return prompt + generated; }
  int32_t pending() const { return known() - computed; }
  bool finished() const { return generated >= output; }
};

}  // namespace fdc::sim
