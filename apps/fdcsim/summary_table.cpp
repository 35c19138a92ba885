#include "apps/fdcsim/summary_table.h"

#include <cstdio>
#include <string>

namespace fdc::cli {

namespace {
std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}
}  // namespace

void print_summary_table(std::ostream& os, const Json& s) {
  const auto& c = s["cluster"];
  const auto& r = s["requests"];
  const auto& kv = s["kv_cache"];
  os << "fdcsim simulate: " << s["experiment"].get<std::string>() << "\n";
  os << "  model " << s["model"].get<std::string>() << ", policy " << s["policy"].get<std::string>() << ", "
     << c["servers"].get<int>() << " x " << s["hardware"].get<std::string>() << " (" << c["gpus"].get<int>()
     << " GPUs, " << c["replicas"].get<int>() << " replicas, tp=" << c["tp"].get<int>() << " sp=" << c["sp"].get<int>()
     << ", " << c["router"].get<std::string>() << ")\n";
  os << "  workload: " << s["workload"].get<std::string>() << "\n";
  const auto& cm = s["cost_model"];
  os << "  cost model: " << cm["description"].get<std::string>() << "\n";
  // The roofline says "(extrapolated)" in its description; a profile lists what was not measured.
  if (cm.contains("profile") && cm["profile"].value("extrapolated", false)) {
    const auto& p = cm["profile"];
    os << "  EXTRAPOLATED: " << (p.value("derived", false) ? "a derived profile (no measurement on this GPU), " : "")
       << p["extrapolated_ops"].size() << " of " << p["ops"].size() << " ops not measured on this GPU\n";
  }
  // A fitted profile answers outside its measured grid with its laws' edges: say where it did.
  if (cm.contains("outside_measured")) {
    for (const auto& u : cm["outside_measured"])
      os << "  OUTSIDE THE MEASURED GRID: " << u["op"].get<std::string>() << " in "
         << fmt("%.1f%%", 100.0 * u["share"].get<double>()) << " of " << u["queries"].get<int64_t>()
         << " queries, e.g. " << u["example"].get<std::string>() << "\n";
  }
  os << "  KV cache: " << kv["tokens_per_replica"].get<int64_t>() << " tokens per replica ("
     << kv["blocks_per_replica"].get<int64_t>() << " blocks of " << kv["block_size_tokens"].get<int>() << "), "
     << fmt("%.1f", kv["bytes_per_token_replica"].get<double>() / 1024.0) << " KiB per token; weights "
     << fmt("%.1f", kv["weight_gib_per_gpu"].get<double>()) << " GiB per GPU\n\n";
  os << "  requests   arrived " << r["arrived"].get<uint64_t>() << ", completed " << r["completed"].get<uint64_t>()
     << ", rejected " << r["rejected"].get<uint64_t>() << ", preemptions " << r["preemptions"].get<uint64_t>() << "\n";
  os << "  makespan   " << fmt("%.2f s", s["makespan_s"].get<double>()) << "\n";
  const auto& t = s["throughput"];
  os << "  throughput " << fmt("%.3f req/s", t["requests_per_s"].get<double>()) << ", "
     << fmt("%.1f output tok/s", t["output_tokens_per_s"].get<double>()) << ", "
     << fmt("%.1f total tok/s", t["total_tokens_per_s"].get<double>()) << "\n";
  const auto& slo = s["slo"];
  os << "  SLO        TTFT <= " << fmt("%g ms", slo["ttft_ms"].get<double>())
     << " and TPOT <= " << fmt("%g ms", slo["tpot_ms"].get<double>()) << ": "
     << fmt("%.1f%%", 100.0 * slo["attainment"].get<double>()) << " met, goodput "
     << fmt("%.3f req/s", slo["goodput_requests_per_s"].get<double>()) << "\n";
  os << "  KV use     mean " << fmt("%.1f%%", 100.0 * kv["mean_utilization"].get<double>()) << ", max "
     << fmt("%.1f%%", 100.0 * kv["max_utilization"].get<double>()) << "; GPU busy "
     << fmt("%.1f%%", 100.0 * s["gpu_busy_fraction"].get<double>()) << "\n\n";
  os << "  latency (ms)        mean        P50        P90        P99        max\n";
  for (const char* name : {"ttft", "tbt", "tpot", "jct", "queue"}) {
    const auto& l = s["latency"][name];
    char line[160];
    std::snprintf(line, sizeof line, "  %-10s %10.2f %10.2f %10.2f %10.2f %10.2f\n", name, l["mean_ms"].get<double>(),
                  l["p50_ms"].get<double>(), l["p90_ms"].get<double>(), l["p99_ms"].get<double>(),
                  l["max_ms"].get<double>());
    os << line;
  }
}

}  // namespace fdc::cli
