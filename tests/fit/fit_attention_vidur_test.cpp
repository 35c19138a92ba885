// Attention cases (the agreed attn_prefill/attn_decode counters) fit an explainable law; Vidur
// profiling CSVs read into the same op groups, bad cells named by file, line and column; a derived
// profile scales every rate by the spec-sheet ratios and is extrapolated throughout.
#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>

#include <doctest/doctest.h>

#include "core/error.h"
#include "costmodel/fit/derive.h"
#include "costmodel/fit/profile_io.h"
#include "costmodel/fit/raw_reader.h"
#include "costmodel/fit/vidur_reader.h"
#include "tests/fit/profile_round_trip.h"
#include "tests/test_paths.h"
#include "tests/traces/temp_file.h"

namespace fdc::fit {
namespace {

// A decode case whose time follows a known law: 4 us + bytes / 2 TB/s + 0.5 us per sequence
// + (unbalanced kernels only) the longest sequence's bytes at 0.5 TB/s.
// With `size_effect`, that time is divided by an efficiency that dips smoothly with log2(bytes)
// (1 at 1 MB, 0.55 at 32 MB, 1 again at 1 GB): what a linear law cannot follow, whatever its
// terms (a per-unit cost, growing with the bytes, cannot make a dip).
// With `interaction`, the time grows by up to 25% with log2(sequences) x log2(context) together
// (bilinear: nothing at either small end): at equal bytes, many short sequences and few long ones
// differ, which no law over bytes (curve included) follows.
std::string decode_entry(int seqs, double ctx_mean, double ctx_max, int balanced, bool size_effect = false,
                         bool interaction = false) {
  const double bytes = seqs * (ctx_mean + 1) * 40 * 2 * 128 * 2.0;
  const double straggler = bytes / seqs * (ctx_max + 1) / (ctx_mean + 1);
  double t = 4.0 + bytes * 5e-7 + 0.5 * seqs + (balanced ? 0.0 : straggler * 2e-6);
  if (size_effect) t /= 1.0 - 0.45 * std::sin(M_PI * std::clamp((std::log2(bytes) - 20.0) / 10.0, 0.0, 1.0));
  if (interaction) t *= 1.0 + 0.25 * (std::log2(seqs) / 7.0) * (std::log2(ctx_mean / 128.0) / 4.0);
  std::ostringstream os;
  os.precision(17);
  os << R"({"name": "attn_decode/s)" << seqs << "/c" << ctx_mean << "/b" << balanced
     << R"(/manual_time", "real_time": )" << t << R"(, "time_unit": "us", "num_seqs": )" << seqs << R"(, "tokens": )"
     << seqs << R"(, "ctx_mean": )" << ctx_mean << R"(, "ctx_max": )" << ctx_max
     << R"(, "ctx_cv": 0.5, "rank_qk": 64, "rank_v": 64, "rank_qk_lo": 32, "rank_v_lo": 32, "lo_fraction": 0.5,)"
     << R"( "group": 1, "q_heads": 40, "kv_heads": 40, "head_dim": 128, "bytes": )" << bytes << R"(, "flops": )"
     << bytes * 2 << R"(, "balanced": )" << balanced << "}";
  return os.str();
}

std::string size_effect_file(bool interaction = false) {
  std::string s = R"({"benchmarks": [)";
  bool first = true;
  for (int seqs : {1, 2, 4, 8, 16, 32, 64, 128})
    for (double ctx : {128.0, 256.0, 512.0, 1024.0, 2048.0}) {
      s += (first ? "" : ",") + decode_entry(seqs, ctx, ctx, 1, !interaction, interaction);
      first = false;
    }
  return s + "]}";
}

// Reads the decode cases of an attention.json text into `raw` (with a 132-SM plan) and fits them.
OpFit fit_decode_cases(const std::string& text, RawProfile& raw) {
  test::TempFile f("attention.json", text);
  raw.decode_plan = costmodel::cuda_core_decode_plan(132);
  RawSource src;
  read_raw_benchmark_file(f.path(), raw, src);
  return fit_op("attn_decode", raw.samples, Peaks{}, false, raw.decode_plan);
}

