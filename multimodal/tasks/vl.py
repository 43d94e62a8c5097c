"""Lightning task of the vision-language decoder (``task.name: vl-lm``).

Loss of a batch (homogeneous, see :mod:`gatelab.multimodal.data.datamodule`):

.. code-block:: text

    L = NLL(next token | prefix [, image])  +  w * InfoNCE(text, image)     (caption batches)
    L = NLL(next token | prefix)                                          (text batches, no image)
    L = NLL(next token | prefix, image, audio) + w * InfoNCE(text, image)
        + w_a * InfoNCE(audio, image)                                     (spoken caption batches)

``NLL`` is the mean over real (non-padding) target tokens; ``w = contrastive_weight`` (1.0 as the
official trainer's ``lambda_contrastive_loss``). Logged per stage: ``loss``, ``caption_nll``,
``text_nll``, ``contrastive`` and, with audio, ``audio_contrastive``.

Spoken caption batches (``vl-spoken``, a decoder with ``audio_mels``; issue 16) carry ``audio``
/ ``audio_lengths`` and, in training, ``image_mask`` / ``audio_mask`` (stream dropout, see
:class:`~gatelab.multimodal.data.datamodule.StreamDropout`): they are passed to the decoder, whose
gate then mixes three streams; both InfoNCE terms use every row (a dropped stream is hidden from
the gate only).

Options (``task.kwargs``):
    contrastive_weight: ``w``.
    audio_contrastive_weight: ``w_a`` (1.0).
    init_from: a checkpoint (Lightning ``.ckpt`` or a plain ``state_dict`` file) whose model
        weights initialise the model before training (e.g. a text-pre-trained decoder). Only
        visual-path parameters (image encoder, cross-attention, gate, FiLM, fusion norm,
        contrastive heads) may be missing from it, extra in it or of another shape (then they keep
        their fresh initialisation); anything else that does not match is an error.

The tokenizer of the data module is attached to the model at set-up, so it is saved in the
checkpoint with the weights.

Deviation: the official trainer alternates whole epochs of text and of captions; here text and
caption batches are interleaved within an epoch (``text_ratio``) or trained in two stages
(``init_from``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from gatelab.core.config import ConfigError
from gatelab.core.harness.task import GatelabTask

from ..models.vl_decoder import contrastive_loss

__all__ = ["VISUAL_PREFIXES", "VLTask", "lm_nll", "load_init_weights"]

#: parameter-name fragments of the visual path (may differ between a text checkpoint and a model)
VISUAL_PREFIXES = (
    "image_encoder.",
    "text_proj.",
    "image_proj.",
    "log_tau",
    ".cross_attn.",
    ".norm2.",
    ".gate.",
    ".film.",
    ".fuse_norm.",
    "audio_encoder.",  # the audio stream (issue 16)
    "audio_proj.",
    ".audio_attn.",
)


def _is_visual(name: str) -> bool:
    return any(p in name if p.startswith(".") else name.startswith(p) for p in VISUAL_PREFIXES)


def lm_nll(
    logits: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token NLL over real targets and their count: ``(sum, n)``.

    Target ``t`` is ``input_ids[:, t]`` predicted from position ``t - 1``; padding targets
    (``attention_mask`` False) are excluded.
    """
    target = input_ids[:, 1:]
    lp = F.cross_entropy(logits[:, :-1].float().transpose(1, 2), target, reduction="none")
    if attention_mask is None:
        return lp.sum(), torch.tensor(float(lp.numel()), device=lp.device)
    valid = attention_mask[:, 1:].to(lp.dtype)
    return (lp * valid).sum(), valid.sum()


