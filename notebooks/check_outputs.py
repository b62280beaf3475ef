"""Fails when an executed notebook has an error output or fewer pictures than it should.

Each notebook states in its metadata (`food101.rich_outputs`) how many image/svg+xml or image/png
outputs it draws. evcxr reports a cell that does not compile or returns an error as an `error`
output, but a panic only as text on the output stream, so panics are looked for there.
"""
import json
import sys

failed = False
for path in sys.argv[1:]:
    nb = json.load(open(path))
    expected = nb["metadata"].get("food101", {}).get("rich_outputs", 0)
    errors, pictures = [], 0
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                errors.append(f"cell {i}: {out.get('ename')}: {out.get('evalue')}")
            text = "".join(out.get("text", []))
            if "panicked at" in text:
                where, *message = text.split("panicked at", 1)[1].strip().splitlines()[:2]
                errors.append(f"cell {i}: panicked at {where} {' '.join(message)}")
            data = out.get("data", {})
            pictures += int("image/svg+xml" in data or "image/png" in data)
    ok = not errors and pictures >= expected
    failed |= not ok
    print(f"{'ok  ' if ok else 'FAIL'} {path}: {pictures} pictures (expected {expected}), {len(errors)} errors")
    for e in errors:
        print("     " + e)
sys.exit(1 if failed else 0)
