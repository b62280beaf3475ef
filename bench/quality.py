#!/usr/bin/env python3
"""Model quality side by side: food101's recipes and the Keras recipe on one dataset, several seeds.

For every seed, runs (one after the other, on this machine):
  food101-original   `food101 train` with the original recipe (Keras' two phases)
  food101-improved   `food101 train --recipe improved`
  food101-tf-pixels  the original recipe on TensorFlow's pixels (`--jpeg tensorflow`), not run unless asked
  keras              bench/keras_recipe.py (TensorFlow/Keras, the same weights, the same recipe)
  keras-draws        the same, on food101-original's random draws (head init, batch order, dropout
                     masks; `food101 train --draws`), not run unless asked; with both runs the
                     table is followed by their difference epoch by epoch
and writes a Markdown table (mean and per seed: validation accuracy after phase 1 and phase 2,
the standard error of the final mean over the seeds, top-5, wall time) to OUT/quality.md and every run's JSON and log to OUT/.

Wall time is the whole process, start to trained model, with an empty activation cache for food101
(each run gets its own FOOD101_CACHE), and Keras' decoded images kept in memory (`--cache`).

Usage (the venv comes from bench/setup-peers.sh; the release binary from `cargo build --release`):

    data-cache/venv-peers/bin/python bench/quality.py --data ../shared/datasets/food101-5 \\
        --weights ../shared/weights/mobilenet_v2_1.0_224_keras_imagenet.safetensors \\
        --seeds 42,7 --out data-cache/quality [--runs food101-original,food101-improved,keras] [--reuse]

`--reuse` keeps the result of a run whose JSON is already in OUT (to add a seed or a run to a table).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# food101's runs: the arguments each adds to `food101 train`.
FOOD101 = {
    "food101-original": ["--recipe", "original"],
    "food101-improved": ["--recipe", "improved"],
    "food101-tf-pixels": ["--recipe", "original", "--jpeg", "tensorflow"],
}
RUNS = (*FOOD101, "keras", "keras-draws")
DEFAULT_RUNS = ("food101-original", "food101-improved", "keras")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--seeds", default="42,7", help="comma-separated (default 42,7)")
    p.add_argument("--runs", default=",".join(DEFAULT_RUNS), help=f"comma-separated, of {', '.join(RUNS)}")
    p.add_argument("--out", default=os.path.join(ROOT, "data-cache", "quality"))
    p.add_argument("--binary", default=os.path.join(ROOT, "target", "release", "food101"))
    p.add_argument("--reuse", action="store_true", help="keep runs whose JSON is already in --out")
    a = p.parse_args()
    a.seeds = [int(s) for s in a.seeds.split(",") if s]
    a.runs = [r for r in a.runs.split(",") if r]
    unknown = set(a.runs) - set(RUNS)
    if unknown or not a.runs or not a.seeds:
        p.error(f"--runs takes some of {RUNS}, --seeds at least one seed")
    if "keras-draws" in a.runs and "food101-original" not in a.runs[:a.runs.index("keras-draws")]:
        p.error("keras-draws takes food101-original's draws: list food101-original before it")
    return a


def draws_dir(a, seed):
    return os.path.join(a.out, f"food101-original-{seed}", "draws")


def command(a, run, seed, json_path):
    if run.startswith("keras"):
        draws = ["--draws", draws_dir(a, seed)] if run == "keras-draws" else []
        return [sys.executable, os.path.join(HERE, "keras_recipe.py"), "--data", a.data, "--weights", a.weights,
                "--seed", str(seed), "--cache", *draws, "--json", json_path]
    draws = ["--draws", draws_dir(a, seed)] if run == "food101-original" and "keras-draws" in a.runs else []
    return [a.binary, "train", "--data", a.data, "--weights", a.weights, *FOOD101[run], "--seed", str(seed),
            "--out", os.path.join(a.out, f"{run}-{seed}"), "--history-json", json_path, "--no-mlflow", *draws]


def run_one(a, run, seed):
    """The run's numbers: accuracy after each phase, top-5, wall seconds."""
    json_path = os.path.join(a.out, f"{run}-{seed}.json")
    if not (a.reuse and os.path.exists(json_path)):
        cache = tempfile.mkdtemp(prefix="food101-quality-cache-")
        env = dict(os.environ, FOOD101_CACHE=cache)
        print(f"quality: {run} seed {seed} ...", flush=True)
        started = time.perf_counter()
        with open(os.path.join(a.out, f"{run}-{seed}.log"), "w") as log:
            rc = subprocess.run(command(a, run, seed, json_path), stdout=log, stderr=subprocess.STDOUT, env=env).returncode
        seconds = time.perf_counter() - started
        shutil.rmtree(cache, ignore_errors=True)
        if rc != 0:
            raise SystemExit(f"quality: {run} seed {seed} failed ({rc}); see {a.out}/{run}-{seed}.log")
        with open(json_path) as f:
            result = json.load(f)
        result["wall_seconds"] = seconds
        with open(json_path, "w") as f:
            json.dump(result, f, indent=1)
    with open(json_path) as f:
        result = json.load(f)
    epochs = result["history"] if run.startswith("keras") else result["epochs"]
    phase1 = [e for e in epochs if e["phase"] == "feature_extraction"]
    row = {
        "phase1": phase1[-1]["val_accuracy"] if phase1 else None,
        "final": epochs[-1]["val_accuracy"],
        "top5": epochs[-1]["val_top5"],
        "seconds": result["wall_seconds"],
        "val_accuracy": [e["val_accuracy"] for e in epochs],
        "val_loss": [e["val_loss"] for e in epochs],
    }
    print(f"quality: {run} seed {seed}: phase 1 {row['phase1']:.4f}, final {row['final']:.4f}, "
          f"top-5 {row['top5']:.4f}, {row['seconds']:.0f} s", flush=True)
    return row


