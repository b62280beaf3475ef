#!/usr/bin/env python3
"""Export keras.applications.MobileNetV2 ImageNet weights to a Keras-named safetensors file.

The output has the layout of shared/weights/mobilenet_v2_1.0_224_keras_imagenet.safetensors and of
tests/fixtures/keras_a035_61x67.safetensors: one float32 tensor per Keras weight, keyed
`<keras_layer_name>/<variable_name>` (`Conv1/kernel`, `bn_Conv1/gamma`, `bn_Conv1/moving_variance`,
`block_1_depthwise/depthwise_kernel`, `predictions/kernel`, `predictions/bias`, ...), in Keras
layout: conv kernels HWIO, depthwise kernels [kh, kw, C, 1], Dense kernel [in, out].

Needs TensorFlow/Keras (bench/setup-peers.sh) and network access for Keras to download the
weights (weights='imagenet'; Keras has them for alpha 0.35, 0.5, 0.75, 1.0, 1.3, 1.4 and sizes
96, 128, 160, 192, 224).

    data-cache/venv-peers/bin/python scripts/export_keras_imagenet.py --alpha 1.0 --size 224 \\
        --out mobilenet_v2_1.0_224_keras_imagenet.safetensors

`--compare FILE` checks that the output has exactly FILE's keys and shapes.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def keras_weights(model):
    """{'<layer>/<variable>': float32 array} for every weight (trainable or not), in layer order.

    Keras 3 names a DepthwiseConv2D's kernel `kernel`; it is written as `depthwise_kernel`, the
    Keras 2 name that keras.applications weight files and the shared ImageNet file use.
    """
    out = {}
    for layer in model.layers:
        for v in layer.weights:
            var = v.name.split("/")[-1].split(":")[0]
            if type(layer).__name__ == "DepthwiseConv2D" and var == "kernel":
                var = "depthwise_kernel"
            key = f"{layer.name}/{var}"
            if key in out:
                raise SystemExit(f"duplicate weight name {key}")
            out[key] = np.ascontiguousarray(np.asarray(v.numpy(), dtype=np.float32))
    return out


def save_file(tensors, path, metadata=None):
    """Byte-deterministic safetensors writer: tensors sorted by dtype size then name, metadata
    keys sorted, header padded with spaces to a multiple of 8 bytes (the format's own layout)."""
    dtypes = {np.dtype(np.float32): "F32", np.dtype(np.float64): "F64", np.dtype(np.int64): "I64",
              np.dtype(np.int32): "I32", np.dtype(np.uint8): "U8"}
    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    order = sorted(arrays, key=lambda k: (-arrays[k].dtype.itemsize, k))
    header, offset = {}, 0
    if metadata:
        header["__metadata__"] = {k: str(metadata[k]) for k in sorted(metadata)}
    for k in order:
        a = arrays[k]
        header[k] = {"dtype": dtypes[a.dtype], "shape": list(a.shape), "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
    hb = json.dumps(header, separators=(",", ":")).encode()
    hb += b" " * (-len(hb) % 8)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(len(hb).to_bytes(8, "little"))
        f.write(hb)
        for k in order:
            f.write(arrays[k].astype(arrays[k].dtype.newbyteorder("<"), copy=False).tobytes())
    os.replace(tmp, path)


def read_shapes(path):
    """{key: shape} from a safetensors header (no safetensors library needed)."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    header.pop("__metadata__", None)
    return {k: v["shape"] for k, v in header.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--alpha", type=float, default=1.0, help="width multiplier (default 1.0)")
    ap.add_argument("--size", type=int, default=224, help="input side in pixels (default 224)")
    ap.add_argument("--out", required=True, help="output .safetensors path")
    ap.add_argument("--compare", metavar="FILE", help="require exactly FILE's keys and shapes")
    # Testing aid: weights=None (random init) instead of the ImageNet download.
    ap.add_argument("--random", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    import keras

    weights = None if args.random else "imagenet"
    model = keras.applications.MobileNetV2(
        input_shape=(args.size, args.size, 3), alpha=args.alpha, include_top=True,
        weights=weights, classes=1000,
    )
    tensors = keras_weights(model)
    meta = {
        "source": f"keras.applications.MobileNetV2(input_shape=({args.size},{args.size},3), "
                  f"alpha={args.alpha}, include_top=True, weights={weights!r}) (keras {keras.__version__})",
        "preprocess": "x/127.5-1",
        "layout": "keras HWIO",
    }
    if args.random:
        meta["warning"] = "random weights (--random): for testing the export only"
    save_file(tensors, args.out, meta)
    total = sum(a.size for a in tensors.values())
    print(f"wrote {args.out}: {len(tensors)} tensors, {total:,} values")

    if args.compare:
        ref, got = read_shapes(args.compare), read_shapes(args.out)
        missing, extra = sorted(set(ref) - set(got)), sorted(set(got) - set(ref))
        shape_diff = [f"{k}: {got[k]} vs {ref[k]}" for k in sorted(set(ref) & set(got)) if got[k] != ref[k]]
        if missing or extra or shape_diff:
            print(f"MISMATCH with {args.compare}: missing {missing[:10]}, extra {extra[:10]}, "
                  f"shapes {shape_diff[:10]}", file=sys.stderr)
            return 1
        print(f"same {len(ref)} keys and shapes as {args.compare}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
