"""Text written into output files: always valid UTF-8, and CSV cells a spreadsheet never runs as formulas.

* :func:`utf8_text`: a file name's undecodable bytes (Python's surrogate escapes, ``os.fsdecode``) become the four
  characters ``\\xNN``, the same in every format (JSON lines, CSV, Parquet), so a strict UTF-8 reader takes the whole
  file; :func:`utf8_obj` does it to every string of a record.
* :func:`csv_cell` / :func:`csv_value`: the OWASP rule for CSV injection: a text cell starting with ``=``, ``+``,
  ``-``, ``@``, a tab or a carriage return gets a leading ``'`` (a cell already starting with ``'`` gets one more,
  so that reading back is exact); :func:`csv_value` takes it off again (resume recognises the path).
"""

from __future__ import annotations

from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def utf8_text(text: str) -> str:
    """``text`` as valid UTF-8: undecodable bytes of a file name (surrogate escapes) as ``\\xNN``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def utf8_obj(value: Any) -> Any:
    """``value`` with :func:`utf8_text` applied to every string in it (lists, tuples and dicts, keys too)."""
    if isinstance(value, str):
        return utf8_text(value)
    if isinstance(value, dict):
        return {utf8_obj(k): utf8_obj(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [utf8_obj(v) for v in value]
    return value


def csv_cell(value: Any) -> Any:
    """A cell for a CSV file: text as valid UTF-8, neutralised if a spreadsheet would read it as a formula;
    numbers and booleans as they are."""
    if not isinstance(value, str):
        return value
    text = utf8_text(value)
    return "'" + text if text.startswith(FORMULA_START + ("'",)) else text


def csv_value(cell: str) -> str:
    """What :func:`csv_cell` was given (for text): one leading ``'`` that it added is taken off."""
    if len(cell) > 1 and cell[0] == "'" and cell[1] in FORMULA_START + ("'",):
        return cell[1:]
    return cell
