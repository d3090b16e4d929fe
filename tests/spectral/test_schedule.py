import numpy as np
import pytest

from sgd_dynamics.schedule import auto_log_points, snapshot_steps


def test_every_n_steps_contains_multiples_and_ends():
    assert snapshot_steps(10, every_n_steps=4) == [0, 4, 8, 10]


def test_log_points_are_dense_early_and_sparse_late():
    steps = snapshot_steps(10_000, log_points=20)
    assert steps[0] == 0 and steps[-1] == 10_000
    gaps = np.diff(steps)
    assert gaps[0] < gaps[-1]
    # evenly spaced in log(step + 1): ratios of consecutive (step + 1) are about constant late on
    late = np.array(steps[-5:]) + 1.0
    ratios = late[1:] / late[:-1]
    assert np.allclose(ratios, (10_001.0) ** (1 / 19), rtol=0.05)


def test_union_of_both_schedules_and_zero_length_run():
    assert set(snapshot_steps(100, every_n_steps=50, log_points=3)) == {0, 9, 50, 100}
    assert snapshot_steps(0, every_n_steps=5, log_points=5) == [0]


@pytest.mark.parametrize("kwargs", [dict(every_n_steps=0), dict(log_points=1), dict(last_step=-1)])
def test_bad_schedule_raises(kwargs):
    args = dict(last_step=10) | kwargs
    with pytest.raises(ValueError):
        snapshot_steps(**args)


def test_density_steps_are_log_spaced_snapshot_steps_with_the_last():
    from sgd_dynamics.schedule import density_steps

    steps = snapshot_steps(9380, log_points=25)
    for points in (1, 2, 3, 4, 8):
        chosen = density_steps(steps, points)
        assert set(chosen) <= set(steps) and chosen == sorted(set(chosen))
        assert chosen[-1] == 9380 and len(chosen) <= points
    assert density_steps(steps, 1) == [9380]
    assert density_steps(steps, 2) == [0, 9380]
    # 3 targets at log(step + 1) = 0, log(9381)/2, log(9381): exp(4.573...) - 1 = 95.86 -> 96
    assert density_steps(steps, 3) == [0, 96, 9380]
    # more points than snapshots: every snapshot once
    assert density_steps([0, 5, 10], 10) == [0, 5, 10]
    # a pure function of the schedule: the same steps whatever the order given
    assert density_steps(steps[::-1], 4) == density_steps(steps, 4)


@pytest.mark.parametrize("points", [0, -1, True, 2.5])
def test_density_steps_refuse_bad_counts(points):
    from sgd_dynamics.schedule import density_steps

    with pytest.raises(ValueError, match="density_points must be an integer >= 1"):
        density_steps([0, 10], points)


@pytest.mark.parametrize(
    "last_step, points",
    [(0, 10), (50, 10), (300, 10), (1000, 10), (1999, 19), (2000, 20), (3000, 30), (10**6, 30)],
)
def test_auto_log_points_is_one_per_100_steps_from_10_to_30(last_step, points):
    assert auto_log_points(last_step) == points
    steps = snapshot_steps(last_step, log_points="auto")
    assert steps == snapshot_steps(last_step, log_points=points)
    assert len(steps) <= points and steps[0] == 0 and steps[-1] == last_step


def test_auto_snapshots_of_the_default_run_and_a_short_one():
    # geomspace(1, 3001, 30) - 1 rounded: 28 distinct steps; 300 steps: 301 ** (i / 9) - 1
    assert len(snapshot_steps(3000, log_points="auto")) == 28
    assert snapshot_steps(300, log_points="auto") == [0, 1, 3, 6, 12, 23, 44, 84, 159, 300]


@pytest.mark.parametrize("bad", ["often", 1.5, 1, True])
def test_log_points_other_than_auto_or_an_integer_are_refused(bad):
    with pytest.raises(ValueError, match="spectral.log_points"):
        snapshot_steps(100, log_points=bad)
