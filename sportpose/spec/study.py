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
    varies: [model.fusion]             # the study's factor: the only keys a row may change from the base
    columns:
      - {label: Head, key: ap_groups.Head}
      - {label: Overall MAP, key: ap_groups.Total}
    rows:
      - {label: Early Fusion, overrides: [model.fusion=early]}
      - {label: Hybrid Fusion, overrides: [model.fusion=hybrid]}

``varies`` declares what the paper varied: dotted key prefixes of the experiment spec (``model.fusion``,
``train.stages.fuse.freeze_layers``; a ``*`` segment matches any one key: ``train.stages.*.optimizer.lr``),
per study, or per row (replacing the study's, as ``reuse`` does). Every study declares it (``varies: []``
for studies whose rows are the base run itself); a row's resolved spec may differ from the base's resolved
spec only under those prefixes, apart from bookkeeping (:func:`sportpose.pipelines.reproduce.study.row_changes`
says which), and loading the study refuses a row that changes more, naming the keys.

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
# the experiment spec's sections: the first key of every `varies` prefix
SPEC_SECTIONS = ("name", "seed", "data", "model", "train", "evaluate", "register")


def check_varies(key: str, prefixes: tuple[str, ...]) -> None:
    """A ``varies`` list: dotted prefixes of experiment spec keys (``*`` segments match any one key), each once.

    Raises:
        SpecError: naming ``key.N`` of the bad entry.
    """
    for i, prefix in enumerate(prefixes):
        parts = prefix.split(".") if isinstance(prefix, str) else []
        if not parts or any(not p or not (p == "*" or p.replace("_", "").isalnum()) for p in parts):
            raise SpecError(f"{key}.{i}", f"expected a dotted key of the experiment spec such as model.fusion, "
                                          f"with * for any one key, got {prefix!r}")
        if parts[0] not in SPEC_SECTIONS:
            raise SpecError(f"{key}.{i}", f"{prefix!r} is not under a section of the experiment spec "
                                          f"{list(SPEC_SECTIONS)}")
        if parts[0] == "name":
            raise SpecError(f"{key}.{i}", "the spec's name is bookkeeping (run names), not a factor of a study")
        if prefixes.index(prefix) != i:
            raise SpecError(f"{key}.{i}", f"{prefix!r} is listed twice")


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
    varies: tuple[str, ...] | None = None  # key prefixes this row may change from the base; None: the study's
    paper: dict[str, float | None] = field(default_factory=dict)  # column label -> paper's number (null: n/r)
    # What the row shows, for kinds without training: groups: the group value (child, adult); fusion_weights:
    # spatial, temporal, context, uniform or best; similarity: the stream (spatial, temporal, context)
    select: str | None = None
    skip: str | None = None  # why this row cannot be built with the model's knobs (printed, not run)

    def __post_init__(self):
        for scale in self.scale_overrides:
            if scale not in SCALES:
                raise SpecError(f"scale_overrides.{scale}", f"expected one of {list(SCALES)}")
        if self.varies is not None:
            check_varies("varies", self.varies)


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
    # The study's factor (what the paper varied): the key prefixes its rows may change from the base (rows may
    # say otherwise). Required: [] for a study whose rows are the base run itself.
    varies: tuple[str, ...] | None = None
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
        if self.varies is None:
            raise SpecError("varies", "every study declares the keys its rows vary from the base (what the paper "
                                      "varied), e.g. varies: [model.fusion]; varies: [] when no row changes the base")
        check_varies("varies", self.varies)
        labels = [c.label for c in self.columns]
        for i, row in enumerate(self.rows):
            for col in row.paper:
                if col not in labels:
                    raise SpecError(f"rows.{i}.paper.{col}", f"not a column; columns are {labels}")
            if self.kind in ("groups", "fusion_weights", "similarity") and row.select is None:
                raise SpecError(f"rows.{i}.select", f"kind {self.kind}: every row names what it shows")
        if self.kind == "views" and not self.zero_shot:
            raise SpecError("zero_shot", "kind views needs the camera views of the zero-shot test set")
