"""Vectorised batches of a pytorch-forecasting ``TimeSeriesDataSet`` (same batches, ~50x less work).

pytorch-forecasting builds a batch by calling ``TimeSeriesDataSet.__getitem__`` once per sample
(Python: slicing, a pandas lookup of the target scale, per-sample edits) and padding the samples
in ``_collate_fn``; on a CPU this costs more than the TFT's forward and backward together.
:class:`WindowBatches` computes the same batch for a whole index vector at once: the window
bounds, encoder/decoder lengths and target scales of every sample are tabulated once, and a batch
is a handful of gathers from the dataset's pre-processed tensors. Its batches equal
``dataset.to_dataloader(...)``'s for the same sample indices (tests compare every tensor).

Supported datasets (everything else raises ``NotImplementedError`` naming the feature, so nothing
is silently different): one target; no ``EncoderNormalizer`` (target or covariates; their
scaling is fitted per sample); no lagged variables; no ``randomize_length``; no missing time
steps; no ``overwrite_values``.

:func:`window_dataloader` wraps it in a ``torch.utils.data.DataLoader`` (a batch sampler and the
dataset's ``__getitems__``), so Lightning, ``num_workers`` and distributed samplers work as usual.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler, SequentialSampler

__all__ = ["WindowBatches", "window_dataloader"]


def _unsupported(dataset: Any) -> str | None:
    from pytorch_forecasting.data.encoders import EncoderNormalizer

    if getattr(dataset, "multi_target", False):
        return "several targets"
    if isinstance(dataset.target_normalizer, EncoderNormalizer):
        return "an EncoderNormalizer target normaliser"
    for name in dataset.reals:
        if isinstance(dataset.get_transformer(name), EncoderNormalizer):
            return f"an EncoderNormalizer for {name!r}"
    if dataset._lags:
        return "lagged variables"
    if dataset.randomize_length is not None:
        return "randomize_length"
    if getattr(dataset, "_overwrite_values", None) is not None:
        return "overwrite_values"
    return None


class WindowBatches(torch.utils.data.Dataset):
    """Batches of ``dataset`` by sample indices: ``batches[[i, j, ...]]`` is ``(x, (target, weight))``.

    ``x`` has pytorch-forecasting's keys (``encoder_cat``, ``encoder_cont``, ``encoder_target``,
    ``encoder_lengths``, ``decoder_cat``, ``decoder_cont``, ``decoder_target``,
    ``decoder_lengths``, ``decoder_time_idx``, ``groups``, ``target_scale``), windows right-padded
    with zeros to the longest in the batch.
    """

    def __init__(self, dataset: Any) -> None:
        why = _unsupported(dataset)
        if why is not None:
            raise NotImplementedError(f"WindowBatches: datasets with {why} are not supported")
        self.dataset = dataset
        data = dataset.data
        self.reals = data["reals"]
        self.cats = data["categoricals"]
        self.target = data["target"][0]
        self.weight = data["weight"]
        self.time = data["time"]
        self.group_codes = data["groups"]
        index = dataset.index
        start = torch.tensor(index["index_start"].to_numpy(), dtype=torch.long)
        end = torch.tensor(index["index_end"].to_numpy(), dtype=torch.long)
        seq = torch.tensor(index["sequence_length"].to_numpy(), dtype=torch.long)
        if not bool((end - start + 1 == seq).all()):
            raise NotImplementedError("WindowBatches: datasets with missing time steps are not supported")
        time_last = self.time[end].numpy()
        dec = dataset.calculate_decoder_length(time_last, seq.numpy())
        self.start = start
        self.decoder_length = torch.as_tensor(np.asarray(dec), dtype=torch.long)
        self.encoder_length = seq - self.decoder_length
        if bool((self.decoder_length < 1).any()) or bool(
            (self.encoder_length < dataset.min_encoder_length).any()
        ):
            raise ValueError("WindowBatches: the dataset index holds windows its own limits reject")
        # target scale per sample: one normaliser lookup per distinct series
        groups = self.group_codes[start]
        uniq, inverse = torch.unique(groups, dim=0, return_inverse=True)
        params = [dataset.target_normalizer.get_parameters(g, dataset.group_ids) for g in uniq]
        # pytorch-forecasting stacks tensors as they are and turns numpy parameters into float32
        if isinstance(params[0], torch.Tensor):
            table = torch.stack(params)
        else:
            table = torch.as_tensor(np.stack([np.asarray(p, dtype=np.float32) for p in params]))
        self.target_scale = table[inverse]
        reals = list(dataset.reals)
        self._rel = reals.index("relative_time_idx") if dataset.add_relative_time_idx else None
        self._enc = reals.index("encoder_length") if dataset.add_encoder_length else None
        self.max_encoder_length = dataset.max_encoder_length

    def __len__(self) -> int:
        return len(self.start)

    def __getitem__(self, idx: int) -> Any:  # single samples are not the point; keep Dataset happy
        return self.__getitems__([idx])

    def __getitems__(self, idx: list[int] | torch.Tensor) -> tuple[dict[str, torch.Tensor], tuple[Any, Any]]:
        idx = torch.as_tensor(idx, dtype=torch.long)
        start = self.start[idx]
        el = self.encoder_length[idx]
        dl = self.decoder_length[idx]
        Te, Td = int(el.max()), int(dl.max())
        te = torch.arange(Te)
        td = torch.arange(Td)
        enc_ok = te[None, :] < el[:, None]  # [B, Te]
        dec_ok = td[None, :] < dl[:, None]  # [B, Td]
        enc_pos = torch.where(enc_ok, start[:, None] + te[None, :], start[:, None])
        dec_pos = torch.where(dec_ok, (start + el)[:, None] + td[None, :], start[:, None])

        def take(src: torch.Tensor, pos: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
            out = src[pos]
            mask = ok if out.dim() == ok.dim() else ok.unsqueeze(-1)
            return out.masked_fill(~mask, 0)

        enc_cont = take(self.reals, enc_pos, enc_ok)
        dec_cont = take(self.reals, dec_pos, dec_ok)
        M = float(self.max_encoder_length)
        if self._rel is not None:
            rel_e = (te[None, :] - el[:, None]).to(enc_cont.dtype) / M
            enc_cont[..., self._rel] = rel_e.masked_fill(~enc_ok, 0.0)
            dec_cont[..., self._rel] = (
                (td[None, :].to(dec_cont.dtype) / M).expand(len(idx), Td).masked_fill(~dec_ok, 0.0)
            )
        if self._enc is not None:
            v = ((el.to(enc_cont.dtype) - 0.5 * M) / M * 2.0)[:, None]
            enc_cont[..., self._enc] = v.expand(-1, Te).masked_fill(~enc_ok, 0.0)
            dec_cont[..., self._enc] = v.expand(-1, Td).masked_fill(~dec_ok, 0.0)
        target = take(self.target, dec_pos, dec_ok)
        weight = take(self.weight, dec_pos, dec_ok) if self.weight is not None else None
        x = {
            "encoder_cat": take(self.cats, enc_pos, enc_ok),
            "encoder_cont": enc_cont,
            "encoder_target": take(self.target, enc_pos, enc_ok),
            "encoder_lengths": el,
            "decoder_cat": take(self.cats, dec_pos, dec_ok),
            "decoder_cont": dec_cont,
            "decoder_target": target,
            "decoder_lengths": dl,
            "decoder_time_idx": (self.time[start] + el)[:, None] + td[None, :],
            "groups": self.group_codes[start],
            "target_scale": self.target_scale[idx],
        }
        return x, (target, weight)


def _identity(batch: Any) -> Any:
    return batch


def window_dataloader(
    dataset: Any,
    *,
    train: bool,
    batch_size: int,
    num_workers: int = 0,
    generator: torch.Generator | None = None,
) -> DataLoader:
    """A ``DataLoader`` of :class:`WindowBatches` over ``dataset``, ordered like
    ``dataset.to_dataloader(train=train, batch_size=batch_size)``: shuffled and dropping the last
    incomplete batch for training, in order for evaluation."""
    batches = WindowBatches(dataset)
    sampler = RandomSampler(batches, generator=generator) if train else SequentialSampler(batches)
    # sampler + batch_size (not an explicit BatchSampler): under DDP Lightning rebuilds the loader
    # around a DistributedSampler and keeps batch_size only when it was given this way (an explicit
    # torch BatchSampler comes back with batch size 1). The loader's BatchSampler still fetches a
    # whole batch through WindowBatches.__getitems__.
    return DataLoader(
        batches,
        sampler=sampler,
        batch_size=batch_size,
        drop_last=train,
        collate_fn=_identity,
        num_workers=num_workers,
    )
