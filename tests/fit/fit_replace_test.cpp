// Re-measured cases: a case (the same benchmark name, run options aside) in more than one raw
// folder is taken from the folder given last, its earlier samples dropped and counted as replaced;
// the peaks likewise, naming their folder; the order of the folders picks the winner.
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "core/error.h"
#include "costmodel/fit/op_fit.h"
#include "costmodel/fit/profile_fit.h"
#include "costmodel/fit/raw_reader.h"
#include "tests/fit/profile_round_trip.h"

namespace fdc::fit {
namespace {

namespace fs = std::filesystem;

// A raw folder in the system temp directory (provenance.json + ops.json), removed with the object.
class RawFolder {
 public:
  explicit RawFolder(const std::vector<std::string>& entries) {
    static std::atomic<int> counter{0};
    path_ = (fs::temp_directory_path() /
             ("fdcsim_fit_replace_" + std::to_string(::getpid()) + "_" + std::to_string(counter++)))
                .string();
    fs::create_directories(path_);
    std::ofstream(fs::path(path_) / "provenance.json") << R"({"gpus": [{"name": "NVIDIA H100 80GB HBM3"}]})";
    std::string s = R"({"benchmarks": [)";
    for (size_t i = 0; i < entries.size(); ++i) s += (i ? ",\n" : "") + entries[i];
    std::ofstream(fs::path(path_) / "ops.json") << s << "]}";
  }
  ~RawFolder() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  RawFolder(const RawFolder&) = delete;
  RawFolder& operator=(const RawFolder&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// out_proj of Llama-2-13B (n = k = 5120) at m tokens, `iterations` in the name as the run's budget set them.
std::string gemm(int m, double time_us, int iterations) {
  std::ostringstream os;
  os << R"({"name": "gemm/out_proj/llama-2-13b/tp1/r64/m)" << m << "/cublaslt/iterations:" << iterations
     << R"(/manual_time", "real_time": )" << time_us << R"(, "time_unit": "us", "m": )" << m
     << R"(, "n": 5120, "k": 5120})";
  return os.str();
}

std::string skipped_gemm(int m) {
  return R"({"name": "gemm/out_proj/llama-2-13b/tp1/r64/m)" + std::to_string(m) +
         R"(/cublaslt/iterations:5/manual_time", "error_occurred": true, "error_message": "skipped"})";
}

std::vector<std::string> with_peaks(std::vector<std::string> entries, double tflops, double gbps) {
  entries.push_back(R"({"name": "peak/gemm_bf16/m8192n8192k8192/iterations:19/manual_time", "real_time": 1400,)"
                    R"( "time_unit": "us", "peak_TFLOP/s": )" +
                    std::to_string(tflops) + "}");
  entries.push_back(R"({"name": "peak/device_copy/1GiB/iterations:35/manual_time", "real_time": 700,)"
                    R"( "time_unit": "us", "peak_GB/s": )" +
                    std::to_string(gbps) + "}");
  return entries;
}

// The samples of the m-token case.
std::vector<const Sample*> samples_at(const RawProfile& r, double m) {
  std::vector<const Sample*> found;
  for (const Sample& s : r.samples)
    if (s.m == m) found.push_back(&s);
  return found;
}

}  // namespace

