"""The long-horizon forecasting (LTSF) benchmarks: files, digests, frequency and split rule.

Light on purpose (no pandas, no Lightning). :mod:`gatelab.timeseries.registry` declares every
dataset here with the harness (lazily, as ``LTSF_DATASETS.<name>.spec``) so ``gatelab env``
lists them and ledger records carry their ``data_sha256``, and declares the data module ``ltsf``
(:func:`gatelab.timeseries.data.datamodule.ltsf_datamodule`). The reader lives in
:mod:`gatelab.timeseries.data.ltsf`.

Datasets (the Autoformer / iTransformer "all_six_datasets" bundle plus Solar from LSTNet):

========= ==================== ======================= ====== ======= ========== ==================
name      folder / file        rows x vars             freq   split   lookback   horizons
========= ==================== ======================= ====== ======= ========== ==================
etth1     ETT-small/ETTh1.csv  17420 x 7               1 h    ett_h   96         96 192 336 720
etth2     ETT-small/ETTh2.csv  17420 x 7               1 h    ett_h   96         96 192 336 720
ettm1     ETT-small/ETTm1.csv  69680 x 7               15 min ett_m   96         96 192 336 720
ettm2     ETT-small/ETTm2.csv  69680 x 7               15 min ett_m   96         96 192 336 720
weather   weather/weather.csv  52696 x 21              10 min custom  96         96 192 336 720
exchange  exchange_rate/...csv 7588 x 8                1 day  custom  96         96 192 336 720
ili       illness/national...  966 x 7                 7 days custom  36         24 36 48 60
ecl       electricity/...csv   26304 x 321             1 h    custom  96         96 192 336 720
traffic   traffic/traffic.csv  17544 x 862             1 h    custom  96         96 192 336 720
solar     Solar/solar_AL.txt   52560 x 137 (no dates)  10 min solar   96         96 192 336 720
========= ==================== ======================= ====== ======= ========== ==================

plus ``exchange-lstnet`` (``exchange_rate/exchange_rate.txt``, the LSTNet original of Exchange:
no header, no dates; same values with the last two columns swapped).

Split rules (``split``), with ``L`` the lookback; every split is ``[start, end)`` in file rows and
the validation/test windows start ``L`` rows early so the first target follows the split edge:

* ``ett_h``: train ``[0, 8640)``, val ``[8640 - L, 11520)``, test ``[11520 - L, 14400)``
  (12/4/4 months of 30 days x 24 h; rows after 14400 are not used, as in Informer).
* ``ett_m``: the same in 15-minute rows (x4): 34560 / 46080 / 57600.
* ``custom``: ``n_train = int(0.7 n)``, ``n_test = int(0.2 n)``, ``n_val = n - n_train - n_test``;
  train ``[0, n_train)``, val ``[n_train - L, n_train + n_val)``, test ``[n - n_test - L, n)``.
* ``solar``: as ``custom`` but ``n_val = int(0.1 n)`` (the official Solar loader), so the rows
  between ``n_train + n_val`` and ``n - n_test`` belong to no split.

Digests: from the ``SOURCE.txt`` of the shared data (plain and ``.gz`` forms where known).
ECL (``electricity.csv``), Traffic (``traffic.csv``) and Solar (``solar_AL.txt``) were not
available to us, so their digests are ``None`` (the file is only required to exist); their
readers are tested on small files in the same format.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from gatelab.core.harness.data import DatasetSpec

__all__ = [
    "EMBEDDED_DIR",
    "EMBEDDED_FILES",
    "LTSF_DATASETS",
    "LTSFDataset",
    "get_ltsf_dataset",
]

#: folder of the files shipped inside the package (only ETTh1, CC BY-ND 4.0, unmodified)
EMBEDDED_DIR = Path(__file__).resolve().parent / "embedded"
#: dataset name -> (file name in EMBEDDED_DIR, sha256 of that file)
EMBEDDED_FILES: dict[str, tuple[str, str]] = {
    "etth1": ("ETTh1.csv", "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066"),
}

SPLITS = ("ett_h", "ett_m", "custom", "solar")

_ETT_SOURCE = (
    "https://github.com/zhouhaoyi/ETDataset (folder ETT-small; commit 1d16c8f4f943005d613b5bc962e9eeb06058cf07), "
    "or the Autoformer/iTransformer dataset bundle (https://github.com/thuml/iTransformer#usage)"
)
_BUNDLE_SOURCE = (
    "the Autoformer 'all_six_datasets' bundle linked from https://github.com/thuml/Autoformer "
    "and https://github.com/thuml/iTransformer#usage (folder {folder})"
)
_LSTNET_SOURCE = (
    "https://github.com/laiguokun/multivariate-time-series-data ({path}; LSTNet, Lai et al. SIGIR 2018)"
)
_RESEARCH_USE = "no license stated by the source; research benchmark data (cite the source paper)"


@dataclasses.dataclass(frozen=True)
class LTSFDataset:
    """One long-horizon forecasting benchmark: where its file is and how it is split.

    Attributes:
        name: registry key (lower case), also the ledger ``dataset`` value.
        title: the name papers use (``"ETTh1"``).
        spec: the harness :class:`~gatelab.core.harness.data.DatasetSpec` (folder, file, digests).
        file: the file inside ``spec.subdir`` (``.gz`` accepted in its place).
        layout: ``"csv"`` (header with a ``date`` column, the variables, the target) or
            ``"lstnet"`` (no header, no dates, comma-separated floats).
        freq: sampling interval as a pandas offset alias (``"h"``, ``"15min"``, ``"D"``, ``"7D"``);
            the reader checks the ``date`` column against it.
        split: split rule (``ett_h``, ``ett_m``, ``custom``, ``solar``; see the module docstring).
        num_vars: number of variables (columns besides ``date``).
        target: target column for the S / MS modes (``None``: the last column).
        lookback: the lookback the literature uses.
        horizons: the horizons the literature reports.
        steps: the time-step policy of :func:`~gatelab.timeseries.data.ltsf.read_ltsf_file` for
            this dataset: ``"keep"`` (the official loaders use the rows as they are; Weather has
            a repeated timestamp and a 100-minute gap, kept with a warning).
    """

    name: str
    title: str
    spec: DatasetSpec
    file: str
    layout: str
    freq: str
    split: str
    num_vars: int
    target: str | None = "OT"
    lookback: int = 96
    horizons: tuple[int, ...] = (96, 192, 336, 720)
    steps: str = "keep"

    def __post_init__(self) -> None:
        if self.layout not in ("csv", "lstnet"):
            raise ValueError(
                f"LTSFDataset({self.name!r}): layout must be 'csv' or 'lstnet', got {self.layout!r}"
            )
        if self.split not in SPLITS:
            raise ValueError(f"LTSFDataset({self.name!r}): split must be one of {SPLITS}, got {self.split!r}")
        if self.steps not in ("error", "keep", "insert"):
            raise ValueError(f"LTSFDataset({self.name!r}): steps must be error, keep or insert, got {self.steps!r}")
        if self.file not in self.spec.files:
            raise ValueError(f"LTSFDataset({self.name!r}): {self.file!r} is not a file of its DatasetSpec")

    @property
    def embedded(self) -> Path | None:
        """The copy shipped inside the package, if any (only ETTh1)."""
        entry = EMBEDDED_FILES.get(self.name)
        return EMBEDDED_DIR / entry[0] if entry else None


def _ds(
    name: str,
    title: str,
    subdir: str,
    file: str,
    digest: str | tuple[str, ...] | None,
    *,
    source: str,
    license: str,
    description: str,
    **kw: object,
) -> LTSFDataset:
    spec = DatasetSpec(
        name=name,
        subdir=subdir,
        files={file: digest},
        source=source,
        license=license,
        description=description,
    )
    return LTSFDataset(name=name, title=title, spec=spec, file=file, **kw)  # type: ignore[arg-type]


_ETT_LICENSE = (
    "CC BY-ND 4.0 (unmodified redistribution with attribution allowed; cite Zhou et al., Informer, AAAI 2021)"
)

LTSF_DATASETS: dict[str, LTSFDataset] = {
    d.name: d
    for d in (
        _ds(
            "etth1",
            "ETTh1",
            "ETT-small",
            "ETTh1.csv",
            "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066",
            source=_ETT_SOURCE,
            license=_ETT_LICENSE,
            description="ETTh1: electricity transformer temperature, hourly, 7 variables (embedded copy shipped)",
            layout="csv",
            freq="h",
            split="ett_h",
            num_vars=7,
        ),
        _ds(
            "etth2",
            "ETTh2",
            "ETT-small",
            "ETTh2.csv",
            "a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b",
            source=_ETT_SOURCE,
            license=_ETT_LICENSE,
            description="ETTh2: electricity transformer temperature, hourly, 7 variables",
            layout="csv",
            freq="h",
            split="ett_h",
            num_vars=7,
        ),
        _ds(
            "ettm1",
            "ETTm1",
            "ETT-small",
            "ETTm1.csv",
            (
                "6ce1759b1a18e3328421d5d75fadcb316c449fcd7cec32820c8dafda71986c9e",  # ETTm1.csv
                "73c18304514c26a5cddba02e6538513a0e23b2fbb59752535adbf541c9edc672",  # ETTm1.csv.gz
            ),
            source=_ETT_SOURCE,
            license=_ETT_LICENSE,
            description="ETTm1: electricity transformer temperature, 15 min, 7 variables",
            layout="csv",
            freq="15min",
            split="ett_m",
            num_vars=7,
        ),
        _ds(
            "ettm2",
            "ETTm2",
            "ETT-small",
            "ETTm2.csv",
            (
                "db973ca252c6410a30d0469b13d696cf919648d0f3fd588c60f03fdbdbadd1fd",  # ETTm2.csv
                "5122051efae7be24b40bedc80ee445bd18298552b940084f0dbe329c5157110a",  # ETTm2.csv.gz
            ),
            source=_ETT_SOURCE,
            license=_ETT_LICENSE,
            description="ETTm2: electricity transformer temperature, 15 min, 7 variables",
            layout="csv",
            freq="15min",
            split="ett_m",
            num_vars=7,
        ),
        _ds(
            "weather",
            "Weather",
            "weather",
            "weather.csv",
            (
                "34ee981d07313e51da2a50bb600072c8ae4a69cb4b0651f4cb93a069d7a2ba63",  # weather.csv
                "862e9b447a3933f14b6f2d3d686a35d3adb5a486f97acfa46869be0e4bb682db",  # weather.csv.gz (HiCR-Mamba)
            ),
            source=_BUNDLE_SOURCE.format(folder="weather/weather.csv"),
            license=_RESEARCH_USE + " (MPI-BGC Jena weather station; cite Autoformer)",
            description="Weather: Jena 2020, 10 min, 21 variables (target OT = CO2)",
            layout="csv",
            freq="10min",
            split="custom",
            num_vars=21,
        ),
        _ds(
            "exchange",
            "Exchange",
            "exchange_rate",
            "exchange_rate.csv",
            "48b4d9d3d508f5104162e85b9a6042e3557fde11aa9f2944eba8c0d0efc89842",  # CRLF variant (SST mirror)
            source=_BUNDLE_SOURCE.format(folder="exchange_rate/exchange_rate.csv"),
            license=_RESEARCH_USE + " (cite LSTNet, Lai et al. 2018)",
            description="Exchange: daily exchange rates of 8 countries 1990-2010",
            layout="csv",
            freq="D",
            split="custom",
            num_vars=8,
        ),
        _ds(
            "exchange-lstnet",
            "Exchange (LSTNet)",
            "exchange_rate",
            "exchange_rate.txt",
            (
                # decompressed exchange_rate.txt: computed by us from the official .gz below
                "0127465b51e3cd3c360f8eb2be30cfd294689a2a55903eb8245aafc396626c7f",
                "6a4fbb561dcdee43f071a83badbeec9223a335552278348656738b556f1c2e9d",  # exchange_rate.txt.gz
            ),
            source=_LSTNET_SOURCE.format(path="exchange_rate/exchange_rate.txt.gz"),
            license=_RESEARCH_USE + " (cite LSTNet, Lai et al. 2018)",
            description="Exchange in the LSTNet layout (no header, no dates; OT is column 6)",
            layout="lstnet",
            freq="D",
            split="custom",
            num_vars=8,
            target=None,
        ),
        _ds(
            "ili",
            "ILI",
            "illness",
            "national_illness.csv",
            "8594cecb98c6f2f9dc014eca11c4d5d1e38ad5ce6ed0592d4abe65b146fce395",
            source=_BUNDLE_SOURCE.format(folder="illness/national_illness.csv"),
            license="US CDC FluView public data; cite Autoformer",
            description="ILI: US CDC weekly influenza-like illness 2002-2020, 7 variables",
            layout="csv",
            freq="7D",
            split="custom",
            num_vars=7,
            lookback=36,
            horizons=(24, 36, 48, 60),
        ),
        _ds(
            "ecl",
            "ECL",
            "electricity",
            "electricity.csv",
            None,
            source=_BUNDLE_SOURCE.format(folder="electricity/electricity.csv")
            + "; derived from the UCI ElectricityLoadDiagrams20112014 data via LSTNet",
            license=_RESEARCH_USE + " (UCI data set CC BY 4.0; cite LSTNet and Autoformer)",
            description="ECL: hourly electricity consumption of 321 clients 2016-2019 (digest unknown here)",
            layout="csv",
            freq="h",
            split="custom",
            num_vars=321,
        ),
        _ds(
            "traffic",
            "Traffic",
            "traffic",
            "traffic.csv",
            None,
            source=_BUNDLE_SOURCE.format(folder="traffic/traffic.csv")
            + "; Caltrans PeMS road occupancy via LSTNet",
            license=_RESEARCH_USE + " (cite LSTNet and Autoformer)",
            description="Traffic: hourly occupancy of 862 San Francisco Bay Area sensors (digest unknown here)",
            layout="csv",
            freq="h",
            split="custom",
            num_vars=862,
        ),
        _ds(
            "solar",
            "Solar",
            "Solar",
            "solar_AL.txt",
            None,
            source=_LSTNET_SOURCE.format(path="solar-energy/solar_AL.txt.gz")
            + "; iTransformer's bundle (https://github.com/thuml/iTransformer#usage) has it as Solar/solar_AL.txt",
            license=_RESEARCH_USE + " (NREL solar power data; cite LSTNet)",
            description="Solar: 10-min power of 137 Alabama PV plants in 2006, LSTNet layout (digest unknown here)",
            layout="lstnet",
            freq="10min",
            split="solar",
            num_vars=137,
            target=None,
        ),
    )
}


def get_ltsf_dataset(name: str) -> LTSFDataset:
    """The registered LTSF dataset ``name`` (case-insensitive: ``"ETTh1"`` works)."""
    key = name.lower()
    try:
        return LTSF_DATASETS[key]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(key, list(LTSF_DATASETS), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise KeyError(f"unknown LTSF dataset {name!r}{hint}; known: {', '.join(LTSF_DATASETS)}") from None
