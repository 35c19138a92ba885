#!/usr/bin/env python3
"""Re-predicts held-out Poisson engine runs (the 24 of 2026-11-28; with --runs current the 13
Llama-2-13B runs of the engine as it runs now: policy none on H100s and one H200 since 2026-12-06,
all four policies on H100s and FDC 50% on an H200 on the fused RoPE kernel with blocks split by
head of 2026-12-07; with --runs 20261206 the 9 FDC-policy runs on H100s of 2026-12-06 (the fused RoPE kernel's contiguous
split; 2 token-class runs before the classification ranked by counting); with --runs 20261204
the 6 H200 runs of 2026-12-04 afternoon and night; with --runs 20261205 the 5 H100 runs of
2026-12-05 evening; with --runs 20261203 the 16 Llama-2-13B H200 runs of 2026-12-03/04 made before
the faster wgmma prefill) with the given profiles and counts the targets met (docs/validate.md;
docs/fit.md).

The runs: Llama-2-13B on one H100 and one H200 (docs/results/capacity-20261128b/, 12 runs) and
Llama-2-7B sp=2 on two H100s and two H200s (docs/results/capacity-20261128/, 12 runs); every
`*_r<rate>.measured_timeline.jsonl.gz` there (the bursts, which calibrate the overheads, are left
out). Each timeline is predicted again, as it is stored (compressed), with

    fdcsim validate --measured RUN.measured_timeline.jsonl.gz --set costmodel.kind=profile \\
        --set costmodel.profile=PROFILES/<gpu>.json --out OUT/<run>

then the reports' numbers are tabulated: iteration error median / P90 (target: median <= 3% and
P90 <= 8%), request metrics within 5% (TTFT, TBT, JCT at P50 and P99: 6 a run, 144 in all), TTFT
P50 and P99 within 5%. With --band PCT each run is also predicted with every iteration PCT percent
shorter and longer (`fdcsim validate --band`), and the request metrics measured within that band
are counted. The P99s beyond 5% are also counted by where their predicted value lies in the measured
distribution: between the measured P98.5 and P99.5 (a step in the tail) or not (docs/validate.md,
"Percentiles on a step").

Usage (from anywhere; paths are taken relative to the repository root unless absolute):

    scripts/repredict_poisson.py --fdcsim build/fdcsim --profiles configs/profiles --out results/repredict

Writes OUT/summary-<runs>.json and OUT/summary-<runs>.md (so that several sets share one folder)
and prints the table. Exit 2 on bad arguments or missing
inputs, 1 when an fdcsim run fails (its stderr is printed).
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# (label prefix, folder under docs/results, profile file name, timelines expected), per run set:
# "20261128": the 24 held-out Poisson runs of 2026-11-28 (the engine of that day);
# "20261203": the Llama-2-13B runs on one H200 of 2026-12-03 and the morning of 2026-12-04, with the
# wgmma prefill before commit 1aa31cf (up to 1.4x slower at d = 128);
# "20261204": the same five policies and rates on one H200 in the afternoon of 2026-12-04, and policy
# none at 3.4375 req/s again in the evening with the prefill kernel copying K/V by TMA, as the engine
# ran then (the GEMM algorithms the heuristic's first answer per row bucket);
# "current": the engine as it runs now: policy none with the GEMM algorithms chosen by timing
# (commit 627a6d8) on one H100 and one H200, and with the norm and RoPE kernels of commit 667f638
# on a second H100 (2026-12-06); the FDC policies on H100s with the fused RoPE kernel's blocks split
# by head (commit b71b570, 2026-12-07; the table policy at 90%, FDC 50% and the token-class policy
# at 50% and 90%, then policy none and the table policy at 50% and 90% on one H100 of a later call;
# FDC 50% at 90% on one H200 that afternoon; the token-class policy at 50% and 90% on one H100
# later, after the H100 profile's refit on the even split of the page);
# "20261206": the FDC policies' runs on H100s of 2026-12-06 (the fused RoPE kernel's contiguous
# split): FDC 50% and table at 90% in three calls, the token-class policy with the classification
# ranked by counting (commit 4c1f5ad) and, in two earlier calls, sorted;
# "20261205": four policies on one H100 in the evening of 2026-12-05 (the engine of commit 5714426,
# before the GEMM tuning).
RUN_SETS = {
    "20261128": [
        ("13B 1x H100", "capacity-20261128b/h100-llama-2-13b", "h100.json", 6),
        ("13B 1x H200", "capacity-20261128b/h200-llama-2-13b", "h200.json", 6),
        ("7B sp=2 2x H100", "capacity-20261128/2xh100-llama-2-7b-sp2", "h100.json", 6),
        ("7B sp=2 2x H200", "capacity-20261128/2xh200-llama-2-7b-sp2", "h200.json", 6),
    ],
    "20261203": [
        ("13B 1x H200 (12-03)", "capacity-20261203/h200-llama-2-13b", "h200.json", 11),
        ("13B 1x H200 (12-04)", "capacity-20261204/h200-llama-2-13b", "h200.json", 5),
    ],
    "20261204": [
        ("13B 1x H200 (12-04 pm)", "capacity-20261204b/h200-llama-2-13b", "h200.json", 5),
        ("13B 1x H200 (12-04 eve, TMA prefill)", "capacity-20261204c/h200-llama-2-13b", "h200.json", 1),
    ],
    "current": [
        ("13B 1x H100 (12-06, tuned GEMMs)", "capacity-20261206/h100-llama-2-13b", "h100.json", 1,
         {"only": ["none"]}),
        ("13B 1x H200 (12-06, tuned GEMMs)", "capacity-20261206/h200-llama-2-13b", "h200.json", 1),
        ("13B 1x H100 (12-06 06:00, new norm / RoPE)", "capacity-20261206b/h100-llama-2-13b", "h100.json", 1),
        ("13B 1x H100 (12-07 07:38, RoPE blocks split by head)", "capacity-20261207/h100-llama-2-13b", "h100.json", 1),
        ("13B 1x H100 (12-07 08:53, RoPE blocks split by head)", "capacity-20261207b/h100-llama-2-13b", "h100.json",
         4),
        ("13B 1x H100 (12-07 09:01, RoPE blocks split by head)", "capacity-20261207c/h100-llama-2-13b", "h100.json",
         4),
        ("13B 1x H200 (12-07 12:57, RoPE blocks split by head)", "capacity-20261207d/h200-llama-2-13b", "h200.json",
         1),
        ("13B 1x H100 (12-07 15:42, token classes)", "capacity-20261207e/h100-llama-2-13b", "h100.json", 2),
    ],
    "20261206": [
        ("13B 1x H100 (12-06, tuned GEMMs)", "capacity-20261206/h100-llama-2-13b", "h100.json", 2,
         {"skip": ["none"]}),
        ("13B 1x H100 (12-06 06:42, FDC policies)", "capacity-20261206c/h100-llama-2-13b", "h100.json", 2,
         {"skip": ["fdc-table-hybrid-llama-2-13b"]}),
        ("13B 1x H100 (12-06 06:52, FDC policies, bursts held out too)", "capacity-20261206d/h100-llama-2-13b",
         "h100.json", 2, {"skip": ["fdc-table-hybrid-llama-2-13b"]}),
        ("13B 1x H100 (12-06 16:00, token classes ranked by counting)", "capacity-20261206e/h100-llama-2-13b",
         "h100.json", 1),
        ("13B 1x H100 (12-06 06:42, token classes sorted)", "capacity-20261206c/h100-llama-2-13b", "h100.json", 1,
         {"only": ["fdc-table-hybrid-llama-2-13b"]}),
        ("13B 1x H100 (12-06 06:52, token classes sorted)", "capacity-20261206d/h100-llama-2-13b", "h100.json", 1,
         {"only": ["fdc-table-hybrid-llama-2-13b"]}),
    ],
    "20261205": [
        ("13B 1x H100 (12-05 eve)", "capacity-20261205/h100-llama-2-13b", "h100.json", 5),
    ],
}

ITER_MEDIAN, ITER_P90, REQUEST = 0.03, 0.08, 0.05


def fail(msg, code=2):
    print(f"repredict_poisson.py: {msg}", file=sys.stderr)
    sys.exit(code)


def rooted(p):
    return p if os.path.isabs(p) else os.path.join(ROOT, p)


def runs(run_set):
    out = []
    for label, folder, profile, expected, *which in RUN_SETS[run_set]:
        path = os.path.join(ROOT, "docs", "results", folder)
        if not os.path.isdir(path):
            fail(f"{path}: missing (the committed engine runs)")
        files = sorted(glob.glob(os.path.join(path, "*_r*.measured_timeline.jsonl.gz")))
        if which:  # a folder's runs of some policies only, or all but some
            pol = lambda f: os.path.basename(f).rsplit("_r", 1)[0]
            if "only" in which[0]:
                files = [f for f in files if pol(f) in which[0]["only"]]
            if "skip" in which[0]:
                files = [f for f in files if pol(f) not in which[0]["skip"]]
        if len(files) != expected:
            fail(f"{path}: expected {expected} Poisson timelines (*_r<rate>.measured_timeline.jsonl.gz), "
                 f"found {len(files)}")
        for f in files:
            name = os.path.basename(f)[: -len(".measured_timeline.jsonl.gz")]
            policy, rate = name.rsplit("_r", 1)
            out.append((f"{label} {policy} @ {rate}", folder.replace("/", "-") + "-" + name, f, profile))
    return out


def metric(report, kind, q):
    return report["requests"][kind][q]["error"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--fdcsim", default="build/fdcsim", help="the fdcsim executable (default: build/fdcsim)")
    ap.add_argument("--profiles", default="configs/profiles", help="folder with h100.json and h200.json")
    ap.add_argument("--out", required=True, help="output folder (created; its run folders are replaced)")
    ap.add_argument("--runs", choices=sorted(RUN_SETS), default="20261128",
                    help="which engine runs: 20261128 (default, the 24 runs of 2026-11-28), 20261203 (the 16 "
                         "Llama-2-13B H200 runs of 2026-12-03 and -04 before the faster prefill), 20261204 (the 6 H200 "
                         "runs of 2026-12-04 afternoon and night), 20261205 (the 5 H100 runs of 2026-12-05 "
                         "evening), 20261206 (the 2 token-class runs of 2026-12-06 morning, before the classification ranked "
                         "by counting) or current (the 13 runs of the engine since 2026-12-06, 11 on H100s, 2 on H200s)")
    ap.add_argument("--band", type=float, metavar="PCT",
                    help="also predict each run with every iteration PCT percent shorter and longer (`fdcsim "
                         "validate --band`) and count the request metrics measured within that band")
    a = ap.parse_args()
    if a.band is not None and not 0 < a.band <= 50:
        fail(f"--band {a.band}: expected a percent in (0, 50]")
    fdcsim, profiles, out = rooted(a.fdcsim), rooted(a.profiles), rooted(a.out)
    if not (os.path.isfile(fdcsim) and os.access(fdcsim, os.X_OK)):
        fail(f"{a.fdcsim}: not an executable fdcsim (pass --fdcsim PATH)")
    for p in ("h100.json", "h200.json"):
        if not os.path.isfile(os.path.join(profiles, p)):
            fail(f"{os.path.join(a.profiles, p)}: missing (--profiles names a folder with h100.json and h200.json)")
    os.makedirs(out, exist_ok=True)
    rows = []
    for label, key, gz, profile in runs(a.runs):
        timeline = gz  # fdcsim reads gzip timelines as they are
        run_out = os.path.join(out, key)
        shutil.rmtree(run_out, ignore_errors=True)
        cmd = [fdcsim, "validate", "--measured", timeline, "--set", "costmodel.kind=profile", "--set",
               "costmodel.profile=" + os.path.join(profiles, profile), "--out", run_out, "--quiet"]
        if a.band is not None:
            cmd += ["--band", str(a.band)]
        r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stderr, file=sys.stderr)
            fail(f"{' '.join(cmd)}: exit {r.returncode}", 1)
        report_path = os.path.join(run_out, "validation.json")
        if not os.path.isfile(report_path):
            fail(f"{report_path}: not written by fdcsim validate", 1)
        with open(report_path) as f:
            v = json.load(f)
        it = v["iterations"]["all"]
        req = {f"{k}_{q}": metric(v, k, q) for k in ("ttft", "tbt", "jct") for q in ("p50", "p99")}
        # Where each predicted percentile lies in the measured distribution (a quantile in [0, 1]).
        quant = {f"{k}_{q}": v["requests"][k][q].get("predicted_as_measured_quantile")
                 for k in ("ttft", "tbt", "jct") for q in ("p50", "p99")}
        rows.append({
            "run": label,
            "report": os.path.relpath(report_path, ROOT),
            "iteration_median": it["median_abs_error"],
            "iteration_p90": it["p90_abs_error"],
            "iteration_met": it["median_abs_error"] <= ITER_MEDIAN and it["p90_abs_error"] <= ITER_P90,
            "requests": req,
            "predicted_as_measured_quantile": quant,
        })
        if a.band is not None:
            b = v["band"]["requests"]
            rows[-1]["band_inside"] = {f"{k}_{q}": b[k][q + "_ms"]["inside"] for k in ("ttft", "tbt", "jct")
                                       for q in ("p50", "p99")}
    summary = {
        "runs": len(rows),
        "iteration_targets_met": sum(r["iteration_met"] for r in rows),
        "request_metrics_within_5pct": sum(abs(x) <= REQUEST for r in rows for x in r["requests"].values()),
        "request_metrics": 6 * len(rows),
        "runs_set": a.runs,
        "ttft_p50_within_5pct": sum(abs(r["requests"]["ttft_p50"]) <= REQUEST for r in rows),
        "ttft_p99_within_5pct": sum(abs(r["requests"]["ttft_p99"]) <= REQUEST for r in rows),
        "fdcsim": a.fdcsim,
        "profiles": a.profiles,
        "rows": rows,
    }
    # P99s beyond 5% whose predicted value lies within the measured P98.5 .. P99.5: a value error in a
    # steep tail, a quantile error of at most half a point.
    def near_p99(r, k):
        qv = r["predicted_as_measured_quantile"][k]
        return qv is not None and 0.985 <= qv <= 0.995
    p99_misses = [(r, k) for r in rows for k in ("ttft_p99", "tbt_p99", "jct_p99") if abs(r["requests"][k]) > REQUEST]
    summary["p99_beyond_5pct"] = len(p99_misses)
    summary["p99_beyond_5pct_within_half_a_quantile_point"] = sum(near_p99(r, k) for r, k in p99_misses)
    if a.band is not None:
        summary["band_pct"] = a.band
        summary["request_metrics_within_band"] = sum(x for r in rows for x in r["band_inside"].values())
        summary["ttft_p50_within_band"] = sum(r["band_inside"]["ttft_p50"] for r in rows)
        summary["ttft_p99_within_band"] = sum(r["band_inside"]["ttft_p99"] for r in rows)
    lines = ["| run | iteration error median / P90 | TTFT P50 / P99 | TBT P50 / P99 | JCT P50 / P99 |",
             "| --- | --- | --- | --- | --- |"]
    if a.band is not None:
        lines[0] += f" within the +-{a.band:g}% band |"
        lines[1] += " --- |"
    pct = lambda x: f"{100 * x:+.1f}"
    for r in rows:
        q = r["requests"]
        line = (f"| {r['run']} | {100 * r['iteration_median']:.2f}% / {100 * r['iteration_p90']:.2f}%"
                f"{'' if r['iteration_met'] else ' (missed)'} | {pct(q['ttft_p50'])} / {pct(q['ttft_p99'])} | "
                f"{pct(q['tbt_p50'])} / {pct(q['tbt_p99'])} | {pct(q['jct_p50'])} / {pct(q['jct_p99'])} |")
        if a.band is not None:
            inside = [k.replace("_", " ").upper() for k, v in r["band_inside"].items() if v]
            line += f" {len(inside)} of 6{': ' + ', '.join(inside) if inside else ''} |"
        lines.append(line)
    lines.append("")
    lines.append(f"Iteration targets met (median <= 3%, P90 <= 8%): {summary['iteration_targets_met']} of {len(rows)}; "
                 f"request metrics within 5%: {summary['request_metrics_within_5pct']} of {summary['request_metrics']}; "
                 f"TTFT P50 within 5%: {summary['ttft_p50_within_5pct']}, P99: {summary['ttft_p99_within_5pct']}.")
    lines.append(f"P99s beyond 5%: {summary['p99_beyond_5pct']}, of which "
                 f"{summary['p99_beyond_5pct_within_half_a_quantile_point']} predict a value between the measured P98.5 "
                 f"and P99.5.")
    if a.band is not None:
        lines.append(f"Request metrics measured within the band of +-{a.band:g}% iteration time: "
                     f"{summary['request_metrics_within_band']} of {summary['request_metrics']} (TTFT P50: "
                     f"{summary['ttft_p50_within_band']}, P99: {summary['ttft_p99_within_band']}).")
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, f"summary-{a.runs}.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(out, f"summary-{a.runs}.md"), "w") as f:
        f.write(text)
    print(text, end="")


if __name__ == "__main__":
    main()
