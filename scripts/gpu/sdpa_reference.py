#!/usr/bin/env python3
"""PyTorch SDPA reference for the FDC attention kernels.

--check DIR : compare the GPU suite's full-rank prefill dumps (FDC_SDPA_DUMP_DIR) with SDPA.
--bench     : time SDPA per backend on the benchmark shapes (Llama-2-13B: 40 heads, bf16):
              4096-token causal prefill at head dim 128 and 64, and decode of batch 32 x 4096
              (contiguous, unpaged KV) at head dim 128 and 64. Prints one line per case.
"""
import argparse
import glob
import os
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel


def check(dump_dir):
    metas = sorted(glob.glob(os.path.join(dump_dir, "*.meta")))
    if not metas:
        print("sdpa check: no dumps found in", dump_dir)
        return 1
    worst = 0.0
    for meta in metas:
        base = meta[: -len(".meta")]
        T, H, HKV, d, scale, dtype = open(meta).read().split()
        T, H, HKV, d, scale = int(T), int(H), int(HKV), int(d), float(scale)
        load = lambda ext, h: torch.from_numpy(
            __import__("numpy").fromfile(base + ext, dtype="float32")).view(T, h, d)
        q, k, v, out = load(".q.f32", H), load(".k.f32", HKV), load(".v.f32", HKV), load(".out.f32", H)
        dt = torch.bfloat16 if dtype == "bf16" else torch.float16
        qd, kd, vd = (x.transpose(0, 1).unsqueeze(0).cuda().to(dt) for x in (q, k, v))
        ref = F.scaled_dot_product_attention(qd, kd, vd, is_causal=True, scale=scale, enable_gqa=(H != HKV))
        ref = ref.squeeze(0).transpose(0, 1).float().cpu()
        rel = (out - ref).norm() / ref.norm()
        ok = bool(torch.isfinite(out).all()) and rel.item() < (1e-2 if dtype == "bf16" else 3e-3)
        worst = max(worst, rel.item())
        print(f"sdpa check {os.path.basename(base)}: T={T} H={H} Hkv={HKV} d={d} {dtype} "
              f"rel L2 error vs SDPA {rel.item():.2e} {'OK' if ok else 'FAIL'}")
        if not ok:
            return 1
    return 0


def time_ms(fn, iters=50):
    for _ in range(5):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]


def bench():
    backends = [("flash", SDPBackend.FLASH_ATTENTION), ("efficient", SDPBackend.EFFICIENT_ATTENTION),
                ("cudnn", SDPBackend.CUDNN_ATTENTION)]
    H, S = 40, 4096
    print(f"sdpa device: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    for d in (128, 64):
        q, k, v = (torch.randn(1, H, S, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        flops = 4 * H * d * S * (S + 1) / 2
        for name, be in backends:
            try:
                with sdpa_kernel(be):
                    ms = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.0884))
                print(f"sdpa prefill causal S={S} H={H} d={d} {name}: {ms:.3f} ms {flops / ms / 1e9:.0f} TFLOP/s")
            except RuntimeError as e:
                print(f"sdpa prefill d={d} {name}: unavailable ({str(e).splitlines()[0][:80]})")
    B, C = 32, 4096
    for d in (128, 64):
        q = torch.randn(B, H, 1, d, device="cuda", dtype=torch.bfloat16)
        k, v = (torch.randn(B, H, C, d, device="cuda", dtype=torch.bfloat16) for _ in range(2))
        kv_bytes = 2 * B * H * C * d * 2
        for name, be in backends:
            try:
                with sdpa_kernel(be):
                    ms = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, scale=0.0884))
                print(f"sdpa decode B={B} ctx={C} H={H} d={d} {name}: {ms:.3f} ms {kv_bytes / ms / 1e6:.0f} GB/s")
            except RuntimeError as e:
                print(f"sdpa decode d={d} {name}: unavailable ({str(e).splitlines()[0][:80]})")
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", metavar="DIR")
    ap.add_argument("--bench", action="store_true")
    a = ap.parse_args()
    rc = 0
    if a.check:
        rc |= check(a.check)
    if a.bench:
        rc |= bench()
    sys.exit(rc)
