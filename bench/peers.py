#!/usr/bin/env python3
"""Peer side of the side-by-side benchmark: TensorFlow/Keras and PyTorch on the same cases as ours.

Called by the Rust driver (`cargo run --release --bin bench`) once per (framework, case, threads),
so that the peak RSS it reports belongs to that one case:

    data-cache/venv-peers/bin/python bench/peers.py --framework tensorflow|tensorflow-xla|pytorch \
        --case inference|head|phase2|full|etl|etl-aa --threads N --batch B [--size 224] [--classes 101] \
        [--data DIR] [--warmup 2] [--steps K] [--min-seconds S]

Prints exactly one JSON line on stdout:
    {"framework", "case", "threads", "batch", "images_per_s", "peak_rss_mb", "steps", "seconds", "version"}
Everything else (framework logs, the checks below) goes to stderr. Exit status != 0 on failure.

Model: MobileNetV2 1.0 with random weights + GlobalAveragePooling + Dropout(0.3) + Dense(classes),
the recipe of the original Keras project; softmax cross-entropy on logits; Adam (lr 1e-3 for head and
full, 1e-5 for phase2). BatchNorm is ALWAYS in inference mode (moving statistics), also where its
gamma/beta train. Dropout is active in the training cases. See bench/README.md.
"""

import argparse
import json
import os
import resource
import sys
import time

CASES = ("inference", "head", "phase2", "full", "etl", "etl-aa")
# etl resizes bilinearly from the 2x2 nearest pixels (tf.image.resize's default); etl-aa antialiases
# (the filter widens when shrinking, as Pillow and our training pipeline do).
ANTIALIASED = {"etl": False, "etl-aa": True}
LEARNING_RATE = {"head": 1e-3, "full": 1e-3, "phase2": 1e-5}
# Keras: base.layers[-50:] = from `block_11_project` on; the same slice of torchvision's model.
PHASE2_TRAINABLE_BASE_PARAMS = 1_855_104
DROPOUT = 0.3


def log(*args):
    print("peers:", *args, file=sys.stderr, flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--framework", required=True, choices=("tensorflow", "tensorflow-xla", "pytorch"),
                   help="tensorflow-xla: the same steps compiled by XLA (tf.function(jit_compile=True))")
    p.add_argument("--case", required=True, choices=CASES)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--classes", type=int, default=101)
    p.add_argument("--data", help="etl: a folder of JPEGs (walked recursively for *.jpg)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps (batches for etl) first")
    p.add_argument("--steps", type=int, default=None,
                   help="timed steps at least (default 5; etl: the rest of one pass over --data)")
    p.add_argument("--min-seconds", type=float, default=0.0, help="timed seconds at least")
    p.add_argument("--nchw", action="store_true",
                   help="pytorch: keep model and input in contiguous NCHW memory instead of channels_last")
    a = p.parse_args()
    if a.threads < 1 or a.batch < 1 or a.size < 32 or a.classes < 1 or a.warmup < 0:
        p.error("threads, batch, classes >= 1, size >= 32, warmup >= 0")
    if a.steps is not None and a.steps < 1:
        p.error("--steps must be >= 1")
    if a.case in ANTIALIASED and not a.data:
        p.error(f"--case {a.case} needs --data DIR")
    if a.case in ANTIALIASED and a.framework == "tensorflow-xla":
        p.error("XLA compiles model steps; the input pipeline (tf.data) has no XLA form: use --framework tensorflow")
    return a


