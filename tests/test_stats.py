"""estimators/stats.py: pooling, unpaired and paired differences, verdicts, the smallest
detectable difference. Known inputs against outputs computed here independently, coverage of the
intervals on simulated data, and the edge cases."""
import math
from itertools import combinations

import numpy as np
import pytest

from nnfractal.estimators import stats


def units(rng, true_dim, n=6, spread=0.03, half=0.08):
    """n synthetic per-grid estimates: true dimension + seed/window spread, each with an interval."""
    d = true_dim + spread * rng.standard_normal(n)
    return [{"dimension": float(x), "ci_low": float(x - half), "ci_high": float(x + half),
             "ok": True, "reason": ""} for x in d]


def test_known_difference_is_detected_both_ways():
    rng = np.random.default_rng(0)
    a, b = units(rng, 1.25), units(rng, 1.55)
    d = stats.difference(a, b, label_a="resnet", label_b="plain")
    assert d["verdict"] == stats.SMALLER == "smaller"
    assert d["ci_low"] < d["estimate"] < d["ci_high"] < 0
    # both arches' +-0.08 (sd 0.041 each) and the grids' spread: half-width ~0.12
    assert 0.15 < d["ci_high"] - d["ci_low"] < 0.35
    assert abs(d["estimate"] - (-0.30)) < 0.06
    assert d["sentence"].startswith("The boundary of resnet has a smaller fractal dimension than that of plain")
    assert d["p_permutation"] == pytest.approx(2 / 924)           # exact: 6 vs 6, fully separated
    e = stats.difference(b, a)
    assert e["verdict"] == "larger" and 0 < e["ci_low"]
    assert e["estimate"] == pytest.approx(-d["estimate"])


def test_no_difference_gives_no_difference_detectable():
    rng = np.random.default_rng(1)
    a, b = units(rng, 1.45), units(rng, 1.45)
    d = stats.difference(a, b, label_a="A", label_b="B")
    assert d["verdict"] == stats.NO_DIFFERENCE
    assert d["ci_low"] < 0 < d["ci_high"] and d["ci_high"] - d["ci_low"] < 0.35
    assert "No difference between the boundary dimensions of A and B is detectable at this resolution" \
        in d["sentence"]


def test_a_difference_smaller_than_the_estimators_intervals_is_not_claimed():
    # Grids agree closely within each architecture, but each estimate is only good to +-0.2 (the
    # estimator's systematic error at low resolution): 0.1 apart is not a detectable difference.
    rng = np.random.default_rng(2)
    d = stats.difference(units(rng, 1.40, spread=0.005, half=0.2),
                         units(rng, 1.50, spread=0.005, half=0.2))
    assert d["verdict"] == stats.NO_DIFFERENCE
    assert d["p_permutation"] < 0.01          # the seed/window spread alone would say otherwise


def test_missing_estimates_give_no_difference_with_the_reason():
    short = {"dimension": None, "ci_low": None, "ci_high": None, "ok": False,
             "reason": "boundary too short for a dimension at this resolution"}
    rng = np.random.default_rng(3)
    d = stats.difference([short, short], units(rng, 1.3), label_a="A", label_b="B")
    assert d["verdict"] == stats.NO_DIFFERENCE and d["estimate"] is None and not d["ok"]
    assert d["reason"] == "A has no dimension estimate (boundary too short for a dimension at this resolution)"
    both = stats.difference([short], [short], label_a="A", label_b="B")
    assert both["reason"].startswith("neither has a dimension estimate")
    p = stats.pool([short, units(rng, 1.3, n=1)[0]])
    assert p["ok"] and p["n_ok"] == 1 and p["n_units"] == 2 and "1 of 2 grids" in p["reason"]


