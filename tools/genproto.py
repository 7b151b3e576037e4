"""Regenerate libs/contracts from proto/ (the one way committed contract code is made).

`--check` regenerates into a temporary folder and fails when it differs from what is committed.
"""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc_tools

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"
TARGET = ROOT / "libs" / "contracts" / "src"


def generate(out: Path) -> None:
    files = sorted(str(p.relative_to(PROTO)) for p in PROTO.rglob("*.proto"))
    include = Path(grpc_tools.__file__).parent / "_proto"
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO}",
        f"-I{include}",
        f"--python_out={out}",
        f"--mypy_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_grpc_out={out}",
        *files,
    ]
    bindir = str(Path(sys.executable).parent)
    cmd.insert(3, f"--plugin=protoc-gen-mypy={bindir}/protoc-gen-mypy")
    cmd.insert(4, f"--plugin=protoc-gen-mypy_grpc={bindir}/protoc-gen-mypy_grpc")
    subprocess.run(cmd, check=True, cwd=PROTO)
    for folder in [out / "shequtong", *(p for p in (out / "shequtong").rglob("*") if p.is_dir())]:
        (folder / "__init__.py").touch()
    (out / "shequtong" / "py.typed").touch()


def _tree(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def main() -> int:
    check = "--check" in sys.argv
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generate(out)
        fresh, committed = _tree(out / "shequtong"), _tree(TARGET / "shequtong")
        drift = sorted(
            name
            for name in fresh.keys() | committed.keys()
            if name not in fresh
            or name not in committed
            or not filecmp.cmp(fresh[name], committed[name], shallow=False)
        )
        if check:
            if drift:
                print("generated contracts drift from proto/ — run `make proto`:", *drift, sep="\n  ")
                return 1
            print("contracts are in sync with proto/")
            return 0
        shutil.rmtree(TARGET / "shequtong", ignore_errors=True)
        shutil.copytree(out / "shequtong", TARGET / "shequtong")
        print(f"regenerated {len(fresh)} files under {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
