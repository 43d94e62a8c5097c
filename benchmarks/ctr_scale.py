"""CTR at Criteo scale on one machine (issue 18 point 7): encode a generated Criteo-layout file
with 1 and 2 processes into memory-mapped row shards, then train from the shards, recording
throughput and peak memory per stage.

For each ``--rows N``: a raw Criteo-layout TSV (label, I1-I13, C1-C26, tab-separated, no header,
like Criteo's ``train.txt``; see :func:`generate`) is written under ``--tmp`` (default ``/tmp``;
never in the repository), then, each stage in a fresh subprocess:

* ``encode-w1`` / ``encode-w2``: :func:`gatelab.recsys.data.encode_dataset` with the raw ``criteo``
  layout (log-bucketed integers, ``min_count`` 10), ``num_workers`` 1 / 2, default ``block_size``
  and ``shard_rows`` -> ``rows_per_s`` (rows / wall time of the whole encode: segment scan, fit,
  merge, transform, shard copy, checksums), ``rows_per_cpu_s`` (rows / CPU seconds of the main
  process and its workers, imports included: the rate a busy machine cannot distort), ``peak_rss_mb`` (the largest VmHWM of the main process
  and its workers), ``peak_rss_total_mb`` (main process + workers x the largest worker: an upper
  bound of the memory of the whole encode), ``vocab`` (tokens kept);
* ``train``: FinalMLP (``embedding_dim`` 16) trained for ``--steps`` Adam steps of batch 4096 from
  :class:`gatelab.recsys.data.CTRDataModule` with ``in_memory=False`` (batches gathered from the
  memory-mapped shards, mapped pages dropped every ``resident_mb`` = 256 MB) -> ``samples_per_s``,
  ``peak_rss_mb`` (VmHWM, mapped shard pages included).

Rows go to ``docs/results/ctr-scale.jsonl`` + ``.md`` unless ``--dry-run``. The 10M-row run takes a
while on a busy machine; run it in the background::

    nice -n 10 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ctr_scale.py --rows 1000000 10000000
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
import json, resource, sys, time
from gatelab.recsys.data import CsvReader, encode_dataset
from gatelab.recsys.data.layouts import LAYOUTS
path, cache, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
lay = LAYOUTS["criteo"]
reader = CsvReader(path, sep="	", header=False, names=list(lay.names), quoting=False)
t0 = time.perf_counter()
folder = encode_dataset({"train": reader}, lay.fields, cache, name="scale", min_count=lay.min_count,
                        num_workers=workers, force=True)
dt = time.perf_counter() - t0
spec = json.load(open(folder / "feature_spec.json"))
child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024 if workers > 1 else 0.0
cpu = sum(getattr(resource.getrusage(w), k) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
          for k in ("ru_utime", "ru_stime"))
print(json.dumps({"seconds": dt, "cpu_s": cpu, "rows": spec["splits"]["train"]["rows"], "peak_mb": hwm_mb(), "child_peak_mb": child,
                  "vocab": sum(f.get("num_tokens") or 0 for f in spec["fields"]), "folder": str(folder)}))
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
print(json.dumps({"seconds": dt, "samples": n, "peak_mb": hwm_mb(), "threads": torch.get_num_threads(),
                  "params": sum(p.numel() for p in model.parameters())}))
"""
)


#: distinct values of C1..C26 in Criteo's Kaggle train.txt (45.8M rows), the generator's cardinalities
CRITEO_CARDINALITY = (
    1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194, 27, 14992,
    5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572,
)  # fmt: skip


def generate(path: Path, rows: int, seed: int = 0, chunk: int = 250_000) -> None:
    """A Criteo-layout TSV of ``rows`` random rows, written chunk by chunk (numpy, no Python loop per value).

    Label 0/1; I1-I13: integers 0..4999 with 20% empty; C1-C26: 8-hex-digit ids with Criteo's
    per-field cardinalities (:data:`CRITEO_CARDINALITY`), rank ``r`` drawn log-uniformly
    (``P(r) ~ 1/r``, a Zipf-like long tail as in the real data), 4% empty. The vocabulary kept at
    ``min_count`` 10 then grows with the rows roughly as it does on Criteo."""
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
            for j in range(26):
                card = CRITEO_CARDINALITY[j]
                rank = np.minimum(np.exp(rng.random(n) * np.log(card)).astype(np.uint64), np.uint64(card - 1))
                ids = ((rank + np.uint64(j << 24)) * np.uint64(2654435761)) % np.uint64(1 << 32)
                digits = hexd[((ids[:, None] >> shifts) & np.uint64(15)).astype(np.intp)]
                v = pa.array(np.ascontiguousarray(digits).view("S8").ravel()).cast(pa.string())
                cols.append(pc_mask(v, rng.random(n) < 0.04))
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


