"""hf_minimodel.speedup, the paper's measure, on hand-made learning curves: what step 2 adds to its start, the
speed-up where the standard approach gained, "no gain to compare" where it did not."""

import pytest

from hf_minimodel import speedup


def run(method, points, language="fr", task="bible-genre", n=1000, init="overlap"):
    """A run whose curve starts at step 0 (no compute) and has one snapshot per `(flops, seconds, accuracy)`."""
    start, *rest = points
    curve = [{"step": 0, "flops": 0.0, "seconds": 0.0, "accuracy": start}]
    curve += [{"step": i + 1, "flops": f, "seconds": s, "accuracy": a} for i, (f, s, a) in enumerate(rest)]
    return {"language": language, "task": task, "method": method, "init": init, "majority_baseline": 0.25, "n": n,
            "curve": curve}


# From 0.30 at step 0 the standard approach reaches its best, 0.60, first at its third snapshot: 30 FLOPs, 6 seconds.
STANDARD = run("standard", [0.30, (10, 2, 0.4), (20, 4, 0.5), (30, 6, 0.6), (40, 8, 0.6)])


def test_start_best_and_gain_read_step_0_as_the_start():
    assert speedup.start_best_gain(STANDARD["curve"]) == {"start": 0.3, "best": 0.6, "gain": pytest.approx(0.3),
                                                          "best_step": 3, "end": 0.6}
    with pytest.raises(ValueError, match="step 0"):
        speedup.start_best_gain(STANDARD["curve"][1:])


def test_speedup_is_the_standard_compute_to_its_best_over_the_method_compute_to_reach_it():
    minijoint = run("minijoint", [0.30, (3, 1, 0.5), (6, 2, 0.61), (9, 3, 0.62)])
    (row,) = speedup.compare([STANDARD, minijoint])
    assert row["standard_gained"]
    assert row["minijoint"] == {"speedup": 30 / 6, "speedup_seconds": 6 / 2, "accuracy_ratio": pytest.approx(0.62 / 0.6),
                                "reached": True, "at_start": False}
    assert row["methods"]["minijoint"]["gain"] == pytest.approx(0.32)


def test_a_method_that_never_reaches_the_standard_best_is_charged_its_compute_at_its_own_best():
    minipost = run("minipost", [0.30, (5, 1, 0.45), (10, 2, 0.55), (15, 3, 0.5)])
    (row,) = speedup.compare([STANDARD, minipost])
    assert row["minipost"]["reached"] is False
    assert row["minipost"]["speedup"] == 30 / 10 and row["minipost"]["accuracy_ratio"] == pytest.approx(0.55 / 0.6)


def test_no_gain_to_compare_where_the_standard_approach_does_not_beat_its_start():
    # A start of 0.70 that step 2 moves to 0.71 at best: within MIN_GAIN, so no speed-up is computed for anyone.
    flat = run("standard", [0.70, (10, 2, 0.69), (20, 4, 0.71), (30, 6, 0.70)])
    mini = run("minipost", [0.70, (3, 1, 0.71), (6, 2, 0.72)])
    (row,) = speedup.compare([flat, mini])
    assert row["standard_gained"] is False and row["minipost"] == "no gain to compare"
    summary = speedup.summarize([row])
    assert summary["minipost"]["no_gain_to_compare"] == 1 and summary["minipost"]["mean_speedup_reached"] is None


def test_a_gain_within_the_starts_noise_is_no_gain():
    # +0.05 over a start of 0.5 is real on 2,000 examples (standard error 0.011), not on 100 (0.05, times 2).
    curve = run("standard", [0.50, (10, 1, 0.55)])["curve"]
    assert speedup.real_gain(curve, 2000) and not speedup.real_gain(curve, 100)
    assert not speedup.real_gain(run("standard", [0.50, (10, 1, 0.52)])["curve"], 100000)  # below MIN_GAIN


def test_a_method_already_at_the_goal_at_its_start_has_no_compute_to_divide_by():
    dual_start = run("minijoint", [0.65, (3, 1, 0.66)])  # MiniJoint's own source model starts higher
    (row,) = speedup.compare([STANDARD, dual_start])
    assert row["minijoint"]["at_start"] and row["minijoint"]["speedup"] is None and row["minijoint"]["reached"]


def test_summary_averages_speedups_only_where_the_method_reached_the_standard_best():
    rows = speedup.compare([
        STANDARD, run("minijoint", [0.3, (3, 1, 0.6)]),
        run("standard", [0.3, (10, 1, 0.5), (20, 2, 0.7)], language="de"), run("minijoint", [0.3, (4, 1, 0.5)], language="de"),
    ])
    summary = speedup.summarize(rows)["minijoint"]
    assert summary["mean_speedup_reached"] == 30 / 3  # de never reached 0.7: left out of the mean
    assert summary["reached"] == "1 of 2" and summary["mean_accuracy_ratio"] == pytest.approx((1.0 + 0.5 / 0.7) / 2)


def test_compute_to_reach_charges_every_init_against_one_reference():
    random = run("standard", [0.10, (10, 1, 0.3), (20, 2, 0.5), (40, 4, 0.5)], init="random")
    composed = run("minipost", [0.45, (2, 1, 0.52)], init="compose")
    there_at_once = run("standard", [0.55, (10, 1, 0.6)], init="compose")
    (row,) = speedup.compute_to_reach([random, composed, there_at_once], "random")
    assert row["goal"] == 0.5 and row["reference_gained"]
    by = {(e["method"], e["init"]): e for e in row["runs"]}
    assert by["standard", "random"]["speedup"] == 1.0
    assert by["minipost", "compose"]["speedup"] == 20 / 2
    assert by["standard", "compose"]["at_start"] and by["standard", "compose"]["speedup"] is None


def test_equal_accuracy_reads_the_standard_curve_between_its_snapshots():
    # MiniPost's best, 0.55 at 10 FLOPs: the standard approach passes 0.55 halfway from 20 FLOPs (0.5) to 30 (0.6).
    minipost = run("minipost", [0.30, (5, 1, 0.45), (10, 2, 0.55), (15, 3, 0.5)])
    assert speedup.flops_to_reach(STANDARD["curve"], 0.55) == pytest.approx(25)
    assert speedup.flops_to_reach(STANDARD["curve"], 0.4) == 10 and speedup.flops_to_reach(STANDARD["curve"], 0.3) == 0
    assert speedup.flops_to_reach(STANDARD["curve"], 0.61) is None
    assert speedup.equal_accuracy_speedup(STANDARD["curve"], minipost["curve"]) == pytest.approx(25 / 10)
    # Better than the standard's best: no standard compute reaches it; at its start: no mini-model compute.
    assert speedup.equal_accuracy_speedup(STANDARD["curve"], run("minipost", [0.3, (5, 1, 0.7)])["curve"]) is None
    assert speedup.equal_accuracy_speedup(STANDARD["curve"], run("minipost", [0.5, (5, 1, 0.4)])["curve"]) is None
