"""The chaos-map section of a run's report.html (a run trained with ``--chaos``).

Self-contained HTML (the page's own classes: section, intro, tablewrap, kv, figure), so that it
stays put wherever the run report's other sections live."""
from __future__ import annotations

import base64
import html
from pathlib import Path

CHAOS_PNG = "chaos.png"


def _pct(fraction, interval) -> str:
    if fraction is None:
        return "&ndash; (no pixels)"
    ci = f" [{interval[0]:.1%}, {interval[1]:.1%}]" if interval else ""
    return f"{fraction:.1%}{ci}"


def chaos_section(folder: Path, summary: dict) -> str:
    """The section: flip fractions (all and boundary pixels, with counts and 95% intervals) and
    chaos.png; '' for a run without twins."""
    info = summary.get("chaos_fraction")
    if not info:
        return ""
    rows = [("twin distance", f"{info['ulps']} rounding units of {html.escape(info['precision'])}"
             ", both hyperparameters moved up"),
            ("flipped, all twinned pixels", f"{_pct(info['all'], info.get('all_ci95'))} "
             f"({info['n_flipped']} of {info['n_twinned']})"),
            ("flipped, boundary pixels", f"{_pct(info['boundary'], info.get('boundary_ci95'))} "
             f"({info['n_boundary_flipped']} of {info['n_boundary']})"),
            ("twin training time", f"{info.get('twin_seconds', 0):.1f} s")]
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    body = f'<div class="tablewrap"><table class="kv"><tbody>{table}</tbody></table></div>'
    png = Path(folder) / CHAOS_PNG
    if png.exists():
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        body += (f'<figure><img src="data:image/png;base64,{data}" alt="chaos map" '
                 'loading="eager"><figcaption>The map, lightened, with the pixels whose outcome '
                 "flips in black.</figcaption></figure>")
    intro = ("Every trained pixel was trained again with both hyperparameters moved by a few "
             "rounding units of the training precision. A pixel flips when its twin's outcome "
             "(converged or diverged) differs from its own: there the outcome after this many "
             "steps is chaotic, not a property of the hyperparameters. Boundary pixels are the "
             "corners of the 2&times;2 cells that hold both outcomes; 95% Wilson intervals in "
             "brackets.")
    return (f'<section id="chaos"><h2>Chaos map</h2><p class="intro">{intro}</p>{body}'
            "</section>")
