"""Sweep report figures: quantile bands over seeds per group, end-of-training comparisons, final
test accuracy against each swept knob."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.ticker import LogFormatter, MaxNLocator

from sgd_dynamics.plots.common import new_figure, save_figure, set_step_axis
from sgd_dynamics.report.records import Group, ReportResult, value_sort_key

BANDS_PNG = "alignment_bands.png"
COMPARISON_PNG = "comparison.png"
TEST_ACCURACY_PNG = "test_accuracy.png"
BAND_ALPHA = 0.18
TEST_ACC_KEY = "test_acc"  # summary.json: final accuracy on the whole test set


def _largest_group(groups: Sequence[Group]) -> int:
    """The number of jobs in the largest group (1: no group has several seeds)."""
    return max((len(group.jobs) for group in groups), default=0)


def _colors(n: int) -> list:
    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def _legend_columns(labels: Sequence[str], width_inches: float) -> int:
    """At most 4 columns, as many as fit: about 0.075 inch per character at font size 8, plus
    the line sample and spacing."""
    longest = max((len(label) for label in labels), default=1)
    return max(1, min(4, len(labels), int(width_inches / (0.075 * (longest + 8)))))


def _band_pairs(levels: Sequence[float]) -> list[tuple[int, int]]:
    """Index pairs (lo, hi) of symmetric quantile levels, outermost first (lo < hi)."""
    levels = list(levels)
    return [(i, len(levels) - 1 - i) for i in range(len(levels) // 2)]


def _percent(q: float) -> str:
    return f"{100 * q:g}"


class PlainLogFormatter(LogFormatter):
    """Log-axis tick labels as plain numbers (0.002, 0.5, 3) rather than 2 x 10^-3."""

    def _num_to_string(self, x, vmin, vmax):
        return f"{x:g}"


def _scale_for(
    ax, quantity: str, values: np.ndarray, top: float | None, full_range: bool = True
) -> None:
    """The mean cosine on [0, 1] (``full_range``; else matplotlib's limits around the data);
    the count of aligned cosines on [0, top] (else from one below its lowest value to top, on
    integer ticks); eigenvalues on a log axis when they are positive and span a decade or more,
    else linear. Tick labels are plain numbers (0.2, 1, 5), never 2 x 10^-1."""
    finite = values[np.isfinite(values)]
    if quantity.startswith("mean_top") and full_range:
        ax.set_ylim(0.0, 1.02)
    elif quantity.startswith("n_top") and top is not None:
        low = 0.0 if full_range or not finite.size else max(0.0, float(finite.min()) - 1.0)
        ax.set_ylim(low - 0.3, top + 0.3)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    elif finite.size and finite.min() > 0 and finite.max() >= 10 * finite.min():
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(PlainLogFormatter(labelOnlyBase=False))
        minor = PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5))
        ax.yaxis.set_minor_formatter(minor)
        return
    ax.ticklabel_format(axis="y", useOffset=False)


def _count_top(quantity: str) -> float | None:
    """10 for 'n_top10_cos_gt_0.9'."""
    if not quantity.startswith("n_top"):
        return None
    return float(quantity[len("n_top") :].split("_", 1)[0])


def bands_figure(groups: Sequence[Group], levels: Sequence[float], quantities: dict, title: str):
    """One panel per quantity over steps: per group (colour) the median across its jobs and the
    bands between symmetric quantile levels (e.g. 10-90 %), on the group's common step grid."""
    names = list(quantities)
    fig = new_figure(3.6 * len(names) + 0.6, 4.0)
    axes = fig.subplots(1, len(names))
    pairs = _band_pairs(levels)
    all_steps = np.concatenate([b.steps for g in groups for b in g.bands.values()] or [[0]])
    for ax, name in zip(axes, names, strict=True):
        shown = []
        for color, group in zip(_colors(len(groups)), groups, strict=True):
            band = group.bands.get(name)
            if band is None:
                continue
            steps = band.steps.astype(float)
            for lo, hi in pairs:
                ax.fill_between(
                    steps,
                    band.quantiles[lo],
                    band.quantiles[hi],
                    color=color,
                    alpha=BAND_ALPHA,
                    lw=0,
                )
            n = (
                f"{band.values.shape[0]}"
                if group.complete
                else f"{len(group.jobs)} of {group.expected}, incomplete"
            )
            ax.plot(steps, band.median, color=color, lw=1.6, label=f"{group.label} (n = {n})")
            shown.append(band.quantiles)
            shown.append(band.median[None])
        values = np.concatenate([s.ravel() for s in shown]) if shown else np.zeros(0)
        _scale_for(ax, name, values, _count_top(name))
        if name.startswith("mean_top"):
            ax.axhline(0.9, color="0.3", lw=1.0, ls=":", zorder=0, label="_cosine 0.9")
        set_step_axis(ax, all_steps)
        ax.set_title(quantities[name], fontsize=10)
        ax.grid(True, which="major", color="0.92", lw=0.6)
    band_text = ", ".join(f"{_percent(levels[lo])}-{_percent(levels[hi])} %" for lo, hi in pairs)
    several = _largest_group(groups) > 1
    if several:
        caption = "median across the seeds of each group (line)" + (
            f", {band_text} quantile band" if pairs else ""
        )
    else:
        caption = "one job per group: its values (no quantile band)"
    handles, labels = axes[0].get_legend_handles_labels()
    references = [line for ax in axes for line in ax.lines if line.get_label() == "_cosine 0.9"]
    if references:  # the reference line of the mean cosine, explained once
        handles, labels = [*handles, references[0]], [*labels, "dotted: mean cosine 0.9"]
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncol=_legend_columns(labels, fig.get_figwidth()),
        fontsize=8,
        frameon=False,
    )
    heading = "Alignment of the top eigenspaces of $H_f$ and $M$ and top eigenvalues" + (
        ", across seeds" if several else ""
    )
    fig.suptitle(f"{heading}\n{title}\n{caption}", fontsize=11)
    return fig


