"""Which global steps get a spectral snapshot.

Two schedules, both always containing step 0 and the last step:

- ``every_n_steps=N``: 0, N, 2N, ..., last;
- ``log_points=L``: about L steps spaced evenly in log(step + 1), dense early and sparse late,
  the way the paper's figures sample training; ``log_points="auto"`` (the default config)
  scales L with the run's length (`auto_log_points`: one per 100 steps, between 10 and 30), so
  that a short run takes few snapshots and the paper's 3000 steps take 30.

Both may be given; the union is taken.
"""

from __future__ import annotations

import math

import numpy as np

from sgd_dynamics.utils.validate import positive_int

AUTO = "auto"  # log_points chosen from the run's length (`auto_log_points`)
AUTO_STEPS_PER_POINT = 100
AUTO_MIN_POINTS = 10
AUTO_MAX_POINTS = 30


def auto_log_points(last_step: int) -> int:
    """The number of log-spaced points ``log_points="auto"`` stands for: one per 100 steps of
    the run, at least 10 and at most 30 (300 steps: 10; 1000: 10; 2000: 20; 3000 and more: 30).
    The cost of the snapshots then grows with the training they sample, up to the resolution
    the figures need. (Short runs have fewer distinct rounded steps than points.)"""
    return min(AUTO_MAX_POINTS, max(AUTO_MIN_POINTS, int(last_step) // AUTO_STEPS_PER_POINT))


def snapshot_steps(
    last_step: int, every_n_steps: int | None = None, log_points: int | str | None = None
) -> list[int]:
    """Sorted, distinct global steps in ``[0, last_step]`` at which to take a snapshot.

    Args:
        last_step: the final global step of the run (``>= 0``).
        every_n_steps: a snapshot every this many steps (``>= 1``), or ``None``.
        log_points: number of log-spaced points (``>= 2``), ``"auto"`` (`auto_log_points`
            of `last_step`), or ``None``.

    Raises:
        ValueError: on a negative ``last_step`` or a non-positive interval or point count.
    """
    if last_step < 0:
        raise ValueError(f"last_step must be >= 0, got {last_step}")
    steps = {0, int(last_step)}
    if every_n_steps is not None:
        if every_n_steps < 1:
            raise ValueError(f"spectral.every_n_steps must be >= 1 or null, got {every_n_steps}")
        steps.update(range(0, last_step + 1, int(every_n_steps)))
    if log_points == AUTO:
        log_points = auto_log_points(last_step)
    if log_points is not None:
        if not isinstance(log_points, int) or log_points < 2:
            raise ValueError(
                f"spectral.log_points must be auto or null or an integer >= 2, got {log_points!r}"
            )
        grid = np.geomspace(1.0, last_step + 1.0, int(log_points)) - 1.0
        steps.update(int(round(s)) for s in grid)
    return sorted(s for s in steps if 0 <= s <= last_step)


def density_steps(steps: list[int], points: int) -> list[int]:
    """The snapshot steps (of ``steps``, sorted, from `snapshot_steps`) that also get spectral
    densities: for each of ``points`` targets spaced evenly in log(step + 1) from 0 to the last
    step (only the last one when ``points`` is 1), the snapshot step nearest in log(step + 1).
    The last step is always among them; fewer than ``points`` when targets share a step. A pure
    function of the schedule, so a resumed run picks the same steps.

    Raises:
        ValueError: on ``points < 1`` or an empty ``steps``.
    """
    positive_int(points, "spectral.density_points")
    if not steps:
        raise ValueError("density_steps needs at least one snapshot step")
    last = max(steps)
    if points == 1:
        return [last]
    where = np.log1p(np.asarray(sorted(steps), dtype=np.float64))
    targets = np.linspace(0.0, math.log1p(last), points)
    nearest = np.abs(where[None, :] - targets[:, None]).argmin(axis=1)
    chosen = {sorted(steps)[i] for i in nearest} | {last}
    return sorted(chosen)
