// Reading raw profiles: malformed files refused with file + benchmark; the committed H200 raw
// folders fit with finite held-out errors; the profile file round-trips.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "core/error.h"
#include "core/text_file.h"
#include "costmodel/fit/profile_fit.h"
#include "costmodel/fit/profile_io.h"
#include "costmodel/fit/raw_reader.h"
#include "tests/fit/profile_round_trip.h"
#include "tests/test_paths.h"
#include "tests/traces/temp_file.h"

namespace fdc::fit {
namespace {

std::string error_of(const std::string& text) {
  test::TempFile f("ops.json", text);
  RawProfile p;
  RawSource src;
  try {
    read_raw_benchmark_file(f.path(), p, src);
  } catch (const InputError& e) {
    const std::string what = e.what();
    CHECK(what.find(f.path()) != std::string::npos);
    return what;
  }
  return "";
}

const char* kGemmName = "gemm/qkv_proj/llama-2-13b/tp1/r128/m1024/cublaslt/min_time:0.050/manual_time";

}  // namespace

TEST_CASE("fit: malformed raw benchmark files are refused with the file and the benchmark name") {
  const std::string missing_k = error_of(std::string(R"({"benchmarks": [{"name": ")") + kGemmName +
                                         R"(", "real_time": 227.1, "time_unit": "us", "m": 1024, "n": 15360}]})");
  CHECK(missing_k.find(kGemmName) != std::string::npos);
  CHECK(missing_k.find("missing counter 'k'") != std::string::npos);

  const std::string no_time =
      error_of(R"({"benchmarks": [{"name": "residual/d5120/m1024/min_time:0.050/manual_time", "count": 5242880}]})");
  CHECK(no_time.find("residual/d5120/m1024") != std::string::npos);
  CHECK(no_time.find("real_time") != std::string::npos);

  CHECK(error_of(R"({"benchmarks": [{"name": "residual/d5120)").find("not valid JSON") != std::string::npos);
  CHECK(error_of(R"({"context": {}})").find("'benchmarks'") != std::string::npos);
  CHECK(error_of(R"({"benchmarks": [{"name": "warp_drive/x", "real_time": 1, "time_unit": "us"}]})")
            .find("unknown benchmark kind 'warp_drive'") != std::string::npos);

  // Cases skipped by the time budget are left out, not errors.
  test::TempFile ok("ops.json", std::string(R"({"benchmarks": [{"name": ")") + kGemmName +
                                    R"(", "error_occurred": true, "error_message": "skipped"}]})");
  RawProfile p;
  RawSource src;
  read_raw_benchmark_file(ok.path(), p, src);
  CHECK(src.excluded == 1);
  CHECK(p.samples.empty());
}

TEST_CASE("fit: KV append and classification cases are read into their groups, bytes from the counters") {
  test::TempFile f("ops.json", R"({"benchmarks": [
    {"name": "kv_append/llama-2-13b/r64/m1024/iterations:40/manual_time", "real_time": 12.5, "time_unit": "us",
     "tokens": 1024, "kv_heads": 40, "rank": 64, "kv_dims": 5120, "bytes": 20971520},
    {"name": "kv_classify/llama-3-8b/m1024/iterations:40/manual_time", "real_time": 30000, "time_unit": "ns",
     "tokens": 1024, "seqs": 1, "hi_rows": 512, "kv_heads": 8, "head_dim": 128, "tail_dims": 896}]})");
  RawProfile p;
  RawSource src;
  read_raw_benchmark_file(f.path(), p, src);
  REQUIRE(p.samples.size() == 2);
  CHECK(src.used == 2);
  const Sample& a = p.samples[0];
  CHECK(a.group == "kv_append");
  CHECK(a.time_us == 12.5);
  CHECK(a.bytes == 2.0 * 2 * 1024 * 5120);  // each row element read once and written once, bf16
  CHECK(a.flops == 1024.0 * 40);            // the work items: (token, KV head) pairs
  CHECK(a.where.find("kv_append/llama-2-13b/r64/m1024") != std::string::npos);
  const Sample& c = p.samples[1];
  CHECK(c.group == "kv_classify");
  CHECK(c.time_us == doctest::Approx(30));
  // Per row: the dropped dims read (2 bytes each), four radix passes over key + value, class + slot written.
  CHECK(c.bytes == 1024.0 * (2 * 896 + 4 * 2 * 8 + 2 * 4));
  CHECK(c.flops == 2.0 * 1024 * 896);
  CHECK_FALSE(c.attn.has_value());

  const std::string no_dims = error_of(
      R"({"benchmarks": [{"name": "kv_append/llama-3-8b/r128/m16/iterations:40/manual_time", "real_time": 3.1,
          "time_unit": "us", "tokens": 16, "kv_heads": 8}]})");
  CHECK(no_dims.find("kv_append/llama-3-8b/r128/m16") != std::string::npos);
  CHECK(no_dims.find("missing counter 'kv_dims'") != std::string::npos);
  const std::string no_tail = error_of(
      R"({"benchmarks": [{"name": "kv_classify/llama-3-8b/m16/iterations:40/manual_time", "real_time": 9.0,
          "time_unit": "us", "tokens": 16, "seqs": 1}]})");
  CHECK(no_tail.find("kv_classify/llama-3-8b/m16") != std::string::npos);
  CHECK(no_tail.find("missing counter 'tail_dims'") != std::string::npos);
}

