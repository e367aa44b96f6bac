"""The study spec (YAML, ``experiments/paper/NAME.yaml``): one table or figure of one of the papers, as
``sportpose reproduce NAME`` runs it::

    name: table9-fusion
    paper: multistream                 # multistream (seeds/000, 2D) or stsp (seeds/004, 3D)
    caption: "Table 9. Comparison of feature fusion strategies (AP, %)"
    row_header: Fusion strategy
    scales:                            # exactly tiny, demo and paper: a base experiment spec (and -o overrides)
      tiny: {base: base/multistream_tiny.yaml}
      demo: {base: ../multistream_demo.yaml}
      paper: {base: ../multistream_paper.yaml}
    reuse: [spatial, temporal, context]   # stages every row takes from the base run
    columns:
      - {label: Head, key: ap_groups.Head}
      - {label: Overall MAP, key: ap_groups.Total}
    rows:
      - {label: Early Fusion, overrides: [model.fusion=early]}
      - {label: Hybrid Fusion, overrides: [model.fusion=hybrid]}

Plain frozen dataclasses that :func:`sportpose.spec.fill.fill` fills strictly (an unknown key is an error
naming the key); :mod:`sportpose.pipelines.reproduce.study` reads the file, resolves the base spec and every
row's spec, and runs the study. Nothing here imports more than the error types, so the command line can offer
:data:`SCALES` without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sportpose.errors import SpecError
from sportpose.paths import check_name

SCALES = ("tiny", "demo", "paper")  # the test's (seconds), this machine's (minutes), the papers' (GPU clusters)


@dataclass(frozen=True)
class ScaleSpec:
    """The base experiment of one scale."""

    base: str  # experiment spec, relative to the study file
    overrides: tuple[str, ...] = ()  # -o overrides of the base at this scale


@dataclass(frozen=True)
class ColumnSpec:
    """One column of the paper's table and the figure of ours it shows."""

    label: str  # as the paper prints it
    # Dotted path into a row's figures: ap_groups.Head, ap, mpjpe, pck3d, ts_mm_per_s2, views.baseline,
    # params_m, gmacs, fps, ...
    key: str
    digits: int = 1


@dataclass(frozen=True)
class RowSpec:
    """One row: the base spec with overrides, and the paper's numbers."""

    label: str  # as the paper prints it
    overrides: tuple[str, ...] = ()  # -o overrides of the base spec, every scale
    scale_overrides: dict[str, tuple[str, ...]] = field(default_factory=dict)  # extra overrides per scale
    reuse: tuple[str, ...] | None = None  # stages taken from the base run; None: the study's `reuse`
    paper: dict[str, float | None] = field(default_factory=dict)  # column label -> paper's number (null: n/r)
    # What the row shows, for kinds without training: groups: the group value (child, adult); fusion_weights:
    # spatial, temporal, context, uniform or best; similarity: the stream (spatial, temporal, context)
    select: str | None = None
    skip: str | None = None  # why this row cannot be built with the model's knobs (printed, not run)

    def __post_init__(self):
        for scale in self.scale_overrides:
            if scale not in SCALES:
                raise SpecError(f"scale_overrides.{scale}", f"expected one of {list(SCALES)}")


@dataclass(frozen=True)
class StudySpec:
    """A study of ``experiments/paper/``: one table or figure of one of the papers."""

    name: str
    paper: Literal["multistream", "stsp"]  # seeds/000 (2D) or seeds/004 (3D)
    caption: str  # the paper's table or figure caption
    scales: dict[str, ScaleSpec]  # tiny, demo and paper
    columns: tuple[ColumnSpec, ...]
    rows: tuple[RowSpec, ...]
    kind: Literal["variants", "views", "groups", "complexity", "fusion_weights", "similarity"] = "variants"
    reuse: tuple[str, ...] = ()  # stages every row takes from the base run (rows may say otherwise)
    row_header: str = "Configuration"  # the first column's title, as in the paper
    note: str = ""  # how the rows map to the paper's, deviations
    figure: str | None = None  # PNG file name of the figure, where the paper has one
    zero_shot: tuple[str, ...] = ()  # kind views: the camera views of the zero-shot test set
    group_key: str = "body"  # kind groups: the clip metadata key of the groups
    lags: tuple[int, ...] = (1, 2, 4)  # kind similarity: k (frames) of frame pairs t, t+k

    def __post_init__(self):
        check_name("name", self.name)
        missing = [s for s in SCALES if s not in self.scales]
        if missing or set(self.scales) - set(SCALES):
            raise SpecError("scales", f"expected exactly {list(SCALES)}, got {list(self.scales)}")
        if not self.rows:
            raise SpecError("rows", "a study needs at least one row")
        labels = [c.label for c in self.columns]
        for i, row in enumerate(self.rows):
            for col in row.paper:
                if col not in labels:
                    raise SpecError(f"rows.{i}.paper.{col}", f"not a column; columns are {labels}")
            if self.kind in ("groups", "fusion_weights", "similarity") and row.select is None:
                raise SpecError(f"rows.{i}.select", f"kind {self.kind}: every row names what it shows")
        if self.kind == "views" and not self.zero_shot:
            raise SpecError("zero_shot", "kind views needs the camera views of the zero-shot test set")
