"""Rendering of report sections: cell formatting, CSV files, Markdown and one self-contained HTML page.

A report is a list of `Section` (title, heading level, blocks, CSV files written); a `Block` is
a paragraph, a table (rows of already formatted strings, header first) or an image (a PNG path
beside report.md). Nothing here computes statistics or reads results.
"""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv


@dataclass(frozen=True)
class Block:
    """One piece of a section: kind is "p" (text, Markdown **bold** and `code`), "table" or "img"."""

    kind: str
    text: str = ""  # paragraph text, or an image's caption
    rows: list[list[str]] | None = None  # table: header row first
    image: Path | None = None  # img: the PNG (sits beside report.md)


@dataclass(frozen=True)
class Section:
    """One report section: a heading (level 1 or 2), its blocks and the CSV files it wrote."""

    title: str
    blocks: list[Block] = field(default_factory=list)
    level: int = 2
    files: tuple[Path, ...] = ()


def p(text: str) -> Block:
    """A paragraph block."""
    return Block("p", text)


def img(path: Path, caption: str) -> Block:
    """An image block: the PNG at ``path`` with ``caption``."""
    return Block("img", caption, image=path)


# ----- cells, tables, CSV ----------------------------------------------------------------------
def fmt(v: object, col: str = "") -> str:
    """A table cell: percentages signed, p-values to 3 significant digits, scores to 2 decimals."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)) or not isinstance(v, float):
        return str(v)
    if col.endswith("pct"):
        return f"{v:+.1f}%"
    if col.endswith("_p") or "_p_" in col or col in ("p", "lo", "hi", "p_improvement") or "cles" in col:
        return f"{v:.3g}" if abs(v) >= 1e-3 else f"{v:.2e}"
    return f"{v:.1f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) >= 1 else f"{v:.3g}"


def table(t: pa.Table, columns: list[tuple[str, str]]) -> Block:
    """A table block of the given (column, header) pairs of ``t``, cells formatted by `fmt`."""
    return Block("table", rows=[[h for _, h in columns]] + [[fmt(r.get(c), c) for c, _ in columns]
                                                            for r in t.to_pylist()])


def write_csv(t: pa.Table, path: Path) -> Path:
    """CSV of ``t``; nested columns (lists, structs, maps) are written as JSON text."""
    for i, f in enumerate(t.schema):
        if pa.types.is_nested(f.type):
            text = [None if v is None else json.dumps(v, default=str) for v in t.column(i).to_pylist()]
            t = t.set_column(i, f.name, pa.array(text, pa.string()))
    pacsv.write_csv(t, path)
    return path


# ----- Markdown and HTML -----------------------------------------------------------------------
def to_markdown(sections: list[Section]) -> str:
    """Markdown with pipe tables; images are linked by file name (they sit beside report.md)."""
    parts = []
    for s in sections:
        parts.append("#" * s.level + " " + s.title)
        for b in s.blocks:
            if b.kind == "p":
                parts.append(b.text)
            elif b.kind == "table" and b.rows:
                esc = [[c.replace("|", "\\|") for c in row] for row in b.rows]
                parts.append("\n".join(["| " + " | ".join(esc[0]) + " |", "|" + "---|" * len(esc[0])]
                                       + ["| " + " | ".join(r) + " |" for r in esc[1:]]))
            elif b.kind == "img" and b.image:
                parts.append(f"![{b.text}]({b.image.name})\n\n*{b.text}*")
    return "\n\n".join(parts) + "\n"


def _inline_md(text: str) -> str:
    """HTML-escape, then render **bold** and `code` spans."""
    out = html.escape(text)
    for mark, tag in (("**", "strong"), ("`", "code")):
        pieces = out.split(mark)
        out = "".join(q if i % 2 == 0 else f"<{tag}>{q}</{tag}>" for i, q in enumerate(pieces))
    return out


def _html_block(b: Block) -> str:
    if b.kind == "p":
        return f"<p>{_inline_md(b.text)}</p>"
    if b.kind == "table" and b.rows:
        head = "".join(f"<th>{html.escape(c)}</th>" for c in b.rows[0])
        rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in b.rows[1:])
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    if b.kind == "img" and b.image:
        data = base64.b64encode(b.image.read_bytes()).decode()
        return (f'<figure><img alt="{html.escape(b.text)}" src="data:image/png;base64,{data}">'
                f"<figcaption>{html.escape(b.text)}</figcaption></figure>")
    return ""


STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;line-height:1.45}"
         "table{border-collapse:collapse;font-size:0.85em;margin:1em 0}td,th{border:1px solid #ccc;"
         "padding:3px 6px;text-align:right}th{background:#f3f3f3}img{max-width:100%}"
         "figcaption{font-size:0.9em;color:#555}")


def to_html(sections: list[Section], title: str) -> str:
    """One self-contained HTML page: images embedded as base64 PNG."""
    body = []
    for s in sections:
        body.append(f"<h{s.level}>{html.escape(s.title)}</h{s.level}>")
        body += [h for h in map(_html_block, s.blocks) if h]
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def write_report(sections: list[Section], out: Path, title: str) -> Path:
    """Write ``out``/report.md and ``out``/report.html of ``sections``; returns report.md's path."""
    md = out / "report.md"
    md.write_text(to_markdown(sections))
    (out / "report.html").write_text(to_html(sections, title))
    return md