TEST_CASE("fit: decode cases carry their staged bytes, rows padded to the CUDA-core kernel's 32 / 64 / 128 widths") {
  // 2 KV heads, 4 sequences of 100 cached keys: uniform rank 96 without classes, then rank 64
  // with half the keys at lo rank 16 (a 32-wide stage).
  test::TempFile f("attention.json", R"({"benchmarks": [
    {"name": "attn_decode/x/b4/ctx100/uniform/r96/lo0/balanced/iterations:9/manual_time", "real_time": 20.0,
     "time_unit": "us", "bytes": 1e6, "flops": 1e6, "num_seqs": 4, "tokens": 4, "ctx_mean": 100, "ctx_max": 100,
     "ctx_cv": 0, "rank_qk": 96, "rank_v": 96, "rank_qk_lo": 96, "rank_v_lo": 96, "lo_fraction": 0, "group": 1,
     "q_heads": 2, "kv_heads": 2, "head_dim": 128, "balanced": 1},
    {"name": "attn_decode/x/b4/ctx100/uniform/r64/lo50/balanced/iterations:9/manual_time", "real_time": 20.0,
     "time_unit": "us", "bytes": 1e6, "flops": 1e6, "num_seqs": 4, "tokens": 4, "ctx_mean": 100, "ctx_max": 100,
     "ctx_cv": 0, "rank_qk": 64, "rank_v": 64, "rank_qk_lo": 16, "rank_v_lo": 16, "lo_fraction": 0.5, "group": 1,
     "q_heads": 2, "kv_heads": 2, "head_dim": 128, "balanced": 1}]})");
  RawProfile p;
  RawSource src;
  // Without the GPU's SM count the plan's units are unknown: read, but refused by a fit that prices
  // them, naming the file; a fit without the term takes them.
  read_raw_benchmark_file(f.path(), p, src);
  REQUIRE(p.samples.size() == 2);
  CHECK(p.samples[0].attn->units == -1);
  try {
    (void)fit_profile(p, {.decode_units = true});
    FAIL("no error");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find(f.path()) != std::string::npos);
    CHECK(std::string(e.what()).find("SM count") != std::string::npos);
  }
  CHECK(fit_profile(p).find("attn_decode")->us_per_unit == 0);
  p = RawProfile{};
  p.decode_plan = costmodel::cuda_core_decode_plan(132);
  read_raw_benchmark_file(f.path(), p, src);
  REQUIRE(p.samples.size() == 2);
  REQUIRE(p.samples[0].attn);
  // 404 keys (400 cached + one new per sequence), 2 heads x (K + V) rows of 128 elements, 2 bytes.
  CHECK(p.samples[0].attn->stage_bytes == doctest::Approx(404.0 * 2 * 2 * 128 * 2));
  // hi: 200 cached + 4 new keys at 64 wide; lo: 200 keys at 32 wide.
  CHECK(p.samples[1].attn->stage_bytes == doctest::Approx((204.0 * 2 * 2 * 64 + 200.0 * 2 * 2 * 32) * 2));
  CHECK(OpQuery::of(p.samples[1]).stage_bytes == p.samples[1].attn->stage_bytes);
  // 4 x 101 keys x 2 heads x 384 B (rank 96) = 303 KiB over 132 x 4 x 4 slots: units of at least
  // 32 KiB, so a (sequence, head) of 37.9 KiB is cut in 2 chunks of 51 keys, 64 as whole tiles:
  // ceil(101 / 64) = 2 units. With classes the hi class keeps 51 keys and the lo 50 (half of the
  // 100 cached), under 32 KiB each: one unit each per head.
  CHECK(p.samples[0].attn->units == 4 * 2 * 2);
  CHECK(p.samples[1].attn->units == 4 * 2 * 2);
  CHECK(OpQuery::of(p.samples[1]).units == p.samples[1].attn->units);
  CHECK(p.samples[0].attn->units_exact == -1);  // no `units` counter in this file
}

