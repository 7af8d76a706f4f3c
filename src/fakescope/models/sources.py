"""Where an architecture's pretrained parts come from: Hugging Face Hub references and the cache, as data.

An architecture names the Hub weights it is built from (a backbone, a whole classifier, ImageNet Xception) by a
:class:`HubModel` or an ``hf-hub:user/name[@revision]`` id; it never downloads. Getting the files into the
Hugging Face cache is the weights package's job (:mod:`fakescope.zoo`), which installs itself here as the
source (:func:`set_weight_source`) when it is imported. Without it, only the cache is read, and a missing
file is an error saying how to get it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from fakescope.errors import WeightsUnavailableError

HF_PREFIX = "hf-hub:"
WEIGHTS_NAMES = ("model.safetensors", "pytorch_model.bin")  # a transformers repository's weights, preferred first


@dataclass(frozen=True)
class HubModel:
    """A transformers model that a detector loads from the Hugging Face Hub by name."""

    repo: str  # user/name
    revision: str | None = None  # a commit; None: the repository's main branch, whatever it holds
    role: str = "model"  # what it is to the detector, in words ("the backbone (transformers CLIPVisionModel)")
    files: tuple[str, ...] = ("config.json",)  # all of them
    weights: tuple[str, ...] = WEIGHTS_NAMES  # one of them: the first the repository has

    @property
    def folder(self) -> str:
        """Its folder in the Hugging Face cache."""
        return "models--" + self.repo.replace("/", "--")


def parse_hub_id(spec: str) -> tuple[str, str | None]:
    """``hf-hub:user/name[@revision]`` (or ``user/name[@revision]``) -> ``(user/name, revision)``: the one reader of
    Hub ids (checkpoints, pushes, ImageNet Xception weights)."""
    ref = spec[len(HF_PREFIX):] if spec.startswith(HF_PREFIX) else spec
    repo, _, revision = ref.partition("@")
    repo = repo.strip("/")
    if repo.count("/") != 1 or not all(repo.split("/")):
        raise WeightsUnavailableError(f"{spec}: expected a Hub id hf-hub:<organisation>/<repository>, optionally "
                                      "with @<revision> (a commit, branch or tag)")
    return repo, revision or None


def hub_cache() -> Path:
    """The Hugging Face cache (``$HF_HUB_CACHE``, default ``$HF_HOME/hub``)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def cached_file(repo: str, filename: str, revision: str | None = None) -> Path | None:
    """One file of a Hub repository in the Hugging Face cache, or None (the cache only, no network)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename, revision=revision, cache_dir=str(hub_cache()))
    return Path(found) if isinstance(found, str) and Path(found).is_file() else None


def hub_cached(model: HubModel) -> Path | None:
    """The snapshot folder holding all of ``model``'s files at its revision, or None (the cache only)."""
    if not all(cached_file(model.repo, name, model.revision) for name in model.files):
        return None
    return next((found.parent for name in model.weights
                 if (found := cached_file(model.repo, name, model.revision))), None)


# ------------------------------------------------------------------------------------------- the source
def _cache_only_model(model: HubModel, hint: str = "") -> Path:
    found = hub_cached(model)
    if found is None:
        raise WeightsUnavailableError(
            f"{model.repo} ({model.role}) is not in the Hugging Face cache ({hub_cache()}); import fakescope.zoo "
            f"(fakescope.load, fakescope.Detector and the CLI do) to have it downloaded{hint}")
    return found


def _cache_only_file(spec: str, filename: str, role: str) -> Path:
    repo, revision = parse_hub_id(spec)
    found = cached_file(repo, filename, revision)
    if found is None:
        raise WeightsUnavailableError(
            f"{filename} of {repo} ({role}) is not in the Hugging Face cache ({hub_cache()}); import fakescope.zoo "
            "(fakescope.load, fakescope.Detector and the CLI do) to have it downloaded")
    return found


_source: dict[str, Callable] = {"model": _cache_only_model, "file": _cache_only_file}


def set_weight_source(model: Callable[..., Path], file: Callable[[str, str, str], Path]) -> None:
    """Install how Hub weights reach the cache: ``model(hub_model, hint=...)`` returns the snapshot folder of
    a :class:`HubModel`, ``file(spec, filename, role)`` one file of an ``hf-hub:`` id (both download as
    needed). :mod:`fakescope.zoo` calls it on import."""
    _source.update(model=model, file=file)


def hub_snapshot(model: HubModel, hint: str = "") -> Path:
    """``model``'s snapshot folder in the Hugging Face cache, through the installed source."""
    return _source["model"](model, hint=hint)


def hub_file(spec: str, filename: str, role: str) -> Path:
    """The local path of ``filename`` of the Hub repository ``spec`` (``hf-hub:user/name[@revision]``)."""
    return _source["file"](spec, filename, role)