std::string attention_file() {
  std::string s = R"({"benchmarks": [)";
  bool first = true;
  for (int seqs : {1, 8, 32, 128})
    for (double ctx : {256.0, 2048.0})
      for (int bal : {1, 0}) {
        s += (first ? "" : ",") + decode_entry(seqs, ctx, ctx * (seqs > 1 ? 3.0 : 1.0), bal);
        first = false;
      }
  return s + "]}";
}

std::string error_of_csv(const std::string& name, const std::string& text) {
  test::TempFile f(name, text);
  RawProfile p;
  RawSource src;
  try {
    read_vidur_csv(f.path(), p, src);
  } catch (const InputError& e) {
    const std::string what = e.what();
    CHECK(what.find(f.path()) != std::string::npos);
    return what;
  }
  return "";
}

const char* kMlpHeader =
    "time_stats.attn_pre_proj.median,time_stats.attn_post_proj.median,time_stats.mlp_up_proj.median,"
    "time_stats.mlp_down_proj.median,time_stats.mlp_act.median,time_stats.input_layernorm.median,"
    "time_stats.add.median,n_head,n_kv_head,n_embd,n_expanded_embd,vocab_size,use_gated_mlp,num_tokens,"
    "num_tensor_parallel_workers\n";

}  // namespace

TEST_CASE("fit: attention whose efficiency changes with size takes the efficiency curve, held out better") {
  RawProfile raw;
  const OpFit fit = fit_decode_cases(size_effect_file(), raw);
  // Candidates: the linear law, its efficiency curve, the curve with its neighbours' errors.
  REQUIRE(fit.candidates.size() == 3);
  CHECK(fit.candidates[1].form == FitForm::kAttentionLinearEfficiency);
  CHECK(fit.candidates[2].form == FitForm::kAttentionNeighbours);
  CHECK(fit.form != FitForm::kAttentionLinear);
  REQUIRE(fit.candidates[0].held_out.median_ape_pct);
  REQUIRE(fit.candidates[1].held_out.median_ape_pct);
  REQUIRE(fit.held_out.median_ape_pct);
  CHECK(*fit.candidates[1].held_out.median_ape_pct < *fit.candidates[0].held_out.median_ape_pct - 0.1);
  CHECK(*fit.held_out.median_ape_pct < *fit.candidates[0].held_out.median_ape_pct - 0.1);
  CHECK(!fit.knots.empty());
  // Written and read back, it predicts the same.
  const OpQuery q = OpQuery::of(raw.samples[3]);
  CHECK(predict_time_us(test::written_and_read(fit), q) == doctest::Approx(predict_time_us(fit, q)));
}