TEST_CASE("fit: the plan's units estimated for the committed decode cases, against the benchmarks' exact count") {
  for (const std::string folder :
       {"configs/profiles/raw/h100-1gpu-20261128-k2", "configs/profiles/raw/h200-1gpu-20261128-k2",
        "configs/profiles/raw/h200-1gpu-20261203-attn-decode"}) {
    CAPTURE(folder);
    const RawProfile r = read_raw_profiles({test::source_path(folder)});
    REQUIRE(r.decode_plan);
    CHECK(r.decode_plan->num_sms == 132);  // H100 SXM and H200: provenance.json gpus[0].sms
    std::vector<double> errors;
    int uniform = 0, uniform_exact = 0;
    for (const Sample& s : r.samples) {
      if (s.group != "attn_decode") continue;
      REQUIRE(s.attn->units_exact > 0);
      if (s.attn->balanced == 0) {  // the naive plan: one unit per (sequence, KV head, class), exact
        CHECK(s.attn->units == s.attn->units_exact);
        continue;
      }
      errors.push_back(std::abs(s.attn->units - s.attn->units_exact) / s.attn->units_exact);
      if (s.attn->ctx_cv == 0) ++uniform, uniform_exact += s.attn->units == s.attn->units_exact;
    }
    REQUIRE(errors.size() > 100);
    CHECK(uniform > 100);
    CHECK(uniform_exact == uniform);  // equal sequences: exactly the planner's count
    std::sort(errors.begin(), errors.end());
    const double median = errors[errors.size() / 2], p90 = errors[errors.size() * 9 / 10];
    MESSAGE(folder << ": estimated units vs exact, median " << median << ", P90 " << p90 << ", worst " << errors.back()
                   << " over " << errors.size() << " balanced cases");
    CHECK(median < 0.01);
    CHECK(p90 < 0.15);
    CHECK(errors.back() < 0.35);
  }
}

