"""What every benchmark script shares: the machine block of its JSON and how the JSON is written.

Results are compared across runs only when their machine blocks match and the load was low, so
every script records the same fields.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def cpu_info() -> dict:
    """The CPU's model name and feature flags from /proc/cpuinfo (empty where there is none):
    two machines with the same core count can still differ in SIMD support (AVX-512, AMX)."""
    model, flags = "", ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and not model:
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = " ".join(sorted(value.split()))
                if model and flags:
                    break
    except OSError:
        pass
    return {"cpu_model": model, "cpu_flags": flags}


def machine_info(**extra: object) -> dict:
    """CPUs (count, model, flags), platform, Python and the 1/5/15-minute load average now, plus
    `extra` fields."""
    return {
        "cpus": os.cpu_count(),
        **cpu_info(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        **extra,
    }


def write_results(path: Path, payload: dict) -> None:
    """Write `payload` as indented JSON, atomically (a reader never sees half a file), and say where."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    print(f"wrote {path.relative_to(REPO_ROOT) if path.resolve().is_relative_to(REPO_ROOT) else path}")
