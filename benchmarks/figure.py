"""A 4000×4000 matplotlib figure as an image part, against matplotlib saving it at the target size.

    python benchmarks/figure.py            # 15 rounds
    python benchmarks/figure.py --n 3      # a smoke run

Three ways to the bytes of one figure (40×40 inches at 100 dpi: a line, a scatter of 20,000
points and a 300×300 image), in rounds that alternate their order so drift hits all alike:

- ``part``: ``images.image_part(fig)`` with the default limit (2048 px), the data: URL included;
- ``savefig``: ``fig.savefig(png, dpi=2048 / 40)``, the least a caller could do;
- ``full then scale``: the figure saved at its own size, then scaled and encoded again with
  Pillow (what the package did before issue 25).

Reported: median wall time of each (ms), the ratio ``part / savefig`` (target <= 1.5x), the
image's bytes, and the peak memory each adds to a fresh process that made the figure
(``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent)]

EDGE = 2048


def figure() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rng = np.random.default_rng(0)
    fig, axes = plt.subplots(1, 2, figsize=(40, 40), dpi=100)
    axes[0].plot(np.linspace(0, 10, 2000), np.sin(np.linspace(0, 10, 2000)))
    axes[0].scatter(rng.random(20_000) * 10, rng.random(20_000) * 2 - 1, s=4)
    axes[1].imshow(rng.random((300, 300)))
    return fig


def part(fig: Any) -> int:
    from aiml_magics.images import image_part

    return int(image_part(fig, max_edge=EDGE)["image_url"]["url"].nbytes)  # bytes, not base64


def savefig(fig: Any) -> int:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=EDGE / max(fig.get_size_inches()))
    return buf.tell()


def full_then_scale(fig: Any) -> int:
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    img = Image.open(io.BytesIO(buf.getvalue()))
    scale = EDGE / max(img.size)
    img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    img.save(out, format="PNG")
    return out.tell()


WAYS = {"part": part, "savefig": savefig, "full then scale": full_then_scale}

_PEAK = """
import resource, sys
sys.path[:0] = {paths!r}
from figure import WAYS, figure
fig = figure()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
WAYS[{way!r}](fig)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


def peak_mb(way: str) -> float:
    code = _PEAK.format(paths=[str(HERE.parent), str(HERE)], way=way)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=15)
    opts = ap.parse_args()
    # First, while this process is small: a child's ru_maxrss starts from its parent's at fork.
    peaks = {name: peak_mb(name) for name in WAYS}
    fig = figure()
    sizes = {name: way(fig) for name, way in WAYS.items()}  # warm: fonts, caches
    times: dict[str, list[float]] = {name: [] for name in WAYS}
    for r in range(opts.n):
        order = list(WAYS) if r % 2 == 0 else list(reversed(WAYS))
        for name in order:
            t = time.perf_counter()
            WAYS[name](fig)
            times[name].append((time.perf_counter() - t) * 1e3)
    med = {name: statistics.median(v) for name, v in times.items()}
    result = {"rounds": opts.n, "median_ms": med, "bytes": sizes, "peak_added_mb": peaks,
              "ratio_part_to_savefig": med["part"] / med["savefig"],
              "ratio_full_then_scale_to_savefig": med["full then scale"] / med["savefig"]}
    print("| 4000×4000 figure | median | to savefig (target part <= 1.5x) | bytes | peak memory added |")
    print("|---|--:|--:|--:|--:|")
    for name in WAYS:
        print(f"| {name} | {med[name]:.0f} ms | {med[name] / med['savefig']:.2f}x | {sizes[name]:,} | "
              f"{peaks[name]:.0f} MB |")
    (HERE / "figure-results.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
