"""Save a trained model with its config and load it back by name (issue 15, first step).

``save_pretrained(model, directory)`` writes two files, following huggingface_hub's
``ModelHubMixin`` layout (a folder a Hub upload could take as it is; nothing here needs the Hub):

* ``config.json``: ``{"format": 1, "name": <registry name>, "class": "module:qualname",
  "gatelab_version": ..., "config": <the model's ModelConfig as plain JSON>}``;
* ``model.safetensors``: the state dict's tensors (safetensors: no pickle, so loading runs no
  code); tensors that share storage (tied weights) are stored once, their other names listed
  in the file's metadata (``aliases``);
* ``extra_state.json``, when the model has non-tensor state (``get_extra_state``, e.g. the VL
  decoder's tokenizer): those entries as JSON.

* ``preprocessing.json``, when the model carries what it needs to run on new data
  (``model.preprocessing``: a JSON object with a ``"kind"`` naming its domain reader, e.g. the
  TFT encoders and scalers, the segmentation normalisation, the CTR feature spec and
  vocabularies); :func:`from_pretrained` puts it back on ``model.preprocessing``.

``from_pretrained(directory)`` rebuilds the registered model from ``config.json`` without the
caller naming its class, loads the weights strictly and returns it in eval mode.
:class:`PretrainedMixin` gives a model class ``model.save_pretrained(dir)``,
``Class.from_pretrained(dir)`` and ``model.push_to_hub(repo_id)`` (huggingface_hub's
``ModelHubMixin`` method names; the upload is optional and never needed to save or load).
``create_model(name, checkpoint_path=...)`` loads weights into a fresh model as timm does
(:func:`gatelab.core.weights.load_weights`: a folder, a ``.safetensors`` file or a gatelab task's Lightning checkpoint),
and ``gatelab export CKPT DIR`` (:func:`export_checkpoint`) turns a task checkpoint into a folder.

Only models built from a :class:`~gatelab.core.config.ModelConfig` can be saved this way; a
model without one raises :class:`~gatelab.core.config.ConfigError` naming what is missing. What
a model needs besides its weights to run on new data (a tokenizer, dataset encoders, a
normalisation) is the data side's to produce: a Lightning data module with a
``preprocessing()`` method has its result stored in every checkpoint of a gatelab task
(``checkpoint["gatelab_preprocessing"]``), and :func:`export_checkpoint` writes it out.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gatelab.core.config import ConfigError, ModelConfig
from gatelab.core.weights import EXTRA_NAME, WEIGHTS_NAME, load_state, load_weights, state_from_checkpoint

__all__ = [
    "CHECKPOINT_KEY",
    "CONFIG_NAME",
    "FORMAT",
    "PREPROCESSING_NAME",
    "PretrainedMixin",
    "export_checkpoint",
    "from_pretrained",
    "load_config",
    "load_preprocessing",
    "registered_entry",
    "registry_name",
    "save_pretrained",
]

CONFIG_NAME = "config.json"
PREPROCESSING_NAME = "preprocessing.json"
#: the checkpoint key under which a gatelab task stores its data module's ``preprocessing()``
CHECKPOINT_KEY = "gatelab_preprocessing"
#: the layout version of ``config.json``
FORMAT = 1


def _target(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def registry_name(model: nn.Module) -> str:
    """The registry name of ``model``: the one :func:`~gatelab.core.registry.create_model` gave
    it (``model.registry_name``), else the entry whose target is the model's class (an entry
    without a preset first: the saved config is complete, so any entry of the class rebuilds it).

    Raises:
        ConfigError: no registered entry builds ``type(model)``.
    """
    from gatelab.core.registry import MODELS

    name = getattr(model, "registry_name", None)
    if isinstance(name, str) and name in MODELS:
        return name
    target = _target(type(model))
    entries = MODELS.entries()
    found = [n for n, e in entries.items() if e.target == target or e.target is type(model)]
    if not found:
        raise ConfigError(
            f"save_pretrained: no registered model builds {target}; register it (register_model) or pass name="
        )
    return sorted(found, key=lambda n: (entries[n].meta.get("preset") is not None, n))[0]


def save_pretrained(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    name: str | None = None,
    preprocessing: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` of ``model`` to ``directory`` (created),
    plus ``preprocessing.json`` when there is preprocessing to keep.

    Args:
        model: a model with a :class:`~gatelab.core.config.ModelConfig` in ``model.config``.
        directory: the output folder; existing files of the same names are replaced.
        name: the registry name to record (default: :func:`registry_name`).
        preprocessing: what the model needs to run on new data, a JSON object with a ``"kind"``
            key (default: ``model.preprocessing`` when the model carries one).

    Returns:
        The directory.

    Raises:
        ConfigError: the model has no ModelConfig, is not registered, or has non-tensor state.
    """
    from safetensors.torch import save_file

    config = getattr(model, "config", None)
    if not isinstance(config, ModelConfig):
        raise ConfigError(
            f"save_pretrained: {type(model).__name__} has no ModelConfig in .config "
            f"(got {type(config).__name__}); only models built from a config can be saved"
        )
    name = name or registry_name(model)
    from gatelab import __version__

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "name": name,
        "class": _target(type(model)),
        "gatelab_version": __version__,
        "config": config.to_dict(),
    }
    tensors, aliases, extra = _split_state(model)
    prep = _check_preprocessing(preprocessing if preprocessing is not None else getattr(model, "preprocessing", None))
    (out / CONFIG_NAME).write_text(json.dumps(meta, indent=2, sort_keys=False) + "\n")
    save_file(
        tensors,
        str(out / WEIGHTS_NAME),
        metadata={"format": "pt", "gatelab_name": name, "aliases": json.dumps(aliases)},
    )
    extra_path = out / EXTRA_NAME
    if extra:
        extra_path.write_text(json.dumps(extra) + "\n")
    elif extra_path.exists():
        extra_path.unlink()
    prep_path = out / PREPROCESSING_NAME
    if prep is not None:
        prep_path.write_text(json.dumps(prep, indent=1) + "\n")
    elif prep_path.exists():
        prep_path.unlink()
    return out


