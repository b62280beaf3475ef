"""Fails when an executed notebook has an error output or fewer pictures than it should.

    python check_outputs.py [--min-accuracy A | --stand-in] NOTEBOOK...

Each notebook states in its metadata (`food101.rich_outputs`) how many image/svg+xml or image/png
outputs it draws. evcxr reports a cell that does not compile or returns an error as an `error`
output, but a panic only as text on the output stream, so panics are looked for there.
--min-accuracy: the last "validation accuracy X" a notebook prints must reach A, and no settings
cell may call the run a stand-in. --stand-in: every settings cell must say that the run is one.
"""
import argparse
import json
import re

STAND_IN = "THIS RUN IS A STAND-IN"
ACCURACY = re.compile(r"validation accuracy (\d+\.\d+)")

parser = argparse.ArgumentParser()
parser.add_argument("--min-accuracy", type=float)
parser.add_argument("--stand-in", action="store_true")
parser.add_argument("notebooks", nargs="+")
args = parser.parse_args()

failed = False
accuracy = None
for path in args.notebooks:
    nb = json.load(open(path))
    expected = nb["metadata"].get("food101", {}).get("rich_outputs", 0)
    errors, pictures, stand_in = [], 0, False
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                errors.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
            text = "".join(out.get("text", [])) + "".join(out.get("data", {}).get("text/plain", []))
            if "panicked at" in text:
                where, *message = text.split("panicked at", 1)[1].strip().splitlines()[:2]
                errors.append(f"cell {i}: panicked at {where} {' '.join(message)}")
            stand_in |= STAND_IN in text
            accuracy = ([float(a) for a in ACCURACY.findall(text)] or [accuracy])[-1]
            data = out.get("data", {})
            pictures += int("image/svg+xml" in data or "image/png" in data)
    if args.stand_in and not stand_in:
        errors.append(f"the settings do not say '{STAND_IN}'")
    if args.min_accuracy is not None and stand_in:
        errors.append(f"the settings say '{STAND_IN}', but this run should be on real photos and weights")
    ok = not errors and pictures >= expected
    failed |= not ok
    print(f"{'ok  ' if ok else 'FAIL'} {path}: {pictures} pictures (expected {expected}), {len(errors)} errors")
    for e in errors:
        print("     " + e)
if args.min_accuracy is not None:
    ok = accuracy is not None and accuracy >= args.min_accuracy
    failed |= not ok
    print(f"{'ok  ' if ok else 'FAIL'} final validation accuracy {accuracy} (at least {args.min_accuracy})")
raise SystemExit(1 if failed else 0)
