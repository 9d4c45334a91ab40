"""The HTML toolkit of the reports: escaping, numbers, estimates, tables, cards, sections,
embedded pictures and videos, the style sheet and the page around them.

A page needs nothing but itself: images are PNG data URIs, videos H.264 MP4 data URIs in
``<video>``, the style sheet is inline, there is no script and no network request (the favicon is
an empty data URI too), so it can be mailed, archived or opened offline.
"""
from __future__ import annotations

import base64
import html
import math
from datetime import datetime
from pathlib import Path

from nnfractal import __version__

MAX_VIDEO_BYTES = 40 * 2**20     # larger videos are linked, not embedded


# ---- small HTML helpers ------------------------------------------------------------------------

def esc(v) -> str:
    return html.escape(str(v), quote=True)


def _data_uri(path: Path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def img(path: Path, alt: str, caption: str = "", cls: str = "") -> str:
    path = Path(path)
    if not path.exists():
        return ""
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return (f'<figure class="{cls}"><img src="{_data_uri(path, "image/png")}" alt="{esc(alt)}" '
            f'loading="eager">{cap}</figure>')


def video(path: Path, caption: str = "", cls: str = "") -> str:
    path = Path(path)
    if not path.exists():
        return ""
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    if path.stat().st_size > MAX_VIDEO_BYTES:
        return (f'<figure class="{cls}"><p class="muted">{esc(path.name)} is '
                f'{path.stat().st_size / 2**20:.0f} MB, too large to embed; it is in the folder '
                f'next to this report.</p>{cap}</figure>')
    return (f'<figure class="{cls}"><video controls loop muted playsinline preload="auto" '
            f'src="{_data_uri(path, "video/mp4")}">{esc(path.name)} (H.264) cannot be played by '
            f'this browser.</video>{cap}</figure>')


def fmt_num(v, digits: int = 3) -> str:
    if v is None:
        return "&ndash;"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}".replace(",", "&thinsp;")
    if isinstance(v, float):
        if not math.isfinite(v):
            return "&ndash;"
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.{digits}g}"
        return f"{v:.{digits}f}"
    return esc(v)


def fmt_est(est: dict | None, *, counts: bool = False) -> str:
    """'1.234 <span>[1.100, 1.350]</span>' or the reason there is no estimate."""
    if not est:
        return '<span class="muted">&ndash;</span>'
    if not est.get("ok") or est.get("dimension") is None:
        return f'<span class="na" title="{esc(est.get("reason", ""))}">{esc(short_reason(est))}</span>'
    n = ""
    if counts and "n_ok" in est:
        n = f' <span class="muted small">({est["n_ok"]} of {est["n_units"]} grids)</span>'
    return (f'<span class="num">{est["dimension"]:.3f}</span> <span class="ci">[{est["ci_low"]:.3f},'
            f' {est["ci_high"]:.3f}]</span>{n}')


def short_reason(est: dict) -> str:
    r = est.get("reason") or "no estimate"
    if "too short" in r:
        return "n/a: boundary too short at this resolution"
    if "no boundary" in r:
        return "n/a: no boundary"
    return "n/a: " + r


def fmt_seconds(s) -> str:
    if s is None:
        return "&ndash;"
    s = float(s)
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return (f'<div class="tablewrap"><table class="{cls}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{body}</tbody></table></div>')


def kv_table(pairs: list[tuple[str, str]], cls: str = "kv") -> str:
    rows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in pairs)
    return f'<div class="tablewrap"><table class="{cls}"><tbody>{rows}</tbody></table></div>'


def card(label: str, value: str, note: str = "") -> str:
    n = f'<div class="note">{note}</div>' if note else ""
    return f'<div class="card"><div class="label">{label}</div><div class="value">{value}</div>{n}</div>'


def section(title: str, body: str, sid: str = "", intro: str = "") -> str:
    if not body:
        return ""
    i = f'<p class="intro">{intro}</p>' if intro else ""
    return f'<section id="{esc(sid)}"><h2>{esc(title)}</h2>{i}{body}</section>'


