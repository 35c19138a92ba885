// Timelines: what a run did, iteration by iteration and request by request, as JSON lines. The GPU
// engine writes one with measured times; the simulator writes one with predicted times; the
// comparison (validate/compare.h) reads both. Format (docs/validate.md), one object per line:
//   {"type":"header","format":"fdcsim-timeline","version":1,"source":"engine"|"simulator",
//    "device":..,"replicas":R,"kv_blocks_per_replica":N,"block_size":B,"config":{resolved config}}
//   {"type":"iteration","replica":r,"start_ns":t,"duration_ns":d,"seqs":[[new_tokens,context_before,emits],..]}
//   {"type":"request","id":i,"replica":r,"status":"completed","arrival_ns":..,"prompt":P,"output":O,
//    "first_scheduled_ns":..,"token_ns":[t1,..,tO],"preemptions":k}
//   {"type":"request","id":i,"replica":r,"status":"rejected","reason":code,"arrival_ns":..,"prompt":P,"output":O}
#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "core/config.h"
#include "costmodel/batch.h"
#include "sim/sequence.h"

namespace fdc::sim {

struct TimelineHeader {
  std::string source;  // "engine" or "simulator"
  std::string device;  // GPU name for an engine run; "" for the simulator
  int replicas = 0;
  int64_t kv_blocks_per_replica = 0;
  int block_size = 0;
  Json config;  // the resolved experiment config
  // Engine runs: the kernels that ran (`decode`: the decode kernel of the layers; `decode_slot_index`:
  // how decode found tokens on shared pages of uneven slot counts; `gemm_planning`). Null for the
  // simulator and in timelines written before 2026-12-07 evening.
  Json kernels;
};

struct IterationRecord {
  int replica = 0;
  int64_t start_ns = 0;
  int64_t duration_ns = 0;
  costmodel::Batch batch;
};

struct RequestRecord {
  uint64_t id = 0;
  int replica = 0;
  bool completed = false;
  std::string reason;  // rejected requests
  int64_t arrival_ns = 0;
  int32_t prompt = 0, output = 0;
  int64_t first_scheduled_ns = 0;
  std::vector<int64_t> token_ns;  // time of each output token
  int32_t preemptions = 0;
};

struct Timeline {
  TimelineHeader header;
  std::vector<IterationRecord> iterations;
  std::vector<RequestRecord> requests;
};

// The record of a finished sequence (simulator and engine alike).
RequestRecord completed_record(const Sequence& s, int replica, std::vector<int64_t> token_ns);

// Reads a timeline file; errors (InputError) name the file, the line and the key.
Timeline read_timeline(const std::string& path);
Timeline parse_timeline(std::istream& in, const std::string& source);

// Writers, one line each.
void write_header(std::ostream& os, const TimelineHeader& h);
void write_iteration(std::ostream& os, int replica, int64_t start_ns, int64_t duration_ns, const costmodel::Batch& b);
void write_request(std::ostream& os, const RequestRecord& r);

}  // namespace fdc::sim
