#include "apps/fdcsim/profile_command.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <exception>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "apps/fdcsim/exit_codes.h"
#include "bench/ops/profile_plan.h"
#include "core/error.h"
#include "core/wall_clock.h"
#if FDCSIM_HAVE_CUDA
#include "bench/ops/runner.h"
#endif

namespace fdc::cli {

void add_profile_command(CLI::App& app, ProfileOptions& o) {
  CLI::App* sub =
      app.add_subcommand("profile",
                         "Run the microbenchmarks the cost model needs on this server's GPUs and write a raw profile "
                         "(Google Benchmark JSON + provenance; see docs/profile.md). Needs a CUDA build.");
  sub->add_option("--budget-s", o.budget_s,
                  "Wall-clock budget in seconds (default 600): the grid is cut in priority order to fit, and cases "
                  "not started by then are skipped; plan.json lists what was skipped")
      ->check(CLI::PositiveNumber);
  sub->add_option("--out,-o", o.out_dir,
                  "Output folder (default profile-<UTC date-time>; the repository keeps raw profiles in "
                  "configs/profiles/raw/<gpu>-<n>gpu-<date>/)");
  sub->add_option("--models", o.models, "Models by embedded name or JSON path (default: every embedded model)")
      ->delimiter(',');
  sub->add_option("--tokens", o.tokens,
                  "Token rows per GPU for projections and norms (default 1,16,64,256,1024,4096,16384)")
      ->delimiter(',');
  sub->add_option("--rank-fractions", o.rank_fractions,
                  "FDC kept fractions of head_dim, rounded to multiples of 16 (default 1,0.75,0.5,0.25)")
      ->delimiter(',');
  sub->add_option("--tp", o.tp, "Tensor-parallel degrees for GEMM shards (default 1,2,4,8)")->delimiter(',');
  sub->add_option("--attn-lo-fractions", o.attn_lo_fractions,
                  "Decode attention with token classes: shares of the cached tokens in the lo class, each run on "
                  "shared pages as the engine lays them out; 0 = no classes (default 0,0.4,0.7; match your "
                  "policies' 1 - important_fraction)")
      ->delimiter(',');
  sub->add_option("--attn-prefill-seqs", o.attn_prefill_seqs,
                  "Prefill attention: sequences per batch (default 1,4,8); with --attn-prefill-tokens and "
                  "--attn-prefill-prefix the grid of prefill cases, batches of more than 8192 new tokens left out")
      ->delimiter(',');
  sub->add_option("--attn-prefill-tokens", o.attn_prefill_tokens,
                  "Prefill attention: new tokens per sequence (default 128,512,2048,8192)")
      ->delimiter(',');
  sub->add_option("--attn-prefill-prefix", o.attn_prefill_prefix,
                  "Prefill attention: cached tokens before the new ones, a chunked prompt's earlier chunks (default "
                  "0,1024,4096)")
      ->delimiter(',');
  sub->add_option("--attn-lo-rank-share", o.attn_lo_rank_share,
                  "Share of each head's ranks a lo token keeps in those cases (default 0.5; a policy's "
                  "token_classes.qk_lo_share)")
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option("--attn-policies", o.attn_policies,
                  "FDC policies (embedded names or .json paths) whose per-head rank tables decode attention is also "
                  "measured at, over the decode grid: one table per set of layers keeping the same ranks, on every "
                  "model the policy fits; with token classes also on shared pages at the --attn-lo-fractions "
                  "(default: none; e.g. fdc-table-llama-2-13b,fdc-table-hybrid-llama-2-13b)")
      ->delimiter(',');
  sub->add_option("--gpus", o.gpus, "Use GPUs 0..N-1 for collectives (default: every visible GPU)")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--min-time-s", o.min_time_s, "Minimum measured time per case (default 0.05)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--sweep-max-bytes", o.sweep_max_bytes,
                  "Largest collective size of the bandwidth sweeps (default 1 GiB)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--filter", o.filters,
                  "Run only cases whose name contains this text; a leading '/' also matches the name's start "
                  "(--filter /kv_: the KV cache cases, not gemm/qkv_proj); repeatable: a case runs when it matches "
                  "any (--filter norm/ --filter residual/)")
      ->take_all();
  sub->add_option("--gemm-weights", o.gemm_weights,
                  "cold (default): every launch of a GEMM burst reads another copy of the weights, together at least "
                  "three times the L2, as a forward pass does; hot: one copy, which stays in the L2 when it fits")
      ->check(CLI::IsMember({"cold", "hot"}));
  sub->add_option("--repetitions", o.repetitions,
                  "Run every case this many times (default 1), the single-GPU cases interleaved at random so that "
                  "clock and thermal drift spread over all of them; `fdcsim fit` takes each case's median and "
                  "reports how far its repetitions spread (the measurement's own noise). The budget counts every run")
      ->check(CLI::Range(1, 100));
  sub->add_flag("--dry-run", o.dry_run, "Write plan.json (the grid, estimates, what the budget cuts) and stop");
  sub->add_flag("--quiet,-q", o.quiet, "No console tables; errors still go to stderr");
}

namespace {
std::string default_out_dir() { return fdc::utc_now("profile-%Y%m%d-%H%M%S"); }
}  // namespace