TEST_CASE("fit: decode attention whose time depends on sequences and context together takes its neighbours") {
  RawProfile raw;
  const OpFit fit = fit_decode_cases(size_effect_file(/*interaction=*/true), raw);
  REQUIRE(fit.candidates.size() == 3);
  CHECK(fit.form == FitForm::kAttentionNeighbours);
  REQUIRE(fit.candidates[1].held_out.median_ape_pct);
  REQUIRE(fit.held_out.p90_ape_pct);
  REQUIRE(fit.candidates[1].held_out.p90_ape_pct);
  CHECK(*fit.held_out.median_ape_pct < 0.5 * *fit.candidates[1].held_out.median_ape_pct);
  CHECK(*fit.held_out.p90_ape_pct < *fit.candidates[1].held_out.p90_ape_pct);
  CHECK(fit.neighbours.size() == raw.samples.size());
  // A query on a measured case gets its measured time (the case alone decides at distance 0).
  for (const Sample& s : raw.samples) CHECK(predict_time_us(fit, OpQuery::of(s)) == doctest::Approx(s.time_us));
  // Between cases: between the neighbours; far from every case (another rank, 16x the bytes per
  // key): the curve law alone.
  OpQuery between = OpQuery::of(raw.samples[17]);
  between.keys_mean *= 1.41, between.keys_max *= 1.41, between.bytes *= 1.41, between.stage_bytes *= 1.41;
  const double t = predict_time_us(fit, between);
  CHECK(t > raw.samples[17].time_us);
  CHECK(t < raw.samples[18].time_us);
  OpQuery far = between;
  far.bytes *= 16, far.stage_bytes *= 16;
  CHECK(neighbour_correction(fit.neighbours, far) == 1.0);
  CHECK(neighbour_correction({}, between) == 1.0);
  // The neighbours survive the profile file.
  FittedProfile p;
  p.gpu = "test";
  p.ops["attn_decode"] = fit;
  const FittedProfile back = profile_from_json(profile_to_json(p, "test"), "p.json");
  REQUIRE(back.ops.at("attn_decode").form == FitForm::kAttentionNeighbours);
  CHECK(back.ops.at("attn_decode").neighbours.size() == fit.neighbours.size());
  CHECK(predict_time_us(back.ops.at("attn_decode"), between) == doctest::Approx(t));
  // A neighbours point that is not 7 numbers is refused, naming the op.
  Json j = profile_to_json(p, "test");
  j["ops"]["attn_decode"]["neighbours"][0] = Json::array({1, 2, 3});
  try {
    (void)profile_from_json(j, "p.json");
    FAIL("no error");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("ops.attn_decode: each neighbours point must be 7 finite numbers") !=
          std::string::npos);
  }
}

TEST_CASE("fit: attention cases read with their features and fit a law that recovers the generator") {
  test::TempFile f("attention.json", attention_file());
  RawProfile raw;
  raw.decode_plan = costmodel::cuda_core_decode_plan(132);
  RawSource src;
  read_raw_benchmark_file(f.path(), raw, src);
  REQUIRE(raw.samples.size() == 16);
  CHECK(raw.samples[0].group == "attn_decode");
  REQUIRE(raw.samples[0].attn);
  CHECK(raw.samples[0].attn->keys_mean == 257);
  CHECK(raw.samples[0].attn->balanced == 1);
  const OpFit fit = fit_op("attn_decode", raw.samples, Peaks{}, false, raw.decode_plan);
  CHECK(fit.form == FitForm::kAttentionLinear);
  CHECK(fit.us_per_seq == doctest::Approx(0.5).epsilon(1e-6));
  CHECK(fit.us_per_byte == doctest::Approx(5e-7).epsilon(1e-6));
  CHECK(fit.us_per_straggler_unbalanced == doctest::Approx(2e-6).epsilon(1e-6));
  CHECK(fit.us_per_straggler == doctest::Approx(0).scale(1e-3));
  REQUIRE(fit.held_out.median_ape_pct);
  CHECK(*fit.held_out.median_ape_pct < 1e-6);
  CHECK(fit.held_out.method == "leave-one-out");
  // Outside the measured sequence counts: answered, and flagged.
  OpQuery q = OpQuery::of(raw.samples[0]);
  q.seqs = 1000;
  CHECK(predict(fit, q).extrapolated);
  CHECK(predict(fit, q).why.find("sequences") != std::string::npos);
  // The law survives the profile file.
  FittedProfile p;
  p.gpu = "test";
  p.ops["attn_decode"] = fit;
  const FittedProfile back = profile_from_json(profile_to_json(p, "test"), "p.json");
  CHECK(back.ops.at("attn_decode").us_per_straggler_unbalanced == fit.us_per_straggler_unbalanced);
  CHECK(back.ops.at("attn_decode").seqs_range->max == 128);

  // A partial attention entry names the file, the benchmark and the counter.
  test::TempFile bad("attention.json", R"({"benchmarks": [{"name": "attn_prefill/x", "real_time": 3, "time_unit": "us",
      "num_seqs": 2, "tokens": 64, "bytes": 100, "flops": 100}]})");
  RawProfile r2;
  RawSource s2;
  try {
    read_raw_benchmark_file(bad.path(), r2, s2);
    FAIL("no error");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("attn_prefill/x") != std::string::npos);
    CHECK(std::string(e.what()).find("missing counter 'ctx_mean'") != std::string::npos);
  }
}

