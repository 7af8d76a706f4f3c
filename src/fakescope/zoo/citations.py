"""CITATIONS.bib for a report: fakescope, and every architecture, release and dataset that produced a number in it.

The works and which names they cover are data (``citations.yaml`` beside this module); a released detector's
catalogue entry names its own works (``cite``). :func:`citations_for` collects the keys, :func:`write_citations`
writes the file. A name that no work covers is simply not cited (say, a user's own dataset).
"""

from __future__ import annotations

import fnmatch
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import yaml
from pydantic import Field, ValidationError, model_validator

from fakescope._version import __version__
from fakescope.errors import ConfigError
from fakescope.schema import Strict

CITATIONS = Path(__file__).with_name("citations.yaml")
FILENAME = "CITATIONS.bib"


class Works(Strict):
    works: dict[str, str] = Field(min_length=1, description="key -> BibTeX entry")
    architectures: dict[str, list[str]] = Field(default_factory=dict)
    tables: dict[str, list[str]] = Field(default_factory=dict, description="paper table pattern -> keys")
    datasets: dict[str, list[str]] = Field(default_factory=dict, description="name pattern -> keys")

    @model_validator(mode="after")
    def _known_keys(self) -> "Works":
        for key, text in self.works.items():
            if not text.lstrip().startswith("@") or f"{{{key}," not in text:
                raise ValueError(f"work {key!r}: its BibTeX must be an entry whose key is {key!r}")
        for where, table in (("architectures", self.architectures), ("tables", self.tables),
                             ("datasets", self.datasets)):
            for name, keys in table.items():
                unknown = sorted(set(keys) - set(self.works))
                if unknown:
                    raise ValueError(f"{where}.{name}: unknown work(s) {', '.join(unknown)}")
        return self


@lru_cache(maxsize=1)
def works() -> Works:
    """The validated works table (:class:`ConfigError` naming the file when it is not valid)."""
    try:
        return Works.model_validate(yaml.safe_load(CITATIONS.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{CITATIONS}: not a valid citations file ({type(exc).__name__}: {exc})") from None


def citations_for(*, architectures: Iterable[str] = (), pretrained: Iterable[str] = (), tables: Iterable[str] = (),
                  datasets: Iterable[str] = ()) -> list[str]:
    """The keys to cite, fakescope first, each once, in the order met: architectures (registered model names),
    released detectors (``ARCH.TAG``), paper tables (their names) and datasets (test or training set names), the
    last two matched by pattern."""
    from fakescope.zoo.catalogue import PRETRAINED

    table, keys = works(), ["fakescope"]
    for arch in architectures:
        keys += table.architectures.get(arch, [])
    for name in pretrained:
        if name in PRETRAINED:
            entry = PRETRAINED.get(name)
            keys += table.architectures.get(entry.arch, []) + list(entry.cite)
    for names, patterns in ((tables, table.tables), (datasets, table.datasets)):
        for name in names:
            low = str(name).lower()
            keys += [k for pattern, found in patterns.items() if fnmatch.fnmatchcase(low, pattern) for k in found]
    return list(dict.fromkeys(keys))


def bibtex(keys: Iterable[str]) -> str:
    """The BibTeX of ``keys`` (unknown keys are an error naming them)."""
    table = works()
    keys = list(keys)
    unknown = [k for k in keys if k not in table.works]
    if unknown:
        raise ConfigError(f"no citation for {', '.join(unknown)} in {CITATIONS}")
    return "\n\n".join(table.works[k].replace("%(version)s", __version__) for k in keys) + "\n"


def write_citations(folder: str | Path, **names: Iterable[str]) -> Path:
    """Write ``folder/CITATIONS.bib`` for the architectures, released detectors and datasets named (keywords of
    :func:`citations_for`); returns its path."""
    path = Path(folder) / FILENAME
    path.write_text("% Works that produced the numbers in this folder's report (written by fakescope).\n\n"
                    + bibtex(citations_for(**names)), encoding="utf-8")
    return path


def cited_keys(path: str | Path) -> list[str]:
    """The keys of the entries in a CITATIONS.bib written by :func:`write_citations` (none if it is absent)."""
    import re

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError:
        return []
    return [k for k in re.findall(r"^@\w+\{([^,\s]+),", text, flags=re.M) if k in works().works]