def test_difference_is_matched_by_window():
    # A's dimension grows with magnification (1.2 in window 0, 1.5 in window 1); B could only be
    # measured in window 1, where it equals A. Pooling all of A against B would claim "smaller";
    # matched by window there is nothing to claim.
    rng = np.random.default_rng(6)
    a = units(rng, 1.2, n=3, spread=0.01, half=0.03) + units(rng, 1.5, n=3, spread=0.01, half=0.03)
    short = {"dimension": None, "ok": False, "reason": "boundary too short for a dimension at this resolution"}
    b = [short] * 3 + units(rng, 1.5, n=3, spread=0.01, half=0.03)
    windows = [0, 0, 0, 1, 1, 1]
    assert stats.difference(a, b)["verdict"] == "smaller"                 # unmatched: confounded
    d = stats.difference(a, b, strata_a=windows, strata_b=windows, name_a="A", name_b="B")
    assert d["verdict"] == stats.NO_DIFFERENCE and d["ok"]
    assert d["strata_used"] == [1] and d["strata_dropped"] == [0]
    assert d["note"] == "matched by window: the difference uses window 1, where both have estimates; window 0 left out"
    # with every window present, matching keeps a real difference
    c = units(rng, 1.5, n=3, spread=0.01, half=0.03) + units(rng, 1.8, n=3, spread=0.01, half=0.03)
    m = stats.difference(a, c, strata_a=windows, strata_b=windows)
    assert m["verdict"] == "smaller" and m["strata_used"] == [0, 1] and m["note"] == ""
    assert m["estimate"] == pytest.approx(-0.3, abs=0.03) and m["p_permutation"] < 0.05
    # no window in common: no difference, and why
    n = stats.difference(a[:3], c[3:], strata_a=[0, 0, 0], strata_b=[1, 1, 1], name_a="A", name_b="B")
    assert n["verdict"] == stats.NO_DIFFERENCE and n["reason"] == "no window has an estimate for both (A: [0], B: [1])"


def test_two_grids_are_too_few_for_a_verdict():
    rng = np.random.default_rng(7)
    d = stats.difference(units(rng, 1.2, n=2, half=0.02), units(rng, 1.6, n=2, half=0.02),
                         name_a="A", name_b="B")
    assert d["ok"] and d["ci_high"] < 0                    # the numbers are still reported
    assert d["verdict"] == stats.NO_DIFFERENCE
    assert d["reason"].startswith("too few grids for a verdict: A has 2, B has 2")
    assert "too few grids" in d["sentence"]


def test_pooled_interval_keeps_the_estimators_systematic_error():
    one = stats.pool([{"dimension": 1.5, "ci_low": 1.4, "ci_high": 1.6, "ok": True}])
    ten = stats.pool([{"dimension": 1.5, "ci_low": 1.4, "ci_high": 1.6, "ok": True}] * 10)
    assert one["dimension"] == ten["dimension"] == 1.5
    for p in (one, ten):                 # more identical grids do not shrink a systematic error
        assert p["ci_low"] == pytest.approx(1.4, abs=0.01) and p["ci_high"] == pytest.approx(1.6, abs=0.01)
    spread = stats.pool([{"dimension": d, "ci_low": d - 0.01, "ci_high": d + 0.01, "ok": True}
                         for d in (1.2, 1.3, 1.4, 1.5, 1.6)])
    assert spread["ci_low"] < 1.35 and spread["ci_high"] > 1.45       # seed/window spread counts
    # ... as the bootstrap of a mean of 5 does: +-1.96 * 0.141 / sqrt(5) = +-0.124
    assert 0.2 < spread["ci_high"] - spread["ci_low"] < 0.3
    assert spread["between_sd"] == pytest.approx(np.std([1.2, 1.3, 1.4, 1.5, 1.6], ddof=1))


def test_asymmetric_intervals_are_respected():
    p = stats.pool([{"dimension": 1.5, "ci_low": 1.45, "ci_high": 1.8, "ok": True}])
    assert 1.5 - p["ci_low"] < 0.07 and p["ci_high"] - 1.5 > 0.25


