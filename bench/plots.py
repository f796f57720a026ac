"""PNG plots beside report.json: throughput vs batch size, latency vs load (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path


def write_plots(report: dict, out: Path) -> list[str]:
    """One PNG per available figure and model; returns the file names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[str] = []
    device = report.get("device", "cpu")
    for model, section in report.get("models", {}).items():
        sweep = section.get("batch_sweep")
        if sweep:
            rows = sweep["rows"]
            sizes = [r["batch_size"] for r in rows]
            figure, axes = plt.subplots(figsize=(6, 4))
            axes.plot(sizes, [r["bare_model_images_per_s"] for r in rows], "o-", label="bare model")
            axes.plot(sizes, [r["pipeline_images_per_s"] for r in rows], "s-", label="pipeline")
            axes.set_xscale("log", base=2)
            axes.set_xticks(sizes, [str(s) for s in sizes])
            axes.set_xlabel("max batch size")
            axes.set_ylabel("images/s")
            axes.set_title(f"{model} on {device}: throughput vs batch size")
            written.append(_save(plt, figure, axes, out / f"throughput_vs_batch_{model}.png"))
        latency = section.get("latency")
        if latency:
            rows = latency["rows"]
            loads = [100 * r["load"] for r in rows]
            figure, axes = plt.subplots(figsize=(6, 4))
            for q, style in (("p50", "o-"), ("p95", "s-"), ("p99", "^-")):
                axes.plot(loads, [r["latency_ms"][q] for r in rows], style, label=q)
            axes.axhline(latency["p95_goal_ms"], color="grey", ls="--", label="p95 goal")
            axes.set_xlabel("offered load (% of measured capacity)")
            axes.set_ylabel("submit → event latency (ms)")
            axes.set_title(f"{model} on {device}: latency vs load")
            written.append(_save(plt, figure, axes, out / f"latency_vs_load_{model}.png"))
    return written


def _save(plt, figure, axes, path: Path) -> str:  # type: ignore[no-untyped-def]
    """Grid, legend, write ``path`` and free the figure; returns the file name."""
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path.name
