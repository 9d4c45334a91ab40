"""Engine options for speed: the auto chunk size, the product precision, and `nnfractal bench`."""
import json

import numpy as np
import pytest
import torch

from nnfractal.cli import bench
from nnfractal.cli.main import main
from nnfractal.config import ConfigError, build_config
from nnfractal.models import build_family, family_spec
from nnfractal.training import allocator
from nnfractal.training.engine import model_footprint, resolve_chunk_workers, resolve_tile_batch, train

pytestmark = pytest.mark.slow  # trains models, runs the bench

TINY = dict(depth=8, c_hidden=[4, 8, 8], train_size=32, batch_size=16)
POINTS = np.array([[1e-3, 0.05], [3e-2, 0.2], [0.1, 0.01]])


def test_footprint_grows_linearly_with_models(mnist_tiny):
    cfg = build_config("resnet20-mnist", **TINY)
    family, cpu = build_family(cfg), torch.device("cpu")
    f1, f2, f4 = (model_footprint(cfg, family, mnist_tiny, cpu, m) for m in (1, 2, 4))
    assert f2 > f1 > 0
    assert abs((f4 - f2) - 2 * (f2 - f1)) <= 0.05 * (f4 - f2)        # the same bytes per model


def test_auto_chunk_size_from_a_memory_budget(mnist_tiny):
    cfg = build_config("resnet20-mnist", tile_batch=0, **TINY)
    family, cpu = build_family(cfg), torch.device("cpu")
    one = model_footprint(cfg, family, mnist_tiny, cpu, 1)
    per_model = model_footprint(cfg, family, mnist_tiny, cpu, 2) - one
    fixed = one - per_model
    best = family_spec(cfg.model).cpu_tile_batch
    assert resolve_tile_batch(cfg, family, mnist_tiny, cpu, memory_budget=10 ** 12) == best
    workers = resolve_chunk_workers(cfg, cpu, 1 << 20)[0]                   # chunks held at once
    for models in (1, 2, 3, 5):
        budget = workers * (fixed + (models + 0.5) * per_model) / 0.7       # 70% of the budget is used
        expected = 1 << (models.bit_length() - 1)                           # a power of two
        assert resolve_tile_batch(cfg, family, mnist_tiny, cpu, memory_budget=budget) == expected
    assert resolve_tile_batch(cfg, family, mnist_tiny, cpu, memory_budget=1) == 1
    assert resolve_tile_batch(cfg.replace(tile_batch=3), family, mnist_tiny, cpu, memory_budget=1) == 3
    result = train(cfg.replace(steps=2), family, mnist_tiny, POINTS)
    assert result.tile_batch == best
    fixed_run = train(cfg.replace(steps=2, tile_batch=best), family, mnist_tiny, POINTS)
    np.testing.assert_array_equal(result.losses, fixed_run.losses)


def test_matmul_precision_is_validated():
    with pytest.raises(ConfigError, match=r"matmul_precision: 'tf32' is not allowed with device cpu"):
        build_config("resnet20-mnist", matmul_precision="tf32")
    with pytest.raises(ConfigError, match=r"not allowed with precision float64 \(allowed: highest\)"):
        build_config("paper-tanh", matmul_precision="bfloat16")
    with pytest.raises(ConfigError, match=r"allowed: highest, tf32, bfloat16"):
        build_config("resnet20-mnist", matmul_precision="fp8")
    assert build_config("resnet20-mnist", device="cuda", matmul_precision="tf32").matmul_precision == "tf32"


def test_bfloat16_autocast_moves_results_only_when_asked(mnist_tiny):
    cfg = build_config("resnet20-mnist", steps=2, tile_batch=3, **TINY)
    family = build_family(cfg)
    exact = train(cfg, family, mnist_tiny, POINTS).losses
    bf16 = train(cfg.replace(matmul_precision="bfloat16"), family, mnist_tiny, POINTS).losses
    assert bf16.dtype == np.float32 and np.isfinite(bf16).all()
    np.testing.assert_allclose(bf16[:, 0], exact[:, 0], rtol=2e-2)        # bfloat16 products: ~1e-2
    assert not np.array_equal(bf16, exact)


