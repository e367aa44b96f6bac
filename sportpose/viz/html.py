"""Self-contained HTML pages from the project's markdown reports, every PNG embedded (base64).

MLflow's artifact viewer shows a markdown artifact without its images (their links are relative to a folder
the browser cannot reach) but renders an HTML artifact in a frame: a report's ``report.html``, written beside
its ``report.md``, is that page. Only the markdown the reports write is understood: ``#`` headings, ``- ``
items, pipe tables (header, ``|---|`` rule, rows), ``![alt](file.png)`` images, paragraphs, and inline
``**bold**`` and ```code```.

MLflow 3.17's viewer leaves an HTML artifact of about 1 MB blank (seen with a 1.0 MB MultiStream report; a
0.5 MB one shows), so a large picture (frame sheets of several hundred KB as PNG) is embedded as a JPEG of
quality 85 instead; charts stay PNG. The PNG files beside the report are unchanged.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

import cv2
import numpy as np

IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)\s]+)\)$")
STYLE = ("body{font-family:sans-serif;margin:2em;max-width:1400px;color:#222} table{border-collapse:collapse;"
         "font-size:13px;margin:0.5em 0} td,th{padding:3px 8px;border-bottom:1px solid #ddd;text-align:left}"
         "img{max-width:100%} code{background:#f3f3f3;padding:0 3px}")


JPEG_ABOVE = 150_000  # bytes: a PNG larger than this is embedded as a JPEG (module docstring)


def embed_png(path: Path, alt: str = "", jpeg_above: int | None = None) -> str:
    """An ``<img>`` holding the picture itself: the PNG, or a JPEG of it when the PNG is over ``jpeg_above``
    bytes (default: never)."""
    raw = Path(path).read_bytes()
    kind = "png"
    if jpeg_above is not None and len(raw) > jpeg_above:
        image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85]) if image is not None else (False, None)
        if ok and len(jpeg) < len(raw):
            raw, kind = jpeg.tobytes(), "jpeg"
    data = base64.b64encode(raw).decode()
    return f'<figure><img alt="{html.escape(alt or Path(path).stem)}" src="data:image/{kind};base64,{data}"></figure>'


def _inline(text: str) -> str:
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _cells(row: str) -> list[str]:
    return [c.strip() for c in row.strip().strip("|").split("|")]


def markdown_page(text: str, folder: Path, title: str = "") -> str:
    """The markdown ``text`` as one HTML page; images are read from ``folder`` (a missing one is named)."""
    lines = text.splitlines()
    body: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i].rstrip()
        if not line:
            i += 1
        elif m := re.match(r"^(#{1,6}) (.*)$", line):
            level = len(m.group(1))
            body.append(f"<h{level}>{_inline(m.group(2))}</h{level}>")
            i += 1
        elif m := IMAGE.match(line):
            alt, name = m.groups()
            path = folder / name
            inside = path.resolve().is_relative_to(folder.resolve())  # a link never reads outside the report
            body.append(embed_png(path, alt, JPEG_ABOVE) if inside and path.is_file() and path.suffix.lower() == ".png"
                        else f"<p>[missing image {html.escape(name)}]</p>")
            i += 1
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            head, rest = rows[0], [r for r in rows[1:] if not all(re.fullmatch(r":?-+:?", c) for c in r)]
            body.append("<table><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr>"
                        + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in rest)
                        + "</table>")
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            body.append("<ul>" + "".join(items) + "</ul>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not re.match(r"^(#|\||- |!\[)", lines[i]):
                para.append(lines[i].strip())
                i += 1
            body.append(f"<p>{_inline(' '.join(para))}</p>")
    title = title or next((re.sub(r"^#+ ", "", x) for x in lines if x.startswith("#")), "report")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>\n")


def write_markdown_page(markdown_path: Path) -> Path:
    """``report.md`` -> ``report.html`` beside it, images embedded; returns the HTML file."""
    markdown_path = Path(markdown_path)
    out = markdown_path.with_suffix(".html")
    out.write_text(markdown_page(markdown_path.read_text(), markdown_path.parent))
    return out
