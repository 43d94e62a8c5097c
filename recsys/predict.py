"""``gatelab predict`` for CTR models: a file of feature columns -> a CSV of click probabilities.

Input: a CSV (``.csv``, ``.csv.gz``; ``.tsv`` for tab-separated) whose first line names the
columns, or a parquet file. It needs the raw column of every field the model was trained on
(``preprocessing.json``'s ``fields``: a field's ``column``, else its ``name``); other columns
(the label, say) are ignored. Output: a CSV ``row_id,score`` with one line per input row, in
input order: ``row_id`` is the row's value in the id column declared for the training data
(preprocessing ``id_columns``; with several, their values joined by ``|``), else the 0-based
data row index; ``score`` is ``sigmoid(logit)``, the predicted click probability.

New rows are encoded exactly as training encoded its splits (the saved vocabularies, OOV rule
and normaliser statistics; :meth:`gatelab.recsys.data.encoder.FeatureEncoder.encode_features`):

* a categorical/sequence token not in the training vocabulary (unseen, or rarer than the
  field's ``min_count``) goes to the field's OOV index, as training did for its validation and
  test rows; the counts per field are reported (a warning on the ``gatelab.recsys`` logger and
  :attr:`CTRPredictReport.oov`);
* an empty cell is a missing value, handled as in training: numeric fields take the field's
  ``fill_na``, categorical/sequence fields the OOV index (an empty sequence stays empty); counted
  in :attr:`CTRPredictReport.missing`;
* a missing column, a ``NaN`` or infinite number in a numeric field (or in a column bucketised by
  ``log_bucket``), text that is not a number there, or an empty id value raise
  :class:`~gatelab.core.harness.errors.DataError` naming the file, line and column.

A model without preprocessing (built in code and saved without data) cannot be run on raw
files: its vocabularies are unknown. Save it with ``save_pretrained(model, dir,
preprocessing=data_module.preprocessing())`` or export a training checkpoint.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import nn

from gatelab.core.config import ConfigError
from gatelab.core.harness.errors import DataError
from gatelab.core.harness.predict import PredictOptions, progress

from .data.encoder import FeatureEncoder
from .data.readers import CTRDataError, RawChunk, Reader, make_reader
from .data.spec import FeatureSpec, FieldSpec

__all__ = ["UNIT", "CTRPredictReport", "ctr_preprocessing", "predict_path", "score_file"]

UNIT = "rows"
#: bytes of raw text per chunk read from the input
_BLOCK = 1 << 22

log = logging.getLogger("gatelab.recsys")


@dataclasses.dataclass
class CTRPredictReport:
    """What :func:`score_file` did: ``rows`` scored; per field, tokens mapped to the OOV bucket
    (``oov``, non-zero counts only) and missing values (``missing``, non-zero counts only)."""

    rows: int
    oov: dict[str, int]
    missing: dict[str, int]


def ctr_preprocessing(
    model: nn.Module, where: str = "model"
) -> tuple[FeatureSpec, dict[str, list[str]], list[str]]:
    """``(spec, vocab, id_columns)`` from ``model.preprocessing`` (see
    :meth:`gatelab.recsys.data.datamodule.CTRDataModule.preprocessing`), checked against the
    model's own feature spec.

    Raises:
        ConfigError: no preprocessing, another kind, or fields that do not match the model's.
    """
    prep = getattr(model, "preprocessing", None)
    if prep is None:
        raise ConfigError(
            f"{where}: no preprocessing.json: the CTR feature spec and vocabularies are missing, so raw "
            "rows cannot be encoded; export a training checkpoint (gatelab export CKPT DIR) or save with "
            "save_pretrained(model, dir, preprocessing=data_module.preprocessing())"
        )
    if prep.get("kind") != "ctr":
        raise ConfigError(f"{where}: preprocessing kind={prep.get('kind')!r}, expected 'ctr'")
    for key, kind in (("fields", list), ("vocab", dict)):
        if not isinstance(prep.get(key), kind):
            raise ConfigError(f"{where}: preprocessing.json key {key!r} missing or not a {kind.__name__}")
    try:
        spec = FeatureSpec(
            [FieldSpec.from_dict(f, f"preprocessing.json fields[{i}]") for i, f in enumerate(prep["fields"])],
            label=str(prep.get("label", "label")),
        )
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    vocab = prep["vocab"]
    config = getattr(model, "config", None)
    model_spec = config.spec() if callable(getattr(config, "spec", None)) else None
    if isinstance(model_spec, FeatureSpec):
        have = [(f.name, f.type, f.vocab_size) for f in model_spec.fields]
        want = [(f.name, f.type, f.vocab_size) for f in spec.fields]
        if have != want:
            raise ConfigError(
                f"{where}: preprocessing.json fields {want} do not match the model's (name, type, vocab_size) {have}"
            )
    for f in spec.fields:
        if f.type == "numeric":
            if f.normalizer != "none" and not f.stats:
                raise ConfigError(
                    f"{where}: field {f.name!r}: normalizer={f.normalizer} without training stats"
                )
            continue
        tokens = vocab.get(f.name)
        if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
            raise ConfigError(
                f"{where}: preprocessing.json vocab[{f.name!r}] missing or not a list of strings"
            )
        if f.num_tokens != len(tokens):
            raise ConfigError(
                f"{where}: vocab[{f.name!r}] has {len(tokens)} tokens, the field says num_tokens={f.num_tokens}"
            )
    id_columns = prep.get("id_columns") or []
    if not isinstance(id_columns, list) or not all(isinstance(c, str) and c for c in id_columns):
        raise ConfigError(
            f"{where}: preprocessing.json id_columns={id_columns!r}: expected a list of column names"
        )
    return spec, vocab, id_columns


def _reader(path: Path, needed: list[str], spec: FeatureSpec) -> Reader:
    """A reader of ``path`` restricted to the ``needed`` columns; a missing one is named."""
    suffixes = [s for s in path.suffixes if s != ".gz"]
    fmt = suffixes[-1].lstrip(".") if suffixes else "csv"
    if fmt not in ("csv", "tsv", "txt", "parquet"):
        raise DataError(
            f"{path}: predict reads .csv, .tsv (with a header line) or .parquet files, not .{fmt}"
        )
    kw: dict[str, Any] = {} if fmt == "parquet" else {"block_size": _BLOCK}
    reader = make_reader(path, "csv" if fmt == "txt" else fmt, **kw)
    have = list(getattr(reader, "all_columns", reader.columns))
    missing = [c for c in needed if c not in have]
    if missing:
        users = {c: [f"{f.name} ({f.type})" for f in spec.fields if f.source == c] for c in missing}
        detail = "; ".join(
            f"{c!r} for field {', '.join(u)}" if u else f"{c!r} (the id column)" for c, u in users.items()
        )
        raise CTRDataError(
            f"{path}: missing column(s) {missing}: {detail}; the file has {have}"
            + ("" if fmt == "parquet" else " (the first line must name the columns)")
        )
    return make_reader(path, "csv" if fmt == "txt" else fmt, columns=needed, **kw)


def _check_numbers(chunk: RawChunk, reader: Reader, spec: FeatureSpec) -> None:
    """A NaN or infinite value in a numeric (or ``log_bucket``) column names its file, line and column."""
    for f in spec.fields:
        if f.type != "numeric" and f.preprocess != "log_bucket":
            continue
        try:
            x = pc.cast(chunk.table.column(f.source), pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue  # text that is not a number: the encoder names it
        bad = pc.fill_null(pc.or_(pc.is_nan(x), pc.is_inf(x)), False)
        if pc.any(bad).as_py():
            i = int(pc.index(bad, True).as_py())
            raise CTRDataError(
                f"{reader.path}:{chunk.line_of(i)}: column {f.source!r} (field {f.name!r}): "
                f"{chunk.table.column(f.source)[i].as_py()!r} is not a finite number"
            )


def _row_ids(chunk: RawChunk, reader: Reader, id_columns: list[str], start: int) -> list[str]:
    n = chunk.table.num_rows
    if not id_columns:
        return [str(i) for i in range(start, start + n)]
    values = []
    for c in id_columns:
        col = chunk.table.column(c)
        if col.null_count:
            i = int(pc.index(pc.is_null(col), True).as_py())
            raise CTRDataError(f"{reader.path}:{chunk.line_of(i)}: empty id in column {c!r}")
        values.append([str(v) for v in col.to_pylist()])
    return ["|".join(parts) for parts in zip(*values)]


def _batches(
    reader: Reader,
    encoder: FeatureEncoder,
    spec: FeatureSpec,
    id_columns: list[str],
    batch_size: int,
    oov: dict[str, int],
    missing: dict[str, int],
) -> Iterator[tuple[list[str], dict[str, np.ndarray]]]:
    """``(row ids, feature arrays)`` of at most ``batch_size`` rows, in input order."""
    start = 0
    for chunk in reader.iter_chunks():
        n = chunk.table.num_rows
        _check_numbers(chunk, reader, spec)
        ids = _row_ids(chunk, reader, id_columns, start)
        arrays = encoder.encode_features(chunk, reader, oov, missing)
        for lo in range(0, n, batch_size):
            yield ids[lo : lo + batch_size], {k: a[lo : lo + batch_size] for k, a in arrays.items()}
        start += n


def score_file(model: nn.Module, input: Path, output: Path, options: PredictOptions) -> CTRPredictReport:
    """Score every row of ``input`` and write ``row_id,score`` lines to ``output`` (see the
    module docstring); returns the counts. The model is put in eval mode and run without
    gradients; ``output`` appears only when every row is scored."""
    spec, vocab, id_columns = ctr_preprocessing(model, str(input))
    encoder = FeatureEncoder(spec.fields, spec.label)
    encoder.load_vocab(spec, {k: vocab[k] for k in vocab if k in spec.names})
    needed = list(dict.fromkeys([f.source for f in spec.fields] + id_columns))
    reader = _reader(Path(input), needed, spec)
    oov = {f.name: 0 for f in spec.fields if f.type != "numeric"}
    missing = {f.name: 0 for f in spec.fields}
    device = torch.device(options.device)
    output.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    tmp = output.with_name(output.name + ".part")
    model.eval()
    try:
        with open(tmp, "w", newline="") as fh, torch.inference_mode():
            out = csv.writer(fh, lineterminator="\n")
            out.writerow(["row_id", "score"])
            batches = _batches(reader, encoder, spec, id_columns, options.batch_size, oov, missing)
            for ids, arrays in progress(batches, total=None, desc="ctr predict", options=options):
                inputs = {
                    k: torch.from_numpy(np.ascontiguousarray(a)).to(
                        device, torch.long if k != "numeric" else None
                    )
                    for k, a in arrays.items()
                }
                scores = torch.sigmoid(model(**inputs).float()).cpu().numpy()
                out.writerows(zip(ids, (f"{s:.9g}" for s in scores)))
                rows += len(ids)
        if rows == 0:
            raise CTRDataError(f"{input}: no data rows")
        os.replace(tmp, output)
    finally:
        if tmp.exists():
            tmp.unlink()
    report = CTRPredictReport(
        rows, {k: v for k, v in oov.items() if v}, {k: v for k, v in missing.items() if v}
    )
    if report.oov:
        log.warning(
            "gatelab.recsys: %s: %d value(s) unseen in training mapped to the OOV bucket, as training did (%s)",
            input,
            sum(report.oov.values()),
            ", ".join(f"{k} {v}" for k, v in report.oov.items()),
        )
    if report.missing:
        log.info(
            "gatelab.recsys: %s: missing values (numeric: fill_na, categorical: OOV, as in training): %s",
            input,
            ", ".join(f"{k} {v}" for k, v in report.missing.items()),
        )
    return report


def predict_path(model: nn.Module, input: Path, output: Path, options: PredictOptions) -> int:
    """The ``gatelab predict`` entry of the recsys domain: :func:`score_file`; returns the rows scored."""
    return score_file(model, Path(input), Path(output), options).rows