TEST_CASE("fit: the committed H200 raw profile fits, with finite held-out errors") {
  const std::string raw = "configs/profiles/raw/h200-2gpu-20261127-";
  const RawProfile r = read_raw_profiles(
      {test::source_path(raw + "ops"), test::source_path(raw + "collectives"), test::source_path(raw + "ulysses")});
  CHECK(r.gpu_name == "NVIDIA H200");
  CHECK(r.peak_tflops > 700);
  const FittedProfile p = fit_profile(r);
  for (const char* op : {"gemm/qkv_proj/cublaslt", "gemm/out_proj/cublaslt", "all_to_all/g2", "all_reduce/g2",
                         "rope_rotate/rotate", "ulysses/pack/sp2", "norm/rmsnorm"}) {
    CAPTURE(op);
    const OpFit* f = p.find(op);
    REQUIRE(f != nullptr);
    REQUIRE(f->held_out.median_ape_pct);
    CHECK(std::isfinite(*f->held_out.median_ape_pct));
    CHECK(std::isfinite(*f->held_out.p90_ape_pct));
  }
  // A measured point: qkv_proj, Llama-2-13B tp1 r128, 4096 tokens, cuBLASLt, 869.9 us.
  const Prediction q = predict(*p.find("gemm/qkv_proj/cublaslt"), OpQuery::gemm(4096, 15360, 5120));
  CHECK_FALSE(q.extrapolated);
  CHECK(std::abs(q.time_us - 869.86) / 869.86 < 0.03);
  CHECK(predict(*p.find("gemm/qkv_proj/cublaslt"), OpQuery::gemm(65536, 15360, 5120)).extrapolated);

  // The profile file round-trips.
  const std::string path =
      (std::filesystem::temp_directory_path() / ("fdcsim_fit_" + std::to_string(::getpid()) + ".json")).string();
  write_profile(p, "fdcsim fit (test)", path);
  const FittedProfile back = read_profile(path);
  std::filesystem::remove(path);
  CHECK(back.gpu == p.gpu);
  REQUIRE(back.ops.size() == p.ops.size());
  const OpQuery a2a{8.0 * (1 << 20), 0, 0, 0, 0};
  CHECK(predict(back.ops.at("all_to_all/g2"), a2a).time_us ==
        doctest::Approx(predict(p.ops.at("all_to_all/g2"), a2a).time_us));
  CHECK(*back.ops.at("all_to_all/g2").held_out.p90_ape_pct ==
        doctest::Approx(*p.ops.at("all_to_all/g2").held_out.p90_ape_pct));
  // The decode law keeps its staged-bytes term through the file.
  OpFit dec;
  dec.op = "attn_decode";
  dec.form = FitForm::kAttentionLinear;
  dec.alpha_us = 5, dec.us_per_byte = 1e-6, dec.us_per_stage_byte = 2e-7, dec.us_per_seq = 0.5;
  FittedProfile with_dec = p;
  with_dec.ops["attn_decode"] = dec;
  write_profile(with_dec, "fdcsim fit (test)", path);
  const FittedProfile back2 = read_profile(path);
  std::filesystem::remove(path);
  OpQuery dq{1e6, 0, 0, 0, 0};
  dq.seqs = 4, dq.keys_mean = 100, dq.keys_max = 100, dq.stage_bytes = 3e6;
  CHECK(predict(back2.ops.at("attn_decode"), dq).time_us == doctest::Approx(5 + 1 + 0.6 + 2));
  CHECK(back2.ops.at("attn_decode").us_per_unit == 0);  // fitted without the units: none, and no plan
  CHECK_FALSE(back2.ops.at("attn_decode").decode_plan);
  // With the plan's units: the per-unit term and the plan constants it was estimated with.
  dec.us_per_unit = 0.01, dec.decode_plan = costmodel::DecodePlanConstants{132, 4, 4, 32, 32768};
  with_dec.ops["attn_decode"] = dec;
  write_profile(with_dec, "fdcsim fit (test)", path);
  const FittedProfile back3 = read_profile(path);
  std::filesystem::remove(path);
  REQUIRE(back3.ops.at("attn_decode").decode_plan);
  CHECK(*back3.ops.at("attn_decode").decode_plan == *dec.decode_plan);
  dq.units = 100;
  CHECK(predict(back3.ops.at("attn_decode"), dq).time_us == doctest::Approx(5 + 1 + 0.6 + 2 + 1));
  // A per-unit term without its plan constants cannot be priced: refused, naming the op.
  Json j = profile_to_json(with_dec, "test");
  j["ops"]["attn_decode"].erase("decode_plan");
  try {
    (void)profile_from_json(j, "p.json");
    FAIL("no error");
  } catch (const InputError& e) {
    CHECK(std::string(e.what()).find("p.json: ops.attn_decode") != std::string::npos);
    CHECK(std::string(e.what()).find("decode_plan") != std::string::npos);
  }
}

