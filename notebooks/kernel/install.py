"""Registers the `food101` Jupyter kernel (evcxr behind notebooks/kernel/launch.py) and builds the
notebooks' dependencies into its build folder once, so that a new kernel's first cell takes seconds.

    python install.py register --evcxr BIN --crate DIR --build DIR --cache DIR
    python install.py warm [--transport tcp|ipc]

Run with the Python of the Jupyter that will start the kernel (kernel-setup.sh does): the kernelspec
runs the launcher with this same interpreter, which has pyzmq wherever Jupyter is installed.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

KERNEL = "food101"
# The first cell of every notebook: warming builds exactly this, so the cell finds it built.
DEP_CELL = ':dep food101 = { package = "food101-notebook", path = "kernel/food101-notebook" }'

# evcxr builds every cell in cargo's dev profile with debug assertions and overflow checks, which
# apply to the dependencies too. The dependencies (candle, gemm, this crate) are built as in
# `cargo build --release`, so training in a notebook runs as fast as `food101 train`; the cells'
# own code keeps evcxr's settings. Cargo reads this file from a parent of each build slot.
CARGO_CONFIG = """\
# Written by notebooks/kernel/install.py: dependencies of notebook cells are built as in release.
[profile.dev.package."*"]
opt-level = 3
debug-assertions = false
overflow-checks = false
incremental = false
"""


def register(args):
    launcher = os.path.join(os.path.abspath(args.crate), "notebooks", "kernel", "launch.py")
    env = {
        "FOOD101_EVCXR": os.path.abspath(args.evcxr),
        "FOOD101_CRATE": os.path.abspath(args.crate),
        "FOOD101_BUILD": os.path.abspath(args.build),
        "FOOD101_SETUP_CACHE": os.path.abspath(args.cache),
    }
    os.makedirs(os.path.join(args.build, ".cargo"), exist_ok=True)
    with open(os.path.join(args.build, ".cargo", "config.toml"), "w") as f:
        f.write(CARGO_CONFIG)

    from jupyter_client.kernelspec import KernelSpecManager

    with tempfile.TemporaryDirectory() as tmp:
        # evcxr's own installer writes its logos and editor files; the kernel.json is ours.
        subprocess.run([args.evcxr, "--install"], env=dict(os.environ, JUPYTER_PATH=tmp), check=True, stdout=subprocess.DEVNULL)
        spec_dir = os.path.join(tmp, "kernels", "rust")
        spec = {
            "argv": [sys.executable, launcher, "{connection_file}"],
            "display_name": "Rust (food101)",
            "language": "rust",
            "interrupt_mode": "message",
            "env": env,
        }
        with open(os.path.join(spec_dir, "kernel.json"), "w") as f:
            json.dump(spec, f, indent=2)
        where = KernelSpecManager().install_kernel_spec(spec_dir, KERNEL, user=True)
    print(f"kernel '{KERNEL}' registered in {where}")


# Two cells that fail unless every cell links one and the same candle (see food101-notebook's
# Cargo.toml): a tensor made in the second must not get the number of one made in the first.
SHARED_CHECK = (
    "let first = food101::candle_core::Tensor::zeros(1, food101::candle_core::DType::F32, &food101::candle_core::Device::Cpu)?;",
    "let second = food101::candle_core::Tensor::zeros(1, food101::candle_core::DType::F32, &food101::candle_core::Device::Cpu)?;\n"
    'assert_ne!(first.id(), second.id(), "two cells numbered two tensors alike: each cell has its own candle");',
)


def run_cell(manager, client, code, started):
    """Executes one cell, printing its output and, while it compiles, the time every 30 s."""
    msg_id = client.execute(code)
    error = None
    while True:
        try:
            msg = client.get_iopub_msg(timeout=30)
        except Exception:  # queue.Empty: still compiling
            if not manager.is_alive():
                sys.exit("the food101 kernel died; its log is above")
            print(f"    still building: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
            continue
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["header"]["msg_type"], msg["content"]
        if kind == "stream":
            print(content["text"], end="", file=sys.stderr)
            if "panicked at" in content["text"]:  # evcxr reports a panic only as text
                error = content["text"]
        elif kind == "error":
            error = "\n".join(content["traceback"]) or content["evalue"]
        elif kind == "status" and content["execution_state"] == "idle":
            break
    reply = client.get_shell_msg(timeout=60)
    if error or reply["content"]["status"] != "ok":
        sys.exit(f"this cell failed in the food101 kernel:\n{code}\n{error or reply['content']}")


def warm(args):
    """Starts the kernel once and runs the notebooks' first cell, then checks that cells share the
    crate's statics."""
    from jupyter_client.manager import KernelManager

    started = time.monotonic()
    manager = KernelManager(kernel_name=KERNEL, transport=args.transport)
    manager.start_kernel()
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        run_cell(manager, client, DEP_CELL, started)
        print(f"notebook dependencies built in {time.monotonic() - started:.0f} s", file=sys.stderr)
        for cell in SHARED_CHECK:
            run_cell(manager, client, cell, started)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    r = commands.add_parser("register")
    r.add_argument("--evcxr", default=shutil.which("evcxr_jupyter"))
    r.add_argument("--crate", required=True)
    r.add_argument("--build", required=True)
    r.add_argument("--cache", required=True)
    w = commands.add_parser("warm")
    w.add_argument("--transport", default="tcp", choices=["tcp", "ipc"])
    args = parser.parse_args()
    register(args) if args.command == "register" else warm(args)


if __name__ == "__main__":
    main()
