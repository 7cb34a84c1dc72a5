"""Per-rank entry of the ring training: `python -m energy_assets.ml.forecaster_worker`.

What belongs here: only the process shell around `forecaster.train` (join the ring group
unless P = 1, read the series and config that `forecaster.train_distributed` wrote, train
this rank's tokens, write rank 0's parameters and first gradients and every rank's timings and
peak RSS). Launched by
`ring_attention.launch_ring_workers(..., module=...)` with MLX_RANK and MLX_HOSTFILE set.
A watchdog ends the process after `--timeout-s` even inside a blocked native `recv`.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import sys
from pathlib import Path

import mlx.core as mx
import numpy as np
from mlx.utils import tree_flatten

from energy_assets.ml.forecaster import ForecasterConfig, SeriesArrays, train
from energy_assets.ml.loader import export_safetensors, load_safetensors
from energy_assets.ml.ring_worker import peak_rss_mib


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--timeout-s", type=float, default=3600.0)
    args = parser.parse_args(argv)
    faulthandler.dump_traceback_later(args.timeout_s, exit=True)

    arrays, meta = load_safetensors(args.workdir / "inputs.safetensors")
    config = ForecasterConfig(**meta["config"])
    series = SeriesArrays(
        **{name: np.array(value) for name, value in arrays.items()}, metadata=meta["dataset"]
    )
    # One rank is full attention in one process (the ring backend needs a peer to connect to);
    # launched as a worker anyway so its peak RSS is its own.
    group = mx.distributed.init(backend="ring", strict=True) if config.world_size > 1 else None
    rank = 0 if group is None else group.rank()
    mx.reset_peak_memory()
    result = train(series, config, group=group)
    if rank == 0:
        export_safetensors(
            args.workdir / "params.safetensors",
            dict(tree_flatten(result.model.parameters()))
            | {f"grad0.{k}": mx.array(v) for k, v in result.first_grads.items()},
            {"losses": result.losses, "val_losses": result.val_losses, "tokens": result.tokens},
        )
    (args.workdir / f"rank{rank}.json").write_text(
        json.dumps(
            {
                "rank": rank,
                "seconds": result.seconds,
                "losses": result.losses,
                "peak_rss_mib": peak_rss_mib(),
                "mlx_peak_mib": mx.get_peak_memory() / 2**20,
            }
        )
    )
    faulthandler.cancel_dump_traceback_later()
    return 0


if __name__ == "__main__":
    sys.exit(main())