TEST_CASE("fit: without attention cases, attention is roofline-derived and flagged; overhead assumed") {
  const FittedProfile p =
      fit_profile(read_raw_profiles({test::source_path("configs/profiles/raw/h100-1gpu-20261127")}));
  for (const char* op : {"attn_prefill", "attn_decode", "iteration_overhead"}) {
    CAPTURE(op);
    REQUIRE(p.find(op));
    CHECK(p.find(op)->extrapolated);
    CHECK(predict(*p.find(op), OpQuery{1e6, 1e9, 0, 0, 0}).extrapolated);
  }
  CHECK(p.find("attn_decode")->form == FitForm::kRooflineDerived);
  CHECK(p.find("attn_decode")->note.find("replaced when attention.json is fitted") != std::string::npos);
  CHECK_FALSE(p.find("gemm/qkv_proj/cublaslt")->extrapolated);
}

TEST_CASE("fit: Vidur mlp.csv and all_reduce.csv read into the op groups and fit") {
  std::string mlp = kMlpHeader;
  for (int t : {1, 2})
    for (int m : {64, 256, 1024}) {
      std::ostringstream row;
      row << 0.001 * m / t << "," << 0.0003 * m / t << "," << 0.002 * m / t << "," << 0.001 * m / t << ","
          << 0.0001 * m / t << "," << 0.00002 * m + 0.003 << "," << 0.00001 * m + 0.002
          << ",32,32,4096,11008,32768,True," << m << "," << t << "\n";
      mlp += row.str();
    }
  test::TempFile mlp_csv("mlp.csv", mlp);
  test::TempFile ar_csv("all_reduce.csv",
                        ",time_stats.all_reduce.min,time_stats.all_reduce.max,time_stats.all_reduce.mean,"
                        "time_stats.all_reduce.median,time_stats.all_reduce.std,rank,num_workers,size,collective,"
                        "devices_per_node,max_devices_per_node\n"
                        "0,0.01,0.03,0.02,0.02,0.001,0,2,2048,all_reduce,8,8\n"
                        "1,0.01,0.03,0.02,0.03,0.001,0,2,1048576,all_reduce,8,8\n"
                        "2,0.01,0.03,0.02,0.25,0.001,0,2,16777216,all_reduce,8,8\n");
  CHECK(vidur_csv_kind(mlp_csv.path()) == VidurCsvKind::kMlp);
  CHECK(vidur_csv_kind(ar_csv.path()) == VidurCsvKind::kCollective);
  const RawProfile raw = read_raw_profiles({mlp_csv.path(), ar_csv.path()}, "NVIDIA A100-SXM4-80GB");
  CHECK(raw.gpu_name == "NVIDIA A100-SXM4-80GB");
  int qkv = 0, ar = 0;
  for (const Sample& s : raw.samples) {
    if (s.group == "gemm/qkv_proj/vidur") {
      ++qkv;
      if (s.m == 64 && s.n == 6144) CHECK(s.time_us == doctest::Approx(32.0));  // 0.064 ms / tp 2, N = 3 x 4096 / 2
    }
    if (s.group == "all_reduce/g2") ++ar;
  }
  CHECK(qkv == 6);
  CHECK(ar == 3);
  CHECK(raw.peak_tflops > 0);
  CHECK(raw.peaks_source.find("highest rates") != std::string::npos);
  const FittedProfile p = fit_profile(raw);
  for (const char* op :
       {"gemm/qkv_proj/vidur", "gemm/mlp_down/vidur", "mlp_act/swiglu", "norm/rmsnorm", "residual", "all_reduce/g2"})
    CHECK(p.find(op));
}

