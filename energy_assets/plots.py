"""Small charts for asset metadata: a picture where a person would rather look than read.

`reported_vs_filled_markdown` draws, for the balancing authorities with the most imputed hours,
the reported demand beside the filled series, and returns it as markdown with an inline PNG, which
the Dagster UI renders in the materialization's metadata.
"""

from __future__ import annotations

import base64
import io

import polars as pl


def reported_vs_filled_png(imputed: pl.DataFrame, series: str = "demand", panels: int = 4) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = imputed.filter(pl.col("series") == series)
    worst = (
        rows.group_by("region")
        .agg((~pl.col("is_observed")).sum().alias("imputed"))
        .sort(["imputed", "region"], descending=[True, False])
        .head(panels)["region"]
        .to_list()
    )
    fig, axes = plt.subplots(len(worst) or 1, 1, figsize=(7, 1.6 * max(len(worst), 1)),
                             sharex=True, squeeze=False)  # fmt: skip
    for axis, region in zip(axes[:, 0], worst, strict=False):
        one = rows.filter(pl.col("region") == region).sort("interval_start_utc")
        time = one["interval_start_utc"].to_numpy()
        axis.plot(time, one["value"].to_numpy(), lw=0.8, color="tab:blue", label="filled")
        axis.plot(time, one["value_reported"].to_numpy(), ".", ms=2, color="tab:orange",
                  label="reported")  # fmt: skip
        imputed_at = one.filter(~pl.col("is_observed"))
        axis.plot(imputed_at["interval_start_utc"].to_numpy(), imputed_at["value"].to_numpy(),
                  "x", ms=3, color="tab:red", label="imputed")  # fmt: skip
        axis.set_ylabel(region, fontsize=8)
        axis.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="upper right", ncol=3)
    axes[0, 0].set_title(f"{series}: reported vs filled (MW), most-imputed regions", fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()


def reported_vs_filled_markdown(imputed: pl.DataFrame, series: str = "demand") -> str | None:
    """Markdown with the chart inlined, or None when matplotlib is not installed."""
    try:
        png = reported_vs_filled_png(imputed, series)
    except ImportError:
        return None
    return f"![reported vs filled](data:image/png;base64,{base64.b64encode(png).decode()})"