def load_init_weights(
    model: torch.nn.Module, path: str | Path, tokenizer: Any = None
) -> dict[str, list[str]]:
    """Load a checkpoint's model weights into ``model`` (see ``init_from`` in the module docstring).

    With ``tokenizer``, the checkpoint's saved tokenizer (if any) must be the same one (token ids
    would not mean the same otherwise). Visual-path parameters whose shape differs (e.g. another image feature width) keep their
    fresh initialisation. Returns ``{"missing", "unexpected", "skipped"}`` (visual-path names only).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"task.kwargs.init_from: checkpoint not found: {path}")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else None
    if not isinstance(state, dict):
        raise ConfigError(f"{path}: no state_dict found")
    if any(k.startswith("model.") for k in state):
        state = {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    saved = state.get("_extra_state")
    saved_json = saved.get("tokenizer_json") if isinstance(saved, dict) else None
    if tokenizer is not None and saved_json is not None and saved_json != tokenizer.to_str():
        raise ConfigError(
            f"task.kwargs.init_from={path}: that model was trained with a different tokenizer; "
            "pass its tokenizer file as data.kwargs.tokenizer"
        )
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    bad = [k for k in missing + unexpected if not _is_visual(k) and not k.endswith("_extra_state")]
    if bad:
        raise ConfigError(f"{path}: parameters do not match the model outside the visual path: {bad[:10]}")
    mismatched = [
        k for k in own if k in state and hasattr(state[k], "shape") and state[k].shape != own[k].shape
    ]
    bad = [k for k in mismatched if not _is_visual(k)]
    if bad:
        k = bad[0]
        raise ConfigError(f"{path}: {k} has shape {tuple(state[k].shape)}, the model {tuple(own[k].shape)}")
    model.load_state_dict({k: v for k, v in state.items() if k in own and k not in mismatched}, strict=False)
    return {"missing": missing, "unexpected": unexpected, "skipped": mismatched}


@dataclasses.dataclass
class VLOptions:
    """``task.kwargs`` of :class:`VLTask`."""

    contrastive_weight: float = 1.0
    audio_contrastive_weight: float = 1.0
    init_from: str | None = None

    def __post_init__(self) -> None:
        for name in ("contrastive_weight", "audio_contrastive_weight"):
            if getattr(self, name) < 0:
                raise ConfigError(f"task.kwargs.{name} must be >= 0, got {getattr(self, name)}")


class VLTask(GatelabTask):
    """Next-token prediction on text and captions + InfoNCE (module docstring)."""

    Options = VLOptions
    extra_logged = ("text_nll", "caption_nll", "contrastive", "audio_contrastive")
    logged_metrics = ()

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        tok = getattr(dm, "tokenizer", None)
        if tok is not None:
            self.model.set_tokenizer(tok)
        if stage == "fit" and self.options.init_from:
            load_init_weights(self.model, self.options.init_from, tok)
            if tok is not None:  # loading replaced the extra state: keep the data's (identical) tokenizer
                self.model.set_tokenizer(tok)

    def split_batch(self, batch: Any) -> tuple[Any, Any]:
        return batch, batch["input_ids"]

    def shared_step(self, batch: Any, stage: str) -> tuple[torch.Tensor, Any, Any]:
        ids, mask, image = batch["input_ids"], batch["attention_mask"], batch.get("image")
        streams = {k: batch[k] for k in ("image_mask", "audio", "audio_lengths", "audio_mask") if k in batch}
        out = self.model(ids, image, attention_mask=mask, **streams)
        s, n = lm_nll(out.logits, ids, mask)
        nll = s / n.clamp_min(1.0)
        kind = "caption" if image is not None else "text"
        bs = int(ids.shape[0])
        self.log(f"{stage}/{kind}_nll", nll, on_step=False, on_epoch=True, batch_size=bs, sync_dist=True)
        loss = nll
        if out.contrastive_logits is not None and self.options.contrastive_weight > 0 and bs > 1:
            c = contrastive_loss(out.contrastive_logits)
            self.log(f"{stage}/contrastive", c, on_step=False, on_epoch=True, batch_size=bs, sync_dist=True)
            loss = loss + self.options.contrastive_weight * c
        if out.audio_image_logits is not None and self.options.audio_contrastive_weight > 0 and bs > 1:
            c = contrastive_loss(out.audio_image_logits)
            self.log(f"{stage}/audio_contrastive", c, on_step=False, on_epoch=True, batch_size=bs, sync_dist=True)
            loss = loss + self.options.audio_contrastive_weight * c
        return loss, out.logits, ids
