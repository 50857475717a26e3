"""How the pyplot-free Figures display in IPython: registered as PNG (kit.plots does it on import)."""

from __future__ import annotations

from matplotlib.figure import Figure


def show_figures_as_png() -> bool:
    """Under IPython (notebooks, papermill) display these pyplot-free Figures as PNG, as `%matplotlib inline` would.

    Without it a kernel that never imported pyplot shows a Figure only as its text repr, and the HTML has no chart.
    """
    try:
        from IPython import get_ipython
        from IPython.core.pylabtools import print_figure
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    shell.display_formatter.formatters["image/png"].for_type(
        Figure, lambda fig: print_figure(fig, "png", bbox_inches="tight"))
    return True