int run_profile(const ProfileOptions& o) {
  [[maybe_unused]] const auto start = std::chrono::steady_clock::now();  // the run's deadline counts from here
  try {
    profile::GridOptions g;
    g.models = o.models;
    if (!o.tokens.empty()) g.tokens = o.tokens;
    if (!o.rank_fractions.empty()) g.rank_fractions = o.rank_fractions;
    if (!o.tp.empty()) g.tp = o.tp;
    if (!o.attn_lo_fractions.empty()) g.attn_lo_fractions = o.attn_lo_fractions;
    if (!o.attn_prefill_seqs.empty()) g.attn_prefill_seqs = o.attn_prefill_seqs;
    if (!o.attn_prefill_tokens.empty()) g.attn_prefill_tokens = o.attn_prefill_tokens;
    if (!o.attn_prefill_prefix.empty()) g.attn_prefill_prefix = o.attn_prefill_prefix;
    g.attn_lo_rank_share = o.attn_lo_rank_share;
    g.attn_policies = o.attn_policies;
    g.budget_s = o.budget_s;
    g.min_time_s = o.min_time_s;
    g.repetitions = o.repetitions;
    g.filters = o.filters;
    g.sweep_max_bytes = o.sweep_max_bytes;
#if FDCSIM_HAVE_CUDA
    const int visible = o.dry_run && o.gpus > 0 ? o.gpus : profile::probe_gpu_count();
#else
    // A build without CUDA only plans (--dry-run), for --gpus GPUs (default 1).
    if (!o.dry_run) {
#if FDCSIM_CUDA_WITHOUT_BENCHMARKS
      std::cerr << "fdcsim profile: this build has CUDA but was configured with -DFDCSIM_BUILD_BENCHMARKS=OFF: the "
                   "microbenchmarks run on Google Benchmark; configure with -DFDCSIM_BUILD_BENCHMARKS=ON "
                   "(scripts/gpu/profile.sh does); --dry-run plans the grid on any build\n";
#else
      std::cerr << "fdcsim profile: this build has no CUDA: the microbenchmarks need a GPU build (put nvcc on PATH "
                   "and configure with -DFDCSIM_CUDA=AUTO or ON; scripts/gpu/profile.sh does both); --dry-run "
                   "plans the grid on any build\n";
#endif
      return kExitBadInput;
    }
    const int visible = std::max(o.gpus, 1);
#endif
    if (!o.dry_run && visible == 0) {
      std::cerr << "fdcsim profile: no CUDA device is visible (driver missing, or CUDA_VISIBLE_DEVICES empty)\n";
      return kExitBadInput;
    }
    FDC_INPUT_CHECK(o.gpus <= visible || o.dry_run,
                    "--gpus " << o.gpus << " but only " << visible << " GPUs are visible");
    g.max_gpus = o.gpus > 0 ? o.gpus : std::max(visible, 1);
    const profile::ProfilePlan plan = profile::make_profile_plan(g);
    const std::string out = o.out_dir.empty() ? default_out_dir() : o.out_dir;
    std::error_code ec;
    std::filesystem::create_directories(out, ec);
    if (ec) {
      std::cerr << "fdcsim: " << out << ": cannot create output folder: " << ec.message() << "\n";
      return kExitIo;
    }
    if (!o.quiet) {
      std::cerr << "fdcsim profile: " << plan.run.size() << " cases"
                << (plan.repetitions > 1 ? " x " + std::to_string(plan.repetitions) + " repetitions" : "")
                << " on up to " << g.max_gpus << " GPUs, estimated " << static_cast<int>(plan.est_s) << " s of a "
                << static_cast<int>(o.budget_s) << " s budget; " << plan.skipped.size() << " skipped\n";
      for (const auto& n : plan.notes) std::cerr << "  " << n << "\n";
    }
    if (o.dry_run) {
      const auto path = std::filesystem::path(out) / "plan.json";
      std::ofstream f(path);
      f << plan.to_json().dump(2) << "\n";
      if (!f) {
        std::cerr << "fdcsim: " << path.string() << ": cannot write the plan\n";
        return kExitIo;
      }
      if (!o.quiet) std::cerr << "fdcsim profile: plan in " << path.string() << " (dry run: nothing measured)\n";
      return kExitOk;
    }
#if FDCSIM_HAVE_CUDA
    profile::RunOptions r;
    r.out_dir = out;
    r.command_line = o.command_line;
    r.deadline = start + std::chrono::milliseconds(static_cast<int64_t>(o.budget_s * 1000));
    r.min_time_s = o.min_time_s;
    r.repetitions = plan.repetitions;
    r.quiet = o.quiet;
    r.gemm_cold_weights = o.gemm_weights == "cold";
    const int code = profile::run_plan(plan, r);
    std::cerr << "fdcsim profile: raw profile in " << out
              << " (ops.json, comm-<n>gpu.json, provenance.json, plan.json, summary.md)\n";
    return code == 0 ? kExitOk : kExitInternal;
#else
    return kExitInternal;  // not reached: a build without CUDA returned above unless --dry-run
#endif
  } catch (const InputError& e) {
    std::cerr << "fdcsim: error: " << e.what() << "\n";
    return kExitBadInput;
  } catch (const std::ios_base::failure& e) {
    std::cerr << "fdcsim: " << e.what() << "\n";
    return kExitIo;
  }
}

}  // namespace fdc::cli
