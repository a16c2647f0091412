"""Run every benchmark and rewrite RESULTS.md with their output and this machine's description.

    python benchmarks/run_all.py [--quick] [--only NAME,...] [--skip NAME,...] [--all] [--results PATH] [--list]

Each benchmark runs in its own subprocess (from the repository root, with this
Python) under a timeout, and its stdout goes into RESULTS.md between markers:

    <!-- run_all:NAME -->
    ...generated; replaced on every run...
    <!-- /run_all:NAME -->

Everything outside the markers is hand-written analysis and is kept as it
is. A benchmark without markers yet is appended at the end; move its block
next to its prose, and later runs replace it where it stands. The machine's
description is the ``machine`` block, put under the title the first time.
A benchmark that fails or times out leaves its earlier block untouched (and
run_all exits with status 1).

``--quick`` is a smoke run with tiny sizes: its figures mean nothing, so it
writes no file unless ``--results`` names one (it prints the blocks instead).
The default arguments are those of the figures RESULTS.md reports; they are
meant for an idle machine (``nice`` them if it is shared).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
LONG_MINUTES = 15  # benchmarks longer than this on the 2-core development CPU run only with --all or --only
QUICK_TIMEOUT_S = 900
MAX_TEXT_LINES = 40  # longer runs of plain output (training logs) keep their start and end


@dataclass(frozen=True)
class Benchmark:
    """One benchmark run: the script, its arguments, and how long the full run takes on the 2-core CPU."""

    name: str
    script: str
    args: tuple[str, ...] = ()
    quick: tuple[str, ...] = ()
    minutes: float = 5
    markdown: bool = False  # prints markdown: copied as is (other output: tables as tables, the rest verbatim)
    needs_cuda: bool = False  # run only where a CUDA device is; elsewhere its earlier block stays as it is

    @property
    def long(self) -> bool:
        return self.minutes > LONG_MINUTES

    def command(self, quick: bool) -> list[str]:
        return [f"benchmarks/{self.script}", *(self.quick if quick else self.args)]


BENCHMARKS = (
    Benchmark("bench_engine", "bench_engine.py", ("--size", "2048", "--repeats", "3"), ("--size", "256"), 6),
    Benchmark("bench_tiling", "bench_tiling.py", ("--size", "2048",), ("--size", "512"), 3),
    Benchmark("bench_compile", "bench_compile.py", ("--side", "1024", "--repeats", "3"),
              ("--side", "256", "--repeats", "1"), 5),
    Benchmark("bench_memory", "bench_memory.py", ("--sizes", "2048", "4096", "8192"), ("--sizes", "1024"), 3),
    Benchmark("bench_memory_labels", "bench_memory_labels.py", ("--sizes", "2048", "4096", "8192", "16384"),
              ("--sizes", "1024"), 16),
    Benchmark("bench_storage", "bench_storage.py", ("--size", "4096"), ("--size", "1024", "--block-size", "512"), 3),
    Benchmark("bench_batch", "bench_batch.py", ("--threads", "2"), ("--files", "4", "--size", "256"), 2),
    Benchmark("bench_batch_1thread", "bench_batch.py", ("--threads", "1"),
              ("--files", "4", "--size", "256", "--threads", "1"), 2),
    Benchmark("bench_despike", "bench_despike.py", ("--size", "2048"), ("--size", "512"), 2),
    Benchmark("bench_cancel", "bench_cancel.py", (), ("--side", "512", "--after", "0.5"), 2),
    Benchmark("bench_object_steps", "bench_object_steps.py", (),
              ("--size", "1024", "--frames", "3", "--objects", "500"), 3),
    Benchmark("bench_architecture", "bench_architecture.py", (), ("--shapes", "4x8"), 4),
    Benchmark("bench_model_shape", "bench_model_shape.py", ("--seconds", "450"),
              ("--seconds", "5", "--shapes", "4x8"), 35),
    Benchmark("bench_finetune", "bench_finetune.py", (), ("--seconds", "5"), 5),
    Benchmark("bench_finetune_matrix", "bench_finetune_matrix.py",
              ("--domains", "all", "--modes", "dense,mask", "--seconds", "120", "--eval", "5"),
              ("--domains", "brightfield", "--modes", "dense", "--steps", "2", "--eval", "1"), 40),
    Benchmark("bench_finetune_judges", "bench_finetune_judges.py", ("--cells", "all", "--seeds", "0,1"),
              ("--cells", "brightfield:dense", "--seconds", "3"), 60, markdown=True),
    Benchmark("bench_scribbles", "bench_scribbles.py", (), ("--seconds", "5"), 3),
    Benchmark("bench_cuda", "bench_cuda.py", ("--big", "8192"), ("--big", "0"), 2, needs_cuda=True),
    Benchmark("bench_segment_mosaic", "bench_segment_mosaic.py", (), ("--side", "1024", "--repeats", "1"), 2,
              markdown=True),
    Benchmark("bench_monai", "bench_monai.py", ("--size", "2048", "--repeats", "3"),
              ("--size", "256", "--repeats", "1"), 6, markdown=True),
)


@dataclass(frozen=True)
class Outcome:
    """What one benchmark printed, and how its run ended."""

    stdout: str
    stderr: str
    seconds: float
    returncode: int | None  # None: timed out

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run(bench: Benchmark, quick: bool, timeout: float) -> Outcome:
    """Run one benchmark in its own process group, so that a timeout also ends the processes it started."""
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, *bench.command(quick)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        code: int | None = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        code = None
    return Outcome(stdout, stderr, time.perf_counter() - start, code)


def machine_description() -> str:
    """CPU, its bf16 support, RAM, GPU, versions and the time: what the figures below depend on."""
    import torch  # here, so that --help and --list do not wait for torch

    from napari_unet_seg import __version__
    from napari_unet_seg.core.model.devices import resolve_device, resolve_precision

    cpu, flags, memory = platform.processor() or "unknown CPU", set(), "unknown"
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        cpu = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE).group(1).strip()
        flags = set(re.search(r"^flags\s*:\s*(.+)$", cpuinfo, re.MULTILINE).group(1).split())
    except (OSError, AttributeError):
        pass
    try:
        kib = int(re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.MULTILINE).group(1))
        memory = f"{kib / 2**20:.1f} GiB"
    except (OSError, AttributeError):
        pass
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    device = resolve_device("auto")
    bf16 = ", ".join(f"{flag} {'yes' if flag in flags else 'no'}"
                     for flag in ("amx_bf16", "amx_tile", "avx512_bf16", "avx512f", "avx2"))
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True,
                            check=False).stdout.strip() or "unknown"
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    versions = f"torch {torch.__version__}, Python {platform.python_version()}, napari-unet-seg {__version__}"
    return "\n".join([
        "## The machine of the last `python benchmarks/run_all.py`",
        "",
        f"- CPU: {cpu}, {os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads",
        f"- CPU flags: {bf16}; `precision=\"auto\"` runs {resolve_precision('auto', device)} on {device}",
        f"- RAM: {memory}",
        f"- GPU: {', '.join(gpus) if gpus else 'none'}",
        f"- {versions}, commit {commit}",
        f"- {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}; load average at the start {load}",
        "",
        "Each section below says when it was run; sections not rerun keep their earlier date.",
    ])


def render_output(text: str) -> str:
    """Tables (lines starting with ``|``) as markdown; everything else verbatim in text blocks, long ones trimmed."""
    chunks: list[tuple[bool, list[str]]] = []
    for line in text.rstrip().splitlines():
        table = line.lstrip().startswith("|")
        if chunks and chunks[-1][0] == table:
            chunks[-1][1].append(line)
        else:
            chunks.append((table, [line]))
    parts = []
    for table, lines in chunks:
        if table:
            parts.append("\n".join(line.strip() for line in lines))
            continue
        while lines and not lines[0].strip():
            lines.pop(0)
        while lines and not lines[-1].strip():
            lines.pop()
        if not lines:
            continue
        if len(lines) > MAX_TEXT_LINES:
            left_out = len(lines) - MAX_TEXT_LINES
            lines = [*lines[:5], f"... ({left_out} lines left out)", *lines[5 - MAX_TEXT_LINES:]]
        parts.append("```text\n" + "\n".join(lines) + "\n```")
    return "\n\n".join(parts)


def section(bench: Benchmark, quick: bool, outcome: Outcome) -> str:
    """The generated block of one benchmark: heading, command, when, and what it printed."""
    command = "python " + " ".join(bench.command(quick))
    when = f"{datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}"
    status = "" if outcome.ok else (
        "; **timed out** (partial output)" if outcome.returncode is None else f"; **failed** (exit {outcome.returncode})")
    smoke = "; a quick smoke run: these figures mean nothing" if quick else ""
    lines = [f"## `{bench.name}` — `{command}`", "",
             f"Generated by `run_all.py` on {when}, {outcome.seconds:.0f} s{status}{smoke}.", ""]
    output = outcome.stdout.strip() if bench.markdown and outcome.ok else render_output(outcome.stdout)
    lines.append(output or "(no output)")
    if not outcome.ok and outcome.stderr.strip():
        lines += ["", "stderr (end):", "", render_output("\n".join(outcome.stderr.splitlines()[-20:]))]
    return "\n".join(lines)


def markers(name: str) -> tuple[str, str]:
    return f"<!-- run_all:{name} -->", f"<!-- /run_all:{name} -->"


def has_block(document: str, name: str) -> bool:
    start, end = markers(name)
    return start in document and end in document


def splice(document: str, name: str, body: str, after_title: bool = False) -> str:
    """``document`` with NAME's block replaced by ``body``; a new block goes at the end (or under the title)."""
    start, end = markers(name)
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    if pattern.search(document):
        return pattern.sub(lambda _: block, document, count=1)
    title = re.search(r"^# .*\n", document, re.MULTILINE)
    if after_title and title:
        return document[:title.end()] + "\n" + block + "\n" + document[title.end():]
    return document.rstrip("\n") + "\n\n" + block + "\n"