def test_cli_flags_reach_the_config():
    from nnfractal.cli.main import config_from_args, make_parser
    args = make_parser().parse_args(["run", "--preset", "paper-tanh", "--compile", "off",
                                     "--no-fast-path", "--tile-batch", "0"])
    cfg = config_from_args(args)
    assert (cfg.compile, cfg.fast_path, cfg.tile_batch) == ("off", False, 0)


def _tiny_sizes(monkeypatch):
    monkeypatch.setitem(bench.SIZES, "quick", {
        "resnet20": {"engine": (2, 1), "naive": (1, 1)},
        "paper-tanh": {"engine": (32, 5), "naive": (2, 5)}})


def test_bench_workers_run_on_the_allocator_of_the_bench(monkeypatch):
    """Under the `nnfractal` command on tcmalloc, the bench's worker processes are preloaded
    with it too (their reply reads their own /proc/self/maps)."""
    if allocator.find_tcmalloc() is None:
        pytest.skip("tcmalloc is not installed (apt install libtcmalloc-minimal4)")
    monkeypatch.delenv("LD_PRELOAD", raising=False)          # whatever ran pytest itself
    request = {"workload": "paper-tanh", "variant": "engine", "models": 2, "steps": 2, "threads": 1}
    for bench_on in ("tcmalloc", "system malloc"):
        monkeypatch.setattr(bench.allocator, "in_use", lambda on=bench_on: on)
        worker = bench.Worker("current", bench.PACKAGE_ROOT, 1)
        try:
            assert worker.run(request)["allocator"] == bench_on
        finally:
            worker.close()


def test_bench_quick_end_to_end(tmp_path, monkeypatch, capsys):
    """The whole command on tiny sizes, against the committed HEAD in a temporary worktree."""
    _tiny_sizes(monkeypatch)
    out = tmp_path / "bench.json"
    assert main(["bench", "--quick", "--only", "paper-tanh", "--json", str(out), "--against", "HEAD"]) == 0
    printed = capsys.readouterr().out
    assert "% peak" in printed and "engine@HEAD" in printed
    assert "chunk (at once)" in printed and "256 (1)" in printed     # the MLP: one chunk at a time
    result = json.loads(out.read_text())
    rows = {r["name"]: r for r in result["results"]}
    assert set(rows) == {f"paper-tanh {v}" for v in ("naive", "engine@current", "engine@HEAD",
                                                      "torch-fast-path@current", "engine@current+1busy",
                                                      "engine-grid@current", "run@current")}
    assert "vs paper JAX" in printed and "(the C++ kernel)" in printed and "fair share" in printed
    kernel, torch_path = rows["paper-tanh engine@current"], rows["paper-tanh torch-fast-path@current"]
    assert torch_path["ratio_vs_kernel"] == pytest.approx(torch_path["model_steps_per_s"] / kernel["model_steps_per_s"])
    # end to end: `nnfractal run` on a 6 x 6 grid (about the engine's 32 points), the engine on it
    run, grid = rows["paper-tanh run@current"], rows["paper-tanh engine-grid@current"]
    assert run["models"] == grid["models"] == 36 and run["steps"] == grid["steps"] == 5
    assert run["ratio_vs_engine_grid"] == pytest.approx(run["model_steps_per_s"] / grid["model_steps_per_s"])
    assert run["command_seconds"][0] > run["seconds"][0] and run["training_threads"] >= 1
    assert "vs engine-grid@current, the engine on this grid (target >= 0.80)" in printed
    busy = rows["paper-tanh engine@current+1busy"]
    assert busy["ratio_vs_quiet"] == pytest.approx(busy["model_steps_per_s"] / kernel["model_steps_per_s"])
    cores = allocator.usable_cpus()
    assert busy["fair_share"] == pytest.approx((cores - 1) / cores)
    assert 0 < busy["cpu_share"] <= 1.5
    assert result["meta"]["contention"] == 1 and result["meta"]["usable_cpus"] == cores
    for r in rows.values():
        rate = r["model_steps_per_s"]
        assert rate > 0 and r["model_steps_per_s_best"] >= rate
        assert rate == pytest.approx(r["models"] * r["steps"] / r["seconds"][0])
        assert r["gflop_per_s"] == pytest.approx(rate * r["gflop_per_model_step"])
        assert r["percent_of_matmul_peak"] == pytest.approx(
            100 * r["gflop_per_s"] / result["matmul_peak_gflop_per_s"][r["precision"]]["best"])
        naive = rows[f"{r['workload']} naive"]["model_steps_per_s"]
        assert r["ratio_vs_naive"] == pytest.approx(rate / naive)
        assert r["name"] == "paper-tanh run@current" or r["peak_rss_mb"] > 0   # not measured there
        assert r["chunk_workers"] == 1
        assert r["allocator"] == allocator.in_use()          # the workers run on this process's
    cur, old = rows["paper-tanh engine@current"], rows["paper-tanh engine@HEAD"]
    assert cur["ratios_vs_versions"]["HEAD"] == pytest.approx(cur["model_steps_per_s"] / old["model_steps_per_s"])
    assert rows["paper-tanh engine@current"]["gflop_per_model_step"] == pytest.approx(304.6e-6, rel=1e-3)
    # ResNet-20, batch 32: forward 1.985 GFLOP, forward + backward ~3x (FlopCounterMode)
    assert bench.gflop_per_model_step("resnet20") == pytest.approx(5.95, rel=0.01)
    assert "tree" not in " ".join(p.name for p in tmp_path.iterdir())     # worktree removed

    # --compare: ratios against that JSON
    again = tmp_path / "again.json"
    assert main(["bench", "--quick", "--only", "paper-tanh", "--json", str(again), "--compare", str(out)]) == 0
    row = {r["name"]: r for r in json.loads(again.read_text())["results"]}["paper-tanh engine@current"]
    assert row["ratio_vs_compare_json"] == pytest.approx(row["model_steps_per_s"] / cur["model_steps_per_s"])


