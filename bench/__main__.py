"""Run every benchmark script (``bench/bench_*.py``) in turn: ``python -m bench [name ...]``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    here = Path(__file__).parent
    scripts = sorted(here.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if any(a in s.stem for a in argv)]
    failed = []
    for script in scripts:
        print(f"\n===== {script.stem} =====", flush=True)
        rc = subprocess.call([sys.executable, "-m", f"bench.{script.stem}"])
        if rc:
            failed.append(script.stem)
    if failed:
        print(f"\nbenchmarks that missed a target or failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