def _run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"stage failed ({out.returncode}):\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--tmp", default="/tmp", help="where the generated file and the encoded shards go")
    p.add_argument("--results-dir", default=None)
    p.add_argument("--dry-run", action="store_true")
    args = p.parse_args(argv)
    from gatelab.core.harness import ledger

    rows_out = []
    for n in args.rows:
        Path(args.tmp).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=args.tmp, prefix="ctr-scale-") as tmp:
            path = Path(tmp) / "criteo.tsv"
            t0 = time.perf_counter()
            generate(path, n)
            size = path.stat().st_size / 2**20
            print(f"{n} rows: {size:.0f} MiB generated in {time.perf_counter() - t0:.0f} s", flush=True)
            folder = None
            for w in args.workers:
                enc = _run(ENCODE, str(path), str(Path(tmp) / f"cache-w{w}"), str(w))
                folder = enc["folder"]
                peak = max(enc["peak_mb"], enc["child_peak_mb"])
                total = enc["peak_mb"] + w * enc["child_peak_mb"] if w > 1 else enc["peak_mb"]
                config = json.dumps({"file_mib": round(size, 1), "num_workers": w, "min_count": 10,
                                     "layout": "criteo", "vocab": enc["vocab"]}, sort_keys=True)  # fmt: skip
                rows_out.append({
                    "model": f"ctr-encode-w{w}", "dataset": "criteo-layout-generated", "split": f"{n}-rows",
                    "seed": 0, "rows_per_s": round(enc["rows"] / enc["seconds"], 1),
                    "rows_per_cpu_s": round(enc["rows"] / enc["cpu_s"], 1), "peak_rss_mb": round(peak, 1),
                    "peak_rss_total_mb": round(total, 1), "vocab": enc["vocab"], "config": config,
                })  # fmt: skip
                print(f"  encode w={w}: {enc['rows'] / enc['seconds']:10.0f} rows/s ({enc['rows'] / enc['cpu_s']:.0f} "
                      f"rows per CPU-second)  peak RSS {peak:.0f} MB "
                      f"(all processes <= {total:.0f} MB), vocab {enc['vocab']}", flush=True)  # fmt: skip
            assert folder is not None
            tr = _run(TRAIN, folder, str(args.steps))
            config = json.dumps({"file_mib": round(size, 1), "steps": args.steps, "batch_size": 4096, "in_memory": False,
                                 "model": "finalmlp embedding_dim 16", "threads": tr["threads"],
                                 "params": tr["params"]}, sort_keys=True)  # fmt: skip
            rows_out.append({
                "model": "ctr-train", "dataset": "criteo-layout-generated", "split": f"{n}-rows", "seed": 0,
                "samples_per_s": round(tr["samples"] / tr["seconds"], 1), "peak_rss_mb": round(tr["peak_mb"], 1),
                "config": config,
            })  # fmt: skip
            print(f"  train: {tr['samples'] / tr['seconds']:10.0f} samples/s  peak RSS {tr['peak_mb']:.0f} MB "
                  f"({tr['params']} parameters)", flush=True)  # fmt: skip
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
                "Encode (raw criteo layout, 1 and 2 processes, into memory-mapped row shards) and train (FinalMLP, "
                "batch 4096, Adam, batches gathered from the memory-mapped shards) on generated Criteo-layout TSVs; "
                "peak RSS = VmHWM of each stage's fresh process (encode: the largest process; peak_rss_total_mb: "
                "main + workers). Rows named ctr-encode (no -wN) are the earlier single-process encoder."
            ),
            metrics=["rows_per_s", "rows_per_cpu_s", "samples_per_s", "peak_rss_mb", "peak_rss_total_mb", "vocab"],
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
