"""kit.plots' pyplot-free Figures display as PNG under IPython (the notebook HTML would otherwise hold no chart)."""

from __future__ import annotations

from kit import plots


def test_figures_get_a_png_formatter_under_ipython():
    from IPython.core.interactiveshell import InteractiveShell

    assert plots.show_figures_as_png() is False  # no shell: nothing to register
    shell = InteractiveShell.instance()
    try:
        assert plots.show_figures_as_png() is True
        fig = plots.metric_chart(None, "throughput_items_per_s", "throughput (items/s)")
        data, _ = shell.display_formatter.format(fig)
        assert data["image/png"][:8] == b"\x89PNG\r\n\x1a\n"
    finally:
        InteractiveShell.clear_instance()
