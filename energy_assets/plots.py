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


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    plt.close(fig)
    return buffer.getvalue()


def _markdown(png: bytes, title: str) -> str:
    return f"![{title}](data:image/png;base64,{base64.b64encode(png).decode()})"


def training_curve_markdown(
    train_loss: list[float], val_loss: list[list[float]] | list[tuple[int, float]]
) -> str | None:
    """The forecaster's training (per step) and validation loss curves, inline PNG markdown."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axis = plt.subplots(figsize=(6, 2.6))
    axis.plot(range(1, len(train_loss) + 1), train_loss, lw=0.8, label="train (batch)")
    if val_loss:
        steps, values = zip(*val_loss, strict=True)
        axis.plot(steps, values, "o-", ms=3, color="tab:orange", label="validation")
    axis.set_xlabel("step", fontsize=8)
    axis.set_ylabel("masked MSE (z)", fontsize=8)
    axis.set_yscale("log")
    axis.tick_params(labelsize=7)
    axis.legend(fontsize=7)
    axis.set_title("ml/forecaster training curve", fontsize=9)
    return _markdown(_png(fig), "training curve")


def forecast_eval_markdown(scores: pl.DataFrame, rows: pl.DataFrame) -> str | None:
    """MAPE per region of model, BA day-ahead forecast and seasonal naive, plus one region's
    test-period trace, inline PNG markdown."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
    except ImportError:
        return None
    fig, (bars, trace) = plt.subplots(2, 1, figsize=(7, 4.6))
    regions = scores["region"].to_list()
    x = np.arange(len(regions))
    for i, (col, label) in enumerate(
        [
            ("mape_model", "model"),
            ("mape_day_ahead_forecast", "BA day-ahead"),
            ("mape_seasonal_naive", "seasonal naive"),
        ]
    ):
        values = scores[col].fill_null(float("nan")).to_numpy()
        bars.bar(x + (i - 1) * 0.27, values, width=0.27, label=label)
    bars.set_xticks(x, regions, fontsize=7)
    bars.set_ylabel("MAPE %", fontsize=8)
    bars.tick_params(labelsize=7)
    bars.legend(fontsize=7)
    bars.set_title("test split: MAPE per balancing authority", fontsize=9)
    if regions and rows.height:
        one = rows.filter(pl.col("region") == regions[0]).sort("t").unique("t", keep="first")
        one = one.sort("t")
        hours = one["t"].to_numpy()
        trace.plot(hours, one["actual_mw"].to_numpy(), lw=0.9, color="black", label="actual")
        trace.plot(hours, one["model_mw"].to_numpy(), lw=0.8, label="model")
        trace.plot(hours, one["day_ahead_forecast_mw"].to_numpy(), lw=0.8, label="BA day-ahead")
        trace.set_xlabel("hours since 2015-07-01 UTC", fontsize=8)
        trace.set_ylabel(f"{regions[0]} MW", fontsize=8)
        trace.tick_params(labelsize=7)
        trace.legend(fontsize=7)
    return _markdown(_png(fig), "forecast evaluation")