def comparison_figure(
    groups: Sequence[Group],
    knobs: Sequence[str],
    levels: Sequence[float],
    quantities: dict,
    title: str,
):
    """End-of-training quantities (columns) against each swept knob (rows, categorical x).

    Each job is a faint point; per combination of the other knobs (colour) the median is a
    marker joined across knob values, with a bar from the lowest to the highest quantile level.
    """
    names = list(quantities)
    jobs = [job for group in groups for job in group.jobs]
    settings = {job.name: group.settings for group in groups for job in group.jobs}
    fig = new_figure(3.6 * len(names) + 0.6, 3.1 * len(knobs) + 0.9)
    axes = np.atleast_2d(fig.subplots(len(knobs), len(names), squeeze=False))
    lo_level, hi_level = min(levels), max(levels)
    for r, knob in enumerate(knobs):
        others = [k for k in knobs if k != knob]
        x_values = sorted({settings[j.name][knob] for j in jobs}, key=value_sort_key)
        series = sorted(
            {tuple(settings[j.name][k] for k in others) for j in jobs},
            key=lambda t: tuple(value_sort_key(v) for v in t),
        )
        for c, name in enumerate(names):
            ax = axes[r, c]
            by_series = [
                [
                    np.array(
                        [
                            j.end[name]
                            for j in jobs
                            if settings[j.name][knob] == value
                            and tuple(settings[j.name][k] for k in others) == combo
                        ]
                    )
                    for value in x_values
                ]
                for combo in series
            ]
            labels = [
                ", ".join(f"{k}={v}" for k, v in zip(others, combo, strict=True)) or None
                for combo in series
            ]
            gathered = _median_bars(ax, by_series, labels, (lo_level, hi_level))
            values = np.concatenate(gathered) if gathered else np.zeros(0)
            _scale_for(ax, name, values, _count_top(name), full_range=False)
            ax.set_xticks(range(len(x_values)), [str(v) for v in x_values])
            ax.set_xlim(-0.5, len(x_values) - 0.5)
            ax.set_xlabel(knob)
            ax.grid(True, axis="y", which="major", color="0.92", lw=0.6)
            if r == 0:
                ax.set_title(f"{quantities[name]} at the end", fontsize=10)
        if others:
            axes[r, -1].legend(fontsize=7, loc="best")
    caption = _points_caption(groups, lo_level, hi_level)
    heading = "End of training against each swept knob"
    fig.suptitle(f"{heading}\n{title}\n{caption}", fontsize=11)
    return fig


def _points_caption(groups: Sequence[Group], lo_level: float, hi_level: float) -> str:
    """What the points, markers and bars of a comparison stand for, given the group sizes."""
    if _largest_group(groups) > 1:
        return (
            f"points: jobs; markers: median; bars: {_percent(lo_level)}-{_percent(hi_level)} % "
            "quantiles across the seeds of each setting"
        )
    return "markers: the one job of each setting (no seeds to take quantiles across)"


