"""Shared CTR building blocks: field embeddings (from a FeatureSpec), MLP stacks, model inputs.

These are plain layers, not gates: the gated parts of the CTR models come from
:mod:`gatelab.core` (``FeatureGate``, ``BilinearFusion``, ``GatedCrossNetwork``).

Model inputs (what the CTR data module yields, and what every recsys model's ``forward`` takes
as keyword arguments):

* ``categorical``: ``[B, F_cat]`` integer indices of the spec's categorical fields (spec order);
* ``numeric``: ``[B, F_num]`` floats of the numeric fields;
* ``sequence``: ``[B, F_seq, L]`` integer indices of the sequence fields, 0-padded.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, ClassVar

import torch
from pydantic import AfterValidator
from torch import nn

from gatelab.core import create_act
from gatelab.core.config import ConfigError, ModelConfig, NonNegativeFloat, PositiveInt, did_you_mean
from gatelab.core.layers.activations import ActLike, act_names
from gatelab.core.layers.dropout import FastDropout, relu_dropout
from gatelab.core.layers.fusion import is_plain
from gatelab.core.pretrained import PretrainedMixin
from gatelab.recsys.data.spec import FeatureSpec, FieldSpec, as_feature_spec

__all__ = [
    "ActName",
    "CTRConfig",
    "CTRModel",
    "FieldEmbedding",
    "MLPBlock",
    "example_inputs",
    "model_param_groups",
    "tiny_feature_spec",
]


class _Gather(torch.autograd.Function):
    """``weight[idx]`` (``[*idx.shape, d]``) whose backward accumulates the rows with one
    ``index_put_(accumulate=True)`` into a zero ``[rows, d]`` gradient.

    The same values and gradient as ``nn.functional.embedding`` without ``padding_idx``,
    ``max_norm``, ``scale_grad_by_freq`` or ``sparse`` (a sum of the same terms; the order of the
    additions into one row may differ, so equal within float rounding). Why: on the CPU
    ``embedding_dense_backward`` adds one row at a time through a generic kernel, several times
    slower than ``index_put_``'s accumulation loop (a Frappe-sized batch, 40,960 rows of 16 into
    5,399: about 8.5 vs 1.7 ms on one thread, one noisy run).
    """

    @staticmethod
    def forward(ctx: Any, weight: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(idx)
        ctx.rows = weight.shape[0]
        return weight.index_select(0, idx.reshape(-1)).view(*idx.shape, weight.shape[1])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (idx,) = ctx.saved_tensors
        d = grad.shape[-1]
        out = grad.new_zeros(ctx.rows, d)
        out.index_put_((idx.reshape(-1),), grad.reshape(-1, d), accumulate=True)
        return out, None


def _lookup(table: nn.Embedding, idx: torch.Tensor) -> torch.Tensor:
    """``table(idx)``; through :class:`_Gather` for a plain table on the CPU (outside ``torch.compile``)."""
    if (
        idx.device.type == "cpu"
        and is_plain(table, nn.Embedding)
        and table.padding_idx is None
        and table.max_norm is None
        and not table.scale_grad_by_freq
        and not table.sparse
        and not torch.compiler.is_compiling()
    ):
        return _Gather.apply(table.weight, idx)
    return table(idx)


class FieldEmbedding(nn.Module):
    r"""Embeds the fields of a :class:`~gatelab.recsys.data.FeatureSpec`.

    * categorical field ``f``: ``e_f = E_f[x_f]`` (a row of the field's table);
    * numeric field ``f``: ``e_f = x_f * w_f`` (FuxiCTR's ``Linear(1, d, bias=False)``);
    * sequence field ``f`` with tokens ``x_{f,1..L}`` (index 0 = padding) and the non-padding
      positions ``T = {t: x_{f,t} != 0}``, by the field's ``pooling``:

      - ``mean`` (default): ``e_f = (1/|T|) sum_{t in T} E_f[x_{f,t}]`` (FuxiCTR's ``MaskedAveragePooling``);
      - ``sum``: ``e_f = sum_{t in T} E_f[x_{f,t}]`` (FuxiCTR's ``MaskedSumPooling``);
      - ``max``: ``e_f[k] = max_{t in T} E_f[x_{f,t}][k]`` per dimension ``k``;

      an empty sequence (``T`` empty) gives ``e_f = 0`` for every pooling (for ``max`` this is a
      rule, the max over no element being undefined; padding rows never enter a max).

    Hashed fields (``hash_buckets: N``) are ordinary tables of ``N + 1`` rows. A field with
    ``share_embedding: g`` reads field ``g``'s rows (the same parameters; ``g`` need not be among
    ``fields``): e.g. a clicked-users sequence sharing ``user_id``'s table.

    All categorical fields of one embedding size share one table ``tables["categorical_<d>"]``,
    and all sequence fields one table ``tables["sequence_<d>"]`` (rows offset per table owner; a
    field sharing another's table reads the owner's table), so a batch needs one gather per size
    and field kind instead of one per field.
    Field ``f`` uses ``spec[f].embedding_dim`` or, when that is unset, ``embedding_dim``; a field
    and the field whose table it shares must resolve to the same size (:class:`ValueError`).

    Args:
        feature_spec: the spec (or its ``model_dict()``).
        embedding_dim: default embedding size.
        fields: embed only these fields, in this order (default: every field, spec order) --
            e.g. FinalMLP's context fields.
        init_std: tables are initialised ``N(0, init_std^2)`` with the padding row 0 of every
            table owner zero (FuxiCTR: ``normal_(std=1e-4)``, ``padding_idx=0``); numeric
            weights Xavier-normal (FuxiCTR re-initialises its ``Linear(1, d)``).

    Shapes: inputs as in the module docstring; :meth:`forward` returns the flat concatenation
    ``[B, sum_f d_f]`` in field order, :meth:`stacked` ``[B, F, d]`` (equal sizes only).

    On the CPU a plain table's lookup is ``index_select`` with a backward that accumulates the
    rows with ``index_put_`` (faster than ``embedding_dense_backward``; same gradient within
    float rounding).

    Deviations from FuxiCTR: one table per embedding size instead of one per field (the same
    parameters, laid out differently; :meth:`field_table` gives a field's rows).
    """

    def __init__(
        self,
        feature_spec: FeatureSpec | Mapping[str, Any],
        embedding_dim: int,
        *,
        fields: Sequence[str] | None = None,
        init_std: float = 1e-4,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory_kwargs = {"device": device, "dtype": dtype}
        spec = as_feature_spec(feature_spec)
        spec.check_fitted()
        if isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int) or embedding_dim < 1:
            raise ValueError(f"FieldEmbedding: embedding_dim must be a positive int, got {embedding_dim!r}")
        names = list(fields) if fields is not None else spec.names
        if not names:
            raise ValueError("FieldEmbedding: no fields to embed")
        chosen = [spec[n] for n in names]  # KeyError names the unknown field
        self.field_names = names
        self.init_std = float(init_std)
        self.dims = [f.embedding_dim or embedding_dim for f in chosen]
        self.output_dim = sum(self.dims)
        # column of each field inside its input tensor (categorical / numeric / sequence)
        col_of = {
            kind: {f.name: i for i, f in enumerate(spec.of_type(kind))}
            for kind in ("categorical", "numeric", "sequence")
        }
        self.num_inputs = {kind: len(col_of[kind]) for kind in col_of}
        self.max_len = max((f.max_len or 1 for f in spec.of_type("sequence")), default=0)

        self._add_tables(spec, chosen, embedding_dim, factory_kwargs)
        # gather groups: (kind, size, pooling, table) -> fields in output order
        groups: dict[tuple[str, int, str, str], list[tuple[int, FieldSpec]]] = {}
        for pos, (f, d) in enumerate(zip(chosen, self.dims)):
            pool = f.pool if f.type == "sequence" else ""
            table = self._field_rows[f.name][0] if f.type != "numeric" else ""
            groups.setdefault((f.type, d, pool, table), []).append((pos, f))
        self.group_keys: list[tuple[str, int, str, str]] = []
        self.numeric_weights = nn.ParameterDict()
        out_cols = [
            self._add_group(group, members, col_of, factory_kwargs) for group, members in groups.items()
        ]
        self._set_output_order(torch.cat(out_cols))
        self.reset_parameters()

    def _add_tables(
        self, spec: FeatureSpec, chosen: list[FieldSpec], embedding_dim: int, factory_kwargs: dict[str, Any]
    ) -> None:
        """Token tables: one per (owner kind, embedding size), rows allocated per table owner in
        field order (a field with ``share_embedding`` gets its owner's rows); ``_field_rows``:
        field -> (table key, first row, rows)."""
        self.tables = nn.ModuleDict()
        self._field_rows: dict[str, tuple[str, int, int]] = {}
        owner_rows: dict[str, tuple[str, int]] = {}  # owner -> (table key, first row)
        sizes: dict[str, int] = {}
        for f, d in zip(chosen, self.dims):
            if f.type == "numeric":
                continue
            owner = spec[f.table_owner]
            d_owner = owner.embedding_dim or embedding_dim
            if d_owner != d:
                raise ValueError(
                    f"FieldEmbedding: field {f.name!r} shares {owner.name!r}'s table but their embedding "
                    f"sizes differ ({d} vs {d_owner})"
                )
            key = f"{owner.type}_{d}"
            if owner.name not in owner_rows:
                owner_rows[owner.name] = (key, sizes.get(key, 0))
                sizes[key] = sizes.get(key, 0) + int(owner.vocab_size)
            self._field_rows[f.name] = (key, owner_rows[owner.name][1], int(owner.vocab_size))
        for key, n in sizes.items():
            self.tables[key] = nn.Embedding(n, int(key.rsplit("_", 1)[1]), **factory_kwargs)
        starts = torch.tensor([start for _, start in owner_rows.values()], dtype=torch.long)
        self.register_buffer("padding_rows", starts, persistent=False)
        self._padding_keys = [k for k, _ in owner_rows.values()]

    @staticmethod
    def _group_name(kind: str, d: int, pool: str, table: str) -> str:
        """Buffer suffix of a group (``numeric_<d>`` is also the key of its numeric weights)."""
        own = not table or table == f"{kind}_{d}"
        return f"{kind}_{d}" + (f"_{pool}" if pool else "") + ("" if own else f"_in_{table}")

    def _add_group(
        self,
        group: tuple[str, int, str, str],
        members: list[tuple[int, FieldSpec]],
        col_of: Mapping[str, Mapping[str, int]],
        factory_kwargs: dict[str, Any],
    ) -> torch.Tensor:
        """One (kind, size, pooling, table) group: its input columns, its numeric weights or each
        field's first row in its table; returns the flat output columns of the group's fields."""
        kind, d = group[0], group[1]
        name = self._group_name(*group)
        self.group_keys.append(group)
        cols = torch.tensor([col_of[kind][f.name] for _, f in members], dtype=torch.long)
        self.register_buffer(f"cols_{name}", cols, persistent=False)
        if kind == "numeric":
            self.numeric_weights[name] = nn.Parameter(torch.empty(len(members), d, **factory_kwargs))
        else:
            starts = [self._field_rows[f.name][1] for _, f in members]
            self.register_buffer(f"offsets_{name}", torch.tensor(starts, dtype=torch.long), persistent=False)
        starts_out = [sum(self.dims[:pos]) for pos, _ in members]
        return torch.cat([torch.arange(start, start + d) for start in starts_out])

    def _set_output_order(self, order: torch.Tensor) -> None:
        """``perm``: the group-ordered columns back in field order (``order`` is the output
        position of each group-ordered column); ``_identity`` when no reordering is needed."""
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(len(order))
        self._identity = bool(torch.equal(inverse, torch.arange(len(order))))
        self.register_buffer("perm", inverse, persistent=False)

    def reset_parameters(self) -> None:
        with torch.no_grad():
            for table in self.tables.values():
                table.weight.normal_(0.0, self.init_std)
            for key, row in zip(self._padding_keys, self.padding_rows.tolist()):
                self.tables[key].weight[row] = 0.0  # padding row 0 of every table owner
            for w in self.numeric_weights.values():
                # FuxiCTR: xavier_normal_ on each Linear(1, d): fan_in 1, fan_out d
                w.normal_(0.0, math.sqrt(2.0 / (1 + w.shape[1])))

    @property
    def equal_dims(self) -> bool:
        return len(set(self.dims)) == 1

    def field_table(self, name: str) -> torch.Tensor:
        """The embedding rows of categorical/sequence field ``name`` (``[vocab_size, d]``, row 0 =
        padding); for a field with ``share_embedding`` the owner's rows (the same storage)."""
        key, start, n = self._field_rows[name]
        return self.tables[key].weight[start : start + n]

    def _check(self, kind: str, x: torch.Tensor | None, ndim: int) -> torch.Tensor:
        if x is None:
            raise ValueError(
                f"FieldEmbedding: the spec has {self.num_inputs[kind]} {kind} fields; pass {kind}="
            )
        if x.ndim != ndim or x.shape[1] != self.num_inputs[kind]:
            want = f"[B, {self.num_inputs[kind]}" + (", L]" if ndim == 3 else "]")
            raise ValueError(f"FieldEmbedding: {kind} must be {want}, got {tuple(x.shape)}")
        return x

    @staticmethod
    def _pool(rows: torch.Tensor, mask: torch.Tensor, pool: str) -> torch.Tensor:
        """Pool ``rows`` ``[B, F, L, d]`` over ``L`` where ``mask`` ``[B, F, L, 1]`` (see the class
        docstring; an all-padding row gives 0)."""
        if pool == "max":
            lowest = torch.finfo(rows.dtype).min
            out = rows.masked_fill(~mask, lowest).amax(dim=2)
            return torch.where(mask.any(dim=2), out, torch.zeros((), dtype=rows.dtype, device=rows.device))
        total = (rows * mask).sum(dim=2)
        if pool == "sum":
            return total
        return total / mask.sum(dim=2).clamp(min=1).to(rows.dtype)

    def forward(
        self,
        categorical: torch.Tensor | None = None,
        numeric: torch.Tensor | None = None,
        sequence: torch.Tensor | None = None,
    ) -> torch.Tensor:
        parts = []
        for kind, d, pool, table in self.group_keys:
            name = self._group_name(kind, d, pool, table)
            cols = getattr(self, f"cols_{name}")
            if kind == "categorical":
                x = self._check(kind, categorical, 2).index_select(1, cols)
                e = _lookup(self.tables[table], x + getattr(self, f"offsets_{name}"))  # [B, Fg, d]
            elif kind == "numeric":
                x = self._check(kind, numeric, 2).index_select(1, cols)
                e = x.unsqueeze(-1).to(self.numeric_weights[name].dtype) * self.numeric_weights[name]
            else:
                x = self._check(kind, sequence, 3).index_select(1, cols)  # [B, Fg, L]
                mask = (x > 0).unsqueeze(-1)
                rows = _lookup(self.tables[table], x + getattr(self, f"offsets_{name}").view(1, -1, 1))
                e = self._pool(rows, mask, pool)  # [B, Fg, d]
            parts.append(e.flatten(1))
        flat = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        return flat if self._identity else flat.index_select(1, self.perm)

    def stacked(
        self,
        categorical: torch.Tensor | None = None,
        numeric: torch.Tensor | None = None,
        sequence: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``[B, F, d]`` field embeddings (all fields must have the same size)."""
        if not self.equal_dims:
            raise ValueError(f"FieldEmbedding.stacked: fields have different embedding sizes {self.dims}")
        return self(categorical, numeric, sequence).unflatten(1, (len(self.dims), self.dims[0]))

    def extra_repr(self) -> str:
        return f"fields={len(self.field_names)}, dims={sorted(set(self.dims))}, output_dim={self.output_dim}"


class MLPBlock(nn.Sequential):
    r"""``[Linear -> (BatchNorm) -> act -> (Dropout)] x len(hidden_dims) [-> Linear(out_dim)]``.

    FuxiCTR's ``MLP_Block``: Xavier-normal weights, zero biases. ``out_dim=None`` returns the last
    hidden layer. Shapes ``[B, dim]`` -> ``[B, hidden_dims[-1]]`` (``[B, dim]`` without hidden
    layers) or ``[B, out_dim]``. Dropout is :class:`~gatelab.core.layers.dropout.FastDropout`
    (the distribution of ``nn.Dropout`` with ``p`` rounded to ``2^-16``, faster mask on the CPU);
    in training a ReLU followed by dropout runs as one node
    (:func:`~gatelab.core.layers.dropout.relu_dropout`).

    Args:
        dim: input width.
        hidden_dims: hidden widths (FuxiCTR's ``hidden_units``).
        out_dim: width of a final ``Linear`` (no activation), or ``None``.
        act: hidden activation (name, class, instance or callable; FuxiCTR's ``hidden_activations``).
        dropout: dropout after each hidden layer (FuxiCTR's ``net_dropout``).
        batch_norm: ``BatchNorm1d`` after each hidden ``Linear``.
    """

    def __init__(
        self,
        dim: int,
        hidden_dims: Sequence[int],
        out_dim: int | None = None,
        *,
        act: ActLike = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory_kwargs = {"device": device, "dtype": dtype}
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"MLPBlock: dropout must be in [0, 1), got {dropout!r}")
        layers: list[nn.Module] = []
        widths = [dim, *hidden_dims]
        for i, (a, b) in enumerate(itertools.pairwise(widths)):
            if isinstance(b, bool) or not isinstance(b, int) or b < 1:
                raise ValueError(f"MLPBlock: hidden_dims[{i}] must be a positive int, got {b!r}")
            layers.append(nn.Linear(a, b, **factory_kwargs))
            if batch_norm:
                layers.append(nn.BatchNorm1d(b, **factory_kwargs))
            layers.append(create_act(act))
            if dropout > 0:
                layers.append(FastDropout(dropout))
        if out_dim is not None:
            layers.append(nn.Linear(widths[-1], out_dim, **factory_kwargs))
        super().__init__(*layers)
        self.out_dim = out_dim if out_dim is not None else widths[-1]
        for m in self:
            if isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.compiler.is_compiling():  # module by module: the compiler fuses the chain itself
            return super().forward(x)
        mods = list(self._modules.values())
        i, n = 0, len(mods)
        while i < n:
            m = mods[i]
            # x is a fresh intermediate when the previous module is the block's own Linear / BN
            fresh = i > 0 and (is_plain(mods[i - 1], nn.Linear) or is_plain(mods[i - 1], nn.BatchNorm1d))
            if fresh and is_plain(m, nn.ReLU):
                nxt = mods[i + 1] if i + 1 < n else None
                if self.training and is_plain(nxt, FastDropout) and nxt is not None and nxt.p > 0:
                    x = relu_dropout(x, nxt.p, inplace=True)
                    i += 2
                    continue
                x = torch.relu_(x)
            else:
                x = m(x)
            i += 1
        return x


def _act_name(value: str) -> str:
    known = act_names()
    if value.lower() not in known:
        raise ValueError(f"an activation name{did_you_mean(value, known)}: {', '.join(known)}")
    return value


#: a config field holding an activation name (:func:`gatelab.core.layers.activations.act_names`;
#: checked when the config is built and when an experiment config is validated)
ActName = Annotated[str, AfterValidator(_act_name)]


@dataclasses.dataclass(frozen=True, kw_only=True)
class CTRConfig(ModelConfig):
    """The fields every CTR model config shares (the base of each ``<Model>Config``).

    Attributes:
        feature_spec: the fields of the data (names, types, vocabulary sizes, field-wise
            embedding sizes), as :meth:`FeatureSpec.model_dict() <gatelab.recsys.data.FeatureSpec.model_dict>`;
            a :class:`~gatelab.recsys.data.FeatureSpec` (or a bare list of field dicts) is
            accepted and stored as its ``model_dict()``. Required: the data module's
            ``model_kwargs()`` supplies it, presets never hold it. A config field (not a separate
            constructor argument) so that a config alone rebuilds the model
            (``type(model)(model.config)``) and ``create_model(name, preset=..., feature_spec=...)``
            needs nothing else.
        embedding_dim: default field embedding size (a field's own ``embedding_dim`` in the
            spec wins; FuxiCTR's ``embedding_dim``).
        embedding_init_std: std of the ``N(0, std^2)`` embedding initialisation (FuxiCTR: 1e-4).
    """

    feature_spec: Mapping[str, Any] = dataclasses.field(hash=False)
    embedding_dim: PositiveInt = 10
    embedding_init_std: NonNegativeFloat = 1e-4

    def __post_init__(self) -> None:
        try:
            spec = as_feature_spec(self.feature_spec)
            spec.check_fitted()
        except (ValueError, KeyError, TypeError) as e:  # ConfigError is a ValueError
            msg = " ".join(str(e).strip("'\"").split())
            raise ConfigError(f"{type(self).__name__}.feature_spec: {msg}") from None
        object.__setattr__(self, "feature_spec", spec.model_dict())  # plain data, one form
        super().__post_init__()

    def spec(self) -> FeatureSpec:
        """:attr:`feature_spec` as a :class:`~gatelab.recsys.data.FeatureSpec`."""
        return as_feature_spec(self.feature_spec)

    def field_dims(self) -> list[int]:
        """The embedding size of every field in spec order (its own, else :attr:`embedding_dim`)."""
        return [f.embedding_dim or self.embedding_dim for f in self.spec().fields]


class CTRModel(PretrainedMixin, nn.Module):
    r"""The scaffold every recsys model shares: config -> feature spec -> field embeddings -> tower -> logit.

    ``__init__(config=None, /, *, device=None, dtype=None, **overrides)`` builds
    :attr:`config` (a :attr:`config_class` instance, from a config, a mapping or keywords:
    :meth:`~gatelab.core.config.ModelConfig.build`), the field embeddings :attr:`embedding` (a
    :class:`FieldEmbedding` of the spec, flat ``e`` ``[B, sum_f d_f]``), then calls the model's
    :meth:`build_tower`. ``forward(categorical, numeric, sequence)`` returns
    :meth:`tower` ``(e, categorical, numeric, sequence)``, the logit ``[B]`` (the task applies
    the sigmoid); the raw inputs are passed on for parts that embed fields of their own
    (FinalMLP's gate contexts, DeepFM's first-order term). A model declares ``config_class``
    and implements :meth:`build_tower` and :meth:`tower`; it never writes an ``__init__``.

    ``device`` / ``dtype`` are where the parameters are created, not part of the config.

    Shapes: keyword inputs ``categorical [B, F_cat]``, ``numeric [B, F_num]``,
    ``sequence [B, F_seq, L]`` (those the spec has) -> ``[B]``.
    """

    config_class: ClassVar[type[CTRConfig]] = CTRConfig
    #: every field gets a 1-dim embedding whatever the spec says (logistic regression's
    #: per-value weights)
    scalar_embeddings: ClassVar[bool] = False
    config: CTRConfig

    def __init__(
        self,
        config: CTRConfig | Mapping[str, Any] | None = None,
        /,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        self.config = cfg = self.config_class.build(config, **overrides)
        spec = cfg.spec()
        if self.scalar_embeddings:
            spec = spec.with_embedding_dims({f.name: 1 for f in spec.fields})
        factory_kwargs = {"device": device, "dtype": dtype}
        self.embedding = FieldEmbedding(
            spec, cfg.embedding_dim, init_std=cfg.embedding_init_std, **factory_kwargs
        )
        self.build_tower(factory_kwargs)

    @property
    def feature_spec(self) -> dict[str, Any]:
        """The spec the model was built for (``config.feature_spec``, a ``model_dict()``)."""
        return dict(self.config.feature_spec)

    def build_tower(self, factory_kwargs: dict[str, Any]) -> None:
        """Create the layers after :attr:`embedding` from :attr:`config` (``factory_kwargs``:
        ``device`` and ``dtype``)."""
        raise NotImplementedError(f"{type(self).__name__} must implement build_tower")

    def forward(
        self,
        categorical: torch.Tensor | None = None,
        numeric: torch.Tensor | None = None,
        sequence: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return self.tower(self.embedding(categorical, numeric, sequence), categorical, numeric, sequence)

    def tower(
        self,
        e: torch.Tensor,
        categorical: torch.Tensor | None,
        numeric: torch.Tensor | None,
        sequence: torch.Tensor | None,
    ) -> torch.Tensor:
        """The logit ``[B]`` from the flat field embeddings ``e`` ``[B, D]`` (and the raw inputs)."""
        raise NotImplementedError(f"{type(self).__name__} must implement tower")


def _example(model: nn.Module, batch: int) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The registry's ``example_inputs`` of every recsys model: random inputs of its spec."""
    return (), example_inputs(model.feature_spec, batch)


def model_param_groups(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``(embedding parameters, other parameters)`` of a model: the parameters of every
    :class:`FieldEmbedding` (tables and numeric weights) and the rest, each listed once
    (FuxiCTR's split for ``embedding_regularizer`` / ``net_regularizer``)."""
    emb: dict[int, nn.Parameter] = {}
    for m in model.modules():
        if isinstance(m, FieldEmbedding):
            for p in m.parameters():
                emb[id(p)] = p
    other = [p for p in model.parameters() if id(p) not in emb]
    return list(emb.values()), other


def example_inputs(
    spec: FeatureSpec | Mapping[str, Any], batch: int, *, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """Random valid model inputs for ``spec`` (indices in ``1 .. vocab_size-1``, some padding in sequences)."""
    spec = as_feature_spec(spec)
    out: dict[str, torch.Tensor] = {}
    cats = spec.of_type("categorical")
    if cats:
        hi = torch.tensor([f.vocab_size for f in cats])
        out["categorical"] = (torch.rand(batch, len(cats), generator=generator) * (hi - 1)).long() + 1
    nums = spec.of_type("numeric")
    if nums:
        out["numeric"] = torch.rand(batch, len(nums), generator=generator)
    seqs = spec.of_type("sequence")
    if seqs:
        L = max(f.max_len or 1 for f in seqs)
        hi = torch.tensor([f.vocab_size for f in seqs]).view(1, -1, 1)
        idx = (torch.rand(batch, len(seqs), L, generator=generator) * (hi - 1)).long() + 1
        keep = torch.rand(batch, len(seqs), L, generator=generator) < 0.7
        keep[..., 0] = True
        out["sequence"] = idx * keep
    return out


def tiny_feature_spec() -> dict[str, Any]:
    """A small fitted spec (3 categorical, 1 numeric, 1 sequence field) for tests and the registry."""
    return {
        "label": "label",
        "fields": [
            {"name": "user", "type": "categorical", "vocab_size": 7, "num_tokens": 5},
            {"name": "item", "type": "categorical", "vocab_size": 9, "num_tokens": 7},
            {"name": "price", "type": "numeric"},
            {"name": "ctx", "type": "categorical", "vocab_size": 4, "num_tokens": 2},
            {"name": "tags", "type": "sequence", "vocab_size": 6, "num_tokens": 4, "max_len": 3},
        ],
    }