@pytest.mark.parametrize("argv,message", [
    (["--only", "vgg"], "--only: 'vgg' is not allowed (allowed: resnet20, paper-tanh)"),
    (["--repeats", "0"], "--repeats: 0 is not allowed"),
    (["--against", "no-such-ref"], "--against: 'no-such-ref' is not a commit"),
    (["--compare", "/nonexistent.json"], "--compare: /nonexistent.json is not a readable bench JSON"),
    (["--contention", "-1"], "--contention: -1 is not allowed (allowed: an integer >= 0)"),
])
def test_bench_refuses_bad_options_in_one_line(argv, message, capsys):
    assert main(["bench", "--quick", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nnfractal: error: " + message)
    assert len(err.splitlines()) == 1


def test_busy_cpu_warning_from_cpu_and_run_queue_time():
    from nnfractal.training.cpu_usage import Usage
    from nnfractal.training.engine import cpu_busy_warning
    assert cpu_busy_warning(Usage(19.0, 0.5, 2), wall_time=10.0, cpus=2) is None      # a quiet machine
    # single-threaded stretches leave CPU time far below wall x threads, and no wait: no warning
    assert cpu_busy_warning(Usage(4.0, 0.1, 2), wall_time=10.0, cpus=2) is None
    assert cpu_busy_warning(Usage(0.5, 1.0, 2), wall_time=1.0, cpus=2) is None        # too short to say
    # 8 threads on 2 CPUs wait for each other (share 1/4), not for other programs
    assert cpu_busy_warning(Usage(8.0, 24.0, 8), wall_time=4.0, cpus=2) is None
    line = cpu_busy_warning(Usage(6.0, 4.0, 2), wall_time=10.0, cpus=2)
    assert line.startswith("nnfractal: warning: the CPU was busy: training waited for a CPU 40% of "
                           "the time it was ready to run (4 s of 10 s on 2 thread(s)")
    assert "\n" not in line
    assert cpu_busy_warning(Usage(7.6, 2.4, 2), wall_time=10.0, cpus=2) is None        # share 0.76
    assert cpu_busy_warning(Usage(7.4, 2.6, 2), wall_time=10.0, cpus=2) is not None    # share 0.74


def test_train_result_reports_its_cpu_time():
    cfg = build_config("paper-tanh", steps=20, tile_batch=4, compile="off")
    from nnfractal.training.data import synthetic_regression
    result = train(cfg, build_family(cfg), synthetic_regression(cfg.train_size, 16, 1), POINTS)
    assert result.cpu_time > 0 and result.threads >= 1 and result.wait_time >= 0
    assert result.cpu_share == pytest.approx(result.cpu_time / (result.cpu_time + result.wait_time))
