"""Starts evcxr_jupyter for the `food101` kernelspec that kernel-setup.sh registers.

Jupyter runs `python launch.py CONNECTION_FILE`; the kernelspec's environment says where things are:
FOOD101_EVCXR (the evcxr_jupyter binary), FOOD101_CRATE (this repository), FOOD101_BUILD (the
folder that keeps evcxr's builds between kernels) and FOOD101_SETUP_CACHE (the data cache set-up
used, the kernel's FOOD101_CACHE unless the environment that starts Jupyter sets another).

- **A build folder that survives the kernel.** evcxr compiles each cell in EVCXR_TMPDIR, and without
  it every new kernel starts from an empty folder and rebuilds candle. Each kernel takes the first
  free `FOOD101_BUILD/slot-N` (a lock held for the kernel's life), so two notebooks open at once
  never write into one folder, and a restarted kernel finds its compiled dependencies again.
- **The crate wherever the notebook is.** The notebooks import the crate with
  `:dep food101 = { package = "food101-notebook", path = "kernel/food101-notebook" }` (one shared
  library for all cells, see its Cargo.toml), a path evcxr resolves from its working directory;
  the kernel runs in `FOOD101_CRATE/notebooks`, so that path holds for a copy of a notebook in any
  folder (Colab's `/content`). Where the notebook itself was opened is in FOOD101_NOTEBOOK_DIR.
- **Jupyter's IPC transport.** evcxr binds TCP sockets only; Colab connects to kernels over IPC
  (Unix sockets). For an IPC connection file the launcher starts evcxr on free TCP ports of
  127.0.0.1 and relays each of the five channels between the two, unchanged (message signatures
  cover the message, not the transport). For TCP it simply becomes evcxr.
"""
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading


def take_build_slot(root):
    """The first slot folder no other kernel holds; its lock lives as long as the returned fd."""
    os.makedirs(root, exist_ok=True)
    for n in range(100):
        fd = os.open(os.path.join(root, f"slot-{n}.lock"), os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        slot = os.path.join(root, f"slot-{n}")
        os.makedirs(slot, exist_ok=True)
        forget_stale_builds(root, slot)
        return slot, fd
    sys.exit(f"food101 kernel: all 100 build slots in {root} are in use")


def forget_stale_builds(root, slot):
    """Cargo does not see a change of the build profile that set-up writes (a parent folder's
    config), so a slot built under another one starts over."""
    with open(os.path.join(root, ".cargo", "config.toml"), "rb") as f:
        settings = hashlib.sha256(f.read()).hexdigest()
    stamp = os.path.join(slot, "food101-settings")
    if not os.path.exists(stamp) or open(stamp).read() != settings:
        shutil.rmtree(os.path.join(slot, "target"), ignore_errors=True)
        with open(stamp, "w") as f:
            f.write(settings)


def free_tcp_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Channel: (socket type facing Jupyter, socket type facing evcxr). ROUTER/DEALER keeps the client's
# identity frames in front of each message, and evcxr hands identities back in its replies.
CHANNELS = {
    "shell_port": ("ROUTER", "DEALER"),
    "control_port": ("ROUTER", "DEALER"),
    "stdin_port": ("ROUTER", "DEALER"),
    "hb_port": ("ROUTER", "DEALER"),
    "iopub_port": ("XPUB", "XSUB"),
}


def relay(zmq, context, front_type, front_url, back_type, back_url):
    front = context.socket(getattr(zmq, front_type))
    back = context.socket(getattr(zmq, back_type))
    if back_type == "DEALER":
        # shell and stdin must reach evcxr under one identity: input requests go back by it.
        back.setsockopt(zmq.IDENTITY, b"food101-ipc-relay")
    front.bind(front_url)
    back.connect(back_url)
    try:
        zmq.proxy(front, back)
    except zmq.ContextTerminated:
        pass


def run_over_ipc(evcxr, connection, workdir):
    """evcxr on TCP ports, relayed to the IPC endpoints Jupyter connects to; returns its exit code."""
    import zmq

    tcp = dict(connection, transport="tcp", ip="127.0.0.1")
    for port in CHANNELS:
        tcp[port] = free_tcp_port()
    tcp_file = os.path.join(workdir, f"tcp-{os.getpid()}.json")
    with open(tcp_file, "w") as f:
        json.dump(tcp, f)

    # The kernel dies with this process, whichever signal ends it.
    def die_with_parent():
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    kernel = subprocess.Popen([evcxr, "--control_file", tcp_file], preexec_fn=die_with_parent)
    # Interrupts reach evcxr as messages on the control channel, or as SIGINT to the whole
    # process group; this process only relays.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: kernel.terminate())

    context = zmq.Context()
    for port, (front_type, back_type) in CHANNELS.items():
        front_url = f"ipc://{connection['ip']}-{connection[port]}"
        back_url = f"tcp://127.0.0.1:{tcp[port]}"
        threading.Thread(target=relay, args=(zmq, context, front_type, front_url, back_type, back_url), daemon=True).start()
    code = kernel.wait()
    os.remove(tcp_file)
    return code


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: launch.py CONNECTION_FILE   (Jupyter runs this; see kernel-setup.sh)")
    connection_file = sys.argv[1]
    evcxr = os.environ["FOOD101_EVCXR"]
    with open(connection_file) as f:
        connection = json.load(f)
    # IPC endpoints are files named after `ip`, which may be relative to where Jupyter started us.
    connection["ip"] = os.path.abspath(connection["ip"]) if connection.get("transport") == "ipc" else connection.get("ip")
    connection_file = os.path.abspath(connection_file)
    slot, lock = take_build_slot(os.environ["FOOD101_BUILD"])
    os.environ["EVCXR_TMPDIR"] = slot
    os.environ.setdefault("FOOD101_CACHE", os.environ.pop("FOOD101_SETUP_CACHE"))
    os.environ["FOOD101_NOTEBOOK_DIR"] = os.getcwd()
    os.chdir(os.path.join(os.environ["FOOD101_CRATE"], "notebooks"))
    if connection.get("transport", "tcp") == "tcp":
        os.set_inheritable(lock, True)  # the lock stays held by evcxr itself
        os.execv(evcxr, [evcxr, "--control_file", connection_file])
    sys.exit(run_over_ipc(evcxr, connection, slot))


if __name__ == "__main__":
    main()