TEST_CASE("fit --decode-units: the decode law prices the plan's units and keeps the plan constants") {
  const RawProfile r = read_raw_profiles({test::source_path("configs/profiles/raw/h200-1gpu-20261128-k2")});
  const FittedProfile with = fit_profile(r, {.decode_units = true}), without = fit_profile(r);
  const OpFit& w = with.ops.at("attn_decode");
  REQUIRE(w.decode_plan);
  CHECK(w.decode_plan->num_sms == 132);
  CHECK(w.us_per_unit > 0);
  CHECK_FALSE(without.ops.at("attn_decode").decode_plan);
  CHECK(without.ops.at("attn_decode").us_per_unit == 0);
  // Held out (5-fold) the units lower the error: 5.4% / 14.2% -> 4.3% / 11.2% (median / P90).
  CHECK(*w.held_out.median_ape_pct < *without.ops.at("attn_decode").held_out.median_ape_pct - 0.5);
  CHECK(*w.held_out.p90_ape_pct < *without.ops.at("attn_decode").held_out.p90_ape_pct - 2.0);
  // Prefill has no units: its law is the same either way.
  CHECK(with.ops.at("attn_prefill").held_out.median_ape_pct == without.ops.at("attn_prefill").held_out.median_ape_pct);
}

TEST_CASE("fit: a fitted profile with an unknown form is refused, naming the file and the op") {
  test::TempFile f("profile.json", R"({"format": "fdcsim-fitted-profile/1", "gpu": "X", "sources": [],
    "peaks": {"TFLOP/s": 1, "GB/s": 1}, "ops": {"residual": {"form": "magic"}}})");
  try {
    read_profile(f.path());
    FAIL("expected an InputError");
  } catch (const InputError& e) {
    const std::string w = e.what();
    CHECK(w.find(f.path()) != std::string::npos);
    CHECK(w.find("ops.residual") != std::string::npos);
  }
}

namespace {

// attention.json with one decode case of 4 sequences of 100 cached tokens over 2 KV heads: `head`
// continues its name after "attn_decode/x/b4/ctx100/uniform/", `counters` its rank and class counters
// (from `"rank_qk"` on, each after a comma) and any more.
std::string decode_case_json(const std::string& head, const std::string& counters) {
  return R"({"benchmarks": [
    {"name": "attn_decode/x/b4/ctx100/uniform/)" +
         head + R"(/iterations:9/manual_time", "real_time": 20.0,
     "time_unit": "us", "bytes": 1e6, "flops": 1e6, "num_seqs": 4, "tokens": 4, "ctx_mean": 100, "ctx_max": 100,
     "ctx_cv": 0, "group": 1, "q_heads": 2, "kv_heads": 2, "head_dim": 128, "balanced": 1, )" +
         counters + "}]}";
}

}  // namespace

TEST_CASE("fit: decode cases timed on the tensor cores (kernel 2) are their own op; a bad kernel counter is refused") {
  auto entry = [](const std::string& kernel) {
    return decode_case_json(
        "r96/lo0/balanced",
        R"("rank_qk": 96, "rank_v": 96, "rank_qk_lo": 96, "rank_v_lo": 96, "lo_fraction": 0)" + kernel);
  };
  RawSource src;
  // 404 keys x 2 heads x (K + V) rows x 2 bytes, rows staged at `width`.
  auto staged = [](int width) { return 404.0 * 2 * 2 * width * 2; };
  struct Case {
    std::string counters;
    const char* group;
    bool one_width_era;  // read as measured since the kernels of one width (provenance date)
    int width;
  };
  for (const Case& c : {// Rank 96 alone on the tensor cores runs the kernel of width 96: rows staged at 96.
                        Case{R"(, "kernel": 2)", "attn_decode/tensor_cores", true, 96},
                        Case{R"(, "kernel": 2, "mma_width": 96)", "attn_decode/tensor_cores", true, 96},
                        // The case says it ran the general kernel, or was measured before the one-width kernels.
                        Case{R"(, "kernel": 2, "mma_width": 0)", "attn_decode/tensor_cores", true, 128},
                        Case{R"(, "kernel": 2)", "attn_decode/tensor_cores", false, 128},
                        // The CUDA-core kernel stages rank 96 at width 128.
                        Case{R"(, "kernel": 1)", "attn_decode", true, 128}, Case{"", "attn_decode", true, 128}}) {
    CAPTURE(c.counters);
    CAPTURE(c.one_width_era);
    test::TempFile f("attention.json", entry(c.counters));
    RawProfile p;
    p.mma_one_width = c.one_width_era;
    read_raw_benchmark_file(f.path(), p, src);
    REQUIRE(p.samples.size() == 1);
    CHECK(p.samples[0].group == c.group);
    CHECK(p.samples[0].attn->stage_bytes == doctest::Approx(staged(c.width)));
  }
  for (const char* bad : {R"(, "kernel": 3)", R"(, "kernel": 2, "mma_width": 64)"}) {
    CAPTURE(bad);
    const std::string w = error_of(entry(bad));
    CHECK((w.find("'kernel'") != std::string::npos || w.find("'mma_width'") != std::string::npos));
    CHECK(w.find("attn_decode/x/b4/ctx100/uniform/r96") != std::string::npos);
  }
}

