"""The paper's measure: how much less step-2 compute a mini-model needs to reach the standard approach's accuracy.

Read off learning curves (`target_embeddings.LearningCurve`, evaluated at each snapshot): the standard approach's
step-2 FLOPs at the first snapshot that reaches its best accuracy, over the FLOPs at which a mini-model method first
reaches that same accuracy (Marchisio et al., 2023, section 5). Two rules keep it honest:

- every curve starts at step 0, the pack as initialised, and what step 2 adds is the *gain* over that start: a
  comparison only means something where the standard approach's gain is real (`real_gain`: at least `MIN_GAIN`
  absolute and outside the start's sampling noise). Elsewhere the pair is reported as "no gain to compare": both
  methods would be charged for a start that cost no training;
- a method that never reaches the standard's best is charged its compute at its own best (`reached` False), as the
  paper's curves stop there too; its accuracy ratio says how far it stayed.

A curve is a list of points `{"step", "flops", "seconds", "accuracy"}` in step order, step 0 first; a run is a dict
with "language", "task", "method", "n" (examples), "majority_baseline" and "curve".
"""

from __future__ import annotations

import math
import statistics

from .checks import InputError

# The smallest gain over the start that counts as step 2 having learned something (absolute accuracy).
MIN_GAIN = 0.03
# How many standard errors of the start's accuracy a gain must exceed (a binomial standard error at n examples).
NOISE_SIGMAS = 2.0
MINI_METHODS = ("minijoint", "minipost")


def start_best_gain(curve: list[dict]) -> dict:
    """The start (step 0), the best point and the gain between them."""
    if not curve or curve[0]["step"] != 0:
        raise InputError("a learning curve starts at step 0 (the pack as initialised): take it with LearningCurve")
    start = curve[0]["accuracy"]
    best = max(curve, key=lambda point: point["accuracy"])
    return {"start": start, "best": best["accuracy"], "gain": best["accuracy"] - start, "best_step": best["step"],
            "end": curve[-1]["accuracy"]}


def noise(accuracy: float, n: int) -> float:
    """The binomial standard error of an accuracy measured on n examples."""
    return math.sqrt(max(accuracy * (1 - accuracy), 0.0) / n) if n else float("inf")


def real_gain(curve: list[dict], n: int, min_gain: float = MIN_GAIN) -> bool:
    """Whether the curve's best beats its start by at least `min_gain` and by more than NOISE_SIGMAS standard errors
    of the start's accuracy on `n` examples."""
    summary = start_best_gain(curve)
    return summary["gain"] >= max(min_gain, NOISE_SIGMAS * noise(summary["start"], n))


def first_reaching(curve: list[dict], accuracy: float) -> dict | None:
    """The first point of `curve` at or above `accuracy`, or None."""
    return next((point for point in curve if point["accuracy"] >= accuracy), None)


def flops_to_reach(curve: list[dict], accuracy: float) -> float | None:
    """The step-2 FLOPs at which `curve` first reaches `accuracy`, read on a straight line between the two snapshots
    around it (None if it never does). Where a mini-model stays below the standard's best, `first_reaching` alone
    charges the standard approach its next snapshot; this asks what the standard approach needed for the accuracy
    the mini-model did reach, so snapshots far apart do not pass for a saving."""
    for before, after in zip(curve, curve[1:]):
        if before["accuracy"] >= accuracy:
            return before["flops"]
        if after["accuracy"] >= accuracy:
            share = (accuracy - before["accuracy"]) / (after["accuracy"] - before["accuracy"])
            return before["flops"] + share * (after["flops"] - before["flops"])
    return curve[-1]["flops"] if curve and curve[-1]["accuracy"] >= accuracy else None


def equal_accuracy_speedup(standard: list[dict], mini: list[dict]) -> float | None:
    """The standard approach's FLOPs to the mini-model's best accuracy (`flops_to_reach`) over the mini-model's FLOPs
    to that best: above 1 the mini-model got there cheaper. None where the mini-model's best is its start (no
    step-2 compute) or the standard approach never got there (then the mini-model did better outright). Both
    curves start at step 0 and are not empty (`LearningCurve`'s)."""
    best = max(mini, key=lambda point: point["accuracy"])
    needed = flops_to_reach(standard, best["accuracy"])
    return needed / best["flops"] if needed is not None and best["flops"] else None


