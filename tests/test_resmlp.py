"""The deep mean-field MLP with or without skip connections (models/resmlp.py, model
"meanfield-resmlp"): added inside models/ alone; its hand-written gradients, its float64
reference, the plain variant being the paper MLP of that depth, the residual stream's scale, and
the presets of the skip study. The C++ kernel's own checks are in tests/test_resmlp_kernel.py."""
import math
import re
from pathlib import Path

import pytest
import torch

import nnfractal
from nnfractal.config import ConfigError, build_config
from nnfractal.models import arch_label, build_family, family_spec
from nnfractal.models.meanfield import BatchedMeanFieldMLP
from nnfractal.models.resmlp import BatchedResidualMeanFieldMLP, branch_scale
from nnfractal.studies.comparison import pair_configs
from nnfractal.training.budget import n_params

pytestmark = pytest.mark.usefixtures("one_torch_thread")
PACKAGE = Path(nnfractal.__file__).parent
NAME = "meanfield-resmlp"


def test_the_family_lives_in_models_and_is_registered_by_one_line():
    """No module outside models/ names the family or its module; inside models/, the registry
    holds its torch-free spec and one `register` line, and no other family imports it."""
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        if path.parent.name != "models":
            assert NAME not in text and "resmlp" not in text, path
        elif path.name not in ("registry.py", "resmlp.py", "meanfield_kernel.py"):
            assert "resmlp" not in text, path
    registry = (PACKAGE / "models" / "registry.py").read_text()
    assert re.findall(r"^register\(.*\)$", registry, re.M)[-1] == "register(RESIDUAL_MEANFIELD_MLP)"
    assert registry.count("register(RESIDUAL_MEANFIELD_MLP)") == 1
    assert family_spec(NAME).name == NAME


def test_config_labels_and_refusals():
    cfg = build_config("resmlp-residual")
    assert cfg.model == NAME and cfg.skip and cfg.depth == 8
    assert arch_label(cfg) == "deep mean-field MLP, 8 layers x 16, residual, tanh"
    assert arch_label(build_config("resmlp-plain")) == \
        "deep mean-field MLP, 8 layers x 16, plain (no skips), tanh"
    assert n_params(cfg) == build_family(cfg).n_params() == 16 * 16 * 7 + 16
    with pytest.raises(ConfigError, match=r"^depth: 1 is not allowed"):
        build_config("resmlp-residual", depth=1)
    with pytest.raises(ConfigError, match=r"^dataset: 'mnist' is not allowed for model meanfield-resmlp"):
        build_config("resmlp-residual", dataset="mnist")


def test_the_skip_study_presets_differ_in_the_skips_alone():
    """`nnfractal compare resmlp-residual resmlp-plain`: B is A with B's architecture fields, and
    nothing but `skip` differs, so no field is taken from A behind the user's back."""
    a, b, notes = pair_configs("resmlp-residual", "resmlp-plain")
    assert notes == []
    assert {k for k, v in a.to_dict().items() if b.to_dict()[k] != v} == {"skip", "preset"}
    assert a.skip and not b.skip


def test_both_variants_start_from_the_same_weights_as_the_paper_mlp_of_that_depth():
    residual = build_family(build_config("resmlp-residual", depth=5))
    plain = build_family(build_config("resmlp-residual", depth=5, skip=False))
    paper = BatchedMeanFieldMLP(16, 5, 1, "tanh")
    for seed in (0, 3):
        a, b, c = residual.init_params(seed), plain.init_params(seed), paper.init_params(seed)
        assert list(a) == list(b) == list(c)
        for name in a:
            assert torch.equal(a[name], b[name]) and torch.equal(a[name], c[name])


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "identity"])
def test_without_skips_it_computes_the_paper_mlp_and_with_skips_it_does_not(nonlinearity):
    plain = BatchedResidualMeanFieldMLP(8, 5, 2, nonlinearity, skip=False)
    residual = BatchedResidualMeanFieldMLP(8, 5, 2, nonlinearity, skip=True)
    paper = BatchedMeanFieldMLP(8, 5, 2, nonlinearity)
    gen = torch.Generator().manual_seed(0)
    params = {k: v + 0.3 * torch.randn(3, *v.shape, generator=gen, dtype=torch.float64)
              for k, v in paper.init_params(0).items()}
    x = torch.randn(20, 8, generator=gen, dtype=torch.float64)
    expected = paper.forward(params, x)
    torch.testing.assert_close(plain.forward(params, x), expected, rtol=1e-13, atol=1e-15)
    assert (residual.forward(params, x) - expected).abs().max() > 1e-2