def table(a, results):
    lines = [
        f"Data: `{a.data}`; seeds {', '.join(map(str, a.seeds))}; "
        f"{os.cpu_count()} CPUs ({cpu_model()}); {time.strftime('%Y-%m-%d')}.",
        "",
        "| run | phase 1 accuracy | final accuracy | ± s.e. | final top-5 | wall time | per seed (final) |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in a.runs:
        rows = [results[(run, s)] for s in a.seeds]
        mean = lambda k: statistics.mean(r[k] for r in rows)
        per_seed = ", ".join(f"{s}: {100 * r['final']:.1f}%" for s, r in zip(a.seeds, rows))
        # How far the mean of these seeds may sit from the mean over all seeds (one standard error).
        spread = statistics.stdev(r["final"] for r in rows) / len(rows) ** 0.5 if len(rows) > 1 else float("nan")
        lines.append(f"| {run} | {100 * mean('phase1'):.2f}% | **{100 * mean('final'):.2f}%** | {100 * spread:.2f} | "
                     f"{100 * mean('top5'):.1f}% | {mean('seconds'):.0f} s | {per_seed} |")
    if "keras-draws" in a.runs:
        lines += ["", "food101-original against keras-draws (the same random draws), epoch by epoch:", "",
                  "| seed | largest accuracy gap | largest val-loss gap | phase 1 (food101 / Keras) | final (food101 / Keras) |",
                  "|---|---|---|---|---|"]
        for seed in a.seeds:
            f, k = results[("food101-original", seed)], results[("keras-draws", seed)]
            acc = max(abs(x - y) for x, y in zip(f["val_accuracy"], k["val_accuracy"]))
            loss = max(abs(x - y) for x, y in zip(f["val_loss"], k["val_loss"]))
            lines.append(f"| {seed} | {100 * acc:.2f} points | {loss:.4f} | {100 * f['phase1']:.2f}% / {100 * k['phase1']:.2f}% | "
                         f"{100 * f['final']:.2f}% / {100 * k['final']:.2f}% |")
    return "\n".join(lines) + "\n"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def main():
    a = parse_args()
    os.makedirs(a.out, exist_ok=True)
    if any(r.startswith("food101") for r in a.runs) and not os.path.exists(a.binary):
        raise SystemExit(f"quality: no {a.binary}; run `cargo build --release` first")
    results = {(run, seed): run_one(a, run, seed) for seed in a.seeds for run in a.runs}
    text = table(a, results)
    with open(os.path.join(a.out, "quality.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
