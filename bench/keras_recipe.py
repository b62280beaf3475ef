#!/usr/bin/env python3
"""The original project's two-phase Keras transfer-learning recipe, as a yardstick for our trainer.

Runs keras.applications.MobileNetV2 (ImageNet weights from a Keras-named safetensors file) on a
class-folder dataset (`<data>/train/<class>/*`, `<data>/validation/<class>/*`, or `val/`, `test/`)
or a Food-101-layout one (`<data>/images/<class>/<id>.jpg`, split by `meta/train.txt` / `meta/test.txt`)
so that our Rust trainer's accuracy and wall time can be compared with Keras on the same data and
weights:

  phase 1 (feature extraction): base frozen; head GlobalAveragePooling2D -> Dropout(0.3) ->
      Dense(classes) on logits; Adam(1e-3); epochs 1..E1.
  phase 2 (fine-tuning): base.layers[-50:] (block_11_project onward) unfrozen; recompiled with a
      fresh Adam(1e-5); epochs E1+1..E1+E2 (fit with initial_epoch=E1).

Loss: sparse softmax cross-entropy on logits; metrics: accuracy and top-5 (top-k, k = min(5,
classes)); validation after every epoch. Input: decode, resize to 224x224 bilinear with
antialiasing (as Pillow, which our Rust pipeline follows; `--resize bilinear` for plain bilinear),
round to uint8 values, scale to [-1, 1].
Training batches are reshuffled every epoch (seeded), no augmentation. By default images are
decoded and resized again every epoch (Keras' plain tf.data pipeline cost); `--cache` keeps the
decoded images in memory instead.

With `--draws DIR` (written by `food101 train --draws DIR`) Keras takes food101's random draws
instead of its own: the head's initial kernel, each epoch's order of the training images and
dropout's masks (a GlobalAveragePooling2D -> mask -> Dense head, the mask an input that is all
ones in validation). Both then train on the same draws, and their curves should agree epoch by
epoch up to float rounding; decoded images are kept in memory.

BatchNorm stays in inference mode in both phases (see InferenceBase: keras-team/keras#20285);
`--literal-keras3` uses the plain functional `base(inputs, training=False)` instead, under which
Keras 3's fit() puts the unfrozen BN layers of phase 2 in batch-statistics mode.

Usage (the venv comes from bench/setup-peers.sh):

    data-cache/venv-peers/bin/python bench/keras_recipe.py \\
        --data /work/shared/datasets/cats_and_dogs_filtered \\
        --weights /work/shared/weights/mobilenet_v2_1.0_224_keras_imagenet.safetensors \\
        [--epochs1 10] [--epochs2 10] [--unfreeze-last 50] [--lr1 1e-3] [--lr2 1e-5] [--batch 32] \\
        [--seed 0] [--fraction 1.0] [--threads N] [--resize antialiased|bilinear] [--cache] [--literal-keras3] \\
        [--draws DIR] [--json OUT.json]

Prints one line per epoch, then a JSON summary (also written to --json):
    {"framework": "keras", "tf_version", "keras_version", "threads", "history": [{"epoch", "phase",
     "loss", "accuracy", "top5", "val_loss", "val_accuracy", "val_top5", "lr", "seconds"}, ...],
     "phase_seconds": {"feature_extraction", "fine_tune"}, "total_seconds", "final": {"val_accuracy",
     "val_top5"}, ...}
total_seconds runs from the start of data loading (listing the files) to the end of phase 2; it
includes the model build and weight loading (reported apart as setup_seconds), not Python imports.
"""

import argparse
import json
import math
import os
import sys
import time

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
SIZE = 224
DROPOUT = 0.3
# Keras base.layers[-50:] starts at block_11_project: 1,855,104 base params (as bench/peers.py).
PHASE2_FIRST_LAYER = "block_11_project"
PHASE2_TRAINABLE_BASE_PARAMS = 1_855_104