def compare(runs: list[dict]) -> list[dict]:
    """Per (language, task): each method's start, best and gain (`start_best_gain`), whether the standard approach
    gained (`standard_gained`), and for each mini-model method either its speed-up in FLOPs and seconds and its
    accuracy ratio, or `"no gain to compare"` where the standard approach did not gain."""
    pairs = {}
    for run in runs:
        pairs.setdefault((run["language"], run["task"]), {})[run["method"]] = run
    rows = []
    for (language, task), by_method in pairs.items():
        any_run = next(iter(by_method.values()))
        row = {"language": language, "task": task, "n": any_run["n"], "majority_baseline": any_run["majority_baseline"],
               **({"script": any_run["script"]} if "script" in any_run else {}),
               "methods": {method: start_best_gain(run["curve"]) for method, run in by_method.items()}}
        standard = by_method.get("standard")
        if standard is not None:
            row["standard_gained"] = real_gain(standard["curve"], any_run["n"])
            for method in MINI_METHODS:
                if method in by_method:
                    row[method] = _speedup(standard["curve"], by_method[method]["curve"]) if row["standard_gained"] \
                        else "no gain to compare"
        rows.append(row)
    return rows


def _speedup(standard: list[dict], mini: list[dict]) -> dict:
    goal = max(point["accuracy"] for point in standard)
    reference = first_reaching(standard, goal)
    point = first_reaching(mini, goal)
    reached = point is not None
    if point is None:
        point = first_reaching(mini, max(p["accuracy"] for p in mini))
    if not point["flops"]:  # reached at its start: no step-2 compute to divide by
        return {"speedup": None, "speedup_seconds": None, "accuracy_ratio": _ratio(mini, goal), "reached": reached,
                "at_start": True}
    return {
        "speedup": reference["flops"] / point["flops"],
        "speedup_seconds": reference["seconds"] / point["seconds"] if point["seconds"] else None,
        "accuracy_ratio": _ratio(mini, goal),
        "reached": reached,
        "at_start": False,
    }


def _ratio(curve, goal):
    return max(point["accuracy"] for point in curve) / goal if goal else None


def summarize(rows: list[dict]) -> dict:
    """Per mini-model method, over the pairs where the standard approach gained: the mean speed-up in FLOPs and in
    seconds over the pairs where the method reached the standard's best (the paper's figure), the mean accuracy
    ratio, "k of n" reached, and how many pairs had no gain to compare."""
    summary = {}
    for method in MINI_METHODS:
        entries = [row[method] for row in rows if method in row]
        if not entries:
            continue
        compared = [entry for entry in entries if isinstance(entry, dict)]
        reached = [entry for entry in compared if entry["reached"] and entry["speedup"] is not None]
        ratios = [entry["accuracy_ratio"] for entry in compared if entry["accuracy_ratio"] is not None]
        summary[method] = {
            "mean_speedup_reached": statistics.fmean(e["speedup"] for e in reached) if reached else None,
            "mean_speedup_seconds_reached": statistics.fmean(e["speedup_seconds"] for e in reached
                                                             if e["speedup_seconds"]) if reached else None,
            "mean_accuracy_ratio": statistics.fmean(ratios) if ratios else None,
            "reached": f"{len([e for e in compared if e['reached']])} of {len(compared)}",
            "no_gain_to_compare": len(entries) - len(compared),
        }
    return summary


def compute_to_reach(runs: list[dict], reference_init: str) -> list[dict]:
    """Across inits: per (language, task), the standard approach with `reference_init` sets the goal (its best
    accuracy, where it gained over its start) and every (method, init) run is charged the step-2 FLOPs at which it
    first reaches that goal; `speedup` is the reference's FLOPs to its best over those. A run that reaches the goal
    at step 0 needs no step 2 at all (`at_start`); one that never reaches it has `speedup` None."""
    groups = {}
    for run in runs:
        groups.setdefault((run["language"], run["task"]), []).append(run)
    rows = []
    for (language, task), group in groups.items():
        reference = next((r for r in group if r["method"] == "standard" and r.get("init") == reference_init), None)
        if reference is None:
            continue
        goal = max(point["accuracy"] for point in reference["curve"])
        row = {"language": language, "task": task, "reference_init": reference_init, "goal": goal,
               "reference_gained": real_gain(reference["curve"], reference["n"]), "runs": []}
        reference_flops = first_reaching(reference["curve"], goal)["flops"]
        for run in group:
            point = first_reaching(run["curve"], goal)
            entry = {"method": run["method"], "init": run.get("init"), "flops": point["flops"] if point else None,
                     "at_start": bool(point) and point["step"] == 0, "speedup": None}
            if point and point["flops"] and row["reference_gained"]:
                entry["speedup"] = reference_flops / point["flops"]
            row["runs"].append(entry)
        rows.append(row)
    return rows
