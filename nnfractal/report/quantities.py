"""The curve, chaos and band section of a sampled comparison's report: per depth and
architecture D, the chaos fraction and eps* with their 95% intervals, their paired differences by
seed with sign-flip p-values, and the verdicts in words (`studies.quantities`)."""
from __future__ import annotations

from pathlib import Path

from nnfractal.studies.comparison import SampledComparison
from nnfractal.studies.quantities import CHAOS, EPS_STAR, TRANSECT_NOTE, per_unit

from .html import esc, fmt_est, fmt_num, img, section, table
from .parts import arch_span, difference_text


def fmt_eps(value: dict | None) -> str:
    """'2.1e-04 [1.3e-04, 3.5e-04]' of an eps* dict (``eps_star, ci_low, ci_high``), or why not."""
    if not value or not value.get("ok"):
        return f'<span class="na">{esc((value or {}).get("reason") or "n/a")}</span>'
    ci = (f' <span class="ci">[{value["ci_low"]:.2g}, {value["ci_high"]:.2g}]</span>'
          if value.get("ci_low") is not None and value.get("ci_high") is not None else
          ' <span class="ci">[no interval]</span>')
    return f'<span class="num">{value["eps_star"]:.2g}</span>{ci}'


def fmt_chaos(value: dict | None) -> str:
    """'0.123 [0.100, 0.150] (stage 3, side 1e-05)' of a unit's chaos fraction, or why not."""
    if not value or not value.get("ok"):
        return f'<span class="na">{esc((value or {}).get("reason") or "n/a")}</span>'
    where = f' <span class="muted small">(stage {value["stage"]}'
    where += f', side {value["side"]:.1g})</span>' if value.get("side") else ")</span>"
    return (f'<span class="num">{value["fraction"]:.3f}</span> <span class="ci">'
            f'[{value["ci_low"]:.3f}, {value["ci_high"]:.3f}]</span>{where}')


def _with_p(diff: dict, text: str) -> str:
    p = diff.get("p_permutation")
    return text + (f' <span class="muted small">p = {p:.3g}</span>' if p is not None else "")


def _ratio_text(group) -> str:
    q = group.quantities[EPS_STAR]
    if q.ratio is None:
        return f'<span class="na">{esc(q.difference.get("reason") or "n/a")}</span>'
    r = q.ratio
    return (f'<span class="num">&times;{r["estimate"]:.3g}</span> <span class="ci">'
            f'[&times;{r["ci_low"]:.3g}, &times;{r["ci_high"]:.3g}]</span>')


def _rows(info: SampledComparison) -> list[list[str]]:
    rows = []
    for g in info.results:
        chaos, eps = g.quantities[CHAOS], g.quantities[EPS_STAR]
        for i, p in enumerate(info.presets):
            rows.append([fmt_num(g.depth), arch_span(i, g.archs[p].label),
                         fmt_est(g.archs[p].pooled, counts=True),
                         fmt_est(chaos.pooled[p], counts=True),
                         fmt_eps(eps.pooled_eps_star.get(p))])
        rows.append([fmt_num(g.depth), "<strong>A &minus; B, paired by seed</strong>",
                     _with_p(g.difference, difference_text(g.difference)),
                     _with_p(chaos.difference, difference_text(chaos.difference)),
                     _with_p(eps.difference, _ratio_text(g))])
    return rows


def quantities_section(folder: Path, info: SampledComparison) -> str:
    """The section (empty for a compare.json written before the quantities existed)."""
    if info.method == "transect":
        return section("Curve, chaos and band", f"<p>{esc(TRANSECT_NOTE[0].upper() + TRANSECT_NOTE[1:])}.</p>",
                       "quantities")
    if not info.results or not info.results[0].quantities:
        return ""
    words = "".join(f"<li>{esc(info.sentences.get(k, ''))}</li>"
                    for k in ("dimension", CHAOS, EPS_STAR) if info.sentences.get(k))
    head = ["depth", "architecture", "D [95%]", "chaos fraction [95%]", "eps* [95%]"]
    return section(
        "Curve, chaos and band",
        table(head, _rows(info), "dims") + (f"<ul>{words}</ul>" if words else "")
        + img(folder / "compare_quantities.png", "D, chaos fraction and eps*",
              "Per depth: pooled D, chaos fraction and log10 eps* of both architectures (95% "
              "intervals), and their paired differences by seed (black: the interval excludes "
              "0)."),
        "quantities",
        "The mixed estimator reads each sample as f = A eps^(2-D) + F: the curve's dimension D "
        "above the chaotic band, the chaos fraction F and the band's scale eps*. "
        f"{esc(info.quantities_note)}. Differences are paired by initialisation seed (95% "
        "bootstrap interval, sign-flip p); eps*'s is a ratio. A verdict needs 3 seeds with the "
        "quantity on both sides.")


def unit_cells(estimate: dict) -> list[str]:
    """A unit's chaos fraction and eps*, for the table of every sample."""
    q = per_unit(estimate)
    return [fmt_chaos(q[CHAOS]), fmt_eps(q[EPS_STAR])]
