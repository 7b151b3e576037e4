"""Sampling profiles of the service processes while a journey runs (py-spy, no restart, no code change):
the collapsed stacks are kept under bench/results/profiles/ and summarised as the functions that held
the CPU, so a missed target comes with the profile that says why."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

# The processes a journey runs through, besides the gateway.
SERVICES = {
    "my_profile": ["identity"],
    "board_list": ["boards"],
    "home_feed": ["boards"],
    "board_first_page": ["boards"],
    "board_deep_page": ["boards"],
    "post_with_comments": ["boards"],
    "comment_or_like": ["boards"],
    "report_problem": ["issues", "identity", "insights"],
    "cadre_queue": ["issues"],
    "volunteer_signup": ["volunteers"],
    "mixed_resident": ["boards", "issues"],
    "report_dispatch": ["issues", "grid-gateway", "identity", "insights"],
}


def py_spy() -> str:
    return str(Path(sys.executable).parent / "py-spy")


class Profiler:
    def __init__(self, out_dir: Path, prefix: str, pids: dict[str, int], seconds: float) -> None:
        self.out_dir = out_dir
        self.files = {name: out_dir / f"{prefix}-{name}.txt" for name in pids}
        self.pids = pids
        self.seconds = seconds
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> Profiler:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, pid in self.pids.items():
            self.procs.append(
                subprocess.Popen(
                    [
                        py_spy(),
                        "record",
                        "--pid",
                        str(pid),
                        "--duration",
                        str(max(1, int(self.seconds))),
                        "--rate",
                        "50",
                        "--nonblocking",
                        "--format",
                        "raw",
                        "-o",
                        str(self.files[name]),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        return self

    def stop(self) -> dict[str, Any]:
        for proc in self.procs:
            try:
                proc.wait(self.seconds + 30)
            except subprocess.TimeoutExpired:
                proc.kill()
        return {name: summarise(path) for name, path in self.files.items()}


def summarise(path: Path, top: int = 8) -> dict[str, Any]:
    """Self and inclusive sample shares of the busiest functions in a collapsed-stack file."""
    if not path.exists():
        return {"error": "py-spy wrote nothing (no permission to attach?)"}
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        own[_short(frames[-1])] += n
        for frame in {_short(f) for f in frames}:
            inclusive[frame] += n
    if not total:
        return {"samples": 0}
    return {
        "samples": total,
        "file": str(path.name),
        "self": [(f, round(100 * c / total, 1)) for f, c in own.most_common(top)],
        "inclusive": [(f, round(100 * c / total, 1)) for f, c in inclusive.most_common(top + 6)[6:]],
    }


def _short(frame: str) -> str:
    # "function (path/to/module.py:123)" -> "function (module.py)"
    name, _, where = frame.partition(" (")
    module = where.rsplit("/", 1)[-1].split(":", 1)[0].rstrip(")")
    return f"{name} ({module})" if module else name
