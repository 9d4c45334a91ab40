"""The fused BatchNorm + residual + ReLU CPU kernel against ATen's separate kernels."""
import shutil

import pytest
import torch
import torch.nn.functional as F

from nnfractal.models import fused_bn
from nnfractal.models.resnet import BatchedResNet

# Skipped only where no C++ compiler exists; with one, a failed build fails these tests.
pytestmark = [pytest.mark.compile,
              pytest.mark.skipif(not any(shutil.which(c) for c in ("c++", "g++", "clang++")),
                                 reason="no C++ compiler to build the kernel")]

CL = torch.channels_last


def _aten(x, gamma, beta, residual, relu):
    y = F.batch_norm(x, None, None, gamma, beta, True, 0.0, 1e-5)
    if residual is not None:
        y = y + residual
    return torch.relu(y) if relu else y


def _inputs(dtype, residual, shape=(6, 12, 5, 7), mean=0.5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(shape, generator=g, dtype=dtype) * 2 + mean).contiguous(memory_format=CL)
    gamma = torch.randn(shape[1], generator=g, dtype=dtype)
    beta = torch.randn(shape[1], generator=g, dtype=dtype)
    res = torch.randn(shape, generator=g, dtype=dtype).contiguous(memory_format=CL) if residual else None
    grad = torch.randn(shape, generator=g, dtype=dtype).contiguous(memory_format=CL)
    return x, gamma, beta, res, grad


def _forward_backward(fn, x, gamma, beta, res, grad, relu):
    leaves = [t.clone().requires_grad_() for t in (x, gamma, beta) + ((res,) if res is not None else ())]
    y = fn(*leaves[:3], leaves[3] if res is not None else None, relu)
    y.backward(grad)
    return y.detach(), [t.grad for t in leaves]


@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("relu", [True, False])
def test_float64_forward_and_backward_equal_aten(residual, relu):
    args = _inputs(torch.float64, residual)
    y, grads = _forward_backward(fused_bn.bn_act, *args, relu)
    y_ref, grads_ref = _forward_backward(_aten, *args, relu)
    assert y.is_contiguous(memory_format=CL)
    torch.testing.assert_close(y, y_ref, rtol=1e-12, atol=1e-12)
    for got, want in zip(grads, grads_ref):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("residual", [False, True])
