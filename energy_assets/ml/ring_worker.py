"""Per-rank entry point of the ring-attention check: `python -m energy_assets.ml.ring_worker`.

What belongs here: only the process shell around `ring_attention_rank` (join the ring group,
read this rank's inputs, write its output). Launched by `ring_attention.launch_ring_workers`
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
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np

from energy_assets.ml.ring_attention import distributed_rotate, ring_attention_rank


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