TEST_CASE("fit: bad Vidur CSVs are refused with the file, the line and the column") {
  std::string bad_number = std::string(kMlpHeader) + "0.1,0.1,0.1,0.1,0.1,0.1,0.1,32,32,4096,11008,32768,True,abc,1\n";
  const std::string e1 = error_of_csv("mlp.csv", bad_number);
  CHECK(e1.find(":2: ") != std::string::npos);
  CHECK(e1.find("column 'num_tokens'") != std::string::npos);
  CHECK(e1.find("\"abc\"") != std::string::npos);

  std::string bad_bool = std::string(kMlpHeader) + "0.1,0.1,0.1,0.1,0.1,0.1,0.1,32,32,4096,11008,32768,maybe,4,1\n";
  CHECK(error_of_csv("mlp.csv", bad_bool).find("column 'use_gated_mlp': expected True or False") != std::string::npos);

  std::string zero_time = std::string(kMlpHeader) + "0,0.1,0.1,0.1,0.1,0.1,0.1,32,32,4096,11008,32768,True,4,1\n";
  CHECK(error_of_csv("mlp.csv", zero_time).find("column 'time_stats.attn_pre_proj.median'") != std::string::npos);

  const std::string coll =
      ",time_stats.x.median,rank,num_workers,size,collective,devices_per_node\n0,0.1,0,2,1024,broadcast,8\n";
  CHECK(error_of_csv("all_reduce.csv", coll).find("column 'collective'") != std::string::npos);
  const std::string short_row = ",time_stats.x.median,rank,num_workers,size,collective,devices_per_node\n0,0.1,0\n";
  CHECK(error_of_csv("send_recv.csv", short_row).find(":2: ") != std::string::npos);
  CHECK(error_of_csv("other.csv", "a,b\n1,2\n").find("not a Vidur profiling CSV") != std::string::npos);
}

TEST_CASE("fit --derive: every rate scaled by the spec-sheet ratios, every op extrapolated") {
  const FittedProfile h100 = read_profile(test::source_path("configs/profiles/h100.json"));
  const SpecSheet from{"p5", "H100", 989, 3350, 450}, to{"p4de", "A100", 312, 2039, 300};
  const FittedProfile a100 = derive_profile(h100, "h100", from, to);
  CHECK(a100.extrapolated);
  CHECK(a100.gpu == "A100");
  const OpFit& g0 = h100.ops.at("gemm/qkv_proj/cublaslt");
  const OpFit& g1 = a100.ops.at("gemm/qkv_proj/cublaslt");
  CHECK(g1.peak_tflops == doctest::Approx(g0.peak_tflops * 312 / 989));
  CHECK(g1.peak_gbps == doctest::Approx(g0.peak_gbps * 2039 / 3350));
  CHECK(a100.ops.at("residual").us_per_byte == doctest::Approx(h100.ops.at("residual").us_per_byte * 3350 / 2039));
  CHECK(a100.ops.at("iteration_overhead").alpha_us == h100.ops.at("iteration_overhead").alpha_us);
  for (const auto& [op, f] : a100.ops) {
    CAPTURE(op);
    CHECK(f.extrapolated);
  }
  // A compute-bound GEMM takes the FLOP ratio longer on the derived GPU.
  const OpQuery big = OpQuery::gemm(4096, 15360, 5120);
  CHECK(predict(g1, big).time_us == doctest::Approx(predict(g0, big).time_us * 989 / 312));
  CHECK(predict(g1, big).extrapolated);
  const FittedProfile back = profile_from_json(profile_to_json(a100, "test"), "a.json");
  CHECK(back.extrapolated);
  CHECK(back.derived["ratios"]["flops"] == doctest::Approx(312.0 / 989));
}

}  // namespace fdc::fit