def accuracy_by_knob_figure(
    groups: Sequence[Group], knobs: Sequence[str], levels: Sequence[float], title: str
):
    """Final test accuracy (``summary.json``'s ``test_acc``) against each swept knob, one panel
    per knob (categorical x, the knob's values in order): each job a faint point, per
    combination of the other knobs (colour) the median across seeds as a marker with a bar
    between the lowest and highest quantile `levels`, joined across the knob's values.
    Jobs without a finite ``test_acc`` are left out."""
    jobs = [job for group in groups for job in group.jobs]
    settings = {job.name: group.settings for group in groups for job in group.jobs}

    def accuracy(job) -> float:
        value = job.summary.get(TEST_ACC_KEY) if isinstance(job.summary, dict) else None
        return float(value) if isinstance(value, (int, float)) else float("nan")

    fig = new_figure(max(8.0, 4.2 * len(knobs) + 0.6), 4.2)  # wide enough for the caption
    axes = np.atleast_1d(fig.subplots(1, len(knobs), squeeze=False)[0])
    lo_level, hi_level = min(levels), max(levels)
    for ax, knob in zip(axes, knobs, strict=True):
        others = [k for k in knobs if k != knob]
        x_values = sorted({settings[j.name][knob] for j in jobs}, key=value_sort_key)
        series = sorted(
            {tuple(settings[j.name][k] for k in others) for j in jobs},
            key=lambda t: tuple(value_sort_key(v) for v in t),
        )
        by_series = []
        for combo in series:
            per_x = []
            for value in x_values:
                vals = np.array(
                    [
                        accuracy(j)
                        for j in jobs
                        if settings[j.name][knob] == value
                        and tuple(settings[j.name][k] for k in others) == combo
                    ],
                    dtype=float,
                )
                per_x.append(vals[np.isfinite(vals)])
            by_series.append(per_x)
        labels = [
            ", ".join(f"{k}={v}" for k, v in zip(others, combo, strict=True)) or None
            for combo in series
        ]
        _median_bars(ax, by_series, labels, (lo_level, hi_level))
        ax.set_xticks(range(len(x_values)), [str(v) for v in x_values])
        ax.set_xlim(-0.5, len(x_values) - 0.5)
        ax.set_xlabel(knob)
        ax.set_ylabel("test accuracy at the end")
        ax.set_title(f"test accuracy against {knob}", fontsize=10)
        ax.grid(True, axis="y", which="major", color="0.92", lw=0.6)
        if others:
            ax.legend(fontsize=7, loc="best")
    heading = "Final test accuracy against each swept knob"
    caption = _points_caption(groups, lo_level, hi_level)
    fig.suptitle(f"{heading}\n{title}\n{caption}", fontsize=11)
    return fig


def _median_bars(
    ax, by_series: list[list[np.ndarray]], labels: list, levels: tuple[float, float]
) -> list[np.ndarray]:
    """For each series (its values at each x position, a colour and a label): the jobs as
    faint points and the median as a marker with a bar between the quantile `levels`, joined
    across x; series side by side around each x. Returns the non-empty value arrays."""
    width = 0.5 / max(len(by_series), 1)
    gathered = []
    for s, (color, per_x, label) in enumerate(
        zip(_colors(len(by_series)), by_series, labels, strict=True)
    ):
        offset = (s - (len(by_series) - 1) / 2) * width
        xs, medians, lows, highs = [], [], [], []
        for x, vals in enumerate(per_x):
            if vals.size == 0:
                continue
            gathered.append(vals)
            ax.scatter(np.full(vals.size, x + offset), vals, s=9, color=color, alpha=0.35, lw=0)
            xs.append(x + offset)
            medians.append(np.quantile(vals, 0.5))
            lows.append(np.quantile(vals, levels[0]))
            highs.append(np.quantile(vals, levels[1]))
        medians, lows, highs = map(np.asarray, (medians, lows, highs))
        ax.errorbar(
            xs,
            medians,
            yerr=[medians - lows, highs - medians],
            color=color,
            marker="o",
            ms=4,
            lw=1.2,
            capsize=2,
            label=label,
        )
    return gathered


def draw_sweep_figures(
    out_dir: Path,
    groups: Sequence[Group],
    knobs: Sequence[str],
    levels: Sequence[float],
    quantities: dict,
    title: str,
) -> list[Path]:
    """Write the band figure, and the comparison and test-accuracy figures when some knob is
    swept."""
    paths = [save_figure(bands_figure(groups, levels, quantities, title), out_dir / BANDS_PNG)]
    if knobs:
        fig = comparison_figure(groups, knobs, levels, quantities, title)
        paths.append(save_figure(fig, out_dir / COMPARISON_PNG))
        fig = accuracy_by_knob_figure(groups, knobs, levels, title)
        paths.append(save_figure(fig, out_dir / TEST_ACCURACY_PNG))
    return paths


def draw_report_figures(result: ReportResult) -> list[Path]:
    """Draw the figures of a sweep report (`sgd_dynamics.report.report`) into its ``out_dir``
    (none when no job was used); records and returns their paths (``result.figure_paths``)."""
    if result.groups:
        result.figure_paths = draw_sweep_figures(
            result.out_dir,
            result.groups,
            result.knobs,
            result.levels,
            result.quantities,
            title=result.title,
        )
    return result.figure_paths
