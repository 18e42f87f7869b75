"""One look for every figure: print sizes, fonts, line widths, colours, and how a figure is saved.

Figures are sized for a two-column paper: ``COLUMN`` (3.3 in) for one column, ``PAGE``
(7 in) across both. Text is set at 8 pt (7 pt for ticks and legends), which is what
it prints at when the figure is placed at its own width, unscaled. Every figure is
saved as PNG (for looking at) and PDF (for the paper, fonts embedded as TrueType),
each written to a temporary file and renamed into place, with a caption beside it
(``NAME.txt``) that says what is shown, what the bands and bars are, and the units.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from algorithms import registry
from scenarios.experiments.results import write_text_atomic

COLUMN = 3.3  # inches: one column of a two-column paper
PAGE = 7.0  # inches: the full text width
DPI = 300  # of the PNG
FONT_SIZE = 8
SMALL_SIZE = 7

# one colour per algorithm, by registry order (variants of a rule sit next to each other)
PALETTE = ("tab:blue", "tab:cyan", "tab:orange", "tab:brown", "gold", "tab:green", "tab:purple", "tab:pink",
           "tab:olive", "tab:gray", "tab:red")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "h", "*")
# and a dash pattern, so that curves that lie on top of each other (and grey prints) stay apart
LINESTYLES = ("-", (0, (4, 1.5)), (0, (4, 1.2, 1, 1.2)), (0, (1, 1.2)))
BAND_ALPHA = 0.2  # of the 95% interval bands

RC = {
    "font.size": FONT_SIZE,
    "axes.titlesize": FONT_SIZE,
    "axes.labelsize": FONT_SIZE,
    "xtick.labelsize": SMALL_SIZE,
    "ytick.labelsize": SMALL_SIZE,
    "legend.fontsize": SMALL_SIZE,
    "legend.title_fontsize": SMALL_SIZE,
    "figure.titlesize": FONT_SIZE,
    "axes.linewidth": 0.6,
    "lines.linewidth": 1.0,
    "lines.markersize": 3.5,
    "patch.linewidth": 0.5,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.minor.width": 0.4,
    "ytick.minor.width": 0.4,
    "xtick.major.size": 2.5,
    "ytick.major.size": 2.5,
    "xtick.minor.size": 1.5,
    "ytick.minor.size": 1.5,
    "xtick.major.pad": 2.0,
    "ytick.major.pad": 2.0,
    "axes.labelpad": 2.0,
    "axes.titlepad": 3.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.linewidth": 0.4,
    "grid.alpha": 0.35,
    "errorbar.capsize": 2.0,
    "legend.frameon": False,
    "legend.handlelength": 1.6,
    "legend.handletextpad": 0.4,
    "legend.columnspacing": 1.0,
    "legend.borderaxespad": 0.3,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.02,
    "pdf.fonttype": 42,  # TrueType: text stays text, and journals accept it
    "ps.fonttype": 42,
    "svg.fonttype": "none",
}


def color(algorithm: str) -> str:
    """An algorithm's colour in every plot, from its place in the registry."""

    return PALETTE[registry.order(algorithm) % len(PALETTE)]


def linestyle(algorithm: str):
    """An algorithm's dash pattern in line plots, from its place in the registry."""

    return LINESTYLES[registry.order(algorithm) % len(LINESTYLES)]


def marker(index: int) -> str:
    return MARKERS[index % len(MARKERS)]


def label(algorithm: str) -> str:
    """An algorithm's name in figures: the registry's display name."""

    return registry.display_name(algorithm)


def context():
    """The style, for the figures drawn inside ``with style.context():`` (matplotlib's Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    return matplotlib.rc_context(RC)


def figure(width: float = COLUMN, height: float | None = None, nrows: int = 1, ncols: int = 1, **kw):
    """A figure ``width`` inches wide (``COLUMN`` or ``PAGE``), its axes always a 2-D array."""
    import matplotlib.pyplot as plt

    height = height if height is not None else 0.75 * width / ncols * nrows + 0.3
    return plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, layout="constrained", **kw)


def save(fig, path, caption: str) -> Path:
    """Write ``fig`` as PATH.png and PATH.pdf and its caption as PATH.txt, each atomically.

    ``path`` may end in ``.png`` or name the figure without a suffix; returns the PNG's path.
    """
    import matplotlib.pyplot as plt


    path = Path(path)
    stem = path.with_suffix("") if path.suffix in (".png", ".pdf") else path
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix, options in ((".png", {"dpi": DPI, "metadata": {"Software": None}}),
                            (".pdf", {"metadata": {"CreationDate": None, "Creator": None, "Producer": None}})):
        target = stem.with_name(stem.name + suffix)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            fig.savefig(tmp, format=suffix[1:], **options)
            tmp.replace(target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        written.append(target)
    write_text_atomic(stem.with_name(stem.name + ".txt"), caption.strip() + "\n")
    plt.close(fig)
    return written[0]