def log(*args):
    print("keras_recipe:", *args, file=sys.stderr, flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="folder with train/<class>/ and validation/<class>/")
    p.add_argument("--weights", required=True, help="Keras-named MobileNetV2 1.0 safetensors file")
    p.add_argument("--epochs1", type=int, default=10, help="feature-extraction epochs (default 10)")
    p.add_argument("--epochs2", type=int, default=10, help="fine-tuning epochs (default 10)")
    p.add_argument("--unfreeze-last", type=int, default=50,
                   help="phase 2 trains base.layers[-N:] (default 50: from block_11_project on)")
    p.add_argument("--lr1", type=float, default=1e-3, help="phase 1 Adam learning rate")
    p.add_argument("--lr2", type=float, default=1e-5, help="phase 2 Adam learning rate")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fraction", type=float, default=1.0,
                   help="keep this fraction of each class's images in both splits (quick tests)")
    p.add_argument("--threads", type=int, default=None,
                   help="TF intra-op, inter-op and tf.data threads (default: all usable cores)")
    p.add_argument("--resize", choices=("antialiased", "bilinear"), default="antialiased",
                   help="antialiased (Pillow's filter, food101's default) or bilinear "
                        "(tf.image.resize's default, the original Colab pipeline)")
    p.add_argument("--cache", action="store_true", help="decode and resize once, keep images in memory")
    p.add_argument("--literal-keras3", action="store_true",
                   help="plain functional base(inputs, training=False): BN follows fit's training flag")
    p.add_argument("--draws", metavar="DIR", help="train with food101's random draws (food101 train --draws DIR)")
    p.add_argument("--json", metavar="OUT", help="also write the JSON summary here")
    a = p.parse_args()
    if a.threads is None:
        a.threads = len(os.sched_getaffinity(0))
    if a.epochs1 < 0 or a.epochs2 < 0 or a.batch < 1 or a.threads < 1 or a.unfreeze_last < 0:
        p.error("epochs >= 0, batch, threads >= 1, unfreeze-last >= 0")
    if not 0.0 < a.fraction <= 1.0:
        p.error("--fraction must be in (0, 1]")
    return a


