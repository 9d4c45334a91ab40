"""Chunks trained side by side on the CPU (engine.resolve_chunk_workers): same numbers, in order,
and a clean stop."""
import threading

import numpy as np
import pytest
import torch

from nnfractal.config import ConfigError, build_config
from nnfractal.models import build_family
from nnfractal.training.engine import resolve_chunk_workers, train

pytestmark = pytest.mark.slow  # trains chunks side by side

TINY_RESNET = dict(depth=8, c_hidden=[4, 8, 8], train_size=32, batch_size=16, steps=6, eval_every=0)
CPU = torch.device("cpu")


@pytest.fixture
def two_threads():
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(saved)


def _points(k: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.stack([10 ** rng.uniform(-3, 0, k), rng.uniform(0, 0.3, k)], 1)


def test_auto_gives_resnets_one_thread_per_chunk(two_threads):
    resnet = build_config("resnet20-mnist")
    assert resolve_chunk_workers(resnet, CPU, 100) == (2, 1)
    # fewer chunks than threads: fewer workers, but still one thread each (a point's roundoff
    # must not depend on how many chunks its tile holds)
    assert resolve_chunk_workers(resnet, CPU, 1) == (1, 1)
    assert resolve_chunk_workers(build_config("paper-tanh"), CPU, 100) == (1, 2)
    assert resolve_chunk_workers(resnet.replace(chunk_workers=1), CPU, 100) == (1, 2)
    # torch.compile's first call is not safe from two threads: compiled runs keep one chunk at a time
    assert resolve_chunk_workers(resnet.replace(compile="on"), CPU, 100) == (1, 2)


@pytest.mark.parametrize("preset,extra", [("resnet20-mnist", TINY_RESNET),
                                          ("paper-tanh", dict(steps=30, precision="float32"))])
def test_side_by_side_equals_one_after_another_bit_for_bit(mnist_tiny, two_threads, preset, extra):
    """Two workers with one thread each give exactly the curves of one thread, chunk after chunk."""
    cfg = build_config(preset, **extra, tile_batch=4, chunk_workers=2)
    data = mnist_tiny if cfg.model == "resnet" else None
    if data is None:
        from nnfractal.training.data import synthetic_regression
        data = synthetic_regression(cfg.train_size, cfg.width, cfg.target_dim, seed=cfg.data_seed)
    points = _points(14)                                    # 4 chunks, the last one padded
    side = train(cfg, build_family(cfg), data, points)
    assert (side.chunk_workers, torch.get_num_threads()) == (2, 2)   # the caller's threads restored
    torch.set_num_threads(1)
    alone = train(cfg.replace(chunk_workers=1), build_family(cfg), data, points)
    assert alone.chunk_workers == 1
    assert side.curves.keys() == alone.curves.keys()
    for name in side.curves:
        np.testing.assert_array_equal(side.curves[name], alone.curves[name], err_msg=name)
    assert np.isfinite(side.losses).any() and not np.isnan(side.losses[:, 0]).any()


def test_on_chunk_sees_chunks_in_order_and_a_tile_split_changes_nothing(mnist_tiny, two_threads):
    cfg = build_config("resnet20-mnist", **TINY_RESNET, tile_batch=2)
    points = _points(7)
    seen = []
    whole = train(cfg, build_family(cfg), mnist_tiny, points,
                  on_chunk=lambda lo, hi, curves: seen.append((lo, hi, curves["train_loss"].copy())))
    assert whole.chunk_workers == 2
    assert [(lo, hi) for lo, hi, _ in seen] == [(0, 2), (2, 4), (4, 6), (6, 7)]
    for lo, hi, c in seen:
        np.testing.assert_array_equal(c, whole.losses[lo:hi])
    # the same points as two tiles (whole chunks each), the second one a single chunk
    first = train(cfg, build_family(cfg), mnist_tiny, points[:6]).losses
    last = train(cfg, build_family(cfg), mnist_tiny, points[6:]).losses
    np.testing.assert_array_equal(np.concatenate([first, last]), whole.losses)


def test_an_error_in_on_chunk_stops_the_workers(mnist_tiny, two_threads):
    """The first chunk's on_chunk raises: the other worker stops at its next step, the queued
    chunks never start, and the error reaches the caller."""
    cfg = build_config("resnet20-mnist", **{**TINY_RESNET, "steps": 40}, tile_batch=2)
    family = build_family(cfg)
    forward, calls = family.forward, []

    def counted(*args, **kwargs):
        calls.append(1)
        return forward(*args, **kwargs)

    family.forward = counted
    before = threading.active_count()

    def stop(lo, hi, curves):
        raise KeyboardInterrupt("stop")

    with pytest.raises(KeyboardInterrupt):
        train(cfg, family, mnist_tiny, _points(40), on_chunk=stop)   # 20 chunks x 40 steps
    assert threading.active_count() == before               # no worker left running
    assert torch.get_num_threads() == 2
    # chunk 0 (40 steps), the part of chunk 1 run until the stop, perhaps chunk 2 started
    assert 40 <= len(calls) < 3 * 40


def test_chunk_workers_is_validated():
    with pytest.raises(ConfigError, match="chunk_workers.*allowed: an integer >= 0"):
        build_config("resnet20-mnist", chunk_workers=-1)