@pytest.mark.slow
def test_false_positives_are_rare_and_real_differences_are_found():
    rng = np.random.default_rng(4)
    false_pos = sum(stats.difference(units(rng, 1.4), units(rng, 1.4), n_boot=500, seed=i)["verdict"]
                    != stats.NO_DIFFERENCE for i in range(60))
    found = sum(stats.difference(units(rng, 1.4), units(rng, 1.7), n_boot=500, seed=i)["verdict"]
                == "smaller" for i in range(60))
    assert false_pos <= 3 and found >= 57


def test_results_are_deterministic():
    rng = np.random.default_rng(5)
    a, b = units(rng, 1.3), units(rng, 1.35)
    assert stats.difference(a, b) == stats.difference(a, b)


def test_verdict_of():
    assert stats.verdict_of(-0.3, -0.01) == "smaller"
    assert stats.verdict_of(0.01, 0.3) == "larger"
    assert stats.verdict_of(-0.1, 0.1) == stats.NO_DIFFERENCE
    assert stats.verdict_of(None, None) == stats.NO_DIFFERENCE


def test_exact_permutation_p_value():
    rng = np.random.default_rng(0)
    p = stats._permutation_p(np.array([1.0, 2, 3]), np.array([4.0, 5, 6]), 4000, rng)
    assert p == pytest.approx(2 / 20)




# ---- paired differences ------------------------------------------------------------------------

def est(d, half=0.05):
    return {"dimension": d, "ci_low": d - half, "ci_high": d + half, "ok": True, "reason": ""}


# ---- statistics --------------------------------------------------------------------------------

def test_paired_difference_sees_a_shift_that_the_seed_spread_would_hide():
    # The seeds differ by +-0.2 but within each pair B is 0.1 above A: pairing removes the spread.
    base = [1.2, 1.6, 1.4, 1.8]
    pairs = [(est(b, 0.02), est(b + 0.1, 0.02)) for b in base]
    d = stats.paired_difference(pairs, label_a="resnet", label_b="plain")
    assert d["estimate"] == pytest.approx(-0.1)
    assert d["verdict"] == stats.SMALLER and d["ci_high"] < 0
    assert d["n_pairs"] == 4 and [r["difference"] for r in d["pairs"]] == pytest.approx([-0.1] * 4)
    assert d["p_permutation"] == pytest.approx(2 / 16)       # exact sign flips: all four agree
    unpaired = stats.difference([a for a, _ in pairs], [b for _, b in pairs])
    assert unpaired["verdict"] == stats.NO_DIFFERENCE                      # the spread swamps it unpaired


def test_paired_difference_needs_three_pairs_and_says_why_pairs_are_missing():
    pairs = [(est(1.2, 0.01), est(1.5, 0.01)), (est(1.25, 0.01), est(1.55, 0.01)),
             (est(1.3), {"dimension": None, "ok": False, "reason": "chaotic"})]
    d = stats.paired_difference(pairs, name_a="A", name_b="B")
    assert d["n_pairs"] == 2 and d["estimate"] == pytest.approx(-0.3)
    assert d["verdict"] == stats.NO_DIFFERENCE and "too few pairs" in d["reason"]
    assert d["pairs"][2]["difference"] is None and "B: chaotic" in d["pairs"][2]["reason"]
    none = stats.paired_difference([pairs[2]])
    assert not none["ok"] and none["verdict"] == stats.NO_DIFFERENCE and "chaotic" in none["reason"]


def test_paired_difference_with_equal_architectures_finds_nothing():
    rng = np.random.default_rng(3)
    pairs = [(est(x + 0.01 * rng.standard_normal()), est(x + 0.01 * rng.standard_normal()))
             for x in 1.3 + 0.2 * rng.standard_normal(5)]
    d = stats.paired_difference(pairs)
    assert d["verdict"] == stats.NO_DIFFERENCE and d["ci_low"] < 0 < d["ci_high"]
    assert d["ci_high"] - d["ci_low"] < 0.2          # +-0.05 per estimate: about +-0.07