def limit_threads_env(n):
    """Before TensorFlow's import: its thread pools (and OpenMP, if any) read these at start-up."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        os.environ[var] = str(n)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# ----------------------------------------------------------------------------------------------
# Data


def list_split(split_dir, classes):
    """(paths, labels) of split_dir/<class>/*, files sorted within each class."""
    paths, labels = [], []
    for label, cls in enumerate(classes):
        d = os.path.join(split_dir, cls)
        if not os.path.isdir(d):
            continue
        names = sorted(n for n in os.listdir(d) if n.lower().endswith(IMAGE_EXTENSIONS))
        paths += [os.path.join(d, n) for n in names]
        labels += [label] * len(names)
    return paths, labels


def subset(paths, labels, fraction, seed, salt):
    """`fraction` of each class, rounded, at least one image: the rule of our Dataset::subset.
    The draw is seeded but not the same draw as the Rust one (different generators)."""
    if fraction >= 1.0:
        return paths, labels
    import numpy as np

    out_p, out_l = [], []
    for label in sorted(set(labels)):
        of_class = [p for p, l in zip(paths, labels) if l == label]
        rng = np.random.default_rng([seed, salt, label])
        n = min(len(of_class), max(1, round(len(of_class) * fraction)))
        chosen = sorted(of_class[i] for i in rng.permutation(len(of_class))[:n])
        out_p += chosen
        out_l += [label] * n
    return out_p, out_l


def list_food101(root, split, classes):
    """(paths, labels) of a Food-101 split file, `meta/<split>.txt` lines `<class>/<id>`."""
    paths, labels = [], []
    index = {c: i for i, c in enumerate(classes)}
    with open(os.path.join(root, "meta", f"{split}.txt")) as f:
        for line in f:
            line = line.strip()
            if line:
                paths.append(os.path.join(root, "images", line + ".jpg"))
                labels.append(index[line.split("/")[0]])
    return paths, labels


def load_dataset(root, fraction, seed):
    if os.path.isfile(os.path.join(root, "meta", "train.txt")):
        # Food-101 layout: images/<class>/<id>.jpg, the official split in meta/{train,test}.txt.
        images = os.path.join(root, "images")
        classes = sorted(d for d in os.listdir(images) if os.path.isdir(os.path.join(images, d)))
        train = subset(*list_food101(root, "train", classes), fraction, seed, 1)
        val = subset(*list_food101(root, "test", classes), fraction, seed, 2)
        return classes, train, val, os.path.join(root, "meta", "test.txt")
    train_dir = os.path.join(root, "train")
    classes = sorted(d for d in os.listdir(train_dir) if os.path.isdir(os.path.join(train_dir, d)))
    if not classes:
        raise SystemExit(f"keras_recipe: no class folders under {train_dir}")
    val_dir = next((os.path.join(root, d) for d in ("validation", "val", "test")
                    if os.path.isdir(os.path.join(root, d))), None)
    if val_dir is None:
        raise SystemExit(f"keras_recipe: no validation/, val/ or test/ folder under {root}")
    train = subset(*list_split(train_dir, classes), fraction, seed, 1)
    val = subset(*list_split(val_dir, classes), fraction, seed, 2)
    if not train[0] or not val[0]:
        raise SystemExit("keras_recipe: empty train or validation split")
    return classes, train, val, val_dir


def make_pipeline(tf, paths, labels, batch, shuffle_seed, cache, threads, antialias):
    def load(path, label):
        # decode_image, not decode_jpeg: accepts the same PNG/BMP/GIF files our pipeline does.
        img = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        img = tf.image.resize(img, (SIZE, SIZE), method="bilinear", antialias=antialias)
        # Pillow (and our Rust pipeline) return uint8 pixels; round likewise so both see one input.
        img = tf.clip_by_value(tf.round(img), 0.0, 255.0)
        return img / 127.5 - 1.0, label

    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    if cache:
        ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).cache()
    if shuffle_seed is not None:
        # Shuffling the whole split (file names, or cached images) reshuffles it every epoch.
        ds = ds.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)
    if not cache:
        ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch).prefetch(tf.data.AUTOTUNE)
    # tf.data has its own pool, as large as the machine by default: hold it to --threads too.
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    return ds.with_options(options)


# ----------------------------------------------------------------------------------------------
# Model


def read_safetensors(path):
    try:
        from safetensors.numpy import load_file
    except ImportError:  # the format is simple enough to read by hand
        import numpy as np

        dtypes = {"F32": np.float32, "F64": np.float64, "F16": np.float16, "I64": np.int64,
                  "I32": np.int32, "U32": np.uint32, "U8": np.uint8}
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
            data = f.read()
        header.pop("__metadata__", None)
        return {k: np.frombuffer(data[h["data_offsets"][0]:h["data_offsets"][1]],
                                 dtype=np.dtype(dtypes[h["dtype"]]).newbyteorder("<")).reshape(h["shape"])
                for k, h in header.items()}
    return load_file(path)


def load_base_weights(base, path):
    """Assigns every base variable from `<layer>/<variable>`; fails on any missing, extra or
    mis-shaped tensor (the file's ImageNet classifier, `predictions/*`, is the only one left out)."""
    tensors = read_safetensors(path)
    used = set()
    for layer in base.layers:
        for v in layer.weights:
            var = v.name.split("/")[-1].split(":")[0]
            # Keras 3 calls a depthwise kernel `kernel`; the file keeps the Keras 2 name.
            if type(layer).__name__ == "DepthwiseConv2D" and var == "kernel":
                var = "depthwise_kernel"
            key = f"{layer.name}/{var}"
            if key not in tensors:
                raise SystemExit(f"keras_recipe: {path} has no tensor {key}")
            if tuple(tensors[key].shape) != tuple(v.shape):
                raise SystemExit(f"keras_recipe: {key} is {tensors[key].shape} in the file, {v.shape} in Keras")
            v.assign(tensors[key].astype("float32"))
            used.add(key)
    extra = sorted(k for k in set(tensors) - used if not k.startswith("predictions/"))
    if extra:
        raise SystemExit(f"keras_recipe: tensors not in the base model: {extra[:10]}")
    return len(used)


def build_model(keras, weights, classes, literal, draws=None):
    base = keras.applications.MobileNetV2(input_shape=(SIZE, SIZE, 3), include_top=False, weights=None)
    n = load_base_weights(base, weights)
    log(f"loaded {n} base tensors from {weights}")

    class InferenceBase(keras.layers.Layer):
        """Runs the base with BatchNorm in inference mode, whatever fit() says.

        A functional model hands its own `training` value to every layer whose call() takes one,
        overriding the `training=False` written at construction (keras-team/keras#20285): phase 2's
        unfrozen BN layers would then normalise with batch statistics and update their moving
        ones. This call() has no `training` argument, so nothing reaches it and the inner call
        keeps training=False. The base stays a tracked sub-layer, so its variables (and their
        per-layer trainable flags) are the wrapper's, and optimisers see them.
        """

        def __init__(self, base, **kwargs):
            super().__init__(**kwargs)
            self.base = base

        def call(self, x):
            return self.base(x, training=False)

        def compute_output_shape(self, input_shape):
            return self.base.compute_output_shape(input_shape)

    inputs = keras.Input((SIZE, SIZE, 3))
    features = base(inputs, training=False) if literal else InferenceBase(base, name="inference_base")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(features)
    if draws is None:
        x = keras.layers.Dropout(DROPOUT)(x)
        outputs = keras.layers.Dense(classes)(x)
        return base, keras.Model(inputs, outputs)
    # Dropout with the drawn mask: kept features scaled by 1 / (1 - rate), as Dropout does.
    mask = keras.Input((x.shape[-1],), name="dropout_mask")
    dense = keras.layers.Dense(classes)
    outputs = dense(keras.layers.Multiply()([x, mask]))
    kernel = draws.tensors["dense/kernel"]  # [classes, features]
    dense.kernel.assign(kernel.T.astype("float32"))
    dense.bias.assign(keras.ops.zeros((classes,)))
    return base, keras.Model([inputs, mask], outputs)


class Draws:
    """food101's random draws (`food101 train --draws DIR`): draws.json names the training
    images (paths relative to the dataset's root, labels), draws.safetensors holds `dense/kernel`
    and, per epoch E (counted from 1 over both phases), `epoch_E/order` and `epoch_E/keep`."""

    def __init__(self, folder, root, classes, batch):
        with open(os.path.join(folder, "draws.json")) as f:
            self.index = json.load(f)
        self.tensors = read_safetensors(os.path.join(folder, "draws.safetensors"))
        if self.index["classes"] != classes:
            raise SystemExit(f"keras_recipe: the draws are for classes {self.index['classes'][:5]}..., not these")
        if self.index["batch_size"] != batch or abs(self.index["dropout"] - DROPOUT) > 1e-6:
            raise SystemExit(f"keras_recipe: the draws are for batch {self.index['batch_size']} and dropout "
                             f"{self.index['dropout']}, this run has {batch} and {DROPOUT}")
        self.paths = [os.path.join(root, rel) for rel, _ in self.index["train"]]
        self.labels = [label for _, label in self.index["train"]]

    def epochs(self):
        return self.index["epochs"]

    def dataset(self, tf, images, labels, epoch, batch):
        """Epoch `epoch`'s batches, ((images, mask), labels), in the drawn order and masks."""
        import numpy as np

        order = self.tensors[f"epoch_{epoch}/order"].astype(np.int64)
        mask = self.tensors[f"epoch_{epoch}/keep"].astype(np.float32) / np.float32(1.0 - DROPOUT)

        def batches():
            for start in range(0, len(order), batch):
                rows = order[start:start + batch]
                yield (images[rows], mask[start:start + batch]), labels[rows]

        spec = ((tf.TensorSpec((None, SIZE, SIZE, 3), tf.float32), tf.TensorSpec((None, mask.shape[1]), tf.float32)),
                tf.TensorSpec((None,), tf.int32))
        return tf.data.Dataset.from_generator(batches, output_signature=spec).prefetch(2)


def bn_moving_stats(base, names):
    return {n: [v.numpy().copy() for v in (base.get_layer(n).moving_mean, base.get_layer(n).moving_variance)]
            for n in names}


def compile_model(keras, model, lr, classes):
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=lr),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                 keras.metrics.SparseTopKCategoricalAccuracy(k=min(5, classes), name="top5")],
    )


def n_params(variables):
    return sum(int(math.prod(v.shape)) for v in variables)


# ----------------------------------------------------------------------------------------------


def main():
    a = parse_args()
    limit_threads_env(a.threads)
    import tensorflow as tf

    # Before any op runs, or TF refuses to change them.
    tf.config.threading.set_intra_op_parallelism_threads(a.threads)
    tf.config.threading.set_inter_op_parallelism_threads(a.threads)
    import keras

    log(f"tensorflow {tf.__version__}, keras {keras.__version__}, threads {a.threads}, "
        f"{'literal Keras 3 functional base' if a.literal_keras3 else 'base held in inference mode'}, "
        f"{'cached' if a.cache else 'uncached'} input pipeline")
    keras.utils.set_random_seed(a.seed)

    t_start = time.perf_counter()
    classes, (train_p, train_l), (val_p, val_l), val_dir = load_dataset(a.data, a.fraction, a.seed)
    log(f"{len(classes)} classes, {len(train_p)} train images, {len(val_p)} validation images ({val_dir})")
    antialias = a.resize == "antialiased"
    draws = None
    if a.draws:
        import numpy as np

        draws = Draws(a.draws, a.data, classes, a.batch)
        if sorted(map(os.path.normpath, draws.paths)) != sorted(map(os.path.normpath, train_p)):
            raise SystemExit(f"keras_recipe: the draws in {a.draws} are for other training images")
        if a.epochs1 + a.epochs2 > draws.epochs():
            raise SystemExit(f"keras_recipe: the draws cover {draws.epochs()} epochs, this run has {a.epochs1 + a.epochs2}")
        decoded = make_pipeline(tf, draws.paths, draws.labels, a.batch, None, True, a.threads, antialias)
        train_images = np.concatenate([x.numpy() for x, _ in decoded])
        train_labels = np.asarray(draws.labels, dtype=np.int32)
        features = 1280  # MobileNetV2 1.0's out_relu channels
        val_ds = make_pipeline(tf, val_p, val_l, a.batch, None, True, a.threads, antialias).map(
            lambda x, y: ((x, tf.ones((tf.shape(x)[0], features))), y))
        log(f"draws from {a.draws}: {draws.epochs()} epochs, {len(train_images)} training images in memory")
    else:
        train_ds = make_pipeline(tf, train_p, train_l, a.batch, a.seed, a.cache, a.threads, antialias)
        val_ds = make_pipeline(tf, val_p, val_l, a.batch, None, a.cache, a.threads, antialias)

    def fit(phase, first, last):
        """Epochs first+1..last (counted over both phases) of `phase`."""
        if draws is None:
            # shuffle=False: the tf.data pipeline shuffles (fit's own flag only warns on datasets).
            model.fit(train_ds, validation_data=val_ds, initial_epoch=first, epochs=last, shuffle=False,
                      callbacks=[EpochLog(phase)], verbose=0)
            return
        for epoch in range(first, last):
            model.fit(draws.dataset(tf, train_images, train_labels, epoch + 1, a.batch), validation_data=val_ds,
                      initial_epoch=epoch, epochs=epoch + 1, shuffle=False, callbacks=[EpochLog(phase)], verbose=0)

    base, model = build_model(keras, a.weights, len(classes), a.literal_keras3, draws)
    setup_seconds = time.perf_counter() - t_start
    history = []

    class EpochLog(keras.callbacks.Callback):
        """Per-epoch metrics, learning rate and wall time (training + validation)."""

        def __init__(self, phase):
            super().__init__()
            self.phase = phase

        def on_epoch_begin(self, epoch, logs=None):
            self.t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            row = {"epoch": epoch + 1, "phase": self.phase}
            for k in ("loss", "accuracy", "top5", "val_loss", "val_accuracy", "val_top5"):
                row[k] = float(logs[k]) if k in logs else None
            row["lr"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
            row["seconds"] = time.perf_counter() - self.t0
            history.append(row)
            print(f"epoch {row['epoch']:3d} {self.phase:18s} loss {row['loss']:.4f} acc {row['accuracy']:.4f} "
                  f"top5 {row['top5']:.4f} | val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f} "
                  f"top5 {row['val_top5']:.4f} | lr {row['lr']:.1e} {row['seconds']:.1f}s", flush=True)

    # Phase 1: frozen base (its BN layers are then in inference mode in any case).
    base.trainable = False
    compile_model(keras, model, a.lr1, len(classes))
    log(f"phase 1: {n_params(model.trainable_weights)} trainable params")
    t1 = time.perf_counter()
    if a.epochs1:
        fit("feature_extraction", 0, a.epochs1)
    phase1_seconds = time.perf_counter() - t1

    # Phase 2: unfreeze the last layers; recompiling is what makes the new flags count (and gives
    # a fresh Adam).
    unfrozen = base.layers[len(base.layers) - min(a.unfreeze_last, len(base.layers)):]
    base.trainable = True
    for layer in base.layers[:len(base.layers) - len(unfrozen)]:
        layer.trainable = False
    first = unfrozen[0].name if unfrozen else None
    n_base = n_params(base.trainable_weights)
    log(f"phase 2: base trains from {first}: {n_base} base params, "
        f"{n_params(model.trainable_weights)} trainable params in all")
    if a.unfreeze_last == 50 and (first != PHASE2_FIRST_LAYER or n_base != PHASE2_TRAINABLE_BASE_PARAMS):
        raise SystemExit(f"keras_recipe: phase 2 would train {n_base} base params from {first}, "
                         f"want {PHASE2_TRAINABLE_BASE_PARAMS} from {PHASE2_FIRST_LAYER}")
    unfrozen_bn = [l.name for l in unfrozen if type(l).__name__ == "BatchNormalization"]
    bn_before = bn_moving_stats(base, unfrozen_bn)
    compile_model(keras, model, a.lr2, len(classes))
    t2 = time.perf_counter()
    if a.epochs2:
        fit("fine_tune", a.epochs1, a.epochs1 + a.epochs2)
    t_end = time.perf_counter()

    # Moving statistics only change when BN ran in batch-statistics (training) mode: the check
    # that InferenceBase does its job, and a flag on what --literal-keras3 measured.
    bn_after = bn_moving_stats(base, unfrozen_bn)
    bn_drift = max((float(abs(after - before).max()) for n in unfrozen_bn
                    for before, after in zip(bn_before[n], bn_after[n])), default=0.0)
    log(f"phase 2: largest change of an unfrozen BN moving statistic: {bn_drift:.3g} "
        f"({'batch-statistics mode' if bn_drift > 0 else 'inference mode'})")

    last = history[-1] if history else {}
    summary = {
        "framework": "keras",
        "tf_version": tf.__version__,
        "keras_version": keras.__version__,
        "threads": a.threads,
        "history": history,
        "phase_seconds": {"feature_extraction": phase1_seconds, "fine_tune": t_end - t2},
        "total_seconds": t_end - t_start,
        "setup_seconds": setup_seconds,
        "final": {"val_accuracy": last.get("val_accuracy"), "val_top5": last.get("val_top5")},
        "config": {
            "data": a.data, "weights": a.weights, "epochs1": a.epochs1, "epochs2": a.epochs2,
            "unfreeze_last": a.unfreeze_last, "lr1": a.lr1, "lr2": a.lr2, "batch": a.batch,
            "seed": a.seed, "fraction": a.fraction, "cache": a.cache, "resize": a.resize, "literal_keras3": a.literal_keras3,
            "draws": a.draws,
            "classes": len(classes), "train_images": len(train_p), "validation_images": len(val_p),
        },
        "phase2_bn_batch_statistics": bn_drift > 0,
    }
    text = json.dumps(summary, indent=1)
    print(text, flush=True)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
