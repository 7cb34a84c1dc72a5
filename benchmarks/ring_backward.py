"""Benchmark: ring attention forward + backward over 2 processes vs single-process full attention.

Two parts, measured in the same run:

1. Accuracy (distributed, P = 2, ring backend on loopback): out, dQ, dK, dV of
   loss = sum(out * d_out) for N = 4,096 tokens (1 head, d = 16, causal, 3 packed series plus
   the remainder), for each layout, against `mx.vjp` of dense attention in float64; the error
   of the float32 dense `mx.vjp` against the same float64 reference is printed beside.
2. Speed and memory at one year of hourly tokens (N = 8,760, d = 32, 1 head, causal, one
   series): `ring_attention` forward + backward under `mx.value_and_grad` on 2 processes, vs
   the same in one process with full attention, both dense masked softmax (`dense`) and
   `mx.fast.scaled_dot_product_attention` (`sdpa`). Every variant runs twice in its process
   (cold, then warm); tokens/s uses the warm run (for the ring: the slower rank). Peak RSS is
   per process (ring: per rank), with the RSS of a process that only imports mlx and this
   package printed as the floor. The gradients of the ring and of both baselines at
   N = 8,760 are compared with a float64 `mx.vjp` of dense attention (in this process, after
   the timings).

The two cores of this machine are shared (also with other jobs): the ring's 2 ranks take one
core each, the single-process baselines may use both. CPU seconds (all threads, all ranks)
are printed beside wall time, since wall time grows with whatever else runs. Usage:

    python benchmarks/ring_backward.py            # as described
    python benchmarks/ring_backward.py --small    # smoke: N = 1,024 and 2,048
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LAYOUTS = ("contiguous", "striped", "zigzag")


def _rss_mib() -> float:
    from energy_assets.ml.ring_worker import peak_rss_mib

    return peak_rss_mib()


def speed_problem(n: int, head_dim: int):
    from energy_assets.ml.ring_attention import random_ring_problem
    from energy_assets.ml.ring_grad import random_cotangent

    problem = random_ring_problem(n, n_heads=1, head_dim=head_dim, seed=8760)
    return problem, random_cotangent(problem, seed=1)


def run_baseline(variant: str, n: int, head_dim: int, out_path: Path) -> None:
    """One single-process variant (in its own process): prints JSON, saves its gradients."""
    import mlx.core as mx

    from energy_assets.ml.ring_grad import dense_attention

    problem, d_out = speed_problem(n, head_dim)
    floor = _rss_mib()
    q, k, v, cot = (mx.array(x) for x in (problem.q, problem.k, problem.v, d_out))
    mx.eval(q, k, v, cot)

    if variant == "dense":

        def attend(q, k, v):
            return dense_attention(q, k, v, segment_ids=problem.segment_ids, causal=True)
    elif variant == "sdpa":

        def attend(q, k, v):
            out = mx.fast.scaled_dot_product_attention(
                q[None], k[None], v[None], scale=1.0 / float(np.sqrt(head_dim)), mask="causal"
            )
            return out[0]
    else:
        raise ValueError(variant)

    def loss(q, k, v):
        return (attend(q, k, v) * cot).sum()

    times, cpu = [], []
    for _ in range(2):
        mx.reset_peak_memory()
        t0, c0 = time.perf_counter(), time.process_time()
        _value, grads = mx.value_and_grad(loss, argnums=(0, 1, 2))(q, k, v)
        mx.eval(grads)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    np.savez(out_path, dq=np.array(grads[0]), dk=np.array(grads[1]), dv=np.array(grads[2]))
    print(
        json.dumps(
            {
                "variant": variant,
                "fwd_bwd_s": times,
                "cpu_s": cpu,
                "peak_rss_mib": _rss_mib(),
                "rss_before_mib": floor,
                "mlx_peak_mib": mx.get_peak_memory() / 2**20,
            }
        )
    )


def subprocess_json(args: list[str]) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def accuracy(n: int) -> list[dict]:
    from energy_assets.ml.ring_attention import random_ring_problem
    from energy_assets.ml.ring_grad import run_ring_grad_checks

    segments = [n * 800 // 4096, n * 1300 // 4096, n * 600 // 4096]
    problem = random_ring_problem(n, segment_lengths=segments, n_heads=1, head_dim=16, seed=1)
    return run_ring_grad_checks([(problem, layout, True) for layout in LAYOUTS], 2, timeout_s=300)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--layout", default="zigzag", choices=LAYOUTS)
    parser.add_argument("--baseline", choices=("dense", "sdpa", "imports"))
    parser.add_argument("--n", type=int, default=8760)
    parser.add_argument("--head-dim", type=int, default=32)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.baseline == "imports":
        import mlx.core  # noqa: F401

        import energy_assets.ml.ring_grad  # noqa: F401

        print(json.dumps({"peak_rss_mib": _rss_mib()}))
        return 0
    if args.baseline:
        run_baseline(args.baseline, args.n, args.head_dim, args.out)
        return 0

    n_acc, n_speed = (1024, 2048) if args.small else (4096, args.n)
    print(f"== accuracy: P=2 processes, N={n_acc}, 1 head, d=16, causal, packed (4 segments)")
    print(
        "layout      max|err| vs f64 mx.vjp: out       dq        dk        dv   | f32 dense vs f64"
    )
    for r in accuracy(n_acc):
        f32 = r["float32_dense_vs_float64"]["grad_max_abs_err"]
        print(
            f"{r['layout']:<11} {r['out_max_abs_err']:>22.2e} {r['dq_max_abs_err']:>9.2e} "
            f"{r['dk_max_abs_err']:>9.2e} {r['dv_max_abs_err']:>9.2e}   | {f32:.2e}   "
            f"(|grad| max {r['grad_reference_max_abs']:.2f})"
        )

    from energy_assets.ml.ring_grad import run_ring_grad_workers

    problem, d_out = speed_problem(n_speed, args.head_dim)
    print(
        f"\n== speed: N={n_speed}, d={args.head_dim}, 1 head, causal, one series, "
        f"ring layout {args.layout}"
    )
    case = (problem, args.layout, True)
    t0 = time.perf_counter()
    outputs, ranks, wall = run_ring_grad_workers([case, case], [d_out, d_out], 2, timeout_s=600)
    print(f"ring launch + 2 runs + write: {time.perf_counter() - t0:.1f} s (workers {wall:.1f} s)")
    imports = subprocess_json(["--baseline", "imports"])
    ring_warm = max(r["fwd_bwd_s"] for r in ranks[1])
    ring_cold = max(r["fwd_bwd_s"] for r in ranks[0])
    ring_cpu = sum(r["cpu_s"] for r in ranks[1])
    rows = [
        (
            "ring P=2",
            ring_cold,
            ring_warm,
            ring_cpu,
            " / ".join(f"{r['peak_rss_mib']:.0f}" for r in ranks[1]),
            " / ".join(
                f"{max(a['mlx_peak_mib'], b['mlx_peak_mib']):.0f}"
                for a, b in zip(ranks[0], ranks[1], strict=True)
            ),
        )
    ]
    baselines = {}
    with tempfile.TemporaryDirectory() as tmp:
        for variant in ("dense", "sdpa"):
            path = Path(tmp) / f"{variant}.npz"
            res = subprocess_json(
                [
                    "--baseline",
                    variant,
                    "--n",
                    str(n_speed),
                    "--head-dim",
                    str(args.head_dim),
                    "--out",
                    str(path),
                ]
            )
            baselines[variant] = (res, dict(np.load(path)))
            rows.append(
                (
                    f"full {variant}",
                    res["fwd_bwd_s"][0],
                    res["fwd_bwd_s"][1],
                    res["cpu_s"][1],
                    f"{res['peak_rss_mib']:.0f}",
                    f"{res['mlx_peak_mib']:.0f}",
                )
            )
    print(f"process floor (python + mlx + package imported): {imports['peak_rss_mib']:.0f} MiB RSS")
    print(
        "variant      cold s   warm s   tokens/s (warm)   CPU s (warm, all ranks)"
        "   peak RSS MiB (per rank)   MLX peak MiB"
    )
    for name, cold, warm, cpu, rss, mlx_peak in rows:
        print(
            f"{name:<12} {cold:>6.2f} {warm:>8.2f} {n_speed / warm:>14.0f}    {cpu:>20.2f}"
            f"    {rss:>22}   {mlx_peak:>12}"
        )
    for variant in ("dense", "sdpa"):
        res = baselines[variant][0]
        warm, cpu = res["fwd_bwd_s"][1], res["cpu_s"][1]
        print(
            f"ring / full {variant}: {warm / ring_warm:.2f}x tokens/s by wall time "
            f"(ring {n_speed / ring_warm:.0f}, full {n_speed / warm:.0f}); "
            f"{cpu / ring_cpu:.2f}x tokens per CPU second"
        )
    from energy_assets.ml.ring_grad import reference_grads

    f64 = reference_grads(problem, d_out, causal=True)
    names = ("dq", "dk", "dv")
    ring_err = max(float(np.abs(outputs[1][n] - f64[n]).max()) for n in names)
    dense_err = max(float(np.abs(baselines["dense"][1][n] - f64[n]).max()) for n in names)
    sdpa_err = max(float(np.abs(baselines["sdpa"][1][n] - f64[n]).max()) for n in names)
    print(
        f"gradient max|err| vs float64 mx.vjp at N={n_speed}: ring {ring_err:.2e}, "
        f"full dense float32 {dense_err:.2e}, full sdpa float32 {sdpa_err:.2e}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
