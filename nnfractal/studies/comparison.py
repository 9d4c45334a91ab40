"""What both ways of comparing two architectures share: the pair of configs that differ only in
the architecture, the checks of a comparison's inputs, and compare.json.

The two presets are trained on exactly the same experiment: the configuration of B is A's with
only the architecture fields (``ARCH_FIELDS``: model, depth, skip, c_hidden, nonlinearity, width)
taken from B, so the grid, window, data, batch order, optimiser, measure and initial-weight seeds
are identical (`pair_configs`). With ``--depths`` the whole design is repeated for every depth
(`PairGroup`: both presets at that depth).

compare.json is one of two records, told apart by its ``method`` key: `BoxComparison` (``nnfractal
compare``, grids and box counting, compare.py) and `SampledComparison` (``--method
uncertainty|transect``, compare_sampled.py). `read_comparison` reads either. So is plan.json
(`compare.BoxPlan`, `compare_sampled.SampledPlan`; `plan_method` tells which).
"""
from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from nnfractal.config import Config, ConfigError, build_config, config_from_dict
from nnfractal.errors import check_int_at_least
from nnfractal.estimators.sampling import SAMPLING_METHODS
from nnfractal.models import arch_label
from nnfractal.storage.records import OMIT_NONE, JsonRecord, read_record
from nnfractal.storage.run_folder import SUMMARY_FILE

from .quantities import QuantityGroup
from .sample import SampleSpec

FORMAT = "nnfractal-compare"
FORMAT_VERSION = 1
RESULT_FILE = "compare.json"
DEFAULT_PRESETS = ("resnet20-mnist", "plain20-mnist")
SAMPLED_METHODS = SAMPLING_METHODS

# What "architecture" means here: the fields taken from preset B. Everything else is A's.
ARCH_FIELDS = ("model", "depth", "skip", "c_hidden", "nonlinearity", "width")
# Fields that only name or display a run; a difference there is not worth a note.
QUIET_FIELDS = ("preset",)


# ---- the pair of configs ----------------------------------------------------------------------

def label_of(cfg: Config) -> str:
    """The preset and its architecture, e.g. 'resnet20-mnist (ResNet-20, residual, relu)'."""
    return f"{cfg.preset} ({arch_label(cfg)})"


def pair_configs(preset_a: str, preset_b: str, **overrides) -> tuple[Config, Config, list[str]]:
    """The two configs of a comparison and the notes on fields taken from A.

    Both presets get the same overrides; then B becomes A with B's ``ARCH_FIELDS`` (and B's preset
    name). Raises ConfigError for an unknown preset or a combination that does not validate.
    """
    if preset_a == preset_b:
        raise ConfigError("presets", f"{preset_a!r} twice (allowed: two different presets)")
    cfg_a = build_config(preset_a, **overrides)
    raw_b = build_config(preset_b, **overrides)
    cfg_b = cfg_a.replace(preset=preset_b, **{f: getattr(raw_b, f) for f in ARCH_FIELDS})
    notes = []
    for key, value in raw_b.to_dict().items():
        if key in ARCH_FIELDS or key in QUIET_FIELDS:
            continue
        mine = cfg_b.to_dict()[key]
        if mine != value:
            notes.append(f"{preset_b}: {key} = {_short(value)} in its preset; the comparison uses "
                         f"{preset_a}'s {_short(mine)} so that only the architecture differs")
    return cfg_a, cfg_b, notes


def _short(v) -> str:
    return json.dumps(v) if isinstance(v, (list, tuple, str)) else repr(v)


def config_difference(cfg_a: Config, cfg_b: Config) -> dict[str, list]:
    a, b = cfg_a.to_dict(), cfg_b.to_dict()
    return {k: [a[k], b[k]] for k in a if a[k] != b[k]}


def default_compare_dir(preset_a: str, preset_b: str) -> Path:
    return Path("runs") / f"compare-{preset_a}-vs-{preset_b}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


@dataclass(kw_only=True)
class PairGroup(JsonRecord):
    """Both configs of the comparison at one depth of the sweep (None: no sweep)."""
    depth: int | None = None
    configs: list[dict]

    def pair(self) -> tuple[Config, Config]:
        a, b = (config_from_dict(c, "compare plan") for c in self.configs)
        return a, b


@dataclass(frozen=True)
class PairDesign:
    """The checked inputs every comparison shares."""
    presets: tuple[str, str]
    seeds: int
    depths: list[int] | None
    base: tuple[Config, Config]       # A and B without the depth sweep
    groups: list[PairGroup]
    notes: list[str]
    overrides: dict[str, Any]         # as given (lists for tuples), for the settings

    @property
    def config_difference(self) -> dict[str, list]:
        return config_difference(*self.base)


def check_presets(presets) -> tuple[str, str]:
    """Exactly two preset names (ConfigError otherwise)."""
    presets = tuple(presets)
    if len(presets) != 2:
        raise ConfigError("presets", f"{len(presets)} given ({' '.join(presets)}) "
                          "(allowed: exactly two presets, A and B)")
    return presets