TEST_CASE("fit: a case measured again in a later raw folder replaces the earlier one; the order picks") {
  // The old folder: four GEMM sizes and the peaks. The new one re-measures m = 64 (with another
  // iteration count: the same case), its peaks, and skips m = 256, which replaces nothing.
  const RawFolder old_folder(
      with_peaks({gemm(16, 10.0, 250), gemm(64, 20.0, 250), gemm(256, 60.0, 100), gemm(1024, 200.0, 40)}, 700, 3000));
  const RawFolder new_folder(with_peaks({gemm(64, 25.0, 120), skipped_gemm(256)}, 750, 3100));

  const RawProfile r = read_raw_profiles({old_folder.path(), new_folder.path()});
  REQUIRE(r.sources.size() == 2);
  const auto m64 = samples_at(r, 64);
  REQUIRE(m64.size() == 1);
  CHECK(m64[0]->time_us == 25.0);
  CHECK(m64[0]->where.find(new_folder.path()) != std::string::npos);
  CHECK(m64[0]->case_name == "gemm/out_proj/llama-2-13b/tp1/r64/m64/cublaslt");
  REQUIRE(samples_at(r, 256).size() == 1);  // skipped in the new folder: the old measurement stays
  CHECK(samples_at(r, 256)[0]->time_us == 60.0);
  CHECK(r.samples.size() == 4);
  // The old folder: 6 cases measured (4 GEMMs and 2 peaks), 3 replaced (m = 64 and the peaks).
  CHECK(r.sources[0].used == 3);
  CHECK(r.sources[0].replaced == 3);
  CHECK(r.sources[0].excluded == 0);
  CHECK(r.sources[1].used == 3);
  CHECK(r.sources[1].replaced == 0);
  CHECK(r.sources[1].excluded == 1);
  CHECK(r.peak_tflops == 750);
  CHECK(r.peak_gbps == 3100);
  CHECK(r.peaks_source == "peak/gemm_bf16 and peak/device_copy of " + new_folder.path());

  // The fitted profile's sources count the replaced cases, only where there are some.
  const FittedProfile p = fit_profile(r);
  REQUIRE(p.sources.size() == 2);
  CHECK(p.sources[0].at("cases_used") == 3);
  CHECK(p.sources[0].at("cases_replaced") == 3);
  CHECK_FALSE(p.sources[1].contains("cases_replaced"));
  CHECK(p.peaks.tflops == 750);
  CHECK(p.peaks_source == r.peaks_source);
  REQUIRE(p.find("gemm/out_proj/cublaslt") != nullptr);

  // Swapped, the old folder is the later one: its m = 64 and peaks stand, the new folder's are replaced.
  const RawProfile s = read_raw_profiles({new_folder.path(), old_folder.path()});
  const auto m64s = samples_at(s, 64);
  REQUIRE(m64s.size() == 1);
  CHECK(m64s[0]->time_us == 20.0);
  CHECK(m64s[0]->where.find(old_folder.path()) != std::string::npos);
  CHECK(s.samples.size() == 4);
  CHECK(s.sources[0].used == 0);
  CHECK(s.sources[0].replaced == 3);
  CHECK(s.sources[0].excluded == 1);
  CHECK(s.sources[1].used == 6);
  CHECK(s.sources[1].replaced == 0);
  CHECK(s.peak_tflops == 700);
  CHECK(s.peak_gbps == 3000);
  CHECK(s.peaks_source == "peak/gemm_bf16 and peak/device_copy of " + old_folder.path());
  const FittedProfile q = fit_profile(s);
  CHECK(q.sources[0].at("cases_replaced") == 3);
  CHECK_FALSE(q.sources[1].contains("cases_replaced"));
}

TEST_CASE("fit: without overlap nothing is replaced; the same case twice in one folder keeps both") {
  const RawFolder a(with_peaks({gemm(16, 10.0, 250), gemm(64, 20.0, 250)}, 700, 3000));
  const RawFolder b({gemm(256, 60.0, 100), gemm(256, 61.0, 100), gemm(1024, 200.0, 40)});
  const RawProfile r = read_raw_profiles({a.path(), b.path()});
  CHECK(r.samples.size() == 5);
  CHECK(samples_at(r, 256).size() == 2);
  CHECK(r.sources[0].used == 4);
  CHECK(r.sources[0].replaced == 0);
  CHECK(r.sources[1].used == 3);
  CHECK(r.sources[1].replaced == 0);
  CHECK(r.peaks_source == "peak/gemm_bf16 and peak/device_copy");  // one folder had peaks: as before
  for (const Json& src : fit_profile(r).sources) CHECK_FALSE(src.contains("cases_replaced"));

  // A later folder measuring that case once replaces both earlier samples: two cases replaced.
  const RawFolder c({gemm(256, 55.0, 100)});
  const RawProfile t = read_raw_profiles({a.path(), b.path(), c.path()});
  REQUIRE(samples_at(t, 256).size() == 1);
  CHECK(samples_at(t, 256)[0]->time_us == 55.0);
  CHECK(t.sources[1].used == 1);
  CHECK(t.sources[1].replaced == 2);
  CHECK(t.sources[2].used == 1);
}

namespace {
// residual/d<width>/m<rows>: an element-wise op of its own group ("residual").
std::string residual(int width, int rows, double time_us) {
  std::ostringstream os;
  os << R"({"name": "residual/d)" << width << "/m" << rows << R"(/iterations:250/manual_time", "real_time": )"
     << time_us << R"(, "time_unit": "us", "count": )" << width * rows << "}";
  return os.str();
}
int residual_samples(const RawProfile& r) {
  int n = 0;
  for (const Sample& s : r.samples) n += s.group == "residual";
  return n;
}
}  // namespace

