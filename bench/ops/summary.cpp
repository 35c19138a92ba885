#include "bench/ops/summary.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "core/text_file.h"

namespace fdc::profile {
namespace {

using Json = nlohmann::json;

// Case name = benchmark name up to Google Benchmark's "/min_time:", "/iterations:", "/manual_time".
std::string case_name(const std::string& n) {
  std::string s = n;
  for (const char* tail : {"/manual_time", "/iterations:", "/min_time:"}) {
    const auto p = s.find(tail);
    if (p != std::string::npos) s = s.substr(0, p);
  }
  return s;
}

double num(const Json& b, const char* key) { return b.contains(key) && b[key].is_number() ? b[key].get<double>() : -1; }

double seconds(const Json& b) {
  const double t = num(b, "real_time");
  const std::string u = b.value("time_unit", "ns");
  const double scale = u == "s" ? 1 : u == "ms" ? 1e-3 : u == "us" ? 1e-6 : 1e-9;
  return t * scale;
}

std::string fmt(const char* f, double v) {
  if (v < 0) return "-";
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

}  // namespace

std::string summarize_benchmarks(const std::vector<Json>& docs) {
  // case name -> run (aggregates skipped); of a case's repetitions, the run of median time (the
  // lower middle one of an even count).
  std::map<std::string, std::vector<Json>> all;
  for (const Json& d : docs)
    if (d.contains("benchmarks"))
      for (const Json& b : d["benchmarks"]) {
        if (b.value("run_type", "iteration") != "iteration") continue;
        all[case_name(b.value("name", ""))].push_back(b);
      }
  std::map<std::string, Json> runs;
  for (auto& [name, reps] : all) {
    std::sort(reps.begin(), reps.end(), [](const Json& x, const Json& y) { return seconds(x) < seconds(y); });
    runs[name] = reps[(reps.size() - 1) / 2];
  }
  std::ostringstream os;
  auto ok = [](const Json& b) { return !b.value("error_occurred", false); };
  auto get = [&](const std::string& n) -> const Json* {
    auto it = runs.find(n);
    return it == runs.end() || !ok(it->second) ? nullptr : &it->second;
  };
  if (const Json* p = get("peak/gemm_bf16/m8192n8192k8192"))
    os << "Measured peaks: bf16 GEMM " << fmt("%.0f", num(*p, "peak_TFLOP/s")) << " TFLOP/s";
  if (const Json* p = get("peak/device_copy/1GiB")) os << ", device copy " << fmt("%.0f", num(*p, "peak_GB/s")) << " GB/s";
  os << "\n\n## GEMMs, Llama-2-13B, tp 1 (cuBLASLt; cublasGemmEx beside it)\n\n"
     << "| op | rank | tokens | N | K | us | TFLOP/s | % of peak | cublas us |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
  for (const auto& [name, b] : runs) {
    if (name.rfind("gemm/", 0) != 0 || name.find("/llama-2-13b/tp1/") == std::string::npos) continue;
    if (name.size() < 9 || name.substr(name.size() - 9) != "/cublaslt" || !ok(b)) continue;
    const std::string base = name.substr(0, name.size() - 9);
    const Json* ref = get(base + "/cublas");
    os << "| " << base.substr(5, base.find('/', 5) - 5) << " | " << fmt("%.0f", num(b, "rank")) << " | "
       << fmt("%.0f", num(b, "m")) << " | " << fmt("%.0f", num(b, "n")) << " | " << fmt("%.0f", num(b, "k")) << " | "
       << fmt("%.1f", seconds(b) * 1e6) << " | " << fmt("%.0f", num(b, "TFLOP/s")) << " | "
       << fmt("%.1f", num(b, "%peak_flops")) << " | " << (ref ? fmt("%.1f", seconds(*ref) * 1e6) : "-") << " |\n";
  }
  os << "\n## Fused RoPE + rotation against RoPE alone (Llama-2-13B, tp 1, k into the paged cache)\n\n"
     << "| tokens | rank | us | GB/s | % of copy roofline | RoPE alone us | extra over RoPE alone |\n"
     << "| --- | --- | --- | --- | --- | --- | --- |\n";
  for (const auto& [name, b] : runs) {
    if (name.rfind("rope_rotate/llama-2-13b/tp1/r", 0) != 0 || name.find("/rope_only/") != std::string::npos || !ok(b))
      continue;
    const std::string m = name.substr(name.rfind('/'));
    const Json* alone = get("rope_rotate/llama-2-13b/tp1/rope_only" + m);
    const double t = seconds(b), t0 = alone ? seconds(*alone) : -1;
    os << "| " << fmt("%.0f", num(b, "tokens")) << " | " << fmt("%.0f", num(b, "rank")) << " | " << fmt("%.1f", t * 1e6)
       << " | " << fmt("%.0f", num(b, "GB/s")) << " | " << fmt("%.1f", num(b, "%peak_bw")) << " | "
       << fmt("%.1f", t0 * 1e6) << " | " << (t0 > 0 ? fmt("%+.1f%%", 100.0 * (t / t0 - 1.0)) : "-") << " |\n";
  }
  os << "\n## Attention (attention.json): one row per rank at a few shapes\n\n"
     << "| case | us | GB/s | TFLOP/s |\n| --- | --- | --- | --- |\n";
  int n_prefill = 0, n_decode = 0;
  for (const auto& [name, b] : runs) {
    if (name.rfind("attn_", 0) != 0 || !ok(b)) continue;
    (name.rfind("attn_prefill/", 0) == 0 ? n_prefill : n_decode) += 1;
    const bool shown = name.find("/s1/q2048/ctx0/") != std::string::npos ||
                       (name.find("/b32/ctx2048/") != std::string::npos && name.find("/lo0/") != std::string::npos &&
                        name.find("/uniform/") != std::string::npos) ||
                       (name.find("/b32/ctx2048/one_half/mixed/lo0/") != std::string::npos);
    if (!shown) continue;
    os << "| " << name << " | " << fmt("%.1f", seconds(b) * 1e6) << " | " << fmt("%.0f", num(b, "GB/s")) << " | "
       << fmt("%.1f", num(b, "TFLOP/s")) << " |\n";
  }
  os << "\n" << n_prefill << " prefill and " << n_decode << " decode cases measured.\n";
  os << "\n## Collectives: bus bandwidth (GB/s, nccl-tests definition) by size\n\n";
  std::map<int, std::map<double, std::map<std::string, double>>> bw;  // gpus -> bytes -> kind -> busbw
  for (const auto& [name, b] : runs)
    for (const char* kind : {"all_to_all", "all_reduce", "all_gather"})
      if (name.rfind(std::string(kind) + "/g", 0) == 0 && ok(b))
        bw[static_cast<int>(num(b, "gpus"))][num(b, "bytes")][kind] = num(b, "busbw_GB/s");
  for (const auto& [g, rows] : bw) {
    os << "### " << g << " GPUs\n\n| bytes | all-to-all | all-reduce | all-gather |\n| --- | --- | --- | --- |\n";
    for (const auto& [bytes, k] : rows) {
      auto v = [&](const char* n) { return k.count(n) ? fmt("%.1f", k.at(n)) : std::string("-"); };
      os << "| " << fmt("%.0f", bytes) << " | " << v("all_to_all") << " | " << v("all_reduce") << " | "
         << v("all_gather") << " |\n";
    }
    os << "\n";
  }
  os << "## Ulysses all-to-alls at model shapes: pack/unpack share\n\n"
     << "| case | pack us | a2a qkv us | unpack us | a2a out us | unpack out us | (pack+unpack)/a2a |\n"
     << "| --- | --- | --- | --- | --- | --- | --- |\n";
  for (const auto& [name, b] : runs) {
    if (name.rfind("ulysses/", 0) != 0 || !ok(b)) continue;
    os << "| " << name << " | " << fmt("%.1f", num(b, "pack_us")) << " | " << fmt("%.1f", num(b, "a2a_qkv_us")) << " | "
       << fmt("%.1f", num(b, "unpack_qkv_us")) << " | " << fmt("%.1f", num(b, "a2a_out_us")) << " | "
       << fmt("%.1f", num(b, "unpack_out_us")) << " | " << fmt("%.3f", num(b, "pack_unpack_share_of_a2a")) << " |\n";
  }
  int failed = 0, skipped = 0;
  for (const auto& [name, b] : runs) {
    if (ok(b)) continue;
    const std::string msg = b.value("error_message", "");
    if (msg.find("time budget") != std::string::npos)
      ++skipped;
    else {
      ++failed;
      os << "\nFAILED " << name << ": " << msg;
    }
  }
  os << "\n\n" << runs.size() << " cases read, " << failed << " failed, " << skipped
     << " skipped at run time for the time budget\n";
  return os.str();
}

int rewrite_nonfinite_as_null(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) return 0;
  int replaced = 0;
  const std::string clean = nonfinite_literals_to_null(read_text_file(path), &replaced);
  if (replaced == 0) return 0;
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << clean;
    if (!f.flush()) throw std::ios_base::failure(tmp + ": write failed");
  }
  std::filesystem::rename(tmp, path);
  return replaced;
}

std::string summarize_profile(const std::vector<std::string>& json_paths) {
  std::vector<Json> docs;
  std::string missing;
  for (const auto& p : json_paths) {
    if (!std::filesystem::is_regular_file(p)) {
      missing += "missing: " + p + "\n";
      continue;
    }
    try {
      // Google Benchmark writes non-finite aggregates (of repeated cases) as bare NaN.
      docs.push_back(Json::parse(nonfinite_literals_to_null(read_text_file(p))));
    } catch (const std::exception& e) {
      missing += "unreadable: " + p + " (" + e.what() + ")\n";
    }
  }
  return "# fdcsim profile summary\n\n" + missing + summarize_benchmarks(docs);
}

}  // namespace fdc::profile