TEST_CASE("fit: a raw folder measured before the tensor-core kernels of one width is read with the general one") {
  // The committed H200 folder of 2026-12-04 evening ran its rank-96 tensor-core cases on the general
  // kernel (rows staged at 128); the folder of 2026-12-05 on the kernel of width 96.
  for (const auto& [folder, width] :
       {std::pair{"h200-1gpu-20261204-attn-decode-auto", 128}, std::pair{"h200-1gpu-20261205-attn-decode-r96", 96}}) {
    CAPTURE(folder);
    const RawProfile p = read_raw_profiles({test::source_path(std::string("configs/profiles/raw/") + folder)});
    int seen = 0;
    for (const Sample& s : p.samples) {
      if (s.group != "attn_decode/tensor_cores" || s.case_name.find("/uniform/r96/lo0/balanced") == std::string::npos)
        continue;
      ++seen;
      const AttnFeatures& a = *s.attn;
      const double keys = a.ctx_mean * a.num_seqs + a.num_seqs;
      CHECK(a.stage_bytes == doctest::Approx(keys * a.kv_heads * 2 * width * 2));
    }
    CHECK(seen > 0);
  }
}

TEST_CASE("fit: token-class decode cases on shared pages are their own op, with their lo ranks' share") {
  auto entry = [](const std::string& extra) {
    return decode_case_json("mixed/lo70/shared/balanced",
                            R"("rank_qk": 80, "rank_v": 80, "rank_qk_lo": 40, "rank_v_lo": 40, "lo_fraction": 0.7,
                               "ranks_mixed": 1, "kernel": 1)" +
                                extra);
  };
  RawSource src;
  test::TempFile f("attention.json",
                   entry(R"(, "block_size": 16, "slots_hi": 5, "slots_lo": 11, "lo_rank_share": 0.5)"));
  RawProfile p;
  read_raw_benchmark_file(f.path(), p, src);
  REQUIRE(p.samples.size() == 1);
  const Sample& s = p.samples[0];
  CHECK(s.group == "attn_decode/shared_pages");
  CHECK(s.attn->slots_hi == 5);
  CHECK(s.attn->slots_lo == 11);
  // The mixed table's first two heads: r_qk 32, 112 and r_v 64, 112 (bench/ops/attention_grid.h),
  // lo at half of each.
  const auto r = attention_case_ranks(*s.attn, true);
  REQUIRE(r.size() == 2);
  CHECK(r[0] == std::array<int, 4>{32, 64, 16, 32});
  CHECK(r[1] == std::array<int, 4>{112, 112, 56, 56});
  // Staged: lo = round(0.7 x 100) = 70 keys a sequence, hi 31 (30 + the new one); hi rows at
  // widths 64 and 128, lo rows at 32 and 64; K and V, 2 bytes.
  CHECK(s.attn->stage_bytes == doctest::Approx(2.0 * 2 * 4 * (31.0 * (64 + 128) + 70.0 * (32 + 64))));
  // Raw files before the share kept a quarter (a multiple of 8, at least 16).
  test::TempFile old("attention.json", entry(""));
  RawProfile q;
  read_raw_benchmark_file(old.path(), q, src);
  REQUIRE(q.samples.size() == 1);
  CHECK(q.samples[0].group == "attn_decode");
  CHECK(attention_case_ranks(*q.samples[0].attn, true)[0] == std::array<int, 4>{32, 64, 16, 16});
  CHECK(attention_case_ranks(*q.samples[0].attn, true)[1] == std::array<int, 4>{112, 112, 24, 24});
  // Slots without a lo class, or a zero slot count, are refused naming the case and the counters.
  for (const char* bad : {R"(, "slots_hi": 5, "slots_lo": 0)", R"(, "slots_hi": 5)", R"(, "lo_rank_share": 0)"}) {
    CAPTURE(bad);
    const std::string w = error_of(entry(bad));
    CHECK(w.find("attn_decode/x/b4/ctx100/uniform/mixed/lo70/shared") != std::string::npos);
    CHECK((w.find("'slots_") != std::string::npos || w.find("'lo_rank_share'") != std::string::npos));
  }
}

