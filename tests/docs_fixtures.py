"""Reading the docs' Markdown tables in the docs tests: one parser for every page."""

from __future__ import annotations


def markdown_tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table in ``text``, as rows of cells (separator rows dropped)."""
    out: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                current.append(cells)
        elif current:
            out.append(current)
            current = []
    return out


def first_table(text: str) -> list[list[str]]:
    """The first Markdown table in ``text``, header row first; ``[]`` when there is none."""
    tables = markdown_tables(text)
    return tables[0] if tables else []