def _check_preprocessing(prep: Any, where: str = "save_pretrained: preprocessing") -> dict[str, Any] | None:
    """``prep`` as a plain JSON object with a string ``"kind"`` (``None`` stays ``None``)."""
    if prep is None:
        return None
    if not isinstance(prep, Mapping):
        raise ConfigError(f"{where}: expected a JSON object (a mapping), got {type(prep).__name__}")
    if not isinstance(prep.get("kind"), str):
        raise ConfigError(f"{where}: key 'kind' missing or not a string (it names the domain reader)")
    try:
        return json.loads(json.dumps(dict(prep), allow_nan=False))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: not plain JSON ({e})") from None


def load_preprocessing(directory: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``preprocessing.json`` of a :func:`save_pretrained` folder, or ``None`` if it has none.

    Raises:
        ConfigError: the file is not a JSON object with a ``"kind"`` (naming the file, line, column).
    """
    path = Path(directory) / PREPROCESSING_NAME
    if not path.is_file():
        return None
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start})") from None
    return _check_preprocessing(obj, str(path))


def load_config(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The checked ``config.json`` of a :func:`save_pretrained` folder (``format``, ``name``,
    ``class``, ``gatelab_version``, ``config``), without building the model."""
    return _read_config(Path(directory) / CONFIG_NAME)


def _split_state(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str], dict[str, Any]]:
    """``(tensors, aliases, extra)`` of ``model.state_dict()``: each storage once (contiguous),
    the other names of shared tensors -> the stored name, and the JSON-safe non-tensor entries."""
    tensors: dict[str, torch.Tensor] = {}
    aliases: dict[str, str] = {}
    extra: dict[str, Any] = {}
    seen: dict[tuple[Any, ...], str] = {}
    for key, value in model.state_dict().items():
        if not isinstance(value, torch.Tensor):
            try:
                json.dumps(value)
            except TypeError as e:
                raise ConfigError(f"save_pretrained: state {key!r} is neither a tensor nor JSON ({e})") from None
            extra[key] = value
            continue
        ident = (value.untyped_storage().data_ptr(), value.storage_offset(), tuple(value.shape), tuple(value.stride()))
        if value.numel() and ident in seen:
            aliases[key] = seen[ident]
        else:
            seen[ident] = key
            tensors[key] = value.detach().contiguous()
    return tensors, aliases, extra