TEST_CASE("fit --whole-ops-from: the folder's ops from it alone, its peaks not taken") {
  // The earlier folder: GEMMs, residual adds at 1, 12 and 64 rows, peaks. The later one, another
  // unit: residual adds at 1 and 64 rows only (12 not measured), its own peaks.
  const RawFolder old_folder(with_peaks({gemm(16, 10.0, 250), gemm(64, 20.0, 250), residual(4096, 1, 3.5),
                                         residual(4096, 12, 4.6), residual(4096, 64, 4.2)},
                                        700, 3000));
  const RawFolder new_folder(with_peaks({residual(4096, 1, 3.1), residual(4096, 64, 3.3)}, 750, 3100));

  // By default only the same cases are replaced: the 12-row case of the other unit stays, and the
  // later peaks win.
  const RawProfile by_case = read_raw_profiles({old_folder.path(), new_folder.path()});
  CHECK(residual_samples(by_case) == 3);
  CHECK(by_case.peak_tflops == 750);

  // Whole ops: every earlier residual case is dropped (counted as replaced), the GEMMs stay, and
  // the earlier peaks stand (the later folder's are counted as not taken).
  const RawProfile whole = read_raw_profiles({old_folder.path(), new_folder.path()}, "", {new_folder.path() + "/"});
  CHECK(residual_samples(whole) == 2);
  for (const Sample& s : whole.samples)
    if (s.group == "residual") CHECK(s.where.find(new_folder.path()) != std::string::npos);
  CHECK(samples_at(whole, 16).size() == 1);
  CHECK(samples_at(whole, 64).size() == 1);
  CHECK(whole.peak_tflops == 700);
  CHECK(whole.peak_gbps == 3000);
  CHECK(whole.sources[0].used == 4);      // two GEMMs and the two peaks
  CHECK(whole.sources[0].replaced == 3);  // the three residual adds
  CHECK(whole.sources[1].used == 2);
  CHECK(whole.sources[1].whole_ops);
  CHECK(whole.sources[1].peaks_not_taken == 2);
  CHECK_FALSE(whole.sources[0].whole_ops);
  const FittedProfile p = fit_profile(whole);
  CHECK(p.sources[1].at("whole_ops") == true);
  CHECK(p.sources[1].at("peak_cases_not_taken") == 2);
  CHECK_FALSE(p.sources[0].contains("whole_ops"));
  CHECK(p.peaks.tflops == 700);

  // A folder not among the inputs is refused, named.
  const RawFolder other({residual(4096, 1, 3.0)});
  try {
    (void)read_raw_profiles({old_folder.path(), new_folder.path()}, "", {other.path()});
    FAIL("expected an input error");
  } catch (const fdc::InputError& e) {
    CHECK(std::string(e.what()).find("--whole-ops-from " + other.path()) != std::string::npos);
    CHECK(std::string(e.what()).find("not one of the raw inputs") != std::string::npos);
  }
}

namespace {
// One run of a case under Google Benchmark's repetitions (fdcsim profile --repetitions N).
std::string repetition(std::string entry, int repetitions, int index, bool failed = false) {
  entry.pop_back();  // the closing brace
  entry += R"(, "run_type": "iteration", "repetitions": )" + std::to_string(repetitions) + R"(, "repetition_index": )" +
           std::to_string(index);
  if (failed) entry += R"(, "error_occurred": true, "error_message": "stopped")";
  return entry + "}";
}
// The aggregate Google Benchmark adds after a repeated case (skipped by the reader).
std::string aggregate(std::string entry, const std::string& which, int repetitions) {
  const auto name_end = entry.find("manual_time\"") + std::string("manual_time").size();
  entry.insert(name_end, "_" + which);
  entry.pop_back();
  return entry + R"(, "run_type": "aggregate", "aggregate_name": ")" + which + R"(", "repetitions": )" +
         std::to_string(repetitions) + "}";
}
}  // namespace

