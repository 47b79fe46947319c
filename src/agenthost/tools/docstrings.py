"""Reading a Google-style docstring: its summary and the parameters its ``Args:`` section describes."""

from __future__ import annotations

import re

# Google-style (napoleon) section headers. Only these end the summary or an Args section, so a
# summary line that merely ends in a colon is kept.
_SECTIONS = frozenset(
    {"args", "arguments", "parameters", "params", "keyword args", "keyword arguments", "kwargs"}
    | {"other parameters", "returns", "return", "yields", "yield", "raises", "raise", "exceptions"}
    | {"example", "examples", "note", "notes", "warning", "warnings", "warns", "see also"}
    | {"references", "todo", "attributes", "methods"}
)
_ARG_SECTIONS = frozenset(
    {"args", "arguments", "parameters", "params", "keyword args", "keyword arguments", "kwargs"}
    | {"other parameters"}
)
# A header stands alone ("Args:"); the one-line form "Returns: the total." also ends the summary.
_HEADER = re.compile(r"^([A-Za-z][A-Za-z ]*?)\s*:(?:\s|$)")
_ENTRY_NAME = re.compile(r"^\*{0,2}([A-Za-z_]\w*)\s*")


def parse_docstring(docstring: str) -> tuple[str, dict[str, tuple[str | None, str]]]:
    """The summary, and per documented parameter its type text (or None) and description."""
    lines = docstring.splitlines()
    summary: list[str] = []
    documented: dict[str, tuple[str | None, str]] = {}
    index = 0
    while index < len(lines) and _section(lines[index]) is None:
        summary.append(lines[index])
        index += 1
    while index < len(lines):
        section = _section(lines[index])
        header_indent = _indent(lines[index])
        index += 1
        body: list[str] = []
        while index < len(lines) and (not lines[index].strip() or _indent(lines[index]) > header_indent):
            body.append(lines[index])
            index += 1
        if section in _ARG_SECTIONS:
            documented.update(_parse_args(body))
        # Any other line at the header's indent starts the next section (or is stray text we skip).
        while index < len(lines) and _section(lines[index]) is None:
            index += 1
    return normalise(" ".join(summary)), documented


def _parse_args(body: list[str]) -> dict[str, tuple[str | None, str]]:
    entries: dict[str, tuple[str | None, list[str]]] = {}
    current: str | None = None
    entry_indent: int | None = None
    for line in body:
        if not line.strip():
            continue
        indent = _indent(line)
        if entry_indent is None:
            entry_indent = indent
        parsed = _parse_entry(line.strip()) if indent <= entry_indent else None
        if parsed is not None:
            current, doc_type, first = parsed
            entries[current] = (doc_type, [first])
        elif current is not None:
            entries[current][1].append(line.strip())
    return {name: (doc_type, normalise(" ".join(text))) for name, (doc_type, text) in entries.items()}


def _parse_entry(line: str) -> tuple[str, str | None, str] | None:
    """Split ``name (type): description`` or ``name: description``; None if the line is neither."""
    match = _ENTRY_NAME.match(line)
    if match is None:
        return None
    name, rest = match.group(1), line[match.end() :]
    doc_type: str | None = None
    if rest.startswith("("):
        # Scan to the matching parenthesis: types such as "tuple(int, int)" nest.
        depth = 0
        for position, char in enumerate(rest):
            depth += {"(": 1, ")": -1}.get(char, 0)
            if depth == 0:
                doc_type, rest = rest[1:position], rest[position + 1 :].lstrip()
                break
        else:
            return None
    if not rest.startswith(":"):
        return None
    if doc_type is not None:
        # Google style marks defaulted parameters "(int, optional)"; the signature already says so.
        doc_type = re.sub(r",?\s*optional\s*$", "", doc_type.strip(), flags=re.IGNORECASE).strip() or None
    return name, doc_type, rest[1:].strip()


def _section(line: str) -> str | None:
    match = _HEADER.match(line.strip())
    if match is None:
        return None
    title = " ".join(match.group(1).lower().split())
    return title if title in _SECTIONS else None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def normalise(text: str) -> str:
    return " ".join(text.split())
