"""Model shapes, the residual/plain switch, and batched forward = single-model forward."""
import pytest
import torch

from nnfractal.models.meanfield import BatchedMeanFieldMLP
from nnfractal.models.resnet import BatchedResNet, ResNet


def _stack(params, m):
    return {k: v.unsqueeze(0).repeat(m, *[1] * v.ndim) for k, v in params.items()}


@pytest.mark.parametrize("depth", [8, 14, 20])
def test_resnet_shapes_and_depth(depth):
    net = ResNet(depth=depth)
    x = torch.rand(3, 1, 28, 28)
    assert net(x).shape == (3, 10)
    convs = [m for n, m in net.named_modules() if isinstance(m, torch.nn.Conv2d) and "proj" not in n]
    assert len(convs) + 1 == depth          # weighted layers: convs + the final linear layer


def test_resnet20_parameter_count_matches_he_et_al():
    # He et al. (2016) report 0.27M parameters for ResNet-20 (CIFAR: 3 input channels)
    n = sum(p.numel() for p in ResNet(20).parameters())
    assert 265_000 < n < 275_000


@pytest.mark.slow
def test_plain_differs_from_residual_only_by_the_shortcut():
    fam_res, fam_plain = BatchedResNet(20, skip=True), BatchedResNet(20, skip=False)
    p_res, p_plain = fam_res.init_params(7), fam_plain.init_params(7)
    extra = set(p_res) - set(p_plain)
    assert extra and all(".proj." in k for k in extra)       # only the projection shortcuts
    assert set(p_plain) <= set(p_res)
    for k in p_plain:                                        # identical initial weights
        assert torch.equal(p_plain[k], p_res[k])
    x = torch.rand(4, 1, 28, 28)
    res, plain = fam_res.reference(p_res), fam_plain.reference(p_plain)
    assert not torch.allclose(res(x), plain(x))
    for block in [b for layer in (res.layer1, res.layer2, res.layer3) for b in layer]:
        block.skip = False                                   # drop the shortcut additions ...
    torch.testing.assert_close(res(x), plain(x))             # ... and the nets are the same


@pytest.mark.compile
@pytest.mark.parametrize("skip", [True, False])
@pytest.mark.parametrize("nonlinearity", ["relu", "tanh", "leaky", "identity"])
def test_batched_resnet_forward_equals_reference(skip, nonlinearity):
    fam = BatchedResNet(8, (4, 8, 8), skip, nonlinearity)
    params = [fam.init_params(s) for s in range(3)]
    stacked = {k: torch.stack([p[k] for p in params]) for k in params[0]}
    x = torch.rand(5, 1, 28, 28)
    out = fam.forward(stacked, x)
    assert out.shape == (3, 5, 10)
    for i, p in enumerate(params):
        torch.testing.assert_close(out[i], fam.reference(p)(x), rtol=1e-4, atol=1e-5)


def test_meanfield_mlp_matches_paper_formula():
    fam = BatchedMeanFieldMLP(width=16, depth=2, target_dim=1, nonlinearity="tanh")
    p = fam.init_params(0)
    assert fam.n_params() == 272 == sum(v.numel() for v in p.values())
    x = torch.randn(10, 16, dtype=torch.float64)
    w0, w1 = p["weights.0"], p["weights.1"]
    expected = torch.tanh(x @ w0 / 4 * 2 ** 0.5) @ w1 / 4 / 4     # mean-field: 1/sqrt(16) twice
    torch.testing.assert_close(fam.forward(_stack(p, 2), x)[1], expected)
    torch.testing.assert_close(fam.reference(p)(x), expected)
    assert fam.role("weights.0") == "input" and fam.role("weights.1") == "output"