def design_pairs(presets, seeds: int, depths, overrides: dict[str, Any]) -> PairDesign:
    """Check the presets, seeds and depth sweep and build the pair of configs per depth;
    ConfigError naming the field."""
    presets = check_presets(presets)
    check_int_at_least("seeds", seeds, 1)
    if depths is not None:
        depths = list(depths)
        if not depths:
            raise ConfigError("depths", "empty (allowed: one or more depths)")
        if len(set(depths)) != len(depths):
            raise ConfigError("depths", f"{depths} repeats a depth (allowed: distinct depths)")
        if overrides.get("depth") is not None:
            raise ConfigError("depth", "give either --depth or --depths, not both")
    cfg_a, cfg_b, notes = pair_configs(*presets, **overrides)
    groups = []
    for depth in (depths or [None]):
        pair = (cfg_a, cfg_b) if depth is None else (cfg_a.replace(depth=depth),
                                                     cfg_b.replace(depth=depth))
        groups.append(PairGroup(depth=depth, configs=[c.to_dict() for c in pair]))
    given = {k: (list(v) if isinstance(v, tuple) else v) for k, v in overrides.items()
             if v is not None}
    return PairDesign(presets=presets, seeds=seeds, depths=depths, base=(cfg_a, cfg_b),
                      groups=groups, notes=notes, overrides=given)


def main_group(results: list, base_depth: int | None):
    """The group the verdict is about: the preset's own depth, else the first."""
    return next((r for r in results if r.depth == base_depth), results[0])


# ---- compare.json ---------------------------------------------------------------------------------

@dataclass(kw_only=True)
class Hardware(JsonRecord):
    """Where a comparison ran: this machine, and the first unit's device, CPU and libraries."""
    machine: str | None = field(default=None, metadata=OMIT_NONE)
    system: str | None = field(default=None, metadata=OMIT_NONE)
    cpu_count: int | None = field(default=None, metadata=OMIT_NONE)
    device: str | None = field(default=None, metadata=OMIT_NONE)
    cpu: str | None = field(default=None, metadata=OMIT_NONE)
    threads: int | None = field(default=None, metadata=OMIT_NONE)
    versions: dict[str, str] | None = field(default=None, metadata=OMIT_NONE)
    data_source: str | None = field(default=None, metadata=OMIT_NONE)


def hardware_of(first_unit: Path | None) -> Hardware:
    """This machine, and what the summary.json of `first_unit` (a run or sample folder) says."""
    hw = Hardware(machine=platform.machine(), system=platform.system(), cpu_count=os.cpu_count())
    if first_unit is not None:
        summary = json.loads((Path(first_unit) / SUMMARY_FILE).read_text())
        for key in ("device", "cpu", "threads", "versions", "data_source"):
            if key in summary:
                setattr(hw, key, summary[key])
    return hw


@dataclass(kw_only=True)
class BoxUnit(JsonRecord):
    """One grid of a box comparison: its place in the design, window and dimensions."""
    preset: str
    label: str = ""
    depth: int | None = None              # the network's depth
    sweep_depth: int | None = None        # the depth sweep's group (None: no sweep)
    seed_index: int
    seed: int
    window: int
    dir: str                              # relative to the comparison folder
    mnmx: list[float]
    center: list[float] | None = None     # the zoom centre of windows >= 1 (axis units)
    magnification: float = 1.0
    metric: str = "train_loss"
    dimension: dict | None = None         # compacted box-counting estimate
    paper: dict | None = None             # the paper's estimator
    metrics: dict[str, dict | None] = field(default_factory=dict)
    fraction_converged: float | None = None
    wall_time_s: float | None = None
    model_steps: int | None = None
    model_steps_per_s: float | None = None
    device: str | None = None


@dataclass(kw_only=True)
class BoxArch(JsonRecord):
    label: str
    pooled: dict
    per_window: list[dict]
    n_grids: int
    paper_pooled: dict | None = field(default=None, metadata=OMIT_NONE)


@dataclass(kw_only=True)
class BoxGroup(JsonRecord):
    """Both architectures at one depth: dimensions per window and pooled, their difference."""
    depth: int | None = None
    archs: dict[str, BoxArch]
    difference: dict


@dataclass(kw_only=True)
class BoxSettings(JsonRecord):
    seeds: int
    windows: int
    factor: float
    depths: list[int] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    seed_values: list[int] = field(default_factory=list)


@dataclass(kw_only=True)
class BoxTiming(JsonRecord):
    grids: int | None = None
    training_wall_s: float | None = None
    model_steps: int | None = None
    model_steps_per_s: float | None = None
    grids_and_pictures_s: float | None = None
    figures_s: float | None = field(default=None, metadata=OMIT_NONE)
    total_s: float | None = field(default=None, metadata=OMIT_NONE)


class _Verdict:
    """What both compare.json records answer: the main group and its units."""

    @property
    def main(self):
        return next((r for r in self.results if r.depth == self.main_depth), self.results[0])

    def reference_units(self, window: int = 0) -> dict:
        """Preset -> its seed-0 unit of the main depth (window `window` where units have one)."""
        out = {}
        for p in self.presets:
            u = next((u for u in self.units if u.preset == p and u.seed_index == 0
                      and u.sweep_depth == self.main_depth
                      and getattr(u, "window", 0) == window), None)
            if u is not None:
                out[p] = u
        return out


