"""Pictures of a RainbowPlus archive: a heatmap of the cells and an HTML report.

:func:`write_archive_report` writes ``archive_heatmap.png`` (each cell's best fitness, with
its number of prompts) and ``archive.html`` (the heatmap, the archive's metrics and each
cell's fittest prompt) into a directory; ``sparring train train=rainbow`` writes both into
its run directory when it finishes.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

import numpy as np

from sparring.arenas.report import _STYLE, _png
from sparring.envs.rainbow import Archive

HEATMAP = "archive_heatmap.png"
REPORT = "archive.html"

_CHECK = """
window.addEventListener('load', function () {
  var images = Array.prototype.slice.call(document.images);
  var drawn = images.length > 0 && images.every(function (i) { return i.complete && i.naturalWidth > 0; });
  var rows = document.querySelectorAll('#metrics tbody tr').length;
  document.body.setAttribute('data-rendered', drawn && rows > 0 ? 'ok' : 'broken');
});
"""


def best_fitness(archive: Archive) -> np.ndarray:
    """``[categories, styles]``: each cell's best fitness (NaN where the cell is empty)."""
    grid = np.full((len(archive.categories), len(archive.styles)), np.nan)
    for i, category in enumerate(archive.categories):
        for j, style in enumerate(archive.styles):
            cell = archive.cell(category, style)
            if cell:
                grid[i, j] = max(e.fitness for e in cell)
    return grid


def heatmap_png(archive: Archive, title: str = "") -> bytes:
    """The archive as a PNG heatmap: best fitness per cell, its prompt count written in it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = best_fitness(archive)
    fig, ax = plt.subplots(figsize=(2.5 + 0.75 * len(archive.styles), 1.5 + 0.5 * len(archive.categories)), dpi=100)
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="magma", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(archive.styles)), archive.styles, rotation=45, ha="right")
    ax.set_yticks(range(len(archive.categories)), archive.categories)
    ax.set_xlabel("attack style")
    ax.set_ylabel("risk category")
    for i, category in enumerate(archive.categories):
        for j, style in enumerate(archive.styles):
            count = len(archive.cell(category, style))
            if count:
                ax.text(j, i, str(count), ha="center", va="center", fontsize=8,
                        color="white" if grid[i, j] < 0.6 else "black")
    ax.set_title(title or f"{len(archive)} prompts, coverage {archive.coverage():.0%}")
    fig.colorbar(image, ax=ax, shrink=0.8, label="best fitness P(unsafe)")
    uri = _png(fig)
    return base64.b64decode(uri.split(",", 1)[1])


def html_report(archive: Archive, metrics: dict[str, Any] | None = None, title: str = "RainbowPlus archive",
                heatmap: bytes | None = None) -> str:
    """The report page; ``heatmap``: the PNG of :func:`heatmap_png` when already drawn."""
    e = html.escape
    shown = {"prompts": len(archive), "coverage": archive.coverage(), "qd_score": archive.qd_score(),
             "unique_prompts": archive.unique_prompts()} | dict(metrics or {})
    metric_rows = "".join(f"<tr><td></td><td>{e(k)}</td><td>{v:.3f}</td></tr>" if isinstance(v, float)
                          else f"<tr><td></td><td>{e(k)}</td><td>{e(str(v))}</td></tr>" for k, v in shown.items())
    cells = []
    for category in archive.categories:
        for style in archive.styles:
            cell = archive.cell(category, style)
            if cell:
                best = max(cell, key=lambda entry: entry.fitness)
                cells.append(f"<tr><td>{len(cell)}</td><td>{e(category)} × {e(style)}</td><td>{best.fitness:.2f}</td>"
                             f"<td style='text-align:left'>{e(best.prompt)}</td></tr>")
    picture = base64.b64encode(heatmap if heatmap is not None else heatmap_png(archive, title)).decode()
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)} · sparring</title>
<style>{_STYLE}</style></head>
<body data-rendered="pending">
<h1>{e(title)}</h1>
<h2>Metrics</h2>
<table id="metrics"><thead><tr><th></th><th>metric</th><th>value</th></tr></thead><tbody>{metric_rows}</tbody></table>
<h2>Cells</h2>
<img id="heatmap" alt="archive heatmap" src="data:image/png;base64,{picture}">
<p>Each cell's best fitness (the judge's P(unsafe)); the number is the cell's prompt count.</p>
<table id="cells"><thead><tr><th>prompts</th><th>cell</th><th>best fitness</th><th>its prompt</th></tr></thead>
<tbody>{''.join(cells)}</tbody></table>
<script>{_CHECK}</script>
</body></html>
"""


def write_archive_report(archive: Archive, directory: str | Path, metrics: dict[str, Any] | None = None,
                         title: str = "RainbowPlus archive") -> dict[str, Path]:
    """``archive_heatmap.png`` and ``archive.html`` in ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"heatmap": directory / HEATMAP, "html": directory / REPORT}
    picture = heatmap_png(archive, title)
    paths["heatmap"].write_bytes(picture)
    paths["html"].write_text(html_report(archive, metrics, title, picture), encoding="utf-8")
    return paths
