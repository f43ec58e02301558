"""Figures of ``scripts.benchmark_speed`` from its children's raw measurements: medians, ratios
to the plain path, estimates against the official code, and the lines printed as it goes."""

from __future__ import annotations

if __name__ == "__main__" and not __package__:  # run by path: the project's packages are not importable
    raise SystemExit("error: run it from the repository root as a module: python -m scripts.benchmark_speed")

import statistics
import sys

# Figures measured side by side on the 2-core CPU machine before the speed work (official code vs our
# plain path then).
BEFORE_SPEED_WORK = {
    "official_s_per_it": 1.87,
    "plain_s_per_it": 2.06,
    "official_test_s_8_images": 12.7,
    "plain_test_s_8_images": 9.8,
}


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def summarize_train(runs: dict[str, list], batch: int) -> dict:
    out = {}
    base = median([t for r in runs["plain"] for t in r["s_per_it"]])
    for name, results in runs.items():
        s = median([t for r in results for t in r["s_per_it"]])
        row = {
            "s_per_it": round(s, 4),
            "it_per_s": round(1 / s, 4),
            "images_per_s": round(batch / s, 3),
            "speedup_vs_plain": round(base / s, 3),
            "peak_rss_mib": round(max(r["peak_rss_mib"] for r in results), 1),
        }
        if batch == 1:
            # The official code ran at BEFORE_SPEED_WORK['official_s_per_it'] where our plain path ran at
            # BEFORE_SPEED_WORK['plain_s_per_it']: scale today's plain figure by that ratio.
            official = base * BEFORE_SPEED_WORK["official_s_per_it"] / BEFORE_SPEED_WORK["plain_s_per_it"]
            row["speedup_vs_official_est"] = round(official / s, 3)
        if "peak_cuda_mib" in results[0]:
            row["peak_cuda_mib"] = round(max(r["peak_cuda_mib"] for r in results), 1)
        out[name] = row
    return out


def summarize_epochs(runs: dict[str, list], epochs: int) -> dict:
    out = {}
    for name, results in runs.items():
        wall, save = median([r["wall_s"] for r in results]), median([r["save_s"] for r in results])
        final = median([r["final_save_s"] for r in results])
        out[name] = {
            "epochs": epochs,
            "wall_s": round(wall, 2),
            "save_s": round(save, 2),
            "save_share": round(save / wall, 3),
            # Saving during the epochs before the last (whose save, the final weights, is required).
            "save_share_before_final": round((save - final) / (wall - final), 3),
            "s_per_epoch": round(wall / epochs, 2),
            "saved_at_epochs": results[0]["saved_epochs"],
            "peak_rss_mib": round(max(r["peak_rss_mib"] for r in results), 1),
        }
    return out


def summarize_test(runs: dict[str, list], n: int) -> dict:
    out = {}
    for key, results in runs.items():
        loop, whole = median([r["loop_s"] for r in results]), median([r["process_s"] for r in results])
        out[key] = {
            "images": n,
            "loop_images_per_s": round(n / loop, 3),
            "process_s": round(whole, 2),
            "process_images_per_s": round(n / whole, 3),
            "peak_rss_mib": round(max(r["peak_rss_mib"] for r in results), 1),
        }
    for key in out:
        plain = out.get(key.replace("fast", "plain"))
        out[key]["loop_speedup_vs_plain"] = round(
            out[key]["loop_images_per_s"] / plain["loop_images_per_s"], 3
        )
        # The official test.py took BEFORE_SPEED_WORK['official_test_s_8_images'] s for 8 images (batch 1,
        # whole process) where our plain path took BEFORE_SPEED_WORK['plain_test_s_8_images'] s: scale today's
        # plain batch-1 figure by that ratio (the machine's speed drifts between days).
        plain_1 = next(v for k, v in out.items() if k.startswith("plain"))
        official_s = (
            plain_1["process_s"]
            * BEFORE_SPEED_WORK["official_test_s_8_images"]
            / BEFORE_SPEED_WORK["plain_test_s_8_images"]
        )
        out[key]["process_speedup_vs_official_est"] = round(official_s / out[key]["process_s"], 3)
    return out


def print_train(batch: int, rows: dict) -> None:
    print(f"training, batch {batch}: median s/it, speed-up vs plain, peak RSS", file=sys.stderr)
    for name, row in rows.items():
        print(
            f"  {name:<36} {row['s_per_it']:8.3f} s/it  x{row['speedup_vs_plain']:.2f}  {row['peak_rss_mib']:8.0f} MiB",
            file=sys.stderr,
        )


def print_epochs(rows: dict) -> None:
    for name, row in rows.items():
        print(
            f"  whole run {name:<8} {row['s_per_epoch']:.1f} s/epoch, saving {100 * row['save_share']:.1f}% of the "
            f"wall time ({100 * row['save_share_before_final']:.1f}% before the final save)",
            file=sys.stderr,
        )


def print_test(rows: dict) -> None:
    for key, row in rows.items():
        print(
            f"  test.py {key:<16} loop {row['loop_images_per_s']:.2f} img/s (x{row['loop_speedup_vs_plain']:.2f}), "
            f"whole process {row['process_s']:.1f} s",
            file=sys.stderr,
        )