# ---- pool: known inputs ------------------------------------------------------------------------

def test_pool_of_one_unit_gives_back_its_own_interval():
    p = stats.pool([{"dimension": 1.3, "ci_low": 1.2, "ci_high": 1.4, "ok": True}])
    assert p["dimension"] == 1.3 and p["n_units"] == p["n_ok"] == 1
    assert p["ci_low"] == pytest.approx(1.2, abs=0.01) and p["ci_high"] == pytest.approx(1.4, abs=0.01)
    assert p["between_sd"] is None and p["mean_half_width"] == pytest.approx(0.1)
    assert p["ok"] and p["reason"] == "" and p["method"] == stats.POOL_METHOD


def test_pool_without_own_intervals_is_the_bootstrap_of_the_mean():
    d = 1.5 + 0.1 * np.random.default_rng(0).standard_normal(40)
    p = stats.pool([{"dimension": float(x), "ok": True} for x in d])     # no ci: width 0
    assert p["dimension"] == pytest.approx(d.mean(), abs=1e-12)
    half = 1.96 * d.std() / math.sqrt(d.size)                          # the normal approximation
    assert p["ci_high"] - p["dimension"] == pytest.approx(half, rel=0.15)
    assert p["dimension"] - p["ci_low"] == pytest.approx(half, rel=0.15)
    assert p["between_sd"] == pytest.approx(d.std(ddof=1)) and p["mean_half_width"] == 0


def test_pool_leaves_out_and_counts_what_has_no_dimension():
    good = {"dimension": 1.4, "ci_low": 1.3, "ci_high": 1.5, "ok": True}
    p = stats.pool([good, {"dimension": float("nan"), "ok": True},
                    {"dimension": None, "ok": False, "reason": "no boundary"}, good])
    assert p["n_units"] == 4 and p["n_ok"] == 2 and p["dimension"] == 1.4
    assert p["reason"] == "2 of 4 grids without an estimate (no boundary; no estimate)"   # sorted
    none = stats.pool([{"dimension": None, "ok": False, "reason": "no boundary"}])
    assert not none["ok"] and none["dimension"] is None and none["ci_low"] is None
    assert none["reason"] == "no grid has a dimension estimate (no boundary)"
    empty = stats.pool([])
    assert not empty["ok"] and empty["reason"] == "no grid has a dimension estimate (no grids)"


def test_pool_interval_always_holds_the_estimate_even_from_a_one_sided_input():
    # an estimate outside its own interval (or with one bound missing) is read as width 0 there
    p = stats.pool([{"dimension": 1.5, "ci_low": 1.6, "ci_high": None, "ok": True}])
    assert p["ci_low"] == p["dimension"] == p["ci_high"] == 1.5


def test_pool_is_deterministic_per_seed_and_reads_objects_too():
    from types import SimpleNamespace
    ests = [{"dimension": d, "ci_low": d - 0.1, "ci_high": d + 0.1, "ok": True} for d in (1.2, 1.4)]
    assert stats.pool(ests, seed=3) == stats.pool(ests, seed=3)
    assert stats.pool(ests, seed=3)["ci_low"] != stats.pool(ests, seed=4)["ci_low"]
    objs = [SimpleNamespace(**e) for e in ests]
    assert stats.pool(objs, seed=3) == stats.pool(ests, seed=3)


# ---- coverage on simulated data ----------------------------------------------------------------

def _simulated_units(rng, true_dim, n, spread, systematic):
    """n grids of one architecture: a systematic error shared by all of them (what each unit's
    own interval describes) plus a per-grid spread."""
    shared = systematic * rng.standard_normal()
    d = true_dim + shared + spread * rng.standard_normal(n)
    return [{"dimension": float(x), "ci_low": float(x - 1.96 * systematic),
             "ci_high": float(x + 1.96 * systematic), "ok": True} for x in d]