def runnable_here(bench: Benchmark, cuda: bool | None = None) -> bool:
    """False for a GPU benchmark on a machine without CUDA (its figures from a GPU machine are kept)."""
    if not bench.needs_cuda:
        return True
    if cuda is None:
        import torch  # here, so that --help and --list do not wait for torch

        cuda = torch.cuda.is_available()
    return cuda


def select(only: str | None, skip: str | None, everything: bool) -> list[Benchmark]:
    known = {b.name for b in BENCHMARKS}
    wanted = set(only.split(",")) if only else None
    unwanted = set(skip.split(",")) if skip else set()
    unknown = ((wanted or set()) | unwanted) - known
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")
    return [b for b in BENCHMARKS
            if b.name not in unwanted and (b.name in wanted if wanted is not None else everything or not b.long)]


def plan() -> str:
    rows = [f"  {b.name:22s} ~{b.minutes:g} min{' (long: skipped by default)' if b.long else ''}" for b in BENCHMARKS]
    return "benchmarks (full run on the 2-core development CPU):\n" + "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, epilog=plan(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a smoke test (writes no file by default)")
    parser.add_argument("--only", help="comma-separated names to run (long ones included)")
    parser.add_argument("--skip", help="comma-separated names not to run")
    parser.add_argument("--all", action="store_true",
                        help=f"also run the benchmarks taking more than {LONG_MINUTES} min (skipped by default)")
    parser.add_argument("--results", type=Path, default=None,
                        help="the file to rewrite (default: benchmarks/RESULTS.md; with --quick: none, print)")
    parser.add_argument("--timeout", type=float, default=None,
                        help=f"seconds per benchmark (default: 3x its expected time; {QUICK_TIMEOUT_S} with --quick)")
    parser.add_argument("--list", action="store_true", help="print the commands that would run, and stop")
    args = parser.parse_args()
    chosen = select(args.only, args.skip, args.all)
    if args.list:
        for bench in chosen:
            print("python " + " ".join(bench.command(args.quick)))
        return 0
    target = args.results or (None if args.quick else RESULTS)
    document = target.read_text() if target is not None and target.exists() else "# Benchmark results\n"
    blocks = {"machine": machine_description()}
    failed = []
    for i, bench in enumerate(chosen, 1):
        timeout = args.timeout or (QUICK_TIMEOUT_S if args.quick else max(3 * bench.minutes, 20) * 60)
        print(f"[{i}/{len(chosen)}] python {' '.join(bench.command(args.quick))}", file=sys.stderr, flush=True)
        if not runnable_here(bench):
            print("      skipped: no CUDA device here (its earlier figures stay)", file=sys.stderr, flush=True)
            continue
        outcome = run(bench, args.quick, timeout)
        verdict = ("ok" if outcome.ok else "TIMED OUT" if outcome.returncode is None
                   else f"FAILED (exit {outcome.returncode})")
        print(f"      {verdict}, {outcome.seconds:.0f} s", file=sys.stderr, flush=True)
        if not outcome.ok:
            failed.append(bench.name)
            print("\n".join(outcome.stderr.splitlines()[-10:]), file=sys.stderr)
            if has_block(document, bench.name):
                continue  # keep the earlier, successful figures
        blocks[bench.name] = section(bench, args.quick, outcome)
    for name, body in blocks.items():
        document = splice(document, name, body, after_title=name == "machine")
    if target is None:
        print("\n\n".join(f"{markers(n)[0]}\n{b}\n{markers(n)[1]}" for n, b in blocks.items()))
    else:
        target.write_text(document)
        print(f"wrote {target}", file=sys.stderr)
    if failed:
        print(f"failed or timed out: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
