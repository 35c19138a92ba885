#include "sim/timeline.h"

#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/text_file.h"

namespace fdc::sim {

void write_header(std::ostream& os, const TimelineHeader& h) {
  Json j = {{"type", "header"},
            {"format", "fdcsim-timeline"},
            {"version", 1},
            {"source", h.source},
            {"device", h.device},
            {"replicas", h.replicas},
            {"kv_blocks_per_replica", h.kv_blocks_per_replica},
            {"block_size", h.block_size},
            {"config", h.config}};
  if (!h.kernels.is_null()) j["kernels"] = h.kernels;
  os << j.dump() << '\n';
}

void write_iteration(std::ostream& os, int replica, int64_t start_ns, int64_t duration_ns, const costmodel::Batch& b) {
  os << "{\"type\":\"iteration\",\"replica\":" << replica << ",\"start_ns\":" << start_ns
     << ",\"duration_ns\":" << duration_ns << ",\"seqs\":[";
  for (size_t i = 0; i < b.seqs.size(); ++i) {
    const auto& s = b.seqs[i];
    os << (i ? ",[" : "[") << s.new_tokens << ',' << s.context_before << ',' << (s.emits_token ? 1 : 0) << ']';
  }
  os << "]}\n";
}

void write_request(std::ostream& os, const RequestRecord& r) {
  Json j = {{"type", "request"},
            {"id", r.id},
            {"replica", r.replica},
            {"status", r.completed ? "completed" : "rejected"},
            {"arrival_ns", r.arrival_ns},
            {"prompt", r.prompt},
            {"output", r.output}};
  if (r.completed) {
    j["first_scheduled_ns"] = r.first_scheduled_ns;
    j["token_ns"] = r.token_ns;
    j["preemptions"] = r.preemptions;
  } else {
    j["reason"] = r.reason;
  }
  os << j.dump() << '\n';
}

namespace {

template <class T>
T field(const Json& j, const char* key, const std::string& where) {
  auto it = j.find(key);
  if (it == j.end()) throw InputError(where + ": missing key \"" + key + "\"");
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw InputError(where + ": key \"" + key + "\": unexpected " + describe_json(*it));
  }
}

}  // namespace

Timeline parse_timeline(std::istream& in, const std::string& source) {
  Timeline t;
  std::string line;
  int64_t n = 0;
  bool have_header = false;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty() || line == "\r") continue;
    const std::string where = source + ":" + std::to_string(n);
    Json j;
    try {
      j = Json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw InputError(where + ": not a JSON object: " + e.what());
    }
    if (!j.is_object()) throw InputError(where + ": expected a JSON object, found " + describe_json(j));
    const std::string type = field<std::string>(j, "type", where);
    if (type == "header") {
      if (have_header) throw InputError(where + ": a second header");
      if (field<std::string>(j, "format", where) != "fdcsim-timeline" || field<int>(j, "version", where) != 1)
        throw InputError(where + ": expected format \"fdcsim-timeline\" version 1");
      t.header.source = field<std::string>(j, "source", where);
      t.header.device = field<std::string>(j, "device", where);
      t.header.replicas = field<int>(j, "replicas", where);
      t.header.kv_blocks_per_replica = field<int64_t>(j, "kv_blocks_per_replica", where);
      t.header.block_size = field<int>(j, "block_size", where);
      t.header.config = field<Json>(j, "config", where);
      if (j.contains("kernels")) {
        t.header.kernels = j["kernels"];
        if (!t.header.kernels.is_object())
          throw InputError(where + ": key \"kernels\": expected an object, found " + describe_json(t.header.kernels));
      }
      have_header = true;
      continue;
    }
    if (!have_header) throw InputError(where + ": the first line must be the header");
    if (type == "iteration") {
      IterationRecord r;
      r.replica = field<int>(j, "replica", where);
      r.start_ns = field<int64_t>(j, "start_ns", where);
      r.duration_ns = field<int64_t>(j, "duration_ns", where);
      if (r.duration_ns <= 0) throw InputError(where + ": duration_ns must be > 0");
      for (const auto& s : field<Json>(j, "seqs", where)) {
        if (!s.is_array() || s.size() != 3)
          throw InputError(where + ": each of \"seqs\" must be [new_tokens, context_before, emits]");
        r.batch.add({s[0].get<int32_t>(), s[1].get<int32_t>(), s[2].get<int>() != 0});
      }
      if (r.batch.empty()) throw InputError(where + ": an iteration with no sequences");
      t.iterations.push_back(std::move(r));
    } else if (type == "request") {
      RequestRecord r;
      r.id = field<uint64_t>(j, "id", where);
      r.replica = field<int>(j, "replica", where);
      const std::string status = field<std::string>(j, "status", where);
      if (status != "completed" && status != "rejected")
        throw InputError(where + ": status must be \"completed\" or \"rejected\", found \"" + status + "\"");
      r.completed = status == "completed";
      r.arrival_ns = field<int64_t>(j, "arrival_ns", where);
      r.prompt = field<int32_t>(j, "prompt", where);
      r.output = field<int32_t>(j, "output", where);
      if (r.completed) {
        r.first_scheduled_ns = field<int64_t>(j, "first_scheduled_ns", where);
        r.token_ns = field<std::vector<int64_t>>(j, "token_ns", where);
        r.preemptions = field<int32_t>(j, "preemptions", where);
        if (static_cast<int32_t>(r.token_ns.size()) != r.output)
          throw InputError(where + ": " + std::to_string(r.token_ns.size()) + " token times for " +
                           std::to_string(r.output) + " output tokens");
      } else {
        r.reason = field<std::string>(j, "reason", where);
      }
      t.requests.push_back(std::move(r));
    } else {
      throw InputError(where + ": unknown line type \"" + type + "\"");
    }
  }
  if (!have_header) throw InputError(source + ": empty timeline (no header line)");
  return t;
}

Timeline read_timeline(const std::string& path) {
  std::istringstream in(read_text_file(path, "timeline"));  // plain or gzip
  return parse_timeline(in, path);
}

RequestRecord completed_record(const Sequence& s, int replica, std::vector<int64_t> token_ns) {
  RequestRecord rec;
  rec.id = s.request_id;
  rec.replica = replica;
  rec.completed = true;
  rec.arrival_ns = s.arrival.ns();
  rec.prompt = s.prompt;
  rec.output = s.output;
  rec.first_scheduled_ns = s.first_scheduled.ns();
  rec.token_ns = std::move(token_ns);
  rec.preemptions = s.preemptions;
  return rec;
}

}  // namespace fdc::sim
