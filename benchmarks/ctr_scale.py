"""CTR at scale on one machine (issue 18 point 7, first step): encode a generated Criteo-layout
file and train from the memory-mapped encoded arrays, recording throughput and peak memory.

For each ``--rows N``: a Criteo-layout TSV (label, I1-I13, C1-C26; ints with 20% missing,
ids drawn from 2^20 values per field) is generated with numpy, then in fresh subprocesses
(peak RSS = the child's ``VmHWM``):

* ``encode``: :func:`gatelab.recsys.data.encode_dataset` with the raw ``criteo`` layout
  (log-bucketed integers, ``min_count`` 10), one process, default ``block_size`` and
  ``read_ahead`` -> ``rows_per_s``, ``peak_rss_mb``;
* ``train``: FinalMLP (``embedding_dim`` 16) trained for ``--steps`` Adam steps of batch 4096
  from :class:`gatelab.recsys.data.CTRDataModule` with ``in_memory=False`` (the ``.npy`` arrays
  memory-mapped; each batch gathered with one fancy index) -> ``samples_per_s``,
  ``peak_rss_mb`` (the memory map's touched pages count as resident).

Rows go to ``docs/results/ctr-scale.jsonl`` + ``.md`` unless ``--dry-run``.

Usage::

    nice -n 10 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ctr_scale.py --rows 500000 2000000
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HWM = """
def hwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")
"""

ENCODE = (
    HWM
    + r"""
import json, sys, time
from gatelab.recsys.data import CsvReader, encode_dataset
from gatelab.recsys.data.layouts import LAYOUTS
path, cache = sys.argv[1], sys.argv[2]
lay = LAYOUTS["criteo"]
reader = CsvReader(path, sep="\t", header=False, names=list(lay.names), quoting=False)
t0 = time.perf_counter()
folder = encode_dataset({"train": reader}, lay.fields, cache, name="scale", min_count=lay.min_count)
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "peak_mb": hwm_mb(), "folder": str(folder)}))
"""
)

TRAIN = (
    HWM
    + r"""
import json, sys, time
import torch
from gatelab.core.registry import create_model
from gatelab.recsys.data import CTRDataModule
folder, steps = sys.argv[1], int(sys.argv[2])
dm = CTRDataModule(folder, 4096, in_memory=False, splits={"val": "train", "test": "train"}, seed=0)
model = create_model("finalmlp", embedding_dim=16, **dm.model_kwargs())
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = torch.nn.BCEWithLogitsLoss()
it = iter(dm._loader("train", shuffle=True))
def step(b):
    opt.zero_grad()
    loss = loss_fn(model(categorical=b["categorical"]).view(-1), b["target"])
    loss.backward()
    opt.step()
step(next(it))  # warm-up
t0 = time.perf_counter()
n = 0
for _ in range(steps):
    try:
        b = next(it)
    except StopIteration:
        it = iter(dm._loader("train", shuffle=True))
        b = next(it)
    step(b)
    n += len(b["target"])
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "samples": n, "peak_mb": hwm_mb(), "threads": torch.get_num_threads()}))
"""
)


def generate(path: Path, rows: int, seed: int = 0, chunk: int = 250_000) -> None:
    """A Criteo-layout TSV of ``rows`` random rows, written chunk by chunk (numpy, no Python loop per value)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(seed)
    names = ["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
    hexd = np.frombuffer(b"0123456789abcdef", np.uint8)
    shifts = np.arange(28, -1, -4, dtype=np.uint64)
    opts = pcsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
    with pa.OSFile(str(path), "wb") as sink:
        writer = None
        done = 0
        while done < rows:
            n = min(chunk, rows - done)
            cols = [pa.array(rng.integers(0, 2, n)).cast(pa.string())]
            for _ in range(13):
                v = pa.array(rng.integers(0, 5000, n)).cast(pa.string())
                cols.append(pc_mask(v, rng.random(n) < 0.2))
            for _ in range(26):
                ids = (rng.integers(0, 1 << 20, n).astype(np.uint64) * np.uint64(2654435761)) % np.uint64(1 << 32)
                digits = hexd[((ids[:, None] >> shifts) & np.uint64(15)).astype(np.intp)]
                cols.append(pa.array(np.ascontiguousarray(digits).view("S8").ravel()).cast(pa.string()))
            table = pa.table(cols, names=names)
            if writer is None:
                writer = pcsv.CSVWriter(sink, table.schema, write_options=opts)
            writer.write_table(table)
            done += n
        if writer is not None:
            writer.close()


def pc_mask(values, mask):
    """``values`` with nulls where ``mask`` (an empty field in the TSV)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.if_else(pa.array(mask), pa.scalar(None, pa.string()), values)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, nargs="+", default=[500_000, 2_000_000])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--results-dir", default=None)
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args(argv)
    from gatelab.core.harness import ledger

    rows_out = []
    for n in args.rows:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "criteo.tsv"
            t0 = time.perf_counter()
            generate(path, n)
            size = path.stat().st_size / 2**20
            print(f"{n} rows: {size:.0f} MiB generated in {time.perf_counter() - t0:.0f} s")
            enc = json.loads(
                subprocess.run(
                    [sys.executable, "-c", ENCODE, str(path), str(Path(tmp) / "cache")],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip().splitlines()[-1]
            )
            tr = json.loads(
                subprocess.run(
                    [sys.executable, "-c", TRAIN, enc["folder"], str(args.steps)], capture_output=True, text=True, check=True
                ).stdout.strip().splitlines()[-1]
            )
            config = json.dumps({"file_mib": round(size, 1), "steps": args.steps, "batch_size": 4096,
                                 "model": "finalmlp embedding_dim 16", "threads": tr["threads"]}, sort_keys=True)  # fmt: skip
            for stage, r, rate_key, rate in (
                ("encode", enc, "rows_per_s", n / enc["seconds"]),
                ("train", tr, "samples_per_s", tr["samples"] / tr["seconds"]),
            ):
                row = {
                    "model": f"ctr-{stage}",
                    "dataset": "criteo-layout-generated",
                    "split": f"{n}-rows",
                    "seed": 0,
                    "peak_rss_mb": round(r["peak_mb"], 1),
                    rate_key: round(rate, 1),
                    "config": config,
                }
                rows_out.append(row)
                print(f"  {stage:6s} {rate:10.0f} {rate_key}   peak RSS {r['peak_mb']:.0f} MB")
    command = shlex.join(["python", "benchmarks/ctr_scale.py", *(argv if argv is not None else sys.argv[1:])])
    for r in rows_out:
        r["command"] = command
    if args.dry_run:
        print("\n".join(json.dumps(r) for r in rows_out))
        return 0
    ledger.append_records("ctr-scale", rows_out, args.results_dir)
    print(
        ledger.render_markdown(
            "ctr-scale",
            args.results_dir,
            title="ctr-scale: encoding and training a generated Criteo-layout file on one machine",
            description=(
                "Encode (raw criteo layout, one process) and train (FinalMLP, batch 4096, Adam, from the memory-mapped "
                "encoded arrays) on generated Criteo-layout TSVs; peak RSS = VmHWM of each stage's fresh process."
            ),
            metrics=["rows_per_s", "samples_per_s", "peak_rss_mb"],
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
