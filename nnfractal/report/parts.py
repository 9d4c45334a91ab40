"""Sections that several reports share: the configuration table, hardware and timing, the
verdict box of a comparison, its dimension rows and depth sweep, the architecture colours.
"""
from __future__ import annotations

import json
from pathlib import Path

from nnfractal.config import Config
from nnfractal.estimators.stats import NO_DIFFERENCE
from nnfractal.storage.run_folder import RunFolder

from .html import esc, fmt_est, fmt_num, fmt_seconds, fmt_value, img, kv_table, section, table


def read_json(path: Path) -> dict:
    """A folder's JSON file (summary.json, fractal.json) as a dict; {} when missing or unreadable
    (a report shows what there is)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def read_config(folder: Path) -> Config | None:
    """A run folder's config, or None when it has none that reads."""
    try:
        return RunFolder(folder).read_config()
    except Exception:
        return None


CONFIG_GROUPS = (
    ("model", ("model", "depth", "skip", "c_hidden", "nonlinearity", "width", "target_dim")),
    ("data", ("dataset", "train_size", "batch_size", "minibatch_replacement", "data_seed",
              "test_size", "eval_every", "data_file", "data_sha256")),
    ("training", ("num_epochs", "steps", "optimizer", "momentum", "phase_space", "offset_target",
                  "offset_mode", "base_lr", "precision", "device", "tile_batch", "chunk_workers",
                  "early_exit", "seed", "init_file", "init_sha256")),
    ("grid and measure", ("mnmx", "axis_scale", "resolution", "adaptive", "adaptive_coarse",
                          "adaptive_guard", "measure", "readout", "metric", "acc_threshold")),
)


def config_tables(cfg_dict: dict, highlight: dict | None = None) -> str:
    """The config in four labelled columns; fields in `highlight` show both values."""
    highlight = highlight or {}
    seen, blocks = set(), []
    for title, keys in CONFIG_GROUPS:
        pairs = []
        for k in keys:
            if k not in cfg_dict:
                continue
            seen.add(k)
            if k in highlight:
                a, b = highlight[k]
                pairs.append((f'<span class="diff">{esc(k)}</span>',
                              f'<span class="diff">{fmt_value(a)} / {fmt_value(b)}</span>'))
            else:
                pairs.append((esc(k), fmt_value(cfg_dict[k])))
        blocks.append(f'<div><h3>{esc(title)}</h3>{kv_table(pairs)}</div>')
    rest = [(esc(k), fmt_value(v)) for k, v in cfg_dict.items()
            if k not in seen and k not in ("preset",)]
    if rest:
        blocks.append(f'<div><h3>display and other</h3>{kv_table(rest)}</div>')
    return f'<div class="configgrid">{"".join(blocks)}</div>'


def hardware_table(summary: dict, extra: list[tuple[str, str]] | None = None) -> str:
    versions = summary.get("versions") or {}
    pairs = [("device", esc(summary.get("device", "&ndash;"))),
             ("CPU", esc(summary.get("cpu", "&ndash;"))),
             ("torch threads", fmt_num(summary.get("threads"))),
             ("chunks side by side x threads each",
              " x ".join(map(str, summary["chunk_threads"])) if summary.get("chunk_threads") else "&ndash;"),
             ("memory allocator", esc(summary.get("allocator") or "&ndash;")),
             ("training wall time", fmt_seconds(summary.get("wall_time_s"))),
             ("model-steps", fmt_num(summary.get("model_steps"))),
             ("model-steps/s", fmt_num(summary.get("model_steps_per_s"), 1)),
             ("data", esc(summary.get("data_source", "&ndash;")))]
    pairs += extra or []
    if versions:
        pairs.append(("versions", ", ".join(f"{esc(k)} {esc(v)}" for k, v in versions.items())))
    return kv_table(pairs)



def arch_span(i: int, text: str) -> str:
    """Architecture A (i = 0) or B (1) in its colour."""
    return f'<span class="arch-{"ab"[i]}">{esc(text)}</span>'


def verdict_box(presets, verdict: str, sentence: str, where: str, rule: str, note: str = "",
                nothing: str = "No difference detectable") -> str:
    """The verdict of a comparison: the word, the sentence, how the verdict is decided."""
    found = verdict != NO_DIFFERENCE
    word = {"smaller": f"{presets[0]}: smaller dimension",
            "larger": f"{presets[0]}: larger dimension"}.get(verdict, nothing)
    extra = f'<p class="small">{esc(note)}</p>' if note else ""
    return (f'<div class="verdict {"found" if found else "none"}"><div class="word">'
            f'{esc(word)}{esc(where)}</div><p>{esc(sentence)}</p>{extra}'
            f'<p class="small muted">{rule}</p></div>')


def difference_text(d: dict, missing: str = "n/a") -> str:
    """D(A) - D(B) with its 95% interval, or why there is none."""
    if d.get("ok"):
        return (f'<span class="num">{d["estimate"]:+.3f}</span> <span class="ci">'
                f'[{d["ci_low"]:+.3f}, {d["ci_high"]:+.3f}]</span>')
    return f'<span class="na">{esc(d.get("reason") or missing)}</span>'


def depth_sweep(folder: Path, results: list, presets, head: list, *, with_p: bool,
                caption: str) -> str:
    """The depth-sweep section of a comparison: pooled dimensions and the difference per depth
    (`results`: the comparison's groups, one per depth)."""
    rows = []
    for r in results:
        d = r.difference
        diff = (f'{d["estimate"]:+.3f} <span class="ci">[{d["ci_low"]:+.3f}, '
                f'{d["ci_high"]:+.3f}]</span>' if d.get("ok") else '<span class="na">n/a</span>')
        rows.append([fmt_num(r.depth)]
                    + [fmt_est(r.archs[p].pooled, counts=True) for p in presets]
                    + [diff] + ([fmt_num(d.get("p_permutation"))] if with_p else [])
                    + [esc(d["verdict"])])
    header = ["depth", head[1], head[2], "D(A) &minus; D(B)"] + (["p"] if with_p else []) \
        + ["verdict"]
    return section("Depth sweep", table(header, rows)
                   + img(folder / "compare_depth.png", "dimension against depth", caption),
                   "depth")


def notes_and_statistics(notes: list[str], methods: list[str]) -> str:
    """The notes of a comparison and the statistics' methods, each one sentence."""
    out = ""
    if notes:
        out += ("<h3>notes</h3><ul class=\"notes\">" + "".join(f"<li>{esc(n)}</li>" for n in notes)
                + "</ul>")
    return out + "<h3>statistics</h3>" + "".join(f'<p class="small muted">{esc(m)}.</p>'
                                                  for m in methods)


def comparison_hardware(hw, rows: list[tuple[str, str]]) -> str:
    """Hardware and timing of a comparison (`hw`: comparison.Hardware; `rows`: its timing)."""
    pairs = [("device", esc(hw.device or "&ndash;")), ("CPU", esc(hw.cpu or "&ndash;")),
             ("CPU count", fmt_num(hw.cpu_count))] + rows + \
        [("data", esc(hw.data_source or "&ndash;"))]
    if hw.versions:
        pairs.append(("versions", ", ".join(f"{esc(k)} {esc(v)}" for k, v in hw.versions.items())))
    return section("Hardware and timing", kv_table(pairs), "hardware")

