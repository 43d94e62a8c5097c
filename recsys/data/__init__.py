"""The CTR feature pipeline of gatelab.recsys.

* :mod:`.spec`: :class:`FeatureSpec` / :class:`FieldSpec`, the JSON contract between data and models;
* :mod:`.readers`: streaming readers (CSV/TSV, libsvm/libfm, parquet) with file:line errors;
* :mod:`.encoder`: chunked vocabulary fitting and encoding (``num_workers`` processes) into row shards;
* :mod:`.counting`: exact token counting and lookup on packed keys, spilled by hash partition;
* :mod:`.shards`: fixed-size memory-mapped row shards with a checked manifest;
* :mod:`.layouts`: Criteo, Avazu and BARS ``x1`` layouts, Frappe's rebuilt x1 split;
* :mod:`.frappe`: Frappe's raw-log -> x1 index mapping and the NFM training-set rebuild;
* :mod:`.datamodule`: the Lightning data module (imports Lightning; loaded lazily).

Names are exported lazily so ``import gatelab.recsys`` stays cheap.
"""

from __future__ import annotations

from gatelab.core.layers.lazy import lazy_exports

_EXPORTS = {
    "FeatureSpec": "spec",
    "FieldSpec": "spec",
    "as_feature_spec": "spec",
    "CTRDataError": "readers",
    "CsvReader": "readers",
    "LibsvmReader": "readers",
    "ParquetReader": "readers",
    "make_reader": "readers",
    "FeatureEncoder": "encoder",
    "EncodedSplit": "encoder",
    "encode_dataset": "encoder",
    "load_encoded": "encoder",
    "ShardedArray": "shards",
    "open_shards": "shards",
    "LAYOUTS": "layouts",
    "Layout": "layouts",
    "prepare_frappe_x1": "frappe",
    "CTRDataModule": "datamodule",
    "ctr_datamodule": "datamodule",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
