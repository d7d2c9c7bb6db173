"""The report's figures as objects: the inter-model matrix in full with its diagonal, on the fixed scale,
in clustering order, with a colour bar beside (never over) the cells, legible at 50 systems, and every
figure written as PNG and SVG. Synthetic tables with two planted model families."""
from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from hivemind.report.stage import cluster_order, plot_inter_heatmap, plot_intra_heatmap, save_figure, system_style
from hivemind.report.figures import ANNOTATE_MAX, OKABE_ITO
from hivemind.results.contract import SIMILARITY_SCALE
from hivemind.analyze.similarity import BUCKET_LABELS


def planted(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.Series, set[str], set[str]]:
    """An n x n inter matrix whose systems, listed interleaved, belong to two families: similarity 0.8
    within a family, 0.4 across, plus noise; and the intra means."""
    rng = np.random.default_rng(seed)
    names = [f"{'fam-a' if k % 2 == 0 else 'fam-b'}-model-{k:02d}" for k in range(n)]
    family = np.array([k % 2 for k in range(n)])
    values = np.where(family[:, None] == family[None, :], 0.8, 0.4) + rng.uniform(-0.03, 0.03, (n, n))
    values = (values + values.T) / 2
    np.fill_diagonal(values, 1.0)                      # the CSV's diagonal counts an answer with itself
    inter = pd.DataFrame(values, index=pd.Index(names, name="system"), columns=names)
    intra = pd.Series(rng.uniform(0.85, 0.95, n), index=names)
    return inter, intra, {x for x, f in zip(names, family) if f == 0}, {x for x, f in zip(names, family) if f == 1}


def buckets_for(names: list[str], seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    shares = rng.dirichlet(np.ones(len(BUCKET_LABELS)), size=len(names))
    return pd.DataFrame(shares, index=pd.Index(names, name="system"), columns=BUCKET_LABELS)


def axes_of(fig):
    """(matrix axes, colour bar axes), after a layout pass so positions are final."""
    fig.draw_without_rendering()
    image_axes = [a for a in fig.axes if a.images]
    assert len(image_axes) == 1 and len(fig.axes) == 2
    return image_axes[0], next(a for a in fig.axes if a is not image_axes[0])


def tick_names(ax) -> list[str]:
    return [t.get_text() for t in ax.get_yticklabels()]


@pytest.mark.parametrize("n", [3, 50])
def test_matrix_is_full_with_the_intra_mean_on_its_diagonal(n):
    inter, intra, _, _ = planted(n)
    ax, _ = axes_of(plot_inter_heatmap(inter, intra))
    data = ax.images[0].get_array()
    assert data.shape == (n, n)
    order = tick_names(ax)
    assert sorted(order) == sorted(inter.index)
    assert not np.ma.getmaskarray(data).any()                          # every cell drawn, diagonal included
    np.testing.assert_allclose(np.diag(data), intra[order].to_numpy())  # not the CSV's 1.0
    np.testing.assert_allclose(data[0, 1], inter.at[order[0], order[1]])


@pytest.mark.parametrize("n", [3, 50])
def test_colour_scale_is_fixed_and_the_range_view_is_the_data(n):
    inter, intra, _, _ = planted(n)
    ax, _ = axes_of(plot_inter_heatmap(inter, intra))
    assert ax.images[0].get_clim() == SIMILARITY_SCALE
    ax, _ = axes_of(plot_inter_heatmap(inter, intra, scale="range"))
    low, high = ax.images[0].get_clim()
    between = inter.to_numpy()[~np.eye(n, dtype=bool)]           # the diagonal (intra) would flatten them
    assert low == pytest.approx(between.min()) and high == pytest.approx(between.max())
    assert ax.images[0].get_cmap().name.startswith("viridis")


@pytest.mark.parametrize("n", [3, 50])
def test_colour_bars_never_cover_the_cells(n):
    inter, intra, _, _ = planted(n)
    ax, cax = axes_of(plot_inter_heatmap(inter, intra))
    assert not ax.get_position().overlaps(cax.get_position())
    ax, cax = axes_of(plot_intra_heatmap(buckets_for(list(inter.index))))
    assert not ax.get_position().overlaps(cax.get_position())


@pytest.mark.parametrize("n", [6, 50])
def test_clustering_puts_each_planted_family_in_one_block(n):
    inter, intra, fam_a, fam_b = planted(n, seed=n)
    order = tick_names(axes_of(plot_inter_heatmap(inter, intra))[0])
    first = set(order[:n // 2])
    assert first in (fam_a, fam_b), order                       # interleaved input, contiguous output
    raw = cluster_order(inter.to_numpy())
    assert set(inter.index[raw[:n // 2]]) in (fam_a, fam_b)


def test_fifty_systems_stay_legible():
    inter, intra, _, _ = planted(50)
    fig = plot_inter_heatmap(inter, intra)
    ax, _ = axes_of(fig)
    assert not ax.texts                                      # no cell values above ANNOTATE_MAX systems
    renderer = FigureCanvasAgg(fig).get_renderer()
    for labels in (ax.get_yticklabels(), ax.get_xticklabels()):
        boxes = [t.get_window_extent(renderer) for t in labels]
        assert all(not a.overlaps(b) for a, b in zip(boxes, boxes[1:])), "tick labels overlap"
    assert min(t.get_fontsize() for t in ax.get_yticklabels()) >= 6
    fig = plot_intra_heatmap(buckets_for(list(inter.index)))
    ax, _ = axes_of(fig)
    boxes = [t.get_window_extent(FigureCanvasAgg(fig).get_renderer()) for t in ax.get_xticklabels()]
    assert len(boxes) == 51 and all(not a.overlaps(b) for a, b in zip(boxes, boxes[1:]))   # 50 + "Average"
    small = plot_inter_heatmap(*planted(ANNOTATE_MAX)[:2])
    assert len(axes_of(small)[0].texts) == ANNOTATE_MAX ** 2    # values written up to the limit


def test_system_styles_are_colour_blind_safe_and_distinct():
    styles = [system_style(k) for k in range(50)]
    assert len(set(styles)) == 50
    assert {c for c, _ in styles} <= set(OKABE_ITO)
    for k in range(49):                                # neighbours in config order differ in both
        assert styles[k][0] != styles[k + 1][0] and styles[k][1] != styles[k + 1][1]


def test_every_figure_is_written_as_png_and_svg(tmp_path):
    inter, intra, _, _ = planted(50)
    files = save_figure(plot_inter_heatmap(inter, intra), tmp_path / "inter_model_heatmap.png")
    assert [f.name for f in files] == ["inter_model_heatmap.png", "inter_model_heatmap.svg"]
    with Image.open(files[0]) as image:
        image.verify()
    root = ET.parse(files[1]).getroot()
    assert root.tag.endswith("svg")
    text = files[1].read_text(encoding="utf-8")
    assert "fam-a-model-00" in text.replace("\n", "") or root.find(".//{http://www.w3.org/2000/svg}g") is not None
