"""``gatelab predict``: run a saved model on new data in its domain's natural formats.

One entry point for every domain::

    gatelab predict --model DIR --input PATH --output PATH [--batch-size N] [--device cpu] [--num-threads N]

``DIR`` is a :func:`~gatelab.core.pretrained.save_pretrained` folder (``gatelab export CKPT DIR``
makes one from a training checkpoint). The model's registry entry names its domain; the domain's
``gatelab.<domain>.predict`` module reads the input, applies the preprocessing saved with the
model (``model.preprocessing``), runs the model in batches and writes the output:

=============  =====================================================================
domain         input -> output
=============  =====================================================================
timeseries     a CSV/parquet frame -> forecasts (series ids, timestamps, one column per quantile)
recsys         a CSV of feature columns -> scores with a row id (CSV)
vision         an image / NIfTI file or a folder -> masks (+ attention maps) or restored images
multimodal     images (+ prompts) -> generated captions and per-token gate values (JSONL)
=============  =====================================================================

The domain contract (what ``gatelab.<domain>.predict`` provides):

* ``UNIT: str`` - what one predicted item is ("rows", "images", "captions"), for the report;
* ``predict_path(model, input, output, options) -> int`` - writes ``output`` and returns the
  number of items predicted. Inputs that do not fit the saved preprocessing (a missing column,
  unseen categories, a wrong channel count) raise :class:`~gatelab.core.harness.errors.DataError`
  naming the file and the fault; nothing is dropped or filled silently.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from gatelab.core.config import ConfigError
from gatelab.core.harness.errors import DataError

__all__ = ["PredictOptions", "PredictReport", "predict", "progress"]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class PredictOptions:
    """How to run a model on new data.

    Attributes:
        batch_size: items per forward pass (rows, windows, images, captions).
        device: a torch device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
        num_threads: ``torch.set_num_threads`` for the run (``None``: leave torch's default).
        progress: show a progress bar on stderr.
    """

    batch_size: int = 256
    device: str = "cpu"
    num_threads: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool) or self.batch_size < 1:
            raise ConfigError(f"predict: batch_size={self.batch_size!r}: expected an integer >= 1")
        if self.num_threads is not None and (not isinstance(self.num_threads, int) or self.num_threads < 1):
            raise ConfigError(f"predict: num_threads={self.num_threads!r}: expected an integer >= 1")


@dataclasses.dataclass(frozen=True)
class PredictReport:
    """What a :func:`predict` run did: ``items`` of ``unit`` written to ``output`` in ``seconds``."""

    model: str
    items: int
    unit: str
    seconds: float
    output: Path

    @property
    def rate(self) -> float:
        """Items per second."""
        return self.items / self.seconds if self.seconds > 0 else float("inf")

    def __str__(self) -> str:
        return f"{self.model}: {self.items} {self.unit} -> {self.output} ({self.seconds:.2f} s, {self.rate:.1f} {self.unit}/s)"


def progress(iterable: Iterable[T], *, total: int | None, desc: str, options: PredictOptions) -> Iterator[T]:
    """``iterable`` with a tqdm progress bar on stderr when ``options.progress`` (else as is)."""
    if not options.progress:
        yield from iterable
        return
    from tqdm.auto import tqdm

    yield from tqdm(iterable, total=total, desc=desc, unit="batch", leave=False)


def predict(
    model_dir: str | os.PathLike[str],
    input: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    options: PredictOptions | None = None,
    **kwargs: Any,
) -> PredictReport:
    """Run the model saved in ``model_dir`` on ``input`` and write ``output`` (see the module doc).

    Args:
        model_dir: a :func:`~gatelab.core.pretrained.save_pretrained` folder.
        input: the new data, in the model's domain format.
        output: the file (or folder, for image outputs) to write.
        options: a :class:`PredictOptions`; or pass its fields as keywords.

    Raises:
        ConfigError: ``model_dir`` is not a saved model, or its domain has no predictor.
        DataError: the input does not fit the saved preprocessing (names the file and fault).
    """
    import torch

    from gatelab.core.pretrained import CONFIG_NAME, from_pretrained, load_config, registered_entry

    opts = options if options is not None else PredictOptions(**kwargs)
    name = load_config(model_dir)["name"]
    domain = registered_entry(name, Path(model_dir) / CONFIG_NAME).domain
    in_path, out_path = Path(input), Path(output)
    if not in_path.exists():
        raise DataError(f"predict: input {in_path}: no such file or folder")
    try:
        module = importlib.import_module(f"gatelab.{domain}.predict")
    except ModuleNotFoundError as e:
        if e.name != f"gatelab.{domain}.predict":
            raise
        raise ConfigError(f"predict: the {domain} domain has no predictor (gatelab.{domain}.predict)") from None
    previous = torch.get_num_threads()
    if opts.num_threads is not None:
        torch.set_num_threads(opts.num_threads)
    try:
        model = from_pretrained(model_dir, device=opts.device)
        start = time.perf_counter()
        with torch.inference_mode():
            items = int(module.predict_path(model, in_path, out_path, opts))
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(previous)
    return PredictReport(model=name, items=items, unit=str(module.UNIT), seconds=seconds, output=out_path)
