"""benchmarks/run_all.py: generated blocks are replaced in place, hand-written analysis is never touched."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUN_ALL = ROOT / "benchmarks" / "run_all.py"


@pytest.fixture
def run_all(monkeypatch):
    """The script as a module (registered while loaded: its dataclasses look themselves up there)."""
    spec = importlib.util.spec_from_file_location("run_all", RUN_ALL)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "run_all", module)
    spec.loader.exec_module(module)
    return module


def test_every_benchmark_script_is_run(run_all):
    scripts = {path.name for path in (ROOT / "benchmarks").glob("bench_*.py")}
    assert scripts == {bench.script for bench in run_all.BENCHMARKS}


def test_the_gpu_benchmark_runs_only_beside_a_gpu(run_all):
    cuda = next(b for b in run_all.BENCHMARKS if b.name == "bench_cuda")
    engine = next(b for b in run_all.BENCHMARKS if b.name == "bench_engine")
    assert not run_all.runnable_here(cuda, cuda=False) and run_all.runnable_here(cuda, cuda=True)
    assert run_all.runnable_here(engine, cuda=False)


def test_a_block_is_replaced_where_it_stands_and_a_new_one_appended(run_all):
    document = ("# Results\n\nprose before\n\n<!-- run_all:a -->\nold figures\n<!-- /run_all:a -->\n\n"
                "prose after, naming <!-- run_all:b --> nowhere closed\n")
    document = run_all.splice(document, "a", "new figures")
    document = run_all.splice(document, "c", "appended")
    document = run_all.splice(document, "machine", "this machine", after_title=True)
    assert document == ("# Results\n\n<!-- run_all:machine -->\nthis machine\n<!-- /run_all:machine -->\n\n"
                        "prose before\n\n<!-- run_all:a -->\nnew figures\n<!-- /run_all:a -->\n\n"
                        "prose after, naming <!-- run_all:b --> nowhere closed\n\n"
                        "<!-- run_all:c -->\nappended\n<!-- /run_all:c -->\n")


def test_long_benchmarks_run_only_when_asked(run_all):
    default = {b.name for b in run_all.select(None, None, everything=False)}
    assert "bench_finetune_matrix" not in default and "bench_monai" in default
    assert "bench_finetune_matrix" in {b.name for b in run_all.select(None, None, everything=True)}
    assert [b.name for b in run_all.select("bench_finetune_matrix", None, everything=False)] == ["bench_finetune_matrix"]
    with pytest.raises(SystemExit, match="unknown benchmark"):
        run_all.select("bench_nothing", None, everything=False)


@pytest.mark.slow
def test_quick_run_rewrites_its_block_and_keeps_the_analysis(tmp_path):
    pytest.importorskip("monai", reason="the benchmark-only extra: pip install -e '.[bench]'")
    original = re.sub(r"<!-- run_all:bench_monai -->.*?<!-- /run_all:bench_monai -->\n*", "",
                      (ROOT / "benchmarks" / "RESULTS.md").read_text(), flags=re.S)  # its real block, if any
    head, title, rest = original.partition("\n## Tiling")
    results = tmp_path / "RESULTS.md"
    results.write_text(head + "\n<!-- run_all:bench_monai -->\nOLD FIGURES\n<!-- /run_all:bench_monai -->\n"
                       + title + rest)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(RUN_ALL), "--quick", "--only", "bench_monai", "--results", str(results)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, env=env, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    written = results.read_text()
    assert "OLD FIGURES" not in written
    assert "| MONAI sliding_window_inference" in written
    for marker in ("<!-- run_all:bench_monai -->", "<!-- /run_all:bench_monai -->", "<!-- run_all:machine -->"):
        assert written.count(marker) == 1
    assert written.index("<!-- run_all:bench_monai -->") < written.index("## Tiling")  # replaced where it stood
    lines = iter(written.splitlines())
    handwritten = re.sub(r"<!-- run_all:(\w+) -->.*?<!-- /run_all:\1 -->", "", original, flags=re.S)
    assert all(line in lines for line in handwritten.splitlines())  # every hand-written line kept, in order
