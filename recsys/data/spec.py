"""``FeatureSpec``: the contract between encoded CTR data and the models (FuxiCTR's FeatureMap).

A :class:`FeatureSpec` lists the fields of a CTR dataset in model order, each a
:class:`FieldSpec` with its type and what a model needs to embed it:

* ``categorical``: one token per row; ``vocab_size`` indices ``0 .. V+1`` where ``0`` is padding
  (never produced for categorical fields), ``1 .. V`` the vocabulary (most frequent first) and
  ``V + 1`` the out-of-vocabulary (OOV) bucket, which also receives missing values and tokens
  rarer than ``min_count`` (FuxiCTR's layout);
* ``numeric``: one float per row (optionally normalised, see ``normalizer``); embedded as
  ``value * w_field``;
* ``sequence`` (multi-valued): up to ``max_len`` tokens per row split on ``splitter``, padded with
  ``0`` after the tokens; same index layout as categorical fields; the model pools a row's token
  embeddings by ``pooling`` (``mean``, the default, ``sum`` or ``max``; padding excluded).

Two alternatives to a per-field vocabulary (categorical and sequence fields):

* ``hash_buckets: N``: vocabulary-free; token ``t`` -> ``1 + (blake2b64(t) mod N)``
  (:mod:`gatelab.recsys.data.hashing`: a stable hash, not Python's salted ``hash``),
  ``vocab_size = N + 1``, no OOV bucket (``num_tokens`` 0, ``min_count`` not allowed);
* ``share_embedding: <field>``: this field uses the embedding table (and so the index space: the
  vocabulary, fitted on both fields' training tokens, or the hash buckets) of another
  categorical/sequence field, e.g. ``clicked_users`` (a sequence) sharing ``user_id``'s table. The
  owner must not share itself; both must have the same embedding size; the sharer sets neither
  ``hash_buckets`` nor ``min_count`` (the owner's apply).

A raw column can be turned into categorical tokens by ``preprocess``: ``log_bucket`` (Criteo's
winning-solution transform of a numeric column, ``floor(log(x)^2)`` for ``x > 2``, else
``int(x)``; FuxiCTR's ``convert_to_bucket``), or ``hour_of_day`` / ``weekday`` / ``weekend`` of
Avazu's ``YYMMDDHH`` ``hour`` column (FuxiCTR's ``convert_hour/weekday/weekend``).

The fitted spec is saved as ``feature_spec.json`` next to the encoded arrays; the vocabularies
themselves go to ``vocab.json`` (they can hold millions of tokens and models never need them).
:meth:`FeatureSpec.model_dict` is the small part a model is built from (names, types, sizes,
embedding dims): that dict is what data modules pass as the ``feature_spec`` model argument.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from gatelab.core.config import ConfigError, check_keys, did_you_mean

__all__ = [
    "FIELD_TYPES",
    "NA_POLICIES",
    "NORMALIZERS",
    "POOLINGS",
    "PREPROCESSORS",
    "FeatureSpec",
    "FieldSpec",
    "as_feature_spec",
]

FIELD_TYPES = ("categorical", "numeric", "sequence")
NORMALIZERS = ("none", "minmax", "standard")
NA_POLICIES = ("error", "fill", "drop_row", "mask")
PREPROCESSORS = (None, "log_bucket", "hour_of_day", "weekday", "weekend")
POOLINGS = ("mean", "sum", "max")
SPEC_FORMAT = "gatelab.recsys.FeatureSpec/1"


@dataclasses.dataclass
class FieldSpec:
    """One input field.

    Raw-data keys (what to read and how to process it):
        name: field name (also the column name in the raw data unless ``column`` is given).
        type: ``categorical``, ``numeric`` or ``sequence``.
        column: raw column to read (default: ``name``).
        min_count: tokens seen fewer times in the training split go to the OOV bucket
            (``None``: the encoder's default).
        preprocess: ``log_bucket``, ``hour_of_day``, ``weekday`` or ``weekend`` (see above;
            only with ``type: categorical``).
        fill_na: the value that replaces a missing (empty), NaN or infinite entry of a numeric
            field (or of the number a ``log_bucket`` field reads); giving it sets
            ``na_policy: fill``. Must be finite. Default ``None``: no filling.
        na_policy: what a missing (empty), NaN or infinite numeric entry does (counted per split
            in ``FeatureSpec.splits[split]["na"]``):
            ``error`` (the default without ``fill_na``): a :class:`CTRDataError` naming
            file:line and column; ``fill``: replaced by ``fill_na`` (in raw units, before
            normalisation); ``drop_row``: the row is removed from the split; ``mask`` (numeric
            fields only): encoded as ``0`` after normalisation, so the field's embedding
            ``value * w`` is the zero vector, and recorded in the ``numeric_mask`` shards.
            Categorical and sequence fields: a missing entry goes to the OOV bucket (an empty
            sequence) unless ``na_policy`` is ``error`` or ``drop_row``.
        normalizer: numeric fields: ``none``, ``minmax`` (to [0, 1] with the training min/max;
            ``x - min`` when max == min) or ``standard`` (zero mean, unit variance on the
            training split, Welford/Chan statistics over the chunks; ``x - mean`` when the
            training std is 0, as scikit-learn's scaler). Statistics use the finite observed
            training values only (not filled, masked or dropped entries).
        splitter: sequence fields: token separator (default ``^``, FuxiCTR's).
        max_len: sequence fields: tokens kept per row (``None``: the longest training row).
        hash_buckets: categorical/sequence fields: hash tokens into this many buckets instead of
            fitting a vocabulary (see the module docstring); ``None``: a vocabulary.
        share_embedding: categorical/sequence fields: the name of the field whose embedding
            table (and index space) this field uses; ``None``: its own table.

    Fitted keys (filled by the encoder):
        vocab_size: indices of a categorical/sequence field, ``num_tokens + 2``.
        num_tokens: tokens in the vocabulary.
        stats: numeric fields: ``min``, ``max``, ``mean``, ``std`` on the training split.

    Model keys:
        embedding_dim: this field's embedding size (``None``: the model's ``embedding_dim``).
        pooling: sequence fields: how the model pools the token embeddings of a row over its
            non-padding positions: ``mean`` (``None`` means ``mean``), ``sum`` or ``max``
            (per dimension). An empty sequence pools to the zero vector for every pooling (for
            ``max`` by rule: the max over no element is defined as 0).
    """

    name: str
    type: str
    column: str | None = None
    min_count: int | None = None
    preprocess: str | None = None
    fill_na: float | None = None
    na_policy: str | None = None
    normalizer: str = "none"
    splitter: str = "^"
    max_len: int | None = None
    vocab_size: int | None = None
    num_tokens: int | None = None
    stats: dict[str, float] | None = None
    embedding_dim: int | None = None
    hash_buckets: int | None = None
    share_embedding: str | None = None
    pooling: str | None = None

    def __post_init__(self) -> None:
        where = f"field {self.name!r}"
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"field name must be a non-empty string, got {self.name!r}")
        if self.type not in FIELD_TYPES:
            raise ConfigError(f"{where}: type={self.type!r} is not one of {', '.join(FIELD_TYPES)}")
        if self.normalizer not in NORMALIZERS:
            raise ConfigError(
                f"{where}: normalizer={self.normalizer!r} is not one of {', '.join(NORMALIZERS)}"
            )
        if self.normalizer != "none" and self.type != "numeric":
            raise ConfigError(f"{where}: normalizer applies to numeric fields only")
        if self.preprocess not in PREPROCESSORS:
            raise ConfigError(f"{where}: preprocess={self.preprocess!r} is not one of {PREPROCESSORS}")
        if self.preprocess is not None and self.type != "categorical":
            raise ConfigError(
                f"{where}: preprocess={self.preprocess} makes categorical tokens; set type: categorical"
            )
        for key in ("min_count", "max_len", "vocab_size", "num_tokens", "embedding_dim", "hash_buckets"):
            v = getattr(self, key)
            lo = 0 if key == "num_tokens" else 1
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < lo):
                raise ConfigError(f"{where}: {key} must be an int >= {lo}, got {v!r}")
        if self.na_policy is not None and self.na_policy not in NA_POLICIES:
            raise ConfigError(f"{where}: na_policy={self.na_policy!r} is not one of {', '.join(NA_POLICIES)}")
        if self.fill_na is not None:
            if isinstance(self.fill_na, bool) or not isinstance(self.fill_na, (int, float)):
                raise ConfigError(f"{where}: fill_na must be a number, got {self.fill_na!r}")
            if not math.isfinite(self.fill_na):
                raise ConfigError(f"{where}: fill_na must be finite, got {self.fill_na!r}")
            if not self.reads_number:
                raise ConfigError(
                    f"{where}: fill_na applies to numeric fields (and log_bucket); a missing "
                    f"{self.type} entry goes to the OOV bucket"
                )
            if self.na_policy not in (None, "fill"):
                raise ConfigError(
                    f"{where}: fill_na={self.fill_na!r} contradicts na_policy={self.na_policy!r}"
                )
        if self.na_policy == "fill" and self.fill_na is None:
            raise ConfigError(f"{where}: na_policy=fill needs a fill_na value")
        if self.na_policy == "mask" and self.type != "numeric":
            raise ConfigError(f"{where}: na_policy=mask applies to numeric fields only")
        if self.type == "sequence" and not self.splitter:
            raise ConfigError(f"{where}: a sequence field needs a splitter")
        if self.pooling is not None:
            if self.type != "sequence":
                raise ConfigError(
                    f"{where}: pooling={self.pooling!r} applies to sequence fields only (this one is {self.type})"
                )
            if self.pooling not in POOLINGS:
                raise ConfigError(f"{where}: pooling={self.pooling!r} is not one of {', '.join(POOLINGS)}")
        if self.hash_buckets is not None:
            if self.type == "numeric":
                raise ConfigError(f"{where}: hash_buckets applies to categorical and sequence fields only")
            if self.min_count is not None:
                raise ConfigError(
                    f"{where}: min_count={self.min_count} has no effect with hash_buckets={self.hash_buckets} "
                    "(a hashed field has no vocabulary); remove one of them"
                )
            if self.vocab_size is not None and self.vocab_size != self.hash_buckets + 1:
                raise ConfigError(
                    f"{where}: vocab_size={self.vocab_size} != hash_buckets + 1 = {self.hash_buckets + 1}"
                )
        if self.share_embedding is not None:
            if not isinstance(self.share_embedding, str) or not self.share_embedding:
                raise ConfigError(f"{where}: share_embedding must be a field name, got {self.share_embedding!r}")
            if self.type == "numeric":
                raise ConfigError(f"{where}: share_embedding applies to categorical and sequence fields only")
            if self.share_embedding == self.name:
                raise ConfigError(f"{where}: share_embedding names the field itself")
            own = [k for k in ("hash_buckets", "min_count") if getattr(self, k) is not None]
            if own:
                raise ConfigError(
                    f"{where}: shares {self.share_embedding!r}'s table, so {own} are the owner's; "
                    f"remove {', '.join(own)} from {self.name!r}"
                )

    @property
    def pool(self) -> str:
        """The pooling of a sequence field (``pooling``, default ``mean``)."""
        return self.pooling or "mean"

    @property
    def table_owner(self) -> str:
        """The field whose embedding table (and index space) this field uses: ``share_embedding`` or itself."""
        return self.share_embedding or self.name

    @property
    def reads_number(self) -> bool:
        """The raw column is parsed as a number (numeric fields and ``log_bucket``)."""
        return self.type == "numeric" or self.preprocess == "log_bucket"

    @property
    def missing_policy(self) -> str:
        """The effective policy for missing/non-finite entries: ``na_policy``, else ``fill`` when
        ``fill_na`` is set, else ``error`` for numbers and ``oov`` for tokens."""
        if self.na_policy is not None:
            return self.na_policy
        if self.fill_na is not None:
            return "fill"
        return "error" if self.reads_number else "oov"

    @property
    def source(self) -> str:
        """The raw column this field is read from."""
        return self.column or self.name

    @property
    def oov_index(self) -> int:
        """Index of the out-of-vocabulary bucket (categorical and sequence fields)."""
        if self.hash_buckets is not None:
            raise ConfigError(f"field {self.name!r} is hashed (hash_buckets={self.hash_buckets}): it has no OOV index")
        if self.num_tokens is None:
            raise ConfigError(f"field {self.name!r} is not fitted (no vocabulary yet)")
        return self.num_tokens + 1

    def to_dict(self, keys: Iterable[str] | None = None) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if keys is not None:
            keys = set(keys)
            d = {k: v for k, v in d.items() if k in keys}
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "field") -> FieldSpec:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
        check_keys(cls, data.keys(), where)
        missing = [k for k in ("name", "type") if k not in data]
        if missing:
            raise ConfigError(f"{where}: missing required key(s) {missing}")
        return cls(**dict(data))


_MODEL_KEYS = (
    "name", "type", "vocab_size", "num_tokens", "embedding_dim", "max_len", "hash_buckets", "share_embedding", "pooling",
)  # fmt: skip


@dataclasses.dataclass
class FeatureSpec:
    """The fields of an encoded CTR dataset, in model order, and its label.

    Args:
        fields: the fields (names must be unique).
        label: name of the label column (values 0/1).
        splits: per split, as recorded by the encoder: ``rows``, ``positives``, per field the
            ``oov`` count (non-missing values not in the training vocabulary, or rarer than
            ``min_count``) and ``missing`` count (empty entries); ``na`` (per field with a
            missing/NaN/inf entry: its ``na_policy`` and the ``missing``, ``non_finite``,
            ``filled``, ``masked``, ``dropped`` counts); ``rows_dropped``; for evaluation
            splits ``overlap_with_train`` (rows whose feature values equal a training row's);
            with id columns ``duplicate_ids`` and ``ids_in_train``.
        meta: free-form provenance (source files, reader, encoder settings).
    """

    fields: list[FieldSpec]
    label: str = "label"
    splits: dict[str, Any] = dataclasses.field(default_factory=dict)
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fields = [
            f if isinstance(f, FieldSpec) else FieldSpec.from_dict(f, f"fields[{i}]")
            for i, f in enumerate(self.fields)
        ]
        if not self.fields:
            raise ConfigError("FeatureSpec: no fields")
        names = [f.name for f in self.fields]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"FeatureSpec: duplicate field names {dup}")
        self._check_sharing()

    def _check_sharing(self) -> None:
        """``share_embedding`` names an existing categorical/sequence field that owns its table,
        with the same embedding size and (once fitted) the same vocabulary size."""
        by_name = {f.name: f for f in self.fields}
        for f in self.fields:
            if f.share_embedding is None:
                continue
            where = f"FeatureSpec: field {f.name!r} share_embedding={f.share_embedding!r}"
            owner = by_name.get(f.share_embedding)
            if owner is None:
                raise ConfigError(
                    f"{where}: unknown field{did_you_mean(f.share_embedding, by_name)}; fields: {', '.join(by_name)}"
                )
            if owner.type == "numeric":
                raise ConfigError(f"{where}: {owner.name!r} is numeric (it has no embedding table)")
            if owner.share_embedding is not None:
                raise ConfigError(
                    f"{where}: {owner.name!r} shares {owner.share_embedding!r}'s table itself; "
                    f"name the owner: share_embedding: {owner.share_embedding}"
                )
            if f.embedding_dim != owner.embedding_dim:
                raise ConfigError(
                    f"{where}: different embedding sizes ({f.name}: {f.embedding_dim}, {owner.name}: "
                    f"{owner.embedding_dim}; None = the model's embedding_dim); a shared table has one size"
                )
            if f.vocab_size is not None and owner.vocab_size is not None and f.vocab_size != owner.vocab_size:
                raise ConfigError(
                    f"{where}: vocab_size {f.vocab_size} differs from {owner.name!r}'s {owner.vocab_size} "
                    "(a shared table has one index space; encode both fields together)"
                )

    # ---- queries -------------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def __getitem__(self, name: str) -> FieldSpec:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"no field {name!r}; fields: {', '.join(self.names)}")

    def __len__(self) -> int:
        return len(self.fields)

    def of_type(self, kind: str) -> list[FieldSpec]:
        """Fields of type ``kind`` in spec order."""
        if kind not in FIELD_TYPES:
            raise ValueError(f"unknown field type {kind!r}")
        return [f for f in self.fields if f.type == kind]

    def check_fitted(self) -> None:
        """Raise :class:`ConfigError` if a categorical/sequence field has no ``vocab_size``."""
        bad = [f.name for f in self.fields if f.type != "numeric" and f.vocab_size is None]
        if bad:
            raise ConfigError(f"FeatureSpec: fields {bad} have no vocab_size (encode the data first)")
        bad = [f.name for f in self.fields if f.type == "sequence" and f.max_len is None]
        if bad:
            raise ConfigError(f"FeatureSpec: sequence fields {bad} have no max_len")

    def with_embedding_dims(self, dims: Mapping[str, int]) -> FeatureSpec:
        """A copy with per-field ``embedding_dim`` set from ``dims`` (e.g. GDCN's FDO result)."""
        unknown = sorted(set(dims) - set(self.names))
        if unknown:
            raise ConfigError(f"with_embedding_dims: unknown fields {unknown}")
        fields = [
            dataclasses.replace(f, embedding_dim=int(dims[f.name])) if f.name in dims else f
            for f in self.fields
        ]
        return dataclasses.replace(self, fields=fields)

    # ---- (de)serialisation -------------------------------------------------------------------

    def model_dict(self) -> dict[str, Any]:
        """The part of the spec a model is built from (plain data, small, checkpoint-safe)."""
        return {
            "label": self.label,
            "fields": [
                {k: v for k, v in f.to_dict(_MODEL_KEYS).items() if v is not None} for f in self.fields
            ],
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": SPEC_FORMAT,
            "label": self.label,
            "fields": [f.to_dict() for f in self.fields],
            "splits": self.splits,
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        if not isinstance(data, Mapping):
            raise ConfigError(f"FeatureSpec: expected a mapping, got {type(data).__name__}")
        data = dict(data)
        fmt = data.pop("format", SPEC_FORMAT)
        if fmt != SPEC_FORMAT:
            raise ConfigError(f"FeatureSpec: unsupported format {fmt!r} (expected {SPEC_FORMAT!r})")
        allowed = ("fields", "label", "splits", "meta")
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ConfigError(f"FeatureSpec: unknown keys {unknown}; valid keys: {', '.join(allowed)}")
        if "fields" not in data:
            raise ConfigError("FeatureSpec: missing 'fields'")
        fields = [FieldSpec.from_dict(f, f"fields[{i}]") for i, f in enumerate(data["fields"])]
        return cls(
            fields=fields,
            label=data.get("label", "label"),
            splits=dict(data.get("splits") or {}),
            meta=dict(data.get("meta") or {}),
        )

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> FeatureSpec:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"feature spec not found: {path}") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from None
        try:
            return cls.from_dict(data)
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None


def as_feature_spec(spec: FeatureSpec | Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> FeatureSpec:
    """A :class:`FeatureSpec` from a spec, its dict (:meth:`FeatureSpec.model_dict` or
    :meth:`FeatureSpec.to_dict`), or a bare list of field dicts."""
    if isinstance(spec, FeatureSpec):
        return spec
    if isinstance(spec, Mapping):
        return FeatureSpec.from_dict(spec)
    if isinstance(spec, Sequence) and not isinstance(spec, str):
        return FeatureSpec(fields=[FieldSpec.from_dict(f, f"fields[{i}]") for i, f in enumerate(spec)])
    raise ConfigError(
        f"feature_spec: expected a FeatureSpec, a mapping or a list of fields, got {type(spec).__name__}"
    )