def test_pooled_interval_covers_the_truth_about_95_percent_and_is_not_wider_than_needed():
    rng = np.random.default_rng(11)
    n, spread, systematic, runs = 6, 0.05, 0.04, 300
    hits, widths = 0, []
    for i in range(runs):
        p = stats.pool(_simulated_units(rng, 1.4, n, spread, systematic), n_boot=400, seed=i)
        hits += p["ci_low"] <= 1.4 <= p["ci_high"]
        widths.append(p["ci_high"] - p["ci_low"])
    assert 0.88 <= hits / runs <= 0.99
    sd = math.sqrt(systematic ** 2 + spread ** 2 / n)           # the pooled mean's true sd
    assert np.mean(widths) == pytest.approx(2 * 1.96 * sd, rel=0.25)


def test_difference_and_paired_difference_cover_a_known_difference():
    rng = np.random.default_rng(12)
    runs, unpaired_hits, paired_hits = 200, 0, 0
    for i in range(runs):
        a = _simulated_units(rng, 1.3, 5, 0.04, 0.03)
        b = _simulated_units(rng, 1.5, 5, 0.04, 0.03)
        d = stats.difference(a, b, n_boot=400, seed=i)
        unpaired_hits += d["ci_low"] <= -0.2 <= d["ci_high"]
        p = stats.paired_difference(list(zip(a, b)), n_boot=400, seed=i)
        paired_hits += p["ci_low"] <= -0.2 <= p["ci_high"]
    assert 0.88 <= unpaired_hits / runs <= 0.995 and 0.85 <= paired_hits / runs <= 0.995


# ---- difference: known values and edges --------------------------------------------------------

def test_difference_without_spread_is_the_difference_of_the_means_exactly():
    a = [{"dimension": d, "ok": True} for d in (1.2, 1.3, 1.4)]
    b = [{"dimension": d, "ok": True} for d in (1.6, 1.7, 1.8)]
    d = stats.difference(a, b)
    assert d["estimate"] == pytest.approx(-0.4, abs=1e-12)
    assert d["verdict"] == stats.SMALLER and d["ci_high"] < 0 and d["ci_high"] - d["ci_low"] < 0.3
    # the exact permutation p: of the 20 ways to split six grids 3/3, two are this far apart
    grids = [1.2, 1.3, 1.4, 1.6, 1.7, 1.8]
    splits = [abs(np.mean(c) - (sum(grids) - sum(c)) / 3) for c in combinations(grids, 3)]
    assert d["p_permutation"] == pytest.approx(np.mean(np.array(splits) >= 0.4 - 1e-9))
    assert d["p_permutation"] == pytest.approx(0.1)


def test_difference_needs_one_stratum_per_estimate():
    with pytest.raises(ValueError, match="one stratum per estimate"):
        stats.difference([{"dimension": 1.2, "ok": True}], [{"dimension": 1.3, "ok": True}],
                         strata_a=[0, 1])


def test_difference_sentence_says_the_numbers_and_the_reason():
    s = stats.verdict_sentence(stats.SMALLER, "ResNet", "plain",
                               {"estimate": -0.2, "ci_low": -0.3, "ci_high": -0.1})
    assert s == ("The boundary of ResNet has a smaller fractal dimension than that of plain "
                 "(difference -0.200, 95% interval -0.300 to -0.100).")
    assert stats.verdict_sentence(stats.LARGER, "A", "B").startswith("The boundary of A has a larger")
    s = stats.verdict_sentence(stats.NO_DIFFERENCE, "A", "B",
                               {"estimate": 0.01, "ci_low": -0.1, "ci_high": 0.12})
    assert s.endswith("(difference +0.010, 95% interval -0.100 to +0.120); the interval includes 0.")
    s = stats.verdict_sentence(stats.NO_DIFFERENCE, "A", "B", {"estimate": None, "reason": "why"})
    assert s == "No difference between the boundary dimensions of A and B is detectable at this resolution: why."