TEST_CASE("fit: decode cases measured on a policy's rank table read every head's ranks") {
  // Two KV heads: (48, 64) with lo (24, 32), and (32, 32) with lo (16, 16); 70% of the cached keys
  // lo, on shared pages.
  const std::string heads =
      R"("rank_table": 1, "h0_rk": 48, "h0_rv": 64, "h0_rk_lo": 24, "h0_rv_lo": 32,
         "h1_rk": 32, "h1_rv": 32, "h1_rk_lo": 16, "h1_rv_lo": 16)";
  auto entry = [&](const std::string& table, const std::string& means) {
    return decode_case_json("table-p-l0/lo70/shared/balanced",
                            means + R"(, "lo_fraction": 0.7, "kernel": 1, "ranks_mixed": 0, "max_rank": 64,
                                "block_size": 16, "slots_hi": 5, "slots_lo": 11, )" +
                                table);
  };
  const std::string means = R"("rank_qk": 40, "rank_v": 48, "rank_qk_lo": 20, "rank_v_lo": 24)";
  RawSource src;
  test::TempFile f("attention.json", entry(heads, means));
  RawProfile p;
  read_raw_benchmark_file(f.path(), p, src);
  REQUIRE(p.samples.size() == 1);
  const Sample& s = p.samples[0];
  CHECK(s.group == "attn_decode/shared_pages");
  REQUIRE(s.attn->head_ranks.size() == 2);
  CHECK(attention_case_ranks(*s.attn, false)[0] == std::array<int, 4>{48, 64, 24, 32});
  CHECK(attention_case_ranks(*s.attn, false)[1] == std::array<int, 4>{32, 32, 16, 16});
  // Staged from the table: hi 31 keys a sequence at widths 64 and 32, lo 70 at 32 and 32.
  CHECK(s.attn->stage_bytes == doctest::Approx(2.0 * 2 * 4 * (31.0 * (64 + 32) + 70.0 * (32 + 32))));
  // A missing head, a rank above head_dim, lo above hi, or means that disagree with the table are
  // refused, naming the case and the counter.
  const std::string no_h1 = R"("rank_table": 1, "h0_rk": 48, "h0_rv": 64, "h0_rk_lo": 24, "h0_rv_lo": 32)";
  for (const auto& [bad, says] :
       {std::pair{entry(no_h1, means), std::string("'h1_rk'")},
        std::pair{entry(R"("rank_table": 1, "h0_rk": 256, "h0_rv": 64, "h0_rk_lo": 24, "h0_rv_lo": 32,
                      "h1_rk": 32, "h1_rv": 32, "h1_rk_lo": 16, "h1_rv_lo": 16)",
                        means),
                  std::string("'h0_rk' must be a whole rank")},
        std::pair{entry(R"("rank_table": 1, "h0_rk": 48, "h0_rv": 64, "h0_rk_lo": 56, "h0_rv_lo": 32,
                      "h1_rk": 32, "h1_rv": 32, "h1_rk_lo": 16, "h1_rv_lo": 16)",
                        means),
                  std::string("more dims for lo tokens")},
        std::pair{entry(heads, R"("rank_qk": 64, "rank_v": 48, "rank_qk_lo": 20, "rank_v_lo": 24)"),
                  std::string("mean rk is 40 but its counter says 64")}}) {
    CAPTURE(says);
    const std::string w = error_of(bad);
    CHECK(w.find("table-p-l0/lo70/shared") != std::string::npos);
    CHECK(w.find(says) != std::string::npos);
  }
}