def fmt_value(v) -> str:
    """A config or parameter value as the tables show it (lists in brackets, 4 digits)."""
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(fmt_value(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if abs(v) < 1e-9:
            return "0"
        return f"{v:.4g}"
    return esc(v)



# ---- page --------------------------------------------------------------------------------------

CSS = """
:root{--text:#1d2330;--muted:#5e6776;--line:#e3e6ec;--soft:#f6f7f9;--accent:#0b5cad;
--a:#0072B2;--b:#D55E00;--good:#1f7a4d;--goodbg:#eaf6ef;--warn:#8a5a00;--warnbg:#fff6e0;}
*{box-sizing:border-box}
html{font-size:16px}
body{margin:0;color:var(--text);background:#fff;
font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
line-height:1.55;-webkit-font-smoothing:antialiased}
main{max-width:1180px;margin:0 auto;padding:2.2rem 1.5rem 4rem}
header{border-bottom:1px solid var(--line);padding-bottom:1.2rem;margin-bottom:1.6rem}
.kind{text-transform:uppercase;letter-spacing:.08em;font-size:.75rem;color:var(--muted);margin:0}
h1{font-size:1.9rem;line-height:1.2;margin:.3rem 0 .4rem;font-weight:650}
h2{font-size:1.3rem;margin:2.6rem 0 .8rem;padding-bottom:.3rem;border-bottom:1px solid var(--line);
font-weight:620}
h3{font-size:.95rem;margin:1rem 0 .4rem;color:var(--muted);font-weight:600}
p{margin:.4rem 0 .8rem;max-width:52rem}
.sub{color:var(--muted);margin:0}
.intro{color:var(--muted)}
.muted{color:var(--muted)}.small{font-size:.82rem}
a{color:var(--accent);text-decoration:none}a:hover{text-decoration:underline}
nav.toc{font-size:.85rem;color:var(--muted);margin-top:.8rem}
nav.toc a{margin-right:1rem}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:.8rem;margin:1rem 0}
.card{border:1px solid var(--line);border-radius:10px;padding:.75rem .9rem;background:var(--soft)}
.card .label{font-size:.75rem;text-transform:uppercase;letter-spacing:.05em;color:var(--muted)}
.card .value{font-size:1.25rem;font-weight:600;margin-top:.15rem;font-variant-numeric:tabular-nums}
.card .note{font-size:.8rem;color:var(--muted)}
.verdict{border-radius:12px;padding:1.1rem 1.3rem;margin:1.2rem 0;border:1px solid}
.verdict.found{background:var(--goodbg);border-color:#b9dfc9}
.verdict.none{background:var(--warnbg);border-color:#f0d9a0}
.verdict .word{font-size:1.35rem;font-weight:650}
.verdict.found .word{color:var(--good)}.verdict.none .word{color:var(--warn)}
.verdict p{margin:.35rem 0 0}
.tablewrap{overflow-x:auto;margin:.6rem 0 1rem}
table{border-collapse:collapse;font-size:.88rem;font-variant-numeric:tabular-nums;width:100%}
th,td{padding:.38rem .65rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{font-weight:600;color:var(--muted);border-bottom:2px solid var(--line);white-space:nowrap}
tbody tr:nth-child(even) td{background:#fbfbfc}
table.kv{max-width:760px}
table.kv th{font-weight:500;color:var(--muted);width:38%;white-space:nowrap}
table.dims td:first-child{white-space:nowrap;color:var(--muted)}
figure.medium{max-width:900px}figure.half{max-width:580px}
table.kv td{word-break:break-word}
.num{font-weight:600}.ci{color:var(--muted)}.na{color:var(--muted);font-style:italic}
.diff{color:var(--b);font-weight:600}
.arch-a{color:var(--a);font-weight:600}.arch-b{color:var(--b);font-weight:600}
figure{margin:0 0 1.2rem}
figure img,figure video{display:block;max-width:100%;height:auto;border:1px solid var(--line);
border-radius:6px;background:#fff}
figcaption{font-size:.83rem;color:var(--muted);margin-top:.4rem;max-width:52rem}
.grid2{display:grid;grid-template-columns:repeat(auto-fit,minmax(380px,1fr));gap:1.2rem 1.6rem;
align-items:start}
.grid3{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:1rem 1.2rem}
.configgrid{display:grid;grid-template-columns:repeat(auto-fit,minmax(250px,1fr));gap:0 1.6rem}
.notes li{margin:.2rem 0;color:var(--muted)}
details{margin:.6rem 0 1rem}summary{cursor:pointer;color:var(--accent)}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.86em;
background:var(--soft);padding:.05rem .3rem;border-radius:4px}
footer{margin-top:3rem;padding-top:1rem;border-top:1px solid var(--line);font-size:.8rem;
color:var(--muted)}
@media print{main{max-width:none;padding:0}h2{break-after:avoid}figure,table{break-inside:avoid}
video{display:none}}
"""


def page(title: str, kind: str, subtitle: str, body: str, toc: list[tuple[str, str]],
         folder: Path) -> str:
    """The whole document; `folder` is the path printed in the footer."""
    folder = Path(folder)
    nav = ""
    if toc:
        nav = '<nav class="toc">' + "".join(f'<a href="#{esc(i)}">{esc(t)}</a>' for i, t in toc) + "</nav>"
    when = datetime.now().strftime("%Y-%m-%d %H:%M")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{esc(title)} &middot; nnfractal</title>"
        "<link rel=\"icon\" href=\"data:,\">"
        f"<style>{CSS}</style></head><body><main>"
        f"<header><p class=\"kind\">nnfractal &middot; {esc(kind)}</p><h1>{esc(title)}</h1>"
        f"<p class=\"sub\">{subtitle}</p>{nav}</header>{body}"
        f"<footer>Written by nnfractal {esc(__version__)} on {when} from "
        f"<code>{esc(folder.resolve() if folder.exists() else folder)}</code>. "
        "Self-contained: every picture and video is embedded; "
        "nothing is loaded from the network.</footer>"
        "</main></body></html>\n")


def is_our_report(path: Path) -> bool:
    """True for an HTML file nnfractal wrote: its head has the title `... &middot; nnfractal`."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return head.startswith(b"<!DOCTYPE html>") and b" &middot; nnfractal</title>" in head

