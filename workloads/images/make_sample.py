"""Write sample.jpg: a deterministic 224x224 test image (colour gradients and a disc) for the
example workloads. Run `python workloads/images/make_sample.py` to regenerate it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).with_name("sample.jpg")


def render() -> Image.Image:
    """The image: red/green gradients, a blue disc, a few stripes; no randomness."""
    y, x = np.mgrid[0:224, 0:224].astype(np.float32)
    r = x / 223 * 255
    g = y / 223 * 255
    disc = ((x - 140) ** 2 + (y - 90) ** 2) < 55 ** 2
    b = np.where(disc, 230, 40 + 30 * np.sin(x / 9) * np.cos(y / 13))
    rgb = np.stack([r, g, b], axis=-1).clip(0, 255).astype(np.uint8)
    rgb[180:200:4, 20:200] = 255
    return Image.fromarray(rgb, "RGB")


if __name__ == "__main__":
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    render().save(out, "JPEG", quality=85)
    print(f"wrote {out} ({out.stat().st_size} bytes)")