TEST_CASE("fit: a case's repetitions become one sample at their median, with their spread in the profile") {
  // m = 16 three times, interleaved with m = 64 (once) and the aggregates; m = 256 twice with one
  // repetition failed; the peaks three times each.
  std::vector<std::string> e = {
      repetition(gemm(16, 10.0, 250), 3, 0),       gemm(64, 20.0, 250),
      repetition(gemm(16, 30.0, 250), 3, 1),       repetition(gemm(16, 12.0, 250), 3, 2),
      aggregate(gemm(16, 12.0, 250), "median", 3), aggregate(gemm(16, 17.3, 250), "mean", 3),
      repetition(gemm(256, 60.0, 100), 2, 0),      repetition(gemm(256, 90.0, 100), 2, 1, true)};
  const auto peaks = with_peaks({}, 700, 3000);
  for (int r = 0; r < 3; ++r) {
    e.push_back(repetition(peaks[0], 3, r));
    e.push_back(repetition(peaks[1], 3, r));
  }
  // The peaks' repetitions differ: 650, 700, 800 TFLOP/s.
  e[8].replace(e[8].find("700.000000"), 10, "650.000000");
  e[10].replace(e[10].find("700.000000"), 10, "800.000000");
  // Google Benchmark's coefficient of variation of a counter that is 0 in every run: a bare NaN.
  std::string cv = aggregate(gemm(16, 0.1, 250), "cv", 3);
  e.push_back(cv.insert(cv.size() - 1, R"(, "zero_counter": NaN)"));
  const RawFolder f(e);
  const RawProfile r = read_raw_profiles({f.path()});
  REQUIRE(samples_at(r, 16).size() == 1);
  const Sample& s = *samples_at(r, 16)[0];
  CHECK(s.time_us == 12.0);
  CHECK(s.repeats == 3);
  CHECK(s.repeat_spread == doctest::Approx(20.0 / 12.0));
  CHECK(s.where.find("(median of 3 repetitions)") != std::string::npos);
  REQUIRE(samples_at(r, 64).size() == 1);
  CHECK(samples_at(r, 64)[0]->repeats == 1);
  REQUIRE(samples_at(r, 256).size() == 1);  // the failed repetition left out: one run, no spread
  CHECK(samples_at(r, 256)[0]->time_us == 60.0);
  CHECK(samples_at(r, 256)[0]->repeats == 1);
  CHECK(r.samples.size() == 3);
  CHECK(r.sources[0].used == 5);  // three GEMM cases and two peaks
  CHECK(r.peak_tflops == doctest::Approx(700.0));

  const FittedProfile p = fit_profile(r);
  const OpFit& op = p.ops.at("gemm/out_proj/cublaslt");
  REQUIRE(op.repeat_spread);
  CHECK(op.repeat_spread->cases == 1);
  CHECK(op.repeat_spread->repeats == 3);
  CHECK(op.repeat_spread->median_pct == doctest::Approx(100 * 20.0 / 12.0));
  CHECK(op.held_out.points == 3);  // one point per case, whatever its repetitions
  const OpFit back = test::written_and_read(op);
  REQUIRE(back.repeat_spread);
  CHECK(back.repeat_spread->p90_pct == doctest::Approx(op.repeat_spread->p90_pct));
  CHECK(back.repeat_spread->repeats == 3);
  // The multi-GPU cases' own interleaving: each run a plain entry (Google Benchmark's repetitions
  // 1) with the counter fdc_repeats.
  auto collective = [](double us) {
    return R"({"name": "all_reduce/g2/bytes1048576/iterations:500/manual_time", "real_time": )" + std::to_string(us) +
           R"(, "time_unit": "us", "repetitions": 1, "repetition_index": 0, "bytes": 1048576, "gpus": 2,)"
           R"( "errors": 0, "fdc_repeats": 3})";
  };
  const RawFolder comm({collective(14.0), collective(11.0), collective(12.5)});
  const RawProfile rc = read_raw_profiles({comm.path()});
  REQUIRE(rc.samples.size() == 1);
  CHECK(rc.samples[0].time_us == 12.5);
  CHECK(rc.samples[0].repeats == 3);
  CHECK(rc.samples[0].repeat_spread == doctest::Approx(3.0 / 12.5));
  // A case run once has no spread: none in the profile.
  const RawFolder once({gemm(16, 10.0, 250), gemm(64, 20.0, 250)});
  CHECK_FALSE(fit_profile(read_raw_profiles({once.path()})).ops.at("gemm/out_proj/cublaslt").repeat_spread);
}

}  // namespace fdc::fit