def _read_config(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"from_pretrained: {path} not found (a save_pretrained folder has {CONFIG_NAME})")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}") from None
    if not isinstance(meta, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    for key, kind in (("format", int), ("name", str), ("config", dict)):
        if not isinstance(meta.get(key), kind):
            raise ConfigError(f"{path}: key {key!r} missing or not a {kind.__name__}")
    if meta["format"] != FORMAT:
        raise ConfigError(f"{path}: format={meta['format']!r}: this gatelab reads format {FORMAT}")
    return meta


def from_pretrained(directory: str | os.PathLike[str], *, device: str = "cpu") -> nn.Module:
    """Rebuild the model saved by :func:`save_pretrained` in ``directory``, in eval mode.

    Raises:
        ConfigError: a missing or malformed ``config.json`` (naming the file and key), an
            unknown model name, a config the model no longer accepts, or weights that do not
            fit (missing or unexpected keys, named).
    """
    from gatelab.core.registry import MODELS

    folder = Path(directory)
    cfg_path = folder / CONFIG_NAME
    meta = _read_config(cfg_path)
    name = meta["name"]
    factory = _builder(MODELS.get(registered_entry(name, cfg_path).name), meta.get("class"), cfg_path)
    try:
        config = factory.config_class.from_preset(None, **meta["config"])
    except ConfigError as e:
        raise ConfigError(f"{cfg_path}: config: {e}") from None
    model = factory(config)
    model.registry_name = name
    model = load_weights(model, folder, device=device).eval()
    model.preprocessing = load_preprocessing(folder)
    return model


def registered_entry(name: str, config_path: Path) -> Any:
    """The model registry's entry ``name`` recorded in ``config_path`` (the domains are loaded
    when the name is not known yet); an unknown name is a :class:`ConfigError` naming the file."""
    from gatelab.core.registry import MODELS, UnknownNameError

    try:
        return MODELS.entry(name)
    except UnknownNameError:
        raise ConfigError(f"{config_path}: name={name!r} is not a registered model (see `gatelab list`)") from None


def _builder(factory: Any, recorded: Any, where: Path) -> Any:
    """What rebuilds the model from its config: the registered factory when it declares its
    ``config_class``, else the recorded class (a gatelab class with a ``config_class``; a factory
    function such as ``dncnn`` returns it)."""
    if isinstance(getattr(factory, "config_class", None), type):
        return factory
    if isinstance(recorded, str) and recorded.startswith("gatelab.") and ":" in recorded:
        import importlib

        module, _, qualname = recorded.partition(":")
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
        config_class = getattr(obj, "config_class", None)
        if isinstance(obj, type) and isinstance(config_class, type) and issubclass(config_class, ModelConfig):
            return obj
    raise ConfigError(f"{where}: the model is not built from a ModelConfig (class {recorded!r})")


def export_checkpoint(checkpoint: str | os.PathLike[str], directory: str | os.PathLike[str]) -> Path:
    """Convert a Lightning checkpoint of a gatelab task into a :func:`save_pretrained` folder.

    The model is rebuilt from the registry name and keyword arguments the task recorded
    (``hyper_parameters.model_name`` / ``model_kwargs``, the data module's sizes included), its
    weights loaded strictly, and saved. ``gatelab export CKPT DIR`` calls this.

    Raises:
        ConfigError: the file is not a gatelab task checkpoint, or the model cannot be saved.
    """
    from gatelab.core.registry import create_model

    path = Path(checkpoint)
    if not path.is_file():
        raise ConfigError(f"export: {path}: no such checkpoint")
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as e:
        raise ConfigError(f"export: {path}: cannot read as a checkpoint ({type(e).__name__}: {e})") from None
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hp, dict) or not isinstance(hp.get("model_name"), str):
        raise ConfigError(f"export: {path}: not a gatelab task checkpoint (no hyper_parameters.model_name)")
    model = create_model(hp["model_name"], **dict(hp.get("model_kwargs") or {}))
    load_state(model, state_from_checkpoint(ckpt, path), path)  # the file is read once
    prep = ckpt.get(CHECKPOINT_KEY)
    return save_pretrained(model, directory, name=hp["model_name"], preprocessing=prep)


class PretrainedMixin:
    """``save_pretrained`` / ``from_pretrained`` / ``push_to_hub`` as methods, named as
    huggingface_hub's ``ModelHubMixin`` names them (the files are :func:`save_pretrained`'s).

    Example::

        model.save_pretrained("runs/finalmlp")
        same = FinalMLP.from_pretrained("runs/finalmlp")     # or gatelab.from_pretrained(dir)
    """

    def save_pretrained(
        self, save_directory: str | os.PathLike[str], *, preprocessing: Mapping[str, Any] | None = None
    ) -> Path:
        """:func:`gatelab.core.pretrained.save_pretrained` of this model."""
        assert isinstance(self, nn.Module)
        return save_pretrained(self, save_directory, preprocessing=preprocessing)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str], *, device: str = "cpu") -> Any:
        """Load a :func:`save_pretrained` folder; an error if it holds another class's model."""
        model = from_pretrained(directory, device=device)
        if not isinstance(model, cls):
            raise ConfigError(
                f"{directory}: holds a {type(model).__name__}, not a {cls.__name__} "
                "(gatelab.from_pretrained(dir) loads whatever it holds)"
            )
        return model

    def push_to_hub(
        self, repo_id: str, *, private: bool = False, token: str | None = None, commit_message: str = "gatelab model"
    ) -> str:
        """Save to a temporary folder and upload it to the Hugging Face Hub (needs
        ``huggingface_hub`` and a token); returns the commit URL. Loading never needs the Hub."""
        import tempfile

        try:
            from huggingface_hub import HfApi
        except ImportError as e:  # pragma: no cover - an optional dependency
            raise ConfigError("push_to_hub needs huggingface_hub (pip install huggingface_hub)") from e
        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp)
            info = api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message=commit_message)
        return str(getattr(info, "commit_url", info))
