"""Figures 1 and 2 drawn from a real (short) training run's snapshots: no two texts overlap,
legends sit off the data, every reference line is explained in a legend, M's panel shows its
nonzero eigenvalues, and each log axis has one tick-label format."""

from __future__ import annotations

import itertools
from functools import partial

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from matplotlib.text import Text
from trainer_helpers import quiet_trainer

from callbacks.spectral import SpectralSnapshots
from sgd_dynamics.lightning import Gauss10DataModule
from sgd_dynamics.lightning.module import ClassifierModule
from sgd_dynamics.models import MLP
from sgd_dynamics.plots import alignment_figure, full_spectra_figure
from sgd_dynamics.run_folder.snapshots import load_run


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """The default setting (Gauss-10, MLP 20-32-10, batch 5, lr 0.1, k = 15, dense), 400 steps
    with 12 log-spaced snapshots: M collapses by decades, H_f goes from indefinite to nearly
    positive semi-definite."""
    run_dir = tmp_path_factory.mktemp("figure_run")
    pl.seed_everything(0, verbose=False)
    data = Gauss10DataModule(batch_size=5, seed=0)
    data.load()
    module = ClassifierModule(
        MLP(data.input_dim, data.num_classes, width=32), partial(torch.optim.SGD, lr=0.1)
    )
    snapshots = SpectralSnapshots(
        run_dir=run_dir, k=15, method="dense", log_points=12, draw_at_end=False
    )
    trainer = quiet_trainer(max_steps=400, callbacks=[snapshots], default_root_dir=run_dir)
    trainer.fit(module, datamodule=data)
    return load_run(run_dir)


def drawn_texts(fig) -> list[Text]:
    """Every non-empty visible text the canvas draws: titles, labels, legend entries,
    annotations, and the tick labels of ticks inside their axis' view interval."""
    fig.canvas.draw()
    texts, tick_labels = [], set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            slack = 1e-9 * max(abs(lo), abs(hi), 1e-300)
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                for label in (tick.label1, tick.label2):
                    tick_labels.add(id(label))
                    inside = lo - slack <= tick.get_loc() <= hi + slack
                    if inside and label.get_visible() and label.get_text().strip():
                        texts.append(label)
    for text in fig.findobj(Text):
        if id(text) not in tick_labels and text.get_visible() and text.get_text().strip():
            texts.append(text)
    return texts


def overlaps(a, b, tolerance: float = 0.5) -> bool:
    """Whether two display-space boxes share more than `tolerance` pixels in both directions."""
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return width > tolerance and height > tolerance


def figures(history):
    return {
        "figure 1": full_spectra_figure(history, title="Gauss10, batch size 5, seed 0"),
        "figure 2": alignment_figure(history, title="Gauss10, batch size 5, seed 0"),
    }


def test_no_two_texts_overlap(history):
    for name, fig in figures(history).items():
        renderer = fig.canvas.get_renderer()
        texts = drawn_texts(fig)
        assert len(texts) > 30, name  # tick labels included
        boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
        clashes = [
            (ta, tb) for (ta, a), (tb, b) in itertools.combinations(boxes, 2) if overlaps(a, b)
        ]
        assert clashes == [], name


def test_legends_are_off_the_data_and_explain_every_reference_line(history):
    for name, fig in figures(history).items():
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        legends = [*fig.legends, *(ax.get_legend() for ax in fig.axes if ax.get_legend())]
        assert legends, name
        for legend in legends:
            box = legend.get_window_extent(renderer)
            assert not any(overlaps(box, ax.get_window_extent(renderer)) for ax in fig.axes)
        explained = {t.get_text() for legend in legends for t in legend.get_texts()}
        dotted = [ln for ax in fig.axes for ln in ax.lines if ln.get_linestyle() == ":"]
        assert dotted, name  # figure 1: rank n; figure 2: cos = 0.9
        assert all(ln.get_label() in explained for ln in dotted), name


def test_m_panel_shows_the_nonzero_eigenvalues_on_a_log_axis(history):
    fig = full_spectra_figure(history)
    ax_m = fig.axes[1]
    assert ax_m.get_yscale() == "log"
    n = int(history["n_samples"][0])
    for line in [ln for ln in ax_m.lines if ln.get_linestyle() == "-"]:
        values = np.asarray(line.get_ydata())
        assert 0 < values.size <= n and np.all(values > 0)
    (rank_line,) = [ln for ln in ax_m.lines if ln.get_linestyle() == ":"]
    assert rank_line.get_xdata()[0] == n
    assert n <= ax_m.get_xlim()[1] < 1.5 * n  # the zeros beyond rank n are not drawn


def test_each_log_axis_has_one_tick_label_format(history):
    fig = alignment_figure(history)
    fig.canvas.draw()
    for ax in fig.axes[1:3]:  # H_f and M eigenvalues
        assert ax.get_yscale() == "log"
        y_labels = [
            t.get_text()
            for t in ax.yaxis.get_ticklabels(minor=True) + ax.yaxis.get_ticklabels()
            if t.get_text()
        ]
        assert y_labels
        scientific = [s.startswith("$\\mathdefault{10^") for s in y_labels]
        assert all(scientific) or not any(scientific), y_labels
        assert not any("times" in s for s in y_labels), y_labels  # never 2 x 10^1


@pytest.mark.parametrize(
    "values, scientific",
    [([1e-3, 0.5], True), ([2.2, 9.0], False), ([0.3, 2.5], False), ([0.04, 0.9], False)],
)
def test_log_axis_labels_use_one_format(values, scientific):
    """Decades as 10^k when the values span one; otherwise plain numbers only (never a mix,
    never 2 x 10^0)."""
    from sgd_dynamics.plots.common import new_figure, set_log_axis

    fig = new_figure(3, 3)
    ax = fig.subplots()
    ax.plot([0, 1], values)
    set_log_axis(ax, np.asarray(values))
    fig.canvas.draw()
    lo, hi = ax.get_ylim()
    shown = [
        tick.label1.get_text()
        for tick in [*ax.yaxis.get_major_ticks(), *ax.yaxis.get_minor_ticks()]
        if lo <= tick.get_loc() <= hi and tick.label1.get_text()
    ]
    assert len(shown) >= 2, shown
    if scientific:
        assert all(s.startswith("$\\mathdefault{10^{") for s in shown), shown
    else:
        assert all(float(s) > 0 for s in shown), shown  # plain numbers
