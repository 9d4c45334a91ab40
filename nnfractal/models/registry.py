"""The model families nnfractal knows, by the name a config's ``model`` field gives them.

A family has two parts:

- its **spec** (`FamilySpec`, here, torch-free): the name, the architecture label of titles and
  reports, the config fields it reads and checks, the data it trains on, size estimates for the
  budget, CPU chunk preferences, and ``build(cfg)``;
- its **network** (`Family`, the object ``build`` returns, e.g. resnet.py): M copies of one
  network as pure functions of stacked parameters.

config.py validates against the specs, so it stays free of torch (importing torch costs ~2.5 s,
measured), and the networks are imported only when one is built. A new family is one module
holding its network and its spec, plus one line ``register(SPEC)`` (tests/test_model_registry.py
adds one so); the built-in families' specs are at the end of this file, their networks in
resnet.py, meanfield.py, mlp.py and resmlp.py. No module outside ``models/`` names a family or branches on
one: they ask the registry.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from nnfractal.errors import ConfigError, check_choice, check_int_at_least

if TYPE_CHECKING:                         # types only: nothing here loads torch or the config
    from torch import Tensor, nn

    from nnfractal.config import Config


class Family(Protocol):
    """M models of one architecture trained at once (what `FamilySpec.build` returns).

    Stacked parameters are ``{name: (M, *shape)}``; models never mix (each model's numbers
    depend on its own slice only), so a point's curves do not depend on its chunk.

    Optional members the engine uses where present:

    - ``loss_and_grads(params, x, y) -> (loss (M,), out, {name: grad})``: hand-written gradients
      (the fast path), equal to autograd through `forward` to roundoff;
    - ``shrink_is_exact: bool`` (default True): whether early exit may shrink a chunk, i.e. the
      kernels' roundoff does not depend on the number of models;
    - ``whole_run_kernel: bool`` with ``whole_run_supported(optimizer, classify, evaluations,
      dtype, device)`` and ``train_whole_run(params, lr, offsets, x, y, batches, full_loss,
      steps) -> (losses (M, steps), params)``: train a chunk model by model through all its
      steps in one kernel (the paper MLP's C++ kernel) instead of step by step;
    - ``n_params() -> int`` (regression data sized by it) and ``flops_per_model_step(n) -> int``.
    """

    task: str            # "classification" (logits, cross-entropy, accuracy) or "regression" (MSE)

    def init_params(self, seed: int) -> dict[str, Tensor]:
        """One model's initial parameters ``{name: tensor}``, drawn from `seed`."""

    def role(self, name: str) -> str:
        """Which learning rate parameter `name` takes: "input", "hidden" or "output"."""

    def forward(self, params: dict[str, Tensor], x: Tensor) -> Tensor:
        """x shared by all models (B, ...) -> outputs (M, B, out)."""

    def loss(self, params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        """Each model's mean loss on (x, y): (M,)."""

    def reference(self, params: dict[str, Tensor]) -> nn.Module:
        """The same network as an ordinary single-model module holding `params` (unstacked):
        the float64 yardstick of the tests and the naive benchmark loop."""


def _no_checks(cfg: Config) -> None:
    """A family whose only fields are the generic ones (checked by config.validate)."""


@dataclass(frozen=True)
class FamilySpec:
    """What the rest of nnfractal knows of a family, without loading it."""

    name: str                                    # the config's `model` value
    build: Callable[[Config], Family]            # the batched family of a (validated) config
    label: Callable[[Config], str]               # architecture, e.g. "ResNet-20, residual"
    datasets: tuple[str, ...]                    # data it trains on (config.DATASETS)
    n_params: Callable[[Config], int]            # parameters of one model (budget estimate)
    activations_per_example: Callable[[Config], int]   # values saved for backward (a lower bound)
    check: Callable[[Config], None] = _no_checks  # its own fields; raises ConfigError
    unused_fields: tuple[str, ...] = ()          # config fields it never reads (flags refused)
    size_flags: str = "--width and --depth"      # what sets its size, for those refusals
    depth_help: str = "layers"                   # what its `depth` counts (the --depth help)
    width_field: str = "width"                   # the field to lower when a chunk is too big
    cpu_tile_batch: int = 16                     # chunk size measured fastest on a CPU (auto)
    parallel_chunks: bool = False                # CPU: chunks side by side, one thread each
    interactive: bool = False                    # a 64 x 64 window of 200 steps takes seconds

    def unused_reason(self) -> str:
        """Why a flag setting one of `unused_fields` is refused (config.unused_fields)."""
        return f"by model {self.name} (allowed: leave it out; its size is {self.size_flags})"


_FAMILIES: dict[str, FamilySpec] = {}


def register(spec: FamilySpec) -> FamilySpec:
    """Make `spec` known under `spec.name` (a name already taken is refused)."""
    if spec.name in _FAMILIES:
        raise ValueError(f"model family {spec.name!r} is registered already")
    _FAMILIES[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Forget family `name` (tests that register a family of their own)."""
    del _FAMILIES[name]


def model_names() -> tuple[str, ...]:
    """The allowed values of the config's `model` field, in registration order."""
    return tuple(_FAMILIES)


def family_spec(name: str) -> FamilySpec:
    """The spec of family `name`; ConfigError naming the allowed values for an unknown one."""
    check_choice("model", name, model_names())
    return _FAMILIES[name]


def families_reading(field_name: str) -> tuple[str, ...]:
    """The families that read config field `field_name` (for the flags' help)."""
    return tuple(n for n, s in _FAMILIES.items() if field_name not in s.unused_fields)


def build_family(cfg: Config) -> Family:
    """The batched model family described by `cfg`; with ``cfg.init_file``, its `init_params`
    returns that file's weights (checked against the family's names and shapes, and against the
    run's recorded sha256: input_files.py)."""
    family = family_spec(cfg.model).build(cfg)
    if cfg.init_file:
        from .input_files import override_init
        label = f"model {cfg.model} ({arch_label(cfg)})"
        override_init(family, cfg.init_file, label, cfg.init_sha256)
    return family


def arch_label(cfg: Config) -> str:
    """The one architecture label of titles, reports and `nnfractal presets`, e.g.
    'ResNet-20, plain (no skips), relu' or 'mean-field MLP, 2 layers x 16, tanh'."""
    return f"{family_spec(cfg.model).label(cfg)}, {cfg.nonlinearity}"


def check_family_fields(cfg: Config) -> None:
    """The checks of cfg.model's own fields and of the data it trains on (ConfigError)."""
    spec = family_spec(cfg.model)
    spec.check(cfg)
    if cfg.dataset not in spec.datasets:
        raise ConfigError("dataset", f"{cfg.dataset!r} is not allowed for model {spec.name} "
                          f"(allowed: {', '.join(spec.datasets)})")


# ---- the built-in families --------------------------------------------------------------------
# Each network module is imported inside its builder: torch loads when a network is built, not
# when a config is checked (`nnfractal presets`, a refused flag).

MNIST_PIXELS = 784
MNIST_CLASSES = 10
IMAGE_DATASETS = ("mnist", "fashion-mnist")
RESNET_DEPTHS = (8, 14, 20, 32, 44, 56)


def _build_resnet(cfg: Config) -> Family:
    from .resnet import build
    return build(cfg)


def _check_resnet(cfg: Config) -> None:
    check_choice("depth", cfg.depth, RESNET_DEPTHS)
    if len(cfg.c_hidden) != 3 or any(isinstance(c, bool) or not isinstance(c, int) or c < 1
                                     for c in cfg.c_hidden):
        raise ConfigError("c_hidden", f"{list(cfg.c_hidden)} is not allowed "
                          "(allowed: three positive integers, e.g. 16 32 64)")


def _resnet_params(cfg: Config) -> int:
    """Parameters of a ResNet (to a few percent: the projections are counted roughly)."""
    blocks = max(1, (cfg.depth - 2) // 6)
    c0, c1, c2 = cfg.c_hidden
    total = 9 * c0 + 2 * c0
    c_in = c0
    for c in (c0, c1, c2):
        total += blocks * (2 * 9 * c * c + 4 * c) + 9 * (c_in * c - c * c) + c_in * c
        c_in = c
    return total + c2 * MNIST_CLASSES + MNIST_CLASSES


def _resnet_activations(cfg: Config) -> int:
    blocks = max(1, (cfg.depth - 2) // 6)
    c0, c1, c2 = cfg.c_hidden
    return 3 * 2 * blocks * (c0 * 784 + c1 * 196 + c2 * 49)


def _mlp_activations(cfg: Config) -> int:
    return 2 * cfg.width * cfg.depth


def _check_depth_at_least_2(cfg: Config) -> None:
    check_int_at_least("depth", cfg.depth, 2)


RESNET = FamilySpec(
    name="resnet", build=_build_resnet,
    label=lambda cfg: f"ResNet-{cfg.depth}, {'residual' if cfg.skip else 'plain (no skips)'}",
    datasets=IMAGE_DATASETS, n_params=_resnet_params, activations_per_example=_resnet_activations,
    check=_check_resnet, unused_fields=("width", "target_dim"), size_flags="--depth and --c_hidden",
    depth_help=f"6n+2 ({', '.join(map(str, RESNET_DEPTHS))})", width_field="c_hidden",
    # One thread per chunk of 4, chunks side by side: measured fastest on a 2-core Xeon
    # (benchmarks/README.md: 1.1-1.2x over one chunk at a time on all threads).
    cpu_tile_batch=4, parallel_chunks=True)


def _build_meanfield(cfg: Config) -> Family:
    from .meanfield import build
    return build(cfg)


MEANFIELD_MLP = FamilySpec(
    name="meanfield-mlp", build=_build_meanfield,
    label=lambda cfg: f"mean-field MLP, {cfg.depth} layers x {cfg.width}",
    datasets=("gaussian",),
    n_params=lambda cfg: cfg.width * cfg.width * (cfg.depth - 1) + cfg.width * cfg.target_dim,
    activations_per_example=_mlp_activations, check=_check_depth_at_least_2,
    unused_fields=("c_hidden", "skip"), depth_help="weight matrices (2 = one hidden layer)",
    cpu_tile_batch=256,              # measured fastest on a 2-core Xeon (benchmarks/README.md)
    interactive=True)


def _build_mlp(cfg: Config) -> Family:
    from .mlp import build
    return build(cfg)


def _mlp_params(cfg: Config) -> int:
    sizes = [MNIST_PIXELS] + [cfg.width] * (cfg.depth - 1) + [MNIST_CLASSES]
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))


MLP = FamilySpec(
    name="mlp", build=_build_mlp, label=lambda cfg: f"MLP, {cfg.depth} layers x {cfg.width}",
    datasets=IMAGE_DATASETS, n_params=_mlp_params, activations_per_example=_mlp_activations,
    check=_check_depth_at_least_2, unused_fields=("c_hidden", "skip", "target_dim"),
    depth_help="linear layers (2 = one hidden layer)", cpu_tile_batch=64)               # not measured

def _build_resmlp(cfg: Config) -> Family:
    from .resmlp import build
    return build(cfg)


RESIDUAL_MEANFIELD_MLP = FamilySpec(
    name="meanfield-resmlp", build=_build_resmlp,
    label=lambda cfg: (f"deep mean-field MLP, {cfg.depth} layers x {cfg.width}, "
                       f"{'residual' if cfg.skip else 'plain (no skips)'}"),
    datasets=("gaussian",), n_params=MEANFIELD_MLP.n_params,
    # the residual stream is kept beside each hidden layer's activation
    activations_per_example=lambda cfg: (3 if cfg.skip else 2) * cfg.width * cfg.depth,
    check=_check_depth_at_least_2,
    unused_fields=("c_hidden",), depth_help="weight matrices (2 = one hidden layer, no skips)",
    cpu_tile_batch=256)                       # as the paper MLP's: its kernel runs model by model

register(RESNET)
register(MEANFIELD_MLP)
register(MLP)
register(RESIDUAL_MEANFIELD_MLP)
DEFAULT_MODEL = RESNET.name
