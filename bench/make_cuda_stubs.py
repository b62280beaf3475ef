#!/usr/bin/env python3
"""Make PyPI's CUDA build of torch/torchvision load on a machine without the nvidia-* wheels.

PyPI only serves CUDA builds of torch for Linux x86_64: its shared libraries list libcudart,
libcublas, libcudnn, libnccl, ... as DT_NEEDED, so `import torch` fails unless ~4 GB of nvidia-*
wheels (plus triton) are installed. For CPU-only use none of that code ever runs. This script
writes tiny stand-in libraries with the same sonames, symbol versions and symbol names into
`<site-packages>/nvidia/cu13/lib` (a directory on torch's RUNPATH). Every stand-in function
returns 100 (cudaErrorNoDevice / CUDA_ERROR_NO_DEVICE / a non-zero status for the other
libraries), the error-string functions return a static string, and the fat-binary registration
hooks return NULL, so torch sees "no CUDA device": `torch.cuda.is_available()` is False and
every CPU operator works as usual.

Usage: python make_cuda_stubs.py <site-packages-dir>    (needs readelf, ldd and cc)
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

CUDA_LIB = re.compile(
    r"^lib(cuda|cudart|cupti|cublas|cublasLt|cusparse|cusparseLt|cufft|cufile|curand|cusolver|"
    r"cudnn[A-Za-z_]*|nvrtc|nccl|nvshmem_host|nvJitLink|nvToolsExt)\.so(\.\d+)*$"
)
# Unversioned symbols are assigned to a stand-in library by prefix (first match wins).
PREFIXES = [
    ("ncclx", "libnccl.so.2"), ("nccl", "libnccl.so.2"), ("pnccl", "libnccl.so.2"),
    ("nvshmem", "libnvshmem_host.so.3"), ("cupti", "libcupti.so.13"), ("cuFile", "libcufile.so.0"),
    ("cusparseLt", "libcusparseLt.so.0"), ("cusparse", "libcusparse.so.12"),
    ("cublasLt", "libcublasLt.so.13"), ("cublas", "libcublas.so.13"), ("cufft", "libcufft.so.12"),
    ("curand", "libcurand.so.10"), ("cusolver", "libcusolver.so.12"), ("cudnn", "libcudnn.so.9"),
    ("nvrtc", "libnvrtc.so.13"), ("cu", "libcudart.so.13"), ("__cuda", "libcudart.so.13"),
]
STUB_DIR = Path("nvidia/cu13/lib")
MARKER = "food101-cuda-stub: no CUDA on this machine"


def sh(*args):
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def needed(path):
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", sh("readelf", "-d", "-W", path))


def verneed(path):
    """version index -> (file, version name) from .gnu.version_r"""
    out, cur = {}, None
    for line in sh("readelf", "-V", "-W", path).splitlines():
        m = re.search(r"Version: \d+\s+File: (\S+)", line)
        if m:
            cur = m.group(1)
            continue
        m = re.search(r"Name: (\S+)\s+Flags: \S+\s+Version: (\d+)", line)
        if m and cur:
            out[int(m.group(2))] = (cur, m.group(1))
    return out


def dynsyms(path):
    """yield (name, version or None, bind, is_undefined)"""
    for line in sh("readelf", "-W", "--dyn-syms", path).splitlines():
        f = line.split()
        if len(f) < 8 or not f[0].rstrip(":").isdigit():
            continue
        name = f[7]
        ver = None
        if "@" in name:
            name, ver = re.split(r"@+", name, maxsplit=1)
            if len(f) > 8:
                ver = f"{ver} {f[8]}"
        yield name, ver, f[4], f[6] == "UND"


def main():
    site = Path(sys.argv[1]).resolve()
    binaries = sorted(
        p for pat in ("torch/lib/*.so", "torch/*.so", "torchvision/*.so") for p in site.glob(pat)
    )
    out = site / STUB_DIR
    missing = set()  # CUDA libraries that are absent, or that an earlier run of this script wrote
    system = set()
    names = {p.name for p in binaries}
    real_cuda = []
    for b in binaries:
        in_torch = b.parent.name != "torchvision"  # torchvision's RUNPATH is a build path: ldd can't tell
        for line in sh("ldd", str(b)).splitlines():
            m = re.match(r"\s*(\S+) => (\S+)", line)
            if not m:
                continue
            lib, where = m.groups()
            if where == "not":
                if CUDA_LIB.match(lib):
                    if in_torch:
                        missing.add(lib)
                elif lib not in names:
                    sys.exit(f"{b}: {lib} not found and not a CUDA library")
            elif CUDA_LIB.match(lib):
                if MARKER.encode() in Path(where).read_bytes():
                    missing.add(lib)
                else:
                    real_cuda.append(where)
            elif not str(Path(where).resolve()).startswith(str(site)):
                system.add(where)
    if real_cuda:
        print(f"real CUDA libraries installed (e.g. {real_cuda[0]}): nothing to stub")
        return
    if not missing:
        print("no CUDA libraries needed: nothing to stub")
        return
    provided = set()
    for lib in list(system) + [str(b) for b in binaries]:
        provided.update(n for n, _, _, und in dynsyms(lib) if not und)
    syms = {lib: set() for lib in missing}
    versions = {lib: set() for lib in missing}
    for b in binaries:
        vn = verneed(str(b))
        for name, ver, bind, und in dynsyms(str(b)):
            if not und or not name:
                continue
            if ver is not None:
                idx = re.search(r"\((\d+)\)", ver)
                owner = vn.get(int(idx.group(1)))[0] if idx and int(idx.group(1)) in vn else None
                vname = ver.split()[0]
                if owner in missing:
                    syms[owner].add(name)
                    versions[owner].add(vname)
                continue
            if name in provided or bind == "WEAK":
                continue
            for pre, lib in PREFIXES:
                if name.startswith(pre):
                    if lib in missing:
                        syms[lib].add(name)
                    break
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for lib in sorted(syms):
            c = [f"/* stand-in for {lib}: no CUDA here */", f"const char food101_cuda_stub_msg[] = \"{MARKER}\";", "#define msg food101_cuda_stub_msg"]
            for s in sorted(syms[lib]):
                if s.startswith("__cudaRegisterFatBinary") or s.startswith("__cudaPop") or s.startswith("__cudaPush"):
                    c.append(f"void *{s}(void) {{ return 0; }}")
                elif re.search(r"(ErrorString|ErrorName|StatusString|StatusName|GetLastError)$", s) and not s.startswith("cuda"):
                    c.append(f"const char *{s}(void) {{ return msg; }}")
                elif s in ("cudaGetErrorString", "cudaGetErrorName"):
                    c.append(f"const char *{s}(void) {{ return msg; }}")
                else:
                    c.append(f"long {s}(void) {{ return 100; }}")
            src = Path(tmp) / f"{lib}.c"
            src.write_text("\n".join(c) + "\n")
            vers = sorted(versions[lib])
            script = Path(tmp) / f"{lib}.map"
            if vers:
                body = " ".join(f"{s};" for s in sorted(syms[lib]))
                script.write_text(f"{vers[0]} {{ global: {body} local: *; }};\n" + "".join(f"{v} {{ }};\n" for v in vers[1:]))
            else:
                script.write_text("{ global: *; };\n")
            subprocess.run(
                ["cc", "-shared", "-fPIC", "-O1", "-w", "-fno-builtin", f"-Wl,-soname,{lib}",
                 f"-Wl,--version-script={script}", "-o", str(out / lib), str(src)],
                check=True,
            )
            print(f"{out / lib}: {len(syms[lib])} symbols, versions {vers or '-'}")


if __name__ == "__main__":
    main()