TEST_CASE("fit: decode fitted on balanced and naive cases reports its held-out error on the balanced ones too") {
  const RawProfile r =
      read_raw_profiles({test::source_path("configs/profiles/raw/h200-1gpu-20261204-attn-decode-auto")});
  const FittedProfile p = fit_profile(r);
  const OpFit& tc = p.ops.at("attn_decode/tensor_cores");
  REQUIRE(tc.held_out_balanced);
  // The balanced cases among the op's held-out cases, by name, and their errors recomputed from the
  // per-case predictions.
  std::vector<double> ape;
  for (size_t i = 0; i < tc.held_out_cases.size(); ++i)
    if (tc.held_out_cases[i].first.find("/balanced/") != std::string::npos)
      ape.push_back(std::abs(tc.held_out.predicted[i] / tc.held_out_cases[i].second - 1) * 100);
  REQUIRE(!ape.empty());
  REQUIRE(ape.size() < tc.held_out_cases.size());
  CHECK(tc.held_out_balanced->points == static_cast<int>(ape.size()));
  CHECK(*tc.held_out_balanced->median_ape_pct == doctest::Approx(percentile(ape, 0.5)));
  CHECK(*tc.held_out_balanced->p90_ape_pct == doctest::Approx(percentile(ape, 0.9)));
  CHECK(tc.held_out_balanced->method.find("balanced") != std::string::npos);
  // Ops without naive cases carry none; the field survives the profile file.
  for (const auto& [name, f] : p.ops)
    if (name.rfind("attn_decode", 0) != 0) CHECK_FALSE(f.held_out_balanced);
  const OpFit back = test::written_and_read(tc);
  REQUIRE(back.held_out_balanced);
  CHECK(back.held_out_balanced->points == tc.held_out_balanced->points);
  CHECK(*back.held_out_balanced->p90_ape_pct == doctest::Approx(*tc.held_out_balanced->p90_ape_pct));
  OpFit none = tc;
  none.held_out_balanced.reset();
  CHECK_FALSE(test::written_and_read(none).held_out_balanced);
}

TEST_CASE("fit: a raw folder reads the same stored plain or gzip-compressed, and not both at once") {
  namespace fs = std::filesystem;
  const fs::path committed = test::source_path("configs/profiles/raw/h100-1gpu-20261128-kv");
  REQUIRE(fs::exists(committed / "ops.json.gz"));  // the committed folders are stored compressed
  const RawProfile gz = read_raw_profiles({committed.string()});
  REQUIRE(!gz.samples.empty());

  const fs::path plain = fs::temp_directory_path() / ("fdcsim_raw_plain_" + std::to_string(::getpid()));
  fs::remove_all(plain);
  fs::create_directories(plain);
  fs::copy_file(committed / "provenance.json", plain / "provenance.json");
  std::ofstream(plain / "ops.json") << read_text_file((committed / "ops.json.gz").string());
  const RawProfile p = read_raw_profiles({plain.string()});
  REQUIRE(p.samples.size() == gz.samples.size());
  for (size_t i = 0; i < p.samples.size(); ++i) {
    CAPTURE(i);
    CHECK(p.samples[i].group == gz.samples[i].group);
    CHECK(p.samples[i].case_name == gz.samples[i].case_name);
    CHECK(p.samples[i].time_us == gz.samples[i].time_us);
  }

  fs::copy_file(committed / "ops.json.gz", plain / "ops.json.gz");
  std::string msg;
  try {
    read_raw_profiles({plain.string()});
  } catch (const InputError& e) {
    msg = e.what();
  }
  CHECK(msg.find("one benchmark file stored plain and compressed") != std::string::npos);
  fs::remove_all(plain);
}

}  // namespace fdc::fit
