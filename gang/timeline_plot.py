# Draws a gang run report (gang build --report) as a timeline: one row per
# instance, one bar per build. Run by `gang timeline` (embedded in the
# binary at build time), with matplotlib, Debian's python3-matplotlib.
# argv: REPORT.json OUTPUT(.png|.svg)
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

COLOURS = {"built": "#4c72b0", "wasted": "#dd8452", "failed": "#c44e52",
           "abandoned": "#8c8c8c", "stopped": "#b0b0b0"}


def main(report_path, out_path):
    with open(report_path) as f:
        r = json.load(f)
    runs = r.get("per_instance", [])
    wall = float(r.get("wall_s") or 0) or 1.0
    height = max(2.2, 0.6 * len(runs) + 1.6)
    fig, ax = plt.subplots(figsize=(11, height))
    for row, inst in enumerate(runs):
        y = len(runs) - row
        start = inst.get("started_s") or 0
        end = inst.get("exited_s") if inst.get("exited_s") is not None else wall
        ax.broken_barh([(start, max(0.0, end - start))], (y - 0.4, 0.8),
                       facecolors="#f2f2f2", edgecolors="none", zorder=1)  # alive, idle unless a bar
        for b in inst.get("builds", []):
            width = max(b["end_s"] - b["start_s"], wall / 2000)
            colour = COLOURS.get(b["outcome"], "#8c8c8c")
            hatch = "//" if b["outcome"] == "wasted" else None
            ax.broken_barh([(b["start_s"], width)], (y - 0.35, 0.7), facecolors=colour,
                           edgecolors="white", linewidth=0.5, hatch=hatch, zorder=2)
            if width > wall / 25:
                ax.text(b["start_s"] + width / 2, y, b["component"], ha="center", va="center",
                        fontsize=7, color="white", clip_on=True, zorder=3)
        bahs = [b["at_s"] for b in inst.get("lost_races", [])]
        if bahs:
            ax.plot(bahs, [y + 0.42] * len(bahs), "v", color="#dd8452", markersize=4, zorder=4)
        if inst.get("exited_s") is not None:
            ax.plot([inst["exited_s"]], [y], "|", color="black", markersize=18, zorder=4)
    if r.get("target_published_s") is not None:
        ax.axvline(r["target_published_s"], color="#55a868", linestyle="--", zorder=5)
    ax.set_yticks([len(runs) - i for i in range(len(runs))])
    ax.set_yticklabels([f"#{inst['instance']}" for inst in runs])
    ax.set_ylim(0.4, len(runs) + 0.7)
    ax.set_xlim(0, wall * 1.02)
    ax.set_xlabel("seconds since the run started")
    eff = r.get("efficiency")
    totals = r.get("totals", {})
    ax.set_title(f"{r.get('target', '').split('/')[-1]}: {r.get('instances')} instances x "
                 f"{r.get('max_jobs')} jobs, wall {wall:.1f} s, critical path "
                 f"{r.get('critical_path_s', 0):.1f} s, efficiency "
                 f"{'n/a' if eff is None else f'{eff:.2f}'}, built {totals.get('built', 0)}, "
                 f"Bah! {totals.get('bah', 0)}", fontsize=9)
    handles = [Patch(facecolor=COLOURS["built"], label="built"),
               Patch(facecolor=COLOURS["wasted"], hatch="//", label="wasted (lost the race)"),
               Patch(facecolor=COLOURS["failed"], label="failed"),
               Patch(facecolor="#f2f2f2", label="idle"),
               Line2D([], [], marker="v", color="#dd8452", linestyle="none", label="Bah!"),
               Line2D([], [], color="#55a868", linestyle="--", label="target published"),
               Line2D([], [], marker="|", color="black", linestyle="none", markersize=10,
                      label="instance exited")]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.28 if len(runs) < 3 else -0.15),
              ncol=7, fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
