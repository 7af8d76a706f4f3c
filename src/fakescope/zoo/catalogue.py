"""The released detectors fakescope knows by name: the entry schema, its registry, and the catalogue files.

The entries are data: one YAML file per family in ``fakescope/zoo/entries/`` (the way open_clip keeps model
configs), read and validated when this module is imported, so that adding a release touches no code. A file
holds ``family``, optional ``defaults`` (merged under each entry) and ``entries``. Each entry is checked against
:class:`PretrainedEntry` (an unknown key is an error), its architecture must be registered, its model config
must validate against that architecture's config class, and its converter must exist
(:mod:`fakescope.zoo.convert`); any failure is an error naming the file and the entry. Downloading and
conversion: :mod:`fakescope.zoo.pretrained`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError

from fakescope.errors import ConfigError
from fakescope.models.registry import MODELS, resolve_model_config
from fakescope.registry import Registry
from fakescope.schema import Strict, deep_merge
from fakescope.zoo.convert import CONVERTERS
from fakescope.zoo.hub import RemoteFile

ENTRIES = Path(__file__).with_name("entries")


class PretrainedEntry(Strict):
    """One released detector: where its weights are, what they are, and how fakescope reads them."""

    arch: str = Field(description="the registered fakescope model the weights are converted into")
    tag: str
    file: RemoteFile | None = Field(default=None, description="the official weights file (None: all weights "
                                                               "come from the Hugging Face Hub)")
    converter: str = Field(default="", description="the key map of fakescope.zoo.convert")
    model: dict[str, Any] = Field(default_factory=dict, description="model config (incl. the official "
                                                                    "evaluation's preprocessing)")
    from_hub: tuple[str, ...] = Field(default=(), description="parameter prefixes whose weights come from the "
                                                              "Hub by name (pretrained backbones), not the file")
    licence: str
    paper: str
    trained_on: str
    published: str = Field(description="the authors' numbers for these weights, and where they are printed")
    preprocessing: str = Field(description="the official evaluation's preprocessing, in words")
    source: str = Field(description="the official repository or model page")
    notes: str = ""
    cite: tuple[str, ...] = Field(default=(), description="keys of fakescope/zoo/citations.yaml: the works to cite "
                                                           "for numbers these weights produce")

    @property
    def name(self) -> str:
        return f"{self.arch}.{self.tag}"


class CatalogueFile(Strict):
    """One family's file: its name, the fields its entries share, and the entries."""

    family: str
    defaults: dict[str, Any] = Field(default_factory=dict)
    entries: list[dict[str, Any]] = Field(min_length=1)


PRETRAINED: Registry[PretrainedEntry] = Registry("pretrained detector")


def check_entry(entry: PretrainedEntry) -> None:
    """What a schema alone cannot check: the architecture, its config and the converter exist and agree."""
    if entry.arch not in MODELS:
        raise ValueError(f"unknown architecture {entry.arch!r} (registered: {', '.join(MODELS.names())})")
    if entry.file is not None and entry.converter not in CONVERTERS:
        raise ValueError(f"unknown converter {entry.converter!r} (known: {', '.join(CONVERTERS.names())})")
    resolve_model_config(entry.arch, entry.model)  # the model config validates against its class
    from fakescope.zoo.citations import works

    unknown = sorted(set(entry.cite) - set(works().works))
    if unknown:
        raise ValueError(f"cite: unknown work(s) {', '.join(unknown)} (see {works.__module__})")


def register_pretrained(entry: PretrainedEntry) -> PretrainedEntry:
    check_entry(entry)
    return PRETRAINED.add(entry.name, entry, description=entry.paper)


def read_catalogue_file(path: str | Path) -> list[PretrainedEntry]:
    """The validated entries of one catalogue file; :class:`ConfigError` naming the file and entry otherwise."""
    path = Path(path)
    try:
        doc = CatalogueFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{path}: not a valid catalogue file ({type(exc).__name__}: {exc})") from None
    out = []
    for i, raw in enumerate(doc.entries):
        where = f"{path}: entry {i + 1} ({raw.get('arch', doc.defaults.get('arch', '?'))}.{raw.get('tag', '?')})"
        try:
            entry = PretrainedEntry.model_validate(deep_merge(doc.defaults, raw))
            check_entry(entry)
        except (ValidationError, ValueError, ConfigError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
        out.append(entry)
    return out


def load_catalogue(folder: str | Path = ENTRIES, registry: Registry[PretrainedEntry] | None = None) -> list[str]:
    """Register every entry of the ``*.yaml`` files in ``folder`` (sorted by file name) in ``registry`` (default:
    :data:`PRETRAINED`); returns their names. A name registered twice is an error naming it and the file."""
    registry = PRETRAINED if registry is None else registry
    entries = [(path, entry) for path in sorted(Path(folder).glob("*.yaml")) for entry in read_catalogue_file(path)]
    for path, entry in entries:  # all files are validated before anything is registered
        if entry.name in registry or sum(e.name == entry.name for _, e in entries) > 1:
            raise ConfigError(f"{path}: {entry.name} is already in the catalogue")
    for _, entry in entries:
        registry.add(entry.name, entry, description=entry.paper)
    return [entry.name for _, entry in entries]


def list_pretrained(pattern: str = "*") -> list[str]:
    """Sorted names (``ARCH.TAG``) of the pretrained detectors matching a shell-style ``pattern``."""
    return PRETRAINED.names(pattern)


def pretrained_entry(name: str) -> PretrainedEntry:
    return PRETRAINED.get(name)


load_catalogue()