def test_gradcheck_float64(residual):
    x, gamma, beta, res, _ = _inputs(torch.float64, residual, shape=(3, 4, 3, 2))
    leaves = [t.clone().requires_grad_() for t in (x, gamma, beta)]
    res = res.clone().requires_grad_() if residual else None
    assert torch.autograd.gradcheck(lambda a, b, c, r: fused_bn.bn_act(a, b, c, r, True),
                                    (*leaves, res), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("residual", [False, True])
def test_float32_matches_aten_away_from_the_relu_kink(residual):
    # In float32 the two compute the pre-activation with different roundoff, so a value within
    # roundoff of 0 may pass the ReLU in one and not the other: compare away from those.
    x, gamma, beta, res, grad = _inputs(torch.float32, residual, shape=(8, 32, 9, 9))
    y, grads = _forward_backward(fused_bn.bn_act, x, gamma, beta, res, grad, True)
    y_ref, grads_ref = _forward_backward(_aten, x, gamma, beta, res, grad, True)
    torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
    pre = _aten(x, gamma, beta, res, False)
    clear = pre.abs() > 1e-4
    assert clear.float().mean() > 0.99
    # dx mixes every element of its channel through the two sums, so a kink-flipped element
    # moves the whole channel by ~1e-4 of its scale at most
    torch.testing.assert_close(grads[0][clear], grads_ref[0][clear], rtol=2e-3, atol=2e-3)
    for got, want in zip(grads[1:], grads_ref[1:]):
        torch.testing.assert_close(got, want, rtol=2e-3, atol=2e-3)


def test_large_mean_does_not_cancel_in_float32():
    # A weight offset makes |mean| >> std: shifted sums keep the variance accurate where
    # E[x^2] - E[x]^2 in float32 would lose it.
    x, gamma, beta, _, grad = _inputs(torch.float32, False, shape=(8, 16, 9, 9), mean=3000.0)
    y, grads = _forward_backward(fused_bn.bn_act, x, gamma, beta, None, grad, False)
    y64, grads64 = _forward_backward(_aten, *(t.double() for t in (x, gamma, beta)), None, grad.double(), False)
    torch.testing.assert_close(y.double(), y64, rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(grads[0].double(), grads64[0], rtol=1e-3, atol=1e-3)
    torch.testing.assert_close(grads[1].double(), grads64[1], rtol=1e-3, atol=1e-2)


def test_channels_never_mix_and_do_not_depend_on_the_others():
    # Early exit drops dead models from a chunk: each channel's numbers must be bit-identical
    # whatever other channels (models) share the tensor, and a NaN model must not touch others.
    x, gamma, beta, res, grad = _inputs(torch.float32, True, shape=(8, 64, 6, 6))
    y_all, grads_all = _forward_backward(fused_bn.bn_act, x, gamma, beta, res, grad, True)
    half = [t[:, :32].contiguous(memory_format=CL) for t in (x, res, grad)]
    y_half, grads_half = _forward_backward(fused_bn.bn_act, half[0], gamma[:32], beta[:32], half[1], half[2], True)
    assert torch.equal(y_all[:, :32], y_half)
    assert torch.equal(grads_all[0][:, :32], grads_half[0])
    assert torch.equal(grads_all[1][:32], grads_half[1])
    x_nan = x.clone()
    x_nan[:, 40:48] = float("nan")
    y_nan, grads_nan = _forward_backward(fused_bn.bn_act, x_nan, gamma, beta, res, grad, True)
    assert torch.isnan(y_nan[:, 40:48]).all()                      # NaN propagates, as torch.relu
    assert torch.equal(y_nan[:, :40], y_all[:, :40]) and torch.equal(y_nan[:, 48:], y_all[:, 48:])
    assert torch.equal(grads_nan[0][:, :40], grads_all[0][:, :40])


def test_kernels_release_the_gil():
    """Chunks train side by side in threads: while one thread is inside the kernel, another must
    be able to run Python. Counted, not timed: the main thread's loop iterations while the worker
    runs the (~10-50 ms) kernel. With a 10 us switch interval the worker takes the GIL back at
    once after signalling, so had the kernel kept it, the main thread would count only for a few
    switch intervals (measured: ~2,000 iterations; with the GIL released, ~400,000)."""
    import sys
    ext = fused_bn.extension()
    x, gamma, beta, _, grad = _inputs(torch.float32, False, shape=(32, 64, 56, 56))
    y, mean, invstd = ext.forward(x, gamma, beta, None, True, 1e-5)
    calls = {"forward": lambda: ext.forward(x, gamma, beta, None, True, 1e-5),
             "backward": lambda: ext.backward(grad, x, None, gamma, beta, mean, invstd, True)}
    saved_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        # the best of 5: on a busy machine the OS may not schedule this thread at all during
        # one kernel call (seen once: 0 iterations); a GIL held by the kernel caps every try
        counts = {name: max(_python_iterations_during(call) for _ in range(5))
                  for name, call in calls.items()}
    finally:
        sys.setswitchinterval(saved_interval)
    for name, iterations in counts.items():
        assert iterations > 10_000, f"{name}: only {iterations} Python iterations ran during the kernel"


def _python_iterations_during(call) -> int:
    """How often this thread's loop ran while another thread ran call()."""
    import threading
    inside, done = threading.Event(), threading.Event()

    def work():
        torch.set_num_threads(1)
        inside.set()
        try:
            call()
        finally:
            done.set()

    thread = threading.Thread(target=work)
    thread.start()
    inside.wait()
    iterations = 0
    while not done.is_set():
        iterations += 1
    thread.join()
    return iterations


def test_bad_input_is_refused():
    x, gamma, beta, _, _ = _inputs(torch.float32, False)
    with pytest.raises(RuntimeError, match="channels_last"):
        fused_bn.extension().forward(x.contiguous(), gamma, beta, None, True, 1e-5)
    with pytest.raises(RuntimeError, match="one value per channel"):
        fused_bn.extension().forward(x, gamma[:3], beta, None, True, 1e-5)


def test_resnet_uses_it_for_float32_relu_only_and_matches_aten():
    fam, fam_aten = BatchedResNet(8, (16, 16, 16)), BatchedResNet(8, (16, 16, 16), fused_bn_kernel=False)
    params = {k: torch.stack([fam.init_params(s)[k] for s in range(2)]).requires_grad_()
              for k in fam.init_params(0)}
    x = torch.rand(6, 1, 28, 28)
    y = torch.randint(0, 10, (6,))
    losses = {}
    for name, f in (("fused", fam), ("aten", fam_aten)):
        loss = f.loss(params, x, y)
        grads = torch.autograd.grad(loss.sum(), list(params.values()))
        losses[name] = (loss.detach(), grads)
    assert fam.use_fused_bn is True and fam_aten.use_fused_bn is False
    torch.testing.assert_close(losses["fused"][0], losses["aten"][0], rtol=1e-5, atol=1e-6)
    for got, want in zip(losses["fused"][1], losses["aten"][1]):
        torch.testing.assert_close(got, want, rtol=2e-3, atol=2e-4)
    assert not BatchedResNet(8, (16, 16, 16), nonlinearity="tanh")._uses_fused_bn(
        torch.zeros(1, 16, 2, 2).contiguous(memory_format=CL))
