#!/usr/bin/env python3
"""Turns criterion's results for `cargo bench -p session-codec` into the BENCHMARKS.md tables.

Each benchmark iteration handles a batch of frames (its Throughput::Elements), so time per
frame is the mean estimate divided by the batch size. GB/s counts payload bytes only.
Run it from the repository root after the benchmarks: python3 session-codec/benches/summarize.py
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2] / "target" / "criterion"
CASES = ["data_1", "data_64", "data_1024", "data_16384", "data_65536", "resize"]


def per_frame(group, impl, case):
    """Mean ns per frame, or None when that benchmark did not run."""
    directory = ROOT / group / f"{impl}_{case}" / "new"
    try:
        bench = json.loads((directory / "benchmark.json").read_text())
        estimates = json.loads((directory / "estimates.json").read_text())
    except FileNotFoundError:
        return None
    return estimates["mean"]["point_estimate"] / bench["throughput"]["Elements"]


def payload_len(case):
    return int(case.split("_")[1]) if case.startswith("data_") else 0


def table(group, baselines):
    head = ["frame", "session ns/frame", "session GB/s"]
    for name in baselines:
        head += [f"{name} ns/frame", f"session / {name}"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case in CASES:
        ours = per_frame(group, "session", case)
        if ours is None:
            continue
        size = payload_len(case)
        row = [case.replace("data_", "Data ") + (" B" if size else ""), f"{ours:.1f}",
               f"{size / ours:.2f}" if size else "–"]
        for name in baselines:
            theirs = per_frame(group, name, case)
            row += ["–", "–"] if theirs is None else [f"{theirs:.1f}", f"{ours / theirs:.2f}×"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main():
    if not ROOT.exists():
        sys.exit(f"no results under {ROOT}: run cargo bench -p session-codec first")
    print("Decode\n")
    print(table("decode", ["length_delimited", "naive"]))
    print("\nEncode\n")
    print(table("encode", ["length_delimited", "memcpy"]))


if __name__ == "__main__":
    main()
