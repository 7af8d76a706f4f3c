"""Pretrained detectors by name, timm style: ``ARCH.TAG`` -> the official weights, converted once.

>>> from fakescope.zoo import list_pretrained
>>> list_pretrained("cnndetection*")
['cnndetection_resnet50.blur_jpg_prob0.1', 'cnndetection_resnet50.blur_jpg_prob0.5']
>>> import fakescope
>>> det = fakescope.Detector.from_pretrained("cnndetection_resnet50.blur_jpg_prob0.5")

Each entry is data (a YAML file per family, read and validated by :mod:`fakescope.zoo.catalogue`): the official
download address(es), the file's byte size and SHA-256, the licence, the paper, the training data, the numbers
its authors publish, and the preprocessing of the official evaluation. The first use downloads the file into
``$FAKESCOPE_HOME`` (:mod:`fakescope.zoo.hub`), checks it, reads it with
``torch.load(weights_only=True, map_location="cpu")`` only, maps its keys (:mod:`fakescope.zoo.convert`)
and writes a normal fakescope checkpoint folder (``model.safetensors``, ``config.json``, a model card naming
the source, licence and published numbers). Conversion is exact: every tensor of the official file lands in
the model or is listed as deliberately dropped, and every parameter of the model is filled.

Everywhere a checkpoint is accepted (:func:`resolve_checkpoint`), so is a pretrained name and a Hub id
``hf-hub:user/name[@revision]``.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

from fakescope.errors import CheckpointError, WeightsUnavailableError
from fakescope.models.base import DetectorModel
from fakescope.zoo.checkpoint import CONFIG, WEIGHTS, load, resolve, save
from fakescope.zoo.convert import CONVERTERS, unwrap_state
from fakescope.zoo.hub import (HF_PREFIX, HubModel, NotDownloadable, RemoteFile, fetch, home, hub_cache,
                               hub_checkpoint, hub_model, offline, recipe, reject, sha256_of)
from fakescope.models.layers.backbones import backbone_hub_model
from fakescope.models.registry import create_model, resolve_model_config
from fakescope.models.state import load_state_strict
# the entries and their registry (importing the module reads the catalogue files); re-exported here
from fakescope.zoo.catalogue import (PRETRAINED, PretrainedEntry, list_pretrained,  # noqa: F401
                                     pretrained_entry, register_pretrained)

# licence names -> the Hugging Face Hub's licence identifiers (a model card's ``license:``)
HUB_LICENCES = {"MIT": "mit", "CC BY-NC-SA 4.0": "cc-by-nc-sa-4.0", "CC BY-NC 4.0": "cc-by-nc-4.0",
                "CC BY-NC 3.0": "cc-by-nc-3.0", "GPL-3.0": "gpl-3.0"}


# ------------------------------------------------------------------------------------------ reading
def read_official(path: Path, *, move_aside: bool = True) -> Any:
    """An official weights file read with ``weights_only=True``: a pickle that would run code is refused."""
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = ("refused: the file is a pickle that asks to run code or build objects other than tensors "
                  f"(torch.load with weights_only=True: {str(exc).splitlines()[0]})")
    except Exception as exc:  # truncated zip, not a torch file
        reason = f"cannot be read as a torch weights file ({type(exc).__name__}: {str(exc).splitlines()[0]})"
    if move_aside:
        raise reject(path, reason)
    raise WeightsUnavailableError(f"{path}: {reason}")


def convert(entry: PretrainedEntry, path: Path | None, out: Path, *, move_aside: bool = True) -> Path:
    """Convert the official file at ``path`` into a fakescope checkpoint folder ``out``."""
    model = create_model(entry.arch, **entry.model)
    record: dict[str, Any] = {"name": entry.name, "source": entry.source, "licence": entry.licence,
                              "license_id": HUB_LICENCES.get(entry.licence, "other"),
                              "paper": entry.paper, "trained_on": entry.trained_on, "published": entry.published,
                              "official_preprocessing": entry.preprocessing, "weights_from_hub": list(entry.from_hub)}
    if entry.file is not None:
        official = read_official(path, move_aside=move_aside)
        state, dropped = unwrap_state(official, str(path))
        converted, used, dropped_keys = CONVERTERS.get(entry.converter)(state, model)
        dropped.update(dropped_keys)
        lost = sorted(set(state) - used - set(dropped))
        if lost:
            raise CheckpointError(f"{path}: {len(lost)} tensors of the official file have no place in "
                                  f"{entry.arch} and are not known to be droppable: {', '.join(lost[:10])}")
        own = model.state_dict()
        hub = {k: v for k, v in own.items() if k.startswith(entry.from_hub) and k not in converted} \
            if entry.from_hub else {}
        load_state_strict(model, {**hub, **converted}, source=str(path))
        record.update(file=entry.file.filename, url=entry.file.urls[0], sha256=entry.file.sha256,
                      size=entry.file.size, sha256_converted=sha256_of(path), tensors_used=len(used),
                      dropped=dropped)
    model.eval()
    card = _card(entry, record)
    return save(model, out, training={"pretrained": entry.name, "trained_on": entry.trained_on},
                extra={"pretrained": record}, notes=card)


def _card(entry: PretrainedEntry, record: dict[str, Any]) -> str:
    lines = ["## Source", "",
             f"Converted by fakescope from the official release of {entry.paper} ({entry.source}).", "",
             f"- licence: {entry.licence}", f"- trained on: {entry.trained_on}",
             f"- the authors' published numbers: {entry.published}",
             f"- the official evaluation's preprocessing: {entry.preprocessing}"]
    if entry.file is not None:
        lines += [f"- file: `{entry.file.filename}` from {entry.file.urls[0]}"
                  + (f", SHA-256 `{entry.file.sha256}`" if entry.file.sha256 else ""),
                  f"- conversion: {record['tensors_used']} tensors mapped; dropped on purpose: "
                  + (", ".join(f"`{k}` ({why})" for k, why in record["dropped"].items()) or "none")]
    if entry.from_hub:
        lines.append(f"- weights from the Hugging Face Hub by name: {', '.join(entry.from_hub)}")
    if entry.notes:
        lines += ["", entry.notes]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ resolution
def hub_models(entry: PretrainedEntry) -> list[HubModel]:
    """The transformers models that building ``entry``'s network loads from the Hub by name (its pretrained
    backbone, or the whole classifier), read from its model config."""
    from fakescope.models.baselines.hf_classifier import HFClassifierConfig, classifier_hub_model

    cfg = resolve_model_config(entry.arch, entry.model)
    if not cfg.pretrained or cfg.weights:
        return []
    if isinstance(cfg, HFClassifierConfig):
        return [classifier_hub_model(cfg)]
    backbone = getattr(cfg, "backbone", None)
    return [backbone_hub_model(backbone)] if isinstance(backbone, str) else []


def pretrained_checkpoint(name: str, *, weights_file: str | Path | None = None, progress: bool = True) -> Path:
    """The converted checkpoint folder of pretrained detector ``name`` (downloaded and converted once).

    Everything it needs (the official file, Hub models) is gathered first; what cannot be had is one error
    naming all of it and where each goes. With no network that takes one failed request (offline: none)."""
    entry = pretrained_entry(name)
    out = home() / "checkpoints" / name
    if (out / CONFIG).is_file() and (out / WEIGHTS).is_file() and weights_file is None:
        done = json.loads((out / CONFIG).read_text()).get("pretrained", {})
        if entry.file is None or done.get("sha256") == entry.file.sha256:
            return out
    path, missing, here = None, [], []
    if entry.file is not None:
        try:
            path = fetch(entry.file, progress=progress, local_file=weights_file)
            here.append(f"{entry.file.filename} ({path})")
        except NotDownloadable as exc:
            missing.append(exc)
    for model in hub_models(entry):
        try:  # the network is tried once: after a request that found none, the rest is only looked up
            here.append(f"{model.repo} ({hub_model(model, network=not any(m.unreachable for m in missing))})")
        except NotDownloadable as exc:
            missing.append(exc)
    if missing:
        raise WeightsUnavailableError(_not_here(entry, missing, here, out))
    return convert(entry, path, out, move_aside=weights_file is None)


def _not_here(entry: PretrainedEntry, missing: list[NotDownloadable], here: list[str], out: Path) -> str:
    """One error for everything ``entry`` lacks: each file, where it goes, and how to get it there."""
    off = offline() or any(m.offline for m in missing)
    why = ("HF_HUB_OFFLINE is set, so nothing is downloaded" if off else
           "no network" if any(m.unreachable for m in missing) else "they cannot be downloaded")
    lines = [f"{entry.name} cannot be loaded ({why}). It needs, and does not have:"]
    for i, m in enumerate(missing, 1):
        what = (f"{m.need.filename}, the detector weights (the official release)" if isinstance(m.need, RemoteFile)
                else f"{m.need.repo}, {m.need.role}")
        detail = "" if off else f" It cannot be downloaded: {m.why}."
        lines.append(f"  {i}. {what}.{detail} {recipe(m.need, m.path)}.")
    if here:
        lines.append(f"  Already here: {'; '.join(here)}.")
    lines.append(f"  Or, on a machine with network, load {entry.name} once (`fakescope detect ANY_IMAGE -m "
                 f"{entry.name}`), then copy its $FAKESCOPE_HOME/checkpoints/{entry.name} folder (the converted "
                 f"checkpoint, every weight included: nothing more is needed) to {out}, or pass that folder to -m. "
                 f"Files are looked for under FAKESCOPE_HOME (here {home()}) and the Hugging Face cache, HF_HOME/hub "
                 f"(here {hub_cache()}): set those variables to use copies kept elsewhere.")
    return "\n".join(lines)


def resolve_checkpoint(spec: str | Path, *, weights_file: str | Path | None = None) -> Path:
    """A checkpoint folder from a path, a pretrained name (``ARCH.TAG``) or a Hub id (``hf-hub:user/name``)."""
    text = str(spec)
    if text.startswith(HF_PREFIX):
        return resolve(hub_checkpoint(text))
    if Path(text).expanduser().exists():
        return resolve(Path(text).expanduser())
    if text in PRETRAINED:
        return pretrained_checkpoint(text, weights_file=weights_file)
    arch, _, tag = text.partition(".")
    hint = ""
    if tag and list_pretrained(f"{arch}.*"):
        hint = f"; pretrained tags of {arch}: {', '.join(list_pretrained(f'{arch}.*'))}"
    raise CheckpointError(f"{text}: checkpoint not found (not a checkpoint folder, a pretrained name: fakescope "
                          f"models --pretrained, or a Hub id: hf-hub:user/name){hint}")


def load_pretrained(spec: str | Path, device: str | None = None, *,
                    weights_file: str | Path | None = None) -> DetectorModel:
    """:func:`fakescope.zoo.checkpoint.load` for a path, a pretrained name or a Hub id."""
    return load(resolve_checkpoint(spec, weights_file=weights_file), device=device)