def test_verdict_at_the_edge_of_zero():
    assert stats.verdict_of(-0.2, 0.0) == stats.NO_DIFFERENCE       # 0 inside: no claim
    assert stats.verdict_of(0.0, 0.2) == stats.NO_DIFFERENCE
    assert stats.verdict_of(-0.2, None) == stats.NO_DIFFERENCE


# ---- paired difference: known values -----------------------------------------------------------

def test_paired_sign_flip_p_is_exact_for_few_pairs():
    pairs = [({"dimension": 1.0 + d, "ok": True}, {"dimension": 1.0, "ok": True}) for d in (1.0, 2.0, 3.0)]
    d = stats.paired_difference(pairs)
    assert d["estimate"] == pytest.approx(2.0)
    # 8 sign patterns of (1, 2, 3); |mean| >= 2 only for all + and all -
    assert d["p_permutation"] == pytest.approx(2 / 8)
    assert [r["difference"] for r in d["pairs"]] == pytest.approx([1.0, 2.0, 3.0])
    one = stats.paired_difference(pairs[:1])
    assert one["p_permutation"] is None and one["n_pairs"] == 1


def test_paired_difference_notes_the_pairs_left_out():
    good = ({"dimension": 1.2, "ok": True}, {"dimension": 1.5, "ok": True})
    bad = ({"dimension": None, "ok": False, "reason": "no boundary"}, {"dimension": 1.5, "ok": True})
    d = stats.paired_difference([good, good, bad, good], name_a="A", name_b="B")
    assert d["n_pairs"] == 3 and d["note"] == "1 of 4 pairs left out (a dimension missing)"
    assert d["pairs"][2] == {"pair": 2, "a": None, "b": None, "difference": None,
                             "reason": "A: no boundary"}
    assert stats.paired_difference([])["reason"] == "no pair has both dimensions (no pairs)"


# ---- min_detectable ----------------------------------------------------------------------------

def test_min_detectable_is_the_wider_half_of_the_interval():
    assert stats.min_detectable({"ok": True, "estimate": 0.1, "ci_low": -0.05, "ci_high": 0.3}) == \
        pytest.approx(0.2)
    assert stats.min_detectable({"ok": True, "estimate": 0.1, "ci_low": -0.2, "ci_high": 0.15}) == \
        pytest.approx(0.3)
    assert stats.min_detectable({"ok": False, "estimate": None}) is None
    d = stats.difference([{"dimension": x, "ci_low": x - 0.1, "ci_high": x + 0.1, "ok": True}
                          for x in (1.2, 1.3, 1.25)],
                         [{"dimension": x, "ci_low": x - 0.1, "ci_high": x + 0.1, "ok": True}
                          for x in (1.22, 1.28, 1.27)])
    # two architectures' +-0.1 (sd 0.051 each) add to about +-0.14: what a comparison can resolve
    assert 0.1 < stats.min_detectable(d) < 0.2


def test_pool_names_another_quantity_in_its_method_and_reasons():
    good = {"dimension": 0.1, "ci_low": 0.08, "ci_high": 0.12, "ok": True}
    p = stats.pool([good, {"dimension": None, "ok": False, "reason": "no floor"}, good],
                   what="chaos fraction")
    assert "chaos fractions" in p["method"] and "box-counting" not in p["method"]
    assert p["reason"] == "1 of 3 samples without their chaos fraction (no floor)"
    none = stats.pool([{"dimension": None, "ok": False, "reason": "no fit"}], what="eps*")
    assert none["reason"] == "no sample has its eps* (no fit)"
    assert "box-counting" in stats.pool([good])["method"]          # grids keep their wording