def limit_threads_env(n):
    """Before any framework import: the thread pools read these when they start."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS"):
        os.environ[var] = str(n)
    os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def jpeg_files(root):
    files = []
    for dirpath, _, names in os.walk(root):
        files += [os.path.join(dirpath, n) for n in names if n.lower().endswith((".jpg", ".jpeg"))]
    files.sort()
    if not files:
        raise SystemExit(f"peers: no *.jpg under {root}")
    return files


def cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def timed_loop(step, warmup, steps, min_seconds):
    """Runs `step()` (which returns the number of images it handled) `warmup` times untimed, then
    until both `steps` steps and `min_seconds` seconds are done. Returns (timed steps, images,
    seconds)."""
    for _ in range(warmup):
        step()
    n = images = 0
    c0 = cpu_seconds()
    t0 = time.perf_counter()
    while True:
        images += step()
        n += 1
        if n >= steps and time.perf_counter() - t0 >= min_seconds:
            break
    seconds = time.perf_counter() - t0
    # A check that the thread limits hold: this process's CPU use over the timed steps.
    log(f"CPU use over the timed steps: {(cpu_seconds() - c0) / seconds:.2f} cores")
    return n, images, seconds


def etl_steps(a, n_files):
    """etl without --steps: the batches of one pass over the files, less the warm-up ones."""
    if a.steps is not None:
        return a.steps
    return max(1, -(-n_files // a.batch) - a.warmup)


# ----------------------------------------------------------------------------------------------
# TensorFlow / Keras 3


def run_tensorflow(a):
    import tensorflow as tf

    # Before any op runs: intra-op pool = N, inter-op pool = 1.
    tf.config.threading.set_intra_op_parallelism_threads(a.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras

    log(f"tensorflow {tf.__version__}, keras {keras.__version__}, intra-op "
        f"{tf.config.threading.get_intra_op_parallelism_threads()}, inter-op "
        f"{tf.config.threading.get_inter_op_parallelism_threads()}")

    if a.case in ANTIALIASED:
        return tf.__version__, etl_tensorflow(tf, a)

    keras.utils.set_random_seed(0)
    base = keras.applications.MobileNetV2(input_shape=(a.size, a.size, 3), alpha=1.0,
                                          include_top=False, weights=None)
    gap = keras.layers.GlobalAveragePooling2D()
    drop = keras.layers.Dropout(DROPOUT)
    dense = keras.layers.Dense(a.classes)
    inputs = keras.Input((a.size, a.size, 3))
    model = keras.Model(inputs, dense(drop(gap(base(inputs, training=False)))))

    x = tf.random.uniform((a.batch, a.size, a.size, 3), -1.0, 1.0)
    y = tf.random.uniform((a.batch,), 0, a.classes, dtype=tf.int32)

    # XLA fuses and compiles the whole step; plain tf.function runs TensorFlow's own kernels.
    compiled = tf.function(jit_compile=a.framework == "tensorflow-xla")

    if a.case == "inference":
        @compiled
        def step_fn(x):
            return model(x, training=False)

        def step():
            step_fn(x).numpy()
            return a.batch
    else:
        if a.case == "head":
            base.trainable = False
        elif a.case == "phase2":
            base.trainable = True
            for layer in base.layers[:-50]:
                layer.trainable = False
            first = base.layers[-50].name
            n_base = sum(int(v.shape.num_elements()) for v in base.trainable_variables)
            log(f"phase2: first trainable base layer {first}, trainable base params {n_base}")
            if first != "block_11_project" or n_base != PHASE2_TRAINABLE_BASE_PARAMS:
                raise SystemExit(f"peers: phase2 trainable base params {n_base} from {first}, "
                                 f"want {PHASE2_TRAINABLE_BASE_PARAMS} from block_11_project")
        else:  # full
            base.trainable = True
        train_vars = list(base.trainable_variables) + list(dense.trainable_variables)
        log(f"{a.case}: trainable params {sum(int(v.shape.num_elements()) for v in train_vars)}")
        opt = keras.optimizers.Adam(learning_rate=LEARNING_RATE[a.case])
        opt.build(train_vars)

        # What Keras fit does, minus its overhead, and with the base held in inference mode:
        # fit/training=True would put the unfrozen BN layers in batch-statistics mode
        # (keras-team/keras#20285). Dropout runs in training mode.
        @compiled
        def step_fn(x, y):
            with tf.GradientTape() as tape:
                features = base(x, training=False)
                logits = dense(drop(gap(features), training=True))
                loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
            grads = tape.gradient(loss, train_vars)
            opt.apply_gradients(zip(grads, train_vars))
            return loss

        def step():
            step_fn(x, y).numpy()
            return a.batch

    steps = 5 if a.steps is None else a.steps
    return tf.__version__, timed_loop(step, a.warmup, steps, a.min_seconds)


def etl_tensorflow(tf, a):
    files = jpeg_files(a.data)
    log(f"etl: {len(files)} JPEGs under {a.data}")
    size, antialias = a.size, ANTIALIASED[a.case]

    def load(path):
        img = tf.io.decode_jpeg(tf.io.read_file(path), channels=3)
        # tf.image.resize: bilinear, float32 in [0, 255].
        return tf.image.resize(img, (size, size), method="bilinear", antialias=antialias) / 255.0

    # Repeated: the batch count is set by etl_steps (one pass by default), not by the data's end.
    ds = tf.data.Dataset.from_tensor_slices(files).repeat()
    ds = ds.map(load, num_parallel_calls=a.threads).batch(a.batch).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.threading.private_threadpool_size = a.threads
    options.threading.max_intra_op_parallelism = 1
    ds = ds.with_options(options)
    it = iter(ds)

    def step():
        return int(next(it).shape[0])

    return timed_loop(step, a.warmup, etl_steps(a, len(files)), a.min_seconds)


# ----------------------------------------------------------------------------------------------
# PyTorch


def run_pytorch(a):
    import torch

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    import torchvision

    log(f"torch {torch.__version__}, torchvision {torchvision.__version__}, threads "
        f"{torch.get_num_threads()}, inter-op {torch.get_num_interop_threads()}")

    if a.case in ANTIALIASED:
        return torch.__version__, etl_pytorch(torch, a)

    torch.manual_seed(0)
    model = torchvision.models.mobilenet_v2(weights=None, width_mult=1.0)
    model.classifier = torch.nn.Sequential(torch.nn.Dropout(DROPOUT), torch.nn.Linear(1280, a.classes))
    x = torch.rand(a.batch, 3, a.size, a.size) * 2 - 1
    if not a.nchw:
        # Same [B, 3, H, W] shape, NHWC strides: PyTorch's advice for convnets on the CPU (oneDNN);
        # on this model about 2x faster than contiguous NCHW, whose depthwise convs are slow.
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    log(f"memory format: {'contiguous NCHW' if a.nchw else 'channels_last'}")
    y = torch.randint(0, a.classes, (a.batch,))

    if a.case == "inference":
        model.eval()

        def step():
            with torch.inference_mode():
                model(x)
            return a.batch
    else:
        features = model.features
        if a.case == "head":
            features.requires_grad_(False)
        elif a.case == "phase2":
            # Keras base.layers[-50:] = block_11_project onward = torchvision features[12].conv[2]
            # (project conv) and conv[3] (its BN), features[13..17], features[18] (Conv_1 + BN).
            features.requires_grad_(False)
            features[12].conv[2].requires_grad_(True)
            features[12].conv[3].requires_grad_(True)
            for i in range(13, 19):
                features[i].requires_grad_(True)
            n_base = sum(p.numel() for p in features.parameters() if p.requires_grad)
            log(f"phase2: trainable base params {n_base}")
            if n_base != PHASE2_TRAINABLE_BASE_PARAMS:
                raise SystemExit(f"peers: phase2 trainable base params {n_base}, "
                                 f"want {PHASE2_TRAINABLE_BASE_PARAMS}")
        # Dropout in training mode, every BatchNorm (frozen or not) in inference mode.
        model.train()
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()
        params = [p for p in model.parameters() if p.requires_grad]
        log(f"{a.case}: trainable params {sum(p.numel() for p in params)}")
        # eps as Keras' Adam default.
        opt = torch.optim.Adam(params, lr=LEARNING_RATE[a.case], eps=1e-7)
        loss_fn = torch.nn.CrossEntropyLoss()

        def step():
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            return a.batch

    steps = 5 if a.steps is None else a.steps
    return torch.__version__, timed_loop(step, a.warmup, steps, a.min_seconds)


def etl_pytorch(torch, a):
    import gc

    import numpy as np
    import torchvision
    from PIL import Image

    files = jpeg_files(a.data)
    log(f"etl: {len(files)} JPEGs under {a.data}")
    size, antialias = a.size, ANTIALIASED[a.case]

    class Jpegs(torch.utils.data.Dataset):
        def __len__(self):
            return len(files)

        def __getitem__(self, i):
            if antialias:  # Pillow's bilinear always antialiases
                with Image.open(files[i]) as img:
                    img = img.convert("RGB").resize((size, size), Image.BILINEAR)
                return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
            img = torchvision.io.decode_jpeg(torchvision.io.read_file(files[i]), mode=torchvision.io.ImageReadMode.RGB)
            img = torch.nn.functional.interpolate(img[None].float(), (size, size), mode="bilinear", antialias=False)
            return img[0] / 255.0

    # Workers are processes (each runs torch with 1 thread, DataLoader's default).
    loader = torch.utils.data.DataLoader(Jpegs(), batch_size=a.batch, num_workers=a.threads,
                                         persistent_workers=True)
    state = {"it": iter(loader)}

    def step():
        try:
            batch = next(state["it"])
        except StopIteration:  # a new pass (only with --steps or --min-seconds beyond one)
            state["it"] = iter(loader)
            batch = next(state["it"])
        return int(batch.shape[0])

    result = timed_loop(step, a.warmup, etl_steps(a, len(files)), a.min_seconds)
    # Shut the workers down (joined) so that RUSAGE_CHILDREN includes them.
    del state["it"], loader
    gc.collect()
    return result


# ----------------------------------------------------------------------------------------------


def main():
    a = parse_args()
    limit_threads_env(a.threads)
    # Keep stdout for the one JSON line: anything else written to fd 1 (Python or C++) goes to stderr.
    sys.stdout.flush()
    json_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    run = run_pytorch if a.framework == "pytorch" else run_tensorflow
    version, (steps, images, seconds) = run(a)

    self_ru = resource.getrusage(resource.RUSAGE_SELF)
    children_ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    # Peak RSS: ru_maxrss (KB on Linux) of this process; for the pytorch etl case, whose DataLoader
    # workers are processes, plus RUSAGE_CHILDREN's ru_maxrss (the workers are joined by then). That
    # is the largest worker's peak, not a sum over the workers, and pages a forked worker shares
    # with the parent count in both, so for that case it is a rough figure. Other cases leave the
    # children out: importing TensorFlow runs a short-lived child process whose ru_maxrss (~450 MB,
    # the parent's pages at fork time) has nothing to do with the benchmark.
    with_children = a.framework == "pytorch" and a.case in ANTIALIASED
    peak_kb = self_ru.ru_maxrss + (children_ru.ru_maxrss if with_children else 0)
    peak_rss_mb = peak_kb / 1024.0
    log(f"{a.framework} {a.case}: {steps} steps, {images} images in {seconds:.3f} s; "
        f"peak RSS self {self_ru.ru_maxrss / 1024:.0f} MB, children "
        f"{children_ru.ru_maxrss / 1024:.0f} MB ({'counted' if with_children else 'not counted'})")

    record = {
        "framework": a.framework,
        "case": a.case,
        "threads": a.threads,
        "batch": a.batch,
        "images_per_s": images / seconds,
        "peak_rss_mb": round(peak_rss_mb, 1),
        "steps": steps,
        "seconds": round(seconds, 4),
        "version": version,
    }
    json_out.write(json.dumps(record) + "\n")
    json_out.flush()


if __name__ == "__main__":
    main()