def _last_hidden_rms(family, x, seeds=8):
    inits = [family.init_params(s) for s in range(seeds)]
    hidden, _ = family._hidden({k: torch.stack([p[k] for p in inits]) for k in inits[0]}, x)
    return float(hidden[-1].square().mean().sqrt())


def test_the_residual_stream_keeps_its_scale_with_depth():
    """a = 1/sqrt(depth - 2): the last hidden state's RMS over models and points stays within
    10% from depth 4 to 34 (measured 0.96-0.99); with a = 1 it grows ~5x by depth 34."""
    x = torch.randn(128, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    rms = {d: _last_hidden_rms(BatchedResidualMeanFieldMLP(16, d, 1, "tanh"), x) for d in (4, 18, 34)}
    assert max(rms.values()) / min(rms.values()) < 1.1, rms
    assert branch_scale(18) == 0.25 and branch_scale(2) == 1.0
    unscaled = BatchedResidualMeanFieldMLP(16, 34, 1, "tanh")
    unscaled.branch_scale = 1.0                                # the check can fail
    assert _last_hidden_rms(unscaled, x) > 3 * rms[34]


def test_roles_trunk_at_the_input_rate_readout_at_the_output_rate():
    family = BatchedResidualMeanFieldMLP(16, 6, 1, "tanh")
    assert [family.role(n) for n in family.names] == ["input"] * 5 + ["output"]


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "leaky", "identity"])
@pytest.mark.parametrize("depth,target_dim", [(2, 1), (3, 2), (6, 1)])
@pytest.mark.parametrize("skip", [True, False])
def test_one_step_gradients_equal_autograd(nonlinearity, depth, target_dim, skip):
    family = BatchedResidualMeanFieldMLP(8, depth, target_dim, nonlinearity, skip)
    gen = torch.Generator().manual_seed(0)
    params = {k: v + 0.3 * torch.randn(3, *v.shape, generator=gen, dtype=torch.float64)
              for k, v in family.init_params(0).items()}
    x = torch.randn(20, 8, generator=gen, dtype=torch.float64)
    y = torch.randn(20, target_dim, generator=gen, dtype=torch.float64)
    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    out = family.forward(leaves, x)
    loss = (out - y).square().mean((1, 2))
    expected = dict(zip(leaves, torch.autograd.grad(loss.sum(), list(leaves.values()))))
    fast_loss, fast_out, grads = family.loss_and_grads(params, x, y)
    torch.testing.assert_close(fast_loss, loss.detach(), rtol=1e-13, atol=0)
    torch.testing.assert_close(fast_out, out.detach(), rtol=1e-13, atol=1e-15)
    assert list(grads) == list(expected)
    for name, g in expected.items():
        assert grads[name].shape == g.shape
        torch.testing.assert_close(grads[name], g, rtol=1e-12, atol=1e-14 * float(g.abs().max()))


def test_reference_module_equals_the_batched_forward():
    family = BatchedResidualMeanFieldMLP(16, 7, 1, "tanh", skip=True)
    params = family.init_params(2)
    x = torch.randn(30, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    batched = family.forward({k: v.unsqueeze(0) for k, v in params.items()}, x)[0]
    torch.testing.assert_close(family.reference(params)(x), batched, rtol=1e-13, atol=1e-15)
    assert math.isclose(family.branch_scale, 1 / math.sqrt(5))
