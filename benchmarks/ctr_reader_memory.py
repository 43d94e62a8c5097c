"""Peak resident memory of streaming a raw Criteo file: gatelab's block reader vs pyarrow's
``open_csv`` (issue 18 point 3: bounded, configurable read-ahead, and the real bound in the docs).

A Criteo-layout TSV (label, I1-I13, C1-C26, no header; random values) of ``--rows`` rows is
generated once, then each reader streams it in a fresh subprocess (so peak RSS is that reader's
alone: the child's ``VmHWM``) and only counts rows:

* ``pyarrow-open_csv``: ``pyarrow.csv.open_csv`` with ``block_size`` (what gatelab used before;
  Arrow's background reader queues up to 32 blocks ahead of the consumer);
* ``gatelab-read_ahead-K``: :class:`gatelab.recsys.data.CsvReader` with ``read_ahead=K``.

Rows (table ``ctr-reader-memory``): ``peak_rss_mb``, ``baseline_rss_mb`` (the interpreter with
pyarrow imported, nothing read), ``rows_per_s``, with the file size and block size in ``config``.
Written to ``docs/results/ctr-reader-memory.jsonl`` + ``.md`` unless ``--dry-run``.

Usage::

    nice -n 10 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ctr_reader_memory.py --rows 1500000 --block-mib 8
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

CHILD = r"""
import json, sys, time

def hwm_kb():
    # VmHWM: this process's peak RSS (ru_maxrss would carry the parent's peak across exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")

import pyarrow as pa, pyarrow.csv as pcsv
path, mode, block = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode != "pyarrow-open_csv":
    from gatelab.recsys.data import CsvReader
base = hwm_kb()
names = ["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
t0 = time.perf_counter()
rows = 0
if mode == "pyarrow-open_csv":
    r = pcsv.open_csv(
        pa.input_stream(path),
        read_options=pcsv.ReadOptions(block_size=block, column_names=names),
        parse_options=pcsv.ParseOptions(delimiter="\t", quote_char=False),
        convert_options=pcsv.ConvertOptions(column_types={c: pa.string() for c in names}),
    )
    for batch in r:
        rows += batch.num_rows
else:
    k = int(mode.rsplit("-", 1)[1])
    reader = CsvReader(path, sep="\t", header=False, names=names, quoting=False, block_size=block, read_ahead=k)
    for chunk in reader.iter_chunks():
        rows += chunk.table.num_rows
dt = time.perf_counter() - t0
peak = hwm_kb()
print(json.dumps({"rows": rows, "seconds": dt, "peak_kb": peak, "base_kb": base}))
"""


def generate(path: Path, rows: int, seed: int = 0, chunk: int = 200_000) -> None:
    """A Criteo-layout TSV with ``rows`` random rows (ints with ~20% missing, 8-hex-digit ids)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv

    rng = np.random.default_rng(seed)
    names = ["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
    opts = pcsv.WriteOptions(include_header=False, delimiter="\t", quoting_style="none")
    with pa.OSFile(str(path), "wb") as sink:
        writer = None
        done = 0
        while done < rows:
            n = min(chunk, rows - done)
            cols = [pa.array(rng.integers(0, 2, n)).cast(pa.string())]
            for _ in range(13):
                v = pa.array(rng.integers(0, 5000, n)).cast(pa.string())
                cols.append(pa.array(np.where(rng.random(n) < 0.2, None, v.to_numpy(zero_copy_only=False))))
            for _ in range(26):
                ids = rng.integers(0, 1 << 20, n) * 2654435761 % (1 << 32)
                cols.append(pa.array([f"{x:08x}" for x in ids]))
            table = pa.table(cols, names=names)
            if writer is None:
                writer = pcsv.CSVWriter(sink, table.schema, write_options=opts)
            writer.write_table(table)
            done += n
        if writer is not None:
            writer.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=1_500_000)
    p.add_argument("--block-mib", type=int, default=8)
    p.add_argument("--read-ahead", type=int, nargs="+", default=[0, 1, 4])
    p.add_argument("--results-dir", default=None)
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--file", default=None, help="use this generated file (else a temporary one)")
    args = p.parse_args(argv)
    from gatelab.core.harness import ledger

    block = args.block_mib << 20
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.file) if args.file else Path(tmp) / "criteo.tsv"
        if not path.exists():
            t0 = time.perf_counter()
            generate(path, args.rows)
            print(
                f"generated {path} ({path.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t0:.0f} s"
            )
        size_mb = path.stat().st_size / 2**20
        modes = ["pyarrow-open_csv", *(f"gatelab-read_ahead-{k}" for k in args.read_ahead)]
        rows = []
        for mode in modes:
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(path), mode, str(block)],
                capture_output=True,
                text=True,
                check=True,
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            row = {
                "model": mode,
                "dataset": "criteo-layout-generated",
                "split": f"{r['rows']}-rows",
                "seed": 0,
                "peak_rss_mb": round(r["peak_kb"] / 1024, 1),
                "baseline_rss_mb": round(r["base_kb"] / 1024, 1),
                "rows_per_s": round(r["rows"] / r["seconds"], 1),
                "config": json.dumps(
                    {"file_mib": round(size_mb, 1), "block_mib": args.block_mib, "rows": r["rows"]},
                    sort_keys=True,
                ),
            }
            rows.append(row)
            print(
                f"{mode:24s} peak RSS {row['peak_rss_mb']:8.1f} MB (interpreter {row['baseline_rss_mb']:.0f} MB)  "
                f"{row['rows_per_s']:10.0f} rows/s"
            )
    command = shlex.join(
        ["python", "benchmarks/ctr_reader_memory.py", *(argv if argv is not None else sys.argv[1:])]
    )
    for r in rows:
        r["command"] = command
    if args.dry_run:
        print("\n".join(json.dumps(r) for r in rows))
        return 0
    ledger.append_records("ctr-reader-memory", rows, args.results_dir)
    print(
        ledger.render_markdown(
            "ctr-reader-memory",
            args.results_dir,
            title="ctr-reader-memory: peak RSS of streaming a raw Criteo-layout file",
            description=(
                "Peak resident memory (VmHWM of a fresh process) while streaming a generated Criteo-layout TSV "
                "and counting rows: pyarrow's open_csv (its background reader queues up to 32 blocks) vs gatelab's "
                "block reader with read_ahead K (at most K+1 raw blocks held). block_mib and file size in config."
            ),
            metrics=["peak_rss_mb", "baseline_rss_mb", "rows_per_s"],
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
