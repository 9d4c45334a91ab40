"""The three answers of an uncertainty comparison (issue 27.1): D, the chaos fraction and eps*
per unit, pooled, paired by seed, in words, in the figure and the report; and a comparison
folder begun by main's code before them resumes under this code."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from nnfractal.cli.main import main
from nnfractal.estimators.stats import NO_DIFFERENCE
from nnfractal.render.compare_plots import plot_quantities
from nnfractal.studies.compare_sampled import compact
from nnfractal.studies.comparison import SampledUnit
from nnfractal.studies.quantities import CHAOS, EPS_STAR, analyse_quantities, chaos_of, eps_star_of

DATA = Path(__file__).parent / "data"
PRESETS = ("A", "B")
LABELS = {"A": "residual", "B": "plain"}


def estimate(d, floors, eps_star=None, *, ok=True, moved=400):
    """A sampling estimate as the mixed estimator writes it (SamplingEstimate.to_dict()): per
    stage F, its Wilson interval from `moved` points, and eps* with a +-20% interval."""
    flips = [round(f * moved) for f in floors]
    wilson = [[max(0.0, k / moved - 2 * np.sqrt(k / moved * (1 - k / moved) / moved + 1e-6)),
               min(1.0, k / moved + 2 * np.sqrt(k / moved * (1 - k / moved) / moved + 1e-6))]
              for k in flips]
    est = {"dimension": d if ok else None, "ci_low": d - 0.03 if ok else None,
           "ci_high": d + 0.03 if ok else None, "ok": ok, "method": "uncertainty",
           "reason": "" if ok else "chaotic: fewer than 1.5 decades of eps above the chaotic band",
           "eps_star": eps_star, "eps_star_low": eps_star and eps_star * 0.8,
           "eps_star_high": eps_star and eps_star * 1.2,
           "extra": {"chaos_floor": [k / moved for k in flips], "chaos_interval": wilson,
                     "floor_points": [moved] * len(floors),
                     "stage_side": [10.0 ** -(2 * s) for s in range(len(floors))]}}
    return est


def units(per_seed: dict[str, list[dict]]) -> list[SampledUnit]:
    return [SampledUnit(preset=p, seed_index=i, seed=i, mnmx=[0, 1, 0, 1], estimate=compact(e))
            for p, ests in per_seed.items() for i, e in enumerate(ests)]


def test_the_chaos_fraction_is_the_deepest_floored_stage_read_alike_from_both_files():
    est = estimate(1.4, [0.02, 0.10, 0.30], 1e-4)
    est["extra"]["floor_points"][2] = 0                 # the deepest stage moved no points
    whole, compacted = chaos_of(est), chaos_of(compact(est))
    assert whole == compacted
    assert whole["stage"] == 1 and whole["fraction"] == pytest.approx(0.10)
    assert whole["side"] == pytest.approx(1e-2) and whole["moved"] == 400
    assert whole["ci_low"] < 0.10 < whole["ci_high"] and whole["ci_high"] - whole["ci_low"] < 0.07
    none = estimate(1.4, [0.0, 0.0])
    none["extra"]["chaos_floor"] = None
    assert not chaos_of(none)["ok"] and "no chaos floor" in chaos_of(none)["reason"]


def test_eps_star_is_missing_with_its_reason():
    assert eps_star_of(estimate(1.4, [0.1], 2e-4)) == {
        "eps_star": 2e-4, "ci_low": pytest.approx(1.6e-4), "ci_high": pytest.approx(2.4e-4),
        "ok": True, "reason": ""}
    refused = eps_star_of(estimate(1.4, [0.1], None, ok=False))
    assert not refused["ok"] and "refused" in refused["reason"]


def test_differences_of_chaos_and_band_are_found_and_said_in_words():
    # five seeds: A's band is 10x narrower and its chaos fraction a third of B's; same D
    rng = np.random.default_rng(0)
    per_seed = {"A": [estimate(1.40 + 0.01 * rng.standard_normal(), [0.05, 0.10], 1e-4 * 1.1 ** k)
                      for k in range(5)],
                "B": [estimate(1.40 + 0.01 * rng.standard_normal(), [0.15, 0.30], 1e-3 * 1.1 ** k)
                      for k in range(5)]}
    q = analyse_quantities(units(per_seed), PRESETS, LABELS)
    chaos, eps = q[CHAOS], q[EPS_STAR]
    assert chaos.difference["verdict"] == "smaller" and eps.difference["verdict"] == "smaller"
    assert chaos.difference["estimate"] == pytest.approx(-0.20, abs=0.01)
    assert -0.26 < chaos.difference["ci_low"] < chaos.difference["ci_high"] < -0.14
    assert eps.ratio["estimate"] == pytest.approx(0.1, rel=0.01)
    assert 0.07 < eps.ratio["ci_low"] < eps.ratio["ci_high"] < 0.14
    assert eps.pooled_eps_star["B"]["eps_star"] == pytest.approx(1e-3 * 1.1 ** 2, rel=0.05)
    assert chaos.difference["p_permutation"] == pytest.approx(2 / 32)     # 5 pairs, all one sign
    assert chaos.sentence.startswith("residual has a smaller chaos fraction than plain")
    assert eps.sentence.startswith("The chaotic band of residual is narrower than that of plain")
    assert "x0.1" in eps.sentence


def test_no_difference_and_refused_dimensions_still_count_for_chaos():
    # A's D is refused at every seed; its chaos fractions still pair with B's, and equal them
    per_seed = {"A": [estimate(1.4, [0.2], None, ok=False) for _ in range(4)],
                "B": [estimate(1.5, [0.2], 3e-4) for _ in range(4)]}
    q = analyse_quantities(units(per_seed), PRESETS, LABELS)
    assert q[CHAOS].difference["n_pairs"] == 4 and q[CHAOS].difference["verdict"] == NO_DIFFERENCE
    # narrow enough to tell apart the 0.2 of the test above: each F is good to about +-0.04,
    # and stats counts a unit's own interval as not shrinking with more seeds
    assert q[CHAOS].difference["ci_high"] - q[CHAOS].difference["ci_low"] < 0.15
    assert q[CHAOS].sentence.startswith("No difference between the chaos fractions")
    assert q[EPS_STAR].difference["n_pairs"] == 0
    assert "no pair has both eps*s" in q[EPS_STAR].difference["reason"]


def test_the_figure_shows_the_three_quantities_and_their_differences(tmp_path):
    per_seed = {"A": [estimate(1.3, [0.1], 1e-4) for _ in range(3)],
                "B": [estimate(1.5, [0.3], 1e-3) for _ in range(3)]}
    us = units(per_seed)
    q = analyse_quantities(us, PRESETS, LABELS)
    from nnfractal.estimators.stats import paired_difference, pool
    group = {"depth": 4, "archs": {p: {"label": LABELS[p], "pooled": pool(
        [u.estimate for u in us if u.preset == p])} for p in PRESETS},
        "difference": paired_difference([(a.estimate, b.estimate) for a, b in zip(us[:3], us[3:])]),
        "quantities": {k: v.to_json() for k, v in q.items()}}
    fig = plot_quantities([group], PRESETS, tmp_path / "q.png")
    left = fig.axes[0::2]
    assert [ax.get_title() for ax in left] == ["curve dimension D", "chaos fraction F (deepest stage)",
                                                "band scale eps* (window units)"]
    # D of both architectures, then F, then log10 eps*, each at its pooled value
    shown = [[c.lines[0].get_ydata()[0] for c in ax.containers] for ax in left]
    assert shown[0][:2] == pytest.approx([1.3, 1.5], abs=0.01)
    assert shown[1][:2] == pytest.approx([0.1, 0.3], abs=0.01)
    assert shown[2][:2] == pytest.approx([-4, -3], abs=0.01)
    right = fig.axes[1::2]
    diffs = [[c.lines[0].get_ydata()[0] for c in ax.containers] for ax in right]
    assert diffs[0][0] == pytest.approx(-0.2, abs=0.01) and diffs[2][0] == pytest.approx(-1, abs=0.01)
    assert (tmp_path / "q.png").stat().st_size > 10_000


@pytest.mark.slow
def test_a_plan_written_by_mains_code_resumes_with_the_three_quantities(tmp_path):
    """plan.json as main's `compare resmlp-residual resmlp-plain --method uncertainty --depths
    2 3` wrote it (commit 5e3784d, before the quantities): `--resume` trains its units under this
    code, and a second `--resume` re-analyses the finished folder without training."""
    out = tmp_path / "cmp"
    out.mkdir()
    shutil.copy(DATA / "plan_uncertainty_main_5e3784d.json", out / "plan.json")
    assert main(["compare", "--resume", str(out), "--no-progress"]) == 0
    info = json.loads((out / "compare.json").read_text())
    assert [r["depth"] for r in info["results"]] == [2, 3] and len(info["units"]) == 4
    for r in info["results"]:
        assert set(r["quantities"]) == {CHAOS, EPS_STAR}
        for p in info["presets"]:
            n = r["quantities"][CHAOS]["pooled"][p]["n_units"]
            assert n == 1
    assert set(info["sentences"]) == {"dimension", CHAOS, EPS_STAR}
    assert "compare_quantities.png" in info["figures"].values()
    report = (out / "report.html").read_text()
    assert "Curve, chaos and band" in report and info["sentences"][CHAOS][:40] in report
    stamps = {u["dir"]: (out / u["dir"] / "store.zarr").stat().st_mtime_ns for u in info["units"]}
    assert main(["compare", "--resume", str(out), "--no-progress"]) == 0
    again = json.loads((out / "compare.json").read_text())
    assert again["results"] == info["results"]
    assert {d: (out / d / "store.zarr").stat().st_mtime_ns for d in stamps} == stamps
