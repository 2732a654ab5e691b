#!/usr/bin/python3
"""Figures of the bridgefs reference experiment, from runs.csv and together.csv in the results folder.

time.png     elapsed time per utility and path, host cache cold and warm (the paper's two benchmark figures)
memory.png   memory per path after each cold run: host cache + guest cache, stacked
together.png two guests at once: server cache and duplicated reads with --dedup shadow vs merge, and with the
             block guest on the bridged disk (GFS-bridged, counted with shadow)
"""
import csv
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PATHS = ["HFS", "GFS", "GFS-bridged", "MyFS", "MyFS-loose"]
COLORS = {"HFS": "#8c8c8c", "GFS": "#d62728", "GFS-bridged": "#ff7f0e", "MyFS": "#1f77b4", "MyFS-loose": "#9467bd"}
MIB = 1024 * 1024


def load(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def dedup_axis(ax, modes, title):
    ax.set_xticks(list(range(len(modes))))
    ax.set_xticklabels(["bridged disk\n(--dedup shadow)" if m == "bridged" else f"--dedup {m}" for m in modes])
    ax.set_ylabel("MiB")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def main(out):
    runs = load(os.path.join(out, "runs.csv"))
    together = load(os.path.join(out, "together.csv"))
    utils = []
    for r in runs:
        if r["utility"] not in utils:
            utils.append(r["utility"])

    def get(path, util, phase, key):
        for r in runs:
            if r["path"] == path and r["utility"] == util and r["phase"] == phase:
                return float(r[key])
        return 0.0

    width = 0.16
    xs = range(len(utils))
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), sharey=True)
    for ax, phase in zip(axes, ["cold", "warm"]):
        for i, p in enumerate(PATHS):
            vals = [max(0.005, get(p, u, phase, "elapsed_s")) for u in utils]
            bars = ax.bar([x + (i - (len(PATHS) - 1) / 2) * width for x in xs], vals, width, label=p, color=COLORS[p])
            for b, v in zip(bars, vals):
                ax.annotate(f"{v:.2g}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=7)
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.004)
        ax.set_xticks(list(xs))
        ax.set_xticklabels(utils)
        ax.set_title(f"host cache {phase}")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("elapsed time (s, log scale)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", ncol=5, fontsize=8)
    fig.suptitle("Elapsed time per utility and path (guests under QEMU TCG)", fontsize=11, x=0.02, ha="left")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "time.png"), dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(12, 4.5))
    for i, p in enumerate(PATHS):
        host = [get(p, u, "cold", "host_cache_bytes") / MIB for u in utils]
        guest = [(get(p, u, "cold", "guest_cached_bytes") + get(p, u, "cold", "guest_buffers_bytes")) / MIB for u in utils]
        guest = [max(0.0, g) for g in guest]
        pos = [x + (i - (len(PATHS) - 1) / 2) * width for x in xs]
        ax.bar(pos, host, width, color=COLORS[p], label=f"{p}: host cache")
        ax.bar(pos, guest, width, bottom=host, color=COLORS[p], alpha=0.45, hatch="//", label=f"{p}: guest cache")
        for x, h, g in zip(pos, host, guest):
            ax.annotate(f"{h + g:.0f}", (x, h + g), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(utils)
    ax.set_ylabel("MiB after the cold run")
    ax.set_title("Memory per path: host cache + guest page cache (Cached + Buffers)")
    ax.legend(ncol=4, fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "memory.png"), dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    modes = [m for m in ["shadow", "merge", "bridged"] if any(t["dedup"] == m for t in together)]

    def tget(mode, path, key):
        if path == "GFS" and mode == "bridged":
            path = "GFS-bridged"       # the block guest of the bridged run
        for t in together:
            if t["dedup"] == mode and t["path"] == path:
                return float(t[key])
        return 0.0

    ax = axes[0]
    cached = [tget(m, "GFS", "server_cached_bytes") / MIB for m in modes]
    resident = [tget(m, "GFS", "resident_bytes") / MIB for m in modes]
    pos = range(len(modes))
    ax.bar([p - 0.2 for p in pos], resident, 0.4, color="#bbbbbb", label="resident pages (keys)")
    ax.bar([p + 0.2 for p in pos], cached, 0.4, color="#2ca02c", label="memory holding them")
    for p, r, c in zip(pos, resident, cached):
        ax.annotate(f"{r:.0f}", (p - 0.2, r), ha="center", va="bottom", fontsize=8)
        ax.annotate(f"{c:.0f}", (p + 0.2, c), ha="center", va="bottom", fontsize=8)
    dedup_axis(ax, modes, "bridgefs cache with both guests' data")

    ax = axes[1]
    for i, p in enumerate(["GFS", "MyFS"]):
        fills = [tget(m, p, "fill_bytes") / MIB for m in modes]
        dups = [tget(m, p, "duplicate_fill_bytes") / MIB for m in modes]
        xpos = [x + (i - 0.5) * 0.4 for x in pos]
        ax.bar(xpos, fills, 0.4, color=COLORS[p], alpha=0.35, label=f"{p}: read from disk")
        ax.bar(xpos, dups, 0.4, color=COLORS[p], label=f"{p}: of which already in memory")
        for x, f, d in zip(xpos, fills, dups):
            ax.annotate(f"{d:.0f}/{f:.0f}", (x, f), ha="center", va="bottom", fontsize=8)
    dedup_axis(ax, modes, "Duplicated reads: disk reads of data already resident")
    fig.suptitle("Two guests at once on the same data: GFS (block) and MyFS (9P)")
    fig.tight_layout()
    fig.savefig(os.path.join(out, "together.png"), dpi=110)
    plt.close(fig)
    print("time.png memory.png together.png")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
