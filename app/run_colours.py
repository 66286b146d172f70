"""The colour of each run: one sequence for the app and the reports, so run 3 has one colour
everywhere, and no two runs of a sweep share one (a report of 12 runs gave the 1st and the
11th, the best and the worst of the sweep, the same blue)."""
from __future__ import annotations

import colorsys

# Colour-blind-friendly, distinct on white (Okabe-Ito first, then tab10 leftovers).
PALETTE = (
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00",
    "#56B4E9", "#8C564B", "#7F7F7F", "#BCBD22", "#17BECF",
)


def extra_color(k: int) -> str:
    """The k-th colour after PALETTE (k >= 1): golden-ratio hues at two lightness levels,
    distinct from each other and dark enough on white."""
    hue = (0.11 + k * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.62 if k % 2 else 0.85)
    return f"#{round(r * 255):02X}{round(g * 255):02X}{round(b * 255):02X}"


def run_color(i: int) -> str:
    """The colour of the i-th run (from 0)."""
    return PALETTE[i] if i < len(PALETTE) else extra_color(i - len(PALETTE) + 1)