@dataclass(kw_only=True)
class BoxComparison(JsonRecord, _Verdict):
    """compare.json of ``nnfractal compare`` (box counting on grids)."""
    json_format = FORMAT
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    presets: list[str]
    labels: dict[str, str] = field(default_factory=dict)
    settings: BoxSettings
    configs: dict[str, dict] = field(default_factory=dict)
    config_difference: dict[str, list] = field(default_factory=dict)
    arch_fields: list[str] = field(default_factory=lambda: list(ARCH_FIELDS))
    notes: list[str] = field(default_factory=list)
    units: list[BoxUnit]
    results: list[BoxGroup]
    main_depth: int | None = None
    difference: dict
    verdict: str
    sentence: str
    figures: dict[str, str] = field(default_factory=dict)
    timing: BoxTiming = field(default_factory=BoxTiming)
    hardware: Hardware = field(default_factory=Hardware)


@dataclass(kw_only=True)
class SignChanges(JsonRecord):
    lags: list[float]
    changes: list[float]


@dataclass(kw_only=True)
class SampledUnit(JsonRecord):
    """One sample of a sampled comparison (an architecture at one seed and depth)."""
    preset: str
    label: str = ""
    depth: int | None = None
    sweep_depth: int | None = None
    seed_index: int
    seed: int
    dir: str | None = None                # the sample folder (None: no boundary to sample)
    coarse_dir: str | None = None         # transect: the coarse grid that placed the segments
    mnmx: list[float]
    center: list[float] | None = None
    angle: float | None = None
    estimate: dict
    evaluations: int = 0
    model_steps: int = 0
    wall_time_s: float = 0.0
    model_steps_per_s: float | None = None
    device: str | None = field(default=None, metadata=OMIT_NONE)
    data_source: str | None = field(default=None, metadata=OMIT_NONE)
    sign_changes: SignChanges | None = field(default=None, metadata=OMIT_NONE)


@dataclass(kw_only=True)
class SampledArch(JsonRecord):
    label: str
    pooled: dict
    per_seed: list[dict]
    n_units: int


@dataclass(kw_only=True)
class SampledGroup(JsonRecord):
    """Both architectures at one depth: dimension per seed and pooled, the paired difference;
    with the uncertainty method also the chaos fraction and eps* (`quantities`)."""
    depth: int | None = None
    archs: dict[str, SampledArch]
    difference: dict
    quantities: dict[str, QuantityGroup] = field(default_factory=dict)


@dataclass(kw_only=True)
class SampledSettings(JsonRecord):
    method: str
    seeds: int
    depths: list[int] | None = None
    spec: SampleSpec
    overrides: dict[str, Any] = field(default_factory=dict)
    seed_values: list[int] = field(default_factory=list)


@dataclass(kw_only=True)
class SampledTiming(JsonRecord):
    units: int = 0
    evaluations: int = 0
    model_steps: int = 0
    training_s: float = 0.0
    model_steps_per_s: float | None = None
    this_session_s: float | None = None


@dataclass(kw_only=True)
class SampledComparison(JsonRecord, _Verdict):
    """compare.json of ``nnfractal compare --method uncertainty|transect``."""
    json_format = FORMAT
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    method: str
    presets: list[str]
    labels: dict[str, str] = field(default_factory=dict)
    settings: SampledSettings
    configs: dict[str, dict] = field(default_factory=dict)
    config_difference: dict[str, list] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    units: list[SampledUnit]
    results: list[SampledGroup]
    main_depth: int | None = None
    difference: dict
    verdict: str
    sentence: str
    # the main group's verdict and sentence on each quantity ("dimension", "chaos_fraction",
    # "eps_star"), and what the quantities are (or why the method has only the dimension)
    verdicts: dict[str, str] = field(default_factory=dict)
    sentences: dict[str, str] = field(default_factory=dict)
    quantities_note: str = ""
    figures: dict[str, str] = field(default_factory=dict)
    timing: SampledTiming = field(default_factory=SampledTiming)
    hardware: Hardware = field(default_factory=Hardware)


def plan_method(root) -> str | None:
    """The ``method`` of a comparison folder's plan.json (box, uncertainty, transect); None when
    it has no readable one (the study's own reading of it then says why in one line)."""
    try:
        method = json.loads((Path(root) / "plan.json").read_text()).get("method")
    except (OSError, ValueError, AttributeError):
        return None
    return method if isinstance(method, str) else None


def read_comparison(root) -> BoxComparison | SampledComparison:
    """The compare.json of a comparison folder, either method; StoreError (one line) for any
    other folder."""
    path = Path(root) / RESULT_FILE
    try:
        method = json.loads(path.read_text()).get("method")
    except (OSError, ValueError, AttributeError):
        method = None
    cls = SampledComparison if method in SAMPLED_METHODS else BoxComparison
    return read_record(cls, path, "compare.json", "compare")
