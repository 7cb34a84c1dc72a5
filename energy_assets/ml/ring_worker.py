"""Per-rank entry point of the ring-attention check: `python -m energy_assets.ml.ring_worker`.

What belongs here: only the process shell around `ring_attention_rank` and, for gradient
cases, `ring_grad.ring_grad_rank` (join the ring group, read this rank's inputs, write its
outputs, timings and peak RSS). Launched by `ring_attention.launch_ring_workers`
with MLX_RANK and MLX_HOSTFILE set; also usable under `mlx.launch --backend ring -n P --python
"$(which python)" -m ...` (the launcher sets the same variables).

A watchdog (`faulthandler.dump_traceback_later(exit=True)`) ends the process after
`--timeout-s` even when the main thread is blocked inside a native `recv`, so a dead peer
cannot hang CI even if the parent is gone.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import resource
import sys
from pathlib import Path
from typing import Any

import mlx.core as mx
import numpy as np

from energy_assets.ml.ring_attention import distributed_rotate, ring_attention_rank
from energy_assets.ml.ring_grad import ring_grad_rank


def peak_rss_mib() -> float:
    """This process's peak resident set size (VmHWM) in MiB.

    Not `ru_maxrss`: Linux carries that across fork and exec, so a worker started by a parent
    that once held 500 MiB would report at least 500 MiB. VmHWM belongs to the address space
    `exec` created. Falls back to ru_maxrss (KiB on Linux) where /proc is missing.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _grad_case(
    workdir: Path,
    arrays: dict[str, mx.array],
    i: int,
    case: dict[str, Any],
    group: mx.distributed.Group,
) -> dict[str, float]:
    """Output and dq, dk, dv of sum(out * d_out) with `ring_attention`; this rank's tokens only.

    Positions and segment ids are passed as this rank's [L] ids (the model-facing form, which
    all-gathers the small tables), not the stored [P, L] tables.
    """
    rank = group.rank()
    key = f"case{i}.rank{rank}"
    positions = np.array(arrays[f"case{i}.position_by_rank"])[rank]
    segments = np.array(arrays[f"case{i}.segment_by_rank"])[rank]
    mx.reset_peak_memory()
    results, timing = ring_grad_rank(
        arrays[f"{key}.q"],
        arrays[f"{key}.k"],
        arrays[f"{key}.v"],
        arrays[f"{key}.d_out"],
        positions=positions,
        segment_ids=segments,
        group=group,
        causal=case["causal"],
        n_sub=case["n_sub"],
    )
    for name, value in results.items():
        np.save(workdir / f"case{i}_{name}_rank{rank}.npy", np.array(value))
    return {
        **timing,
        "peak_rss_mib": peak_rss_mib(),
        "mlx_peak_mib": mx.get_peak_memory() / 2**20,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--timeout-s", type=float, default=60.0)
    args = parser.parse_args(argv)
    faulthandler.dump_traceback_later(args.timeout_s, exit=True)

    arrays, meta = mx.load(str(args.workdir / "problem.safetensors"), return_metadata=True)
    config = json.loads(meta["ring"])
    group = mx.distributed.init(backend="ring", strict=True)
    rank, size = group.rank(), group.size()
    if size != config["world_size"]:
        print(
            f"ring group has {size} ranks but the inputs were laid out for "
            f"{config['world_size']}; check MLX_HOSTFILE",
            file=sys.stderr,
        )
        return 2
    rotate = distributed_rotate(group)
    timings = []
    for i, case in enumerate(config["cases"]):
        if case.get("grad"):
            timings.append(_grad_case(args.workdir, arrays, i, case, group))
            continue
        # mx.load is lazy: this rank reads only its own case{i}.rank{r}.* tensors.
        out, timing = ring_attention_rank(
            arrays[f"case{i}.rank{rank}.q"],
            arrays[f"case{i}.rank{rank}.k"],
            arrays[f"case{i}.rank{rank}.v"],
            rank=rank,
            position_by_rank=np.array(arrays[f"case{i}.position_by_rank"]),
            segment_by_rank=np.array(arrays[f"case{i}.segment_by_rank"]),
            causal=case["causal"],
            rotate=rotate,
            n_sub=case["n_sub"],
        )
        np.save(args.workdir / f"case{i}_out_rank{rank}.npy", np.array(out))
        timings.append(timing)
    (args.workdir / f"timings_rank{rank}.json").write_text(
        json.dumps({"rank": rank, "cases": timings})
    )
    faulthandler.cancel_dump_traceback_later()
    return 0


if __name__ == "__main__":
    sys.exit(main())
