"""Citations as text a reference manager takes: BibTeX, APA-style lines, or JSON."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from mamamia._errors import InvalidRequest

__all__ = ["CITATION_FORMATS", "format_citations"]

CITATION_FORMATS = ("bibtex", "apa", "json")


def _key(item: Mapping[str, Any], index: int) -> str:
    doi = str(item.get("doi") or "")
    tail = re.sub(r"[^A-Za-z0-9]+", "_", doi.rsplit("/", 1)[-1]).strip("_")
    return f"mamamia_{item.get('kind') or 'work'}_{tail or index}"


def _bib_escape(text: str) -> str:
    return re.sub(r"([&%$#_{}])", r"\\\1", text)


def _bibtex(items: Sequence[Mapping[str, Any]]) -> str:
    entries = []
    for index, item in enumerate(items):
        kind = "article" if item.get("kind") == "paper" else "misc"
        fields = {"title": item.get("text"), "doi": item.get("doi"), "url": item.get("url")}
        if item.get("licence"):
            fields["note"] = f"Licence: {item['licence']}"
        body = ",\n".join(
            f"  {name} = {{{_bib_escape(str(value))}}}" for name, value in fields.items() if value
        )
        entries.append(f"@{kind}{{{_key(item, index)},\n{body}\n}}")
    return "\n\n".join(entries) + "\n"


def _apa(items: Sequence[Mapping[str, Any]]) -> str:
    lines = []
    for item in items:
        text = str(item.get("text") or "").strip()
        doi = item.get("doi")
        link = f"https://doi.org/{doi}" if doi else item.get("url")
        lines.append(f"{text} {link}".strip() if link and str(link) not in text else text)
    return "\n".join(lines) + "\n"


def format_citations(licence: str, items: Sequence[Mapping[str, Any]], fmt: str) -> str:
    """The works to cite in ``fmt`` (``bibtex``, ``apa`` or ``json``)."""
    if fmt == "bibtex":
        return _bibtex(items)
    if fmt == "apa":
        return _apa(items)
    if fmt == "json":
        body = {"licence": licence, "citations": [dict(item) for item in items]}
        return json.dumps(body, indent=2, default=str) + "\n"
    raise InvalidRequest(f"format must be one of {CITATION_FORMATS}, not {fmt!r}")
