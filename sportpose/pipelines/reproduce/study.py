"""Every table and figure of the two papers as one command: ``sportpose reproduce NAME --scale tiny|demo|paper``.

A study is a YAML file ``experiments/paper/NAME.yaml`` loaded strictly into :class:`~sportpose.spec.study.StudySpec` (an unknown
key is an error naming the key and the file). It names, per scale, the base experiment spec and its ``-o``
overrides; the rows (a label, ``-o`` overrides of the base, the paper's numbers); the columns (a label as in
the paper and the evaluation figure it shows); and which stages the rows may take from the base run
(``reuse``), as :mod:`sportpose.pipelines.reproduce.variants` does: table9-fusion trains the three stage-1 streams once,
in the base run, and each fusion row trains only its own ``fuse`` and ``joint`` stages from them.

An ablation varies only what the paper varied: a study declares its factor (``varies``, key prefixes of the
experiment spec, per study or per row) and :func:`load_study` refuses a row whose resolved spec differs from
the base's resolved spec anywhere else (:func:`row_changes`, which leaves out only bookkeeping: the spec's
``name`` and the folder SynthCourt writes its clips to), at the scale loaded.

Scales: ``tiny`` (the test's: Ray Train local mode, seconds per stage), ``demo`` (the demo specs, minutes
here; a base spec that is exactly ``experiments/*_demo.yaml`` reuses the finished ``sportpose train`` run of
it), ``paper`` (the papers' settings for GPU clusters, ``--address``; loaded and validated here, never run).

Kinds of study (``kind``):

- ``variants``: each row is the base spec with its overrides, trained on the stage engine (stages in
  ``reuse`` come from the base run) and evaluated on the held-out split as ``sportpose train`` evaluates.
- ``views``: as ``variants``, then each row's final model is also tested zero-shot on clips of other
  camera views (``zero_shot``: the same SynthCourt settings with every listed view, another seed; every
  split of that set is unseen), per view group and overall (Table 11).
- ``groups``: the base run's per-group 3D figures (STSP-Net, body: child/adult), one row per group value.
- ``complexity``: parameters, GMACs and batch-1 CPU latency of each row's model (no training; Table 12).
- ``fusion_weights``: the late-fusion stream weights over the simplex (step 0.1), scored by AP on the base
  run's cached per-stream validation heatmaps, and the paper's three surfaces (Fig. 3). ``sportpose sweep
  experiments/sweeps/fusion_weights_demo.yaml`` runs the same search as a Ray Tune/Optuna sweep.
- ``similarity``: cosine similarity of each stream's features between frames t and t+k of the same
  person (:mod:`sportpose.evaluation.similarity`), for the base run's final model on held-out
  clips (Fig. 6).

Outputs: ``reports/NAME/table.md`` (ours beside the paper's numbers, and a protocol line: scale, split, seed,
boxes), ``reports/NAME/results.json``, the figure as PNG where the paper has one, and an MLflow parent run
(tag ``sportpose.kind=reproduce``) with a child run per trained row. Finished rows are recorded in
``<runs>/reproduce/NAME/<scale>/`` under a key of the row's resolved spec and the checkpoints it started
from, so running the same command again trains nothing that is finished (nor a row that another study
finished under the same key); the Ray Train runs are named the same way, so an interrupted row continues
from its latest checkpoint.

Data and init: the tiny and demo bases generate SynthCourt, the paper bases read imported manifests
(``experiments/multistream_paper.yaml``: PoseTrack 2018, ``multistream_paper_pt17.yaml``: PoseTrack 2017,
``stsp_paper.yaml``: Human3.6M) with the papers' pretrained files, paths a user overrides. A base that would
generate SynthCourt into a ``data.root`` holding an imported manifest (``-o data.root=DIR`` after ``sportpose
data import``) trains on that manifest instead (:func:`imported_data`, one line printed): SynthCourt never
writes into such a folder, so the switch cannot hide a mistake, and ``sportpose reproduce table9-fusion --scale
tiny -o data.root=DIR`` runs the tiny settings on the real clips. When the import has no clip of the base's
``evaluate.split`` (PoseTrack has no public test annotations), its ``val`` split is the held-out one, as in the
PoseTrack protocol. Explicit specs are never switched: ``sportpose train`` with ``source: synthcourt`` and such
a root is refused by SynthCourt, naming ``data.source: manifest``. The files a study reads and nobody
generates (manifests, pretrained weights) are checked before anything starts (:func:`check_study_inputs`), and
``table.md`` lists each row's data and init.

The papers' numbers: the 3D paper's tables are in its text. The 2D paper's tables 4-12 are images that the
text extraction (``seeds/000_...txt``) lost; only the numbers its prose states are given (Table 11 overall
76.0, Table 12 60.1M / 45.6 GFLOPs / 25.1 FPS), every other cell is ``null`` and printed as "n/r" (not
recoverable). No number is invented.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from sportpose.data.dataset import load_clips
from sportpose.data.prepare import open_split
from sportpose.errors import SpecError
from sportpose.paths import EXPERIMENTS, REPO, runs_dir
from sportpose.pipelines.checks import check_inputs
from sportpose.pipelines.reproduce import kinds as reproduce_kinds
from sportpose.pipelines.reproduce.variants import reused_model_keys, train_variant
from sportpose.pipelines.train import _json_default, _state_path, prepare_data, read_state, run_pipeline
from sportpose.registry import tracking
from sportpose.spec.experiment import ExperimentSpec, load_spec, read_spec_file, spec_hash, spec_to_dict, stage_order
from sportpose.spec.fill import fill, get_key
from sportpose.spec.study import SCALES, RowSpec, StudySpec

STUDY_DIR = EXPERIMENTS / "paper"
NOT_REPORTED = "n/r"
# data hash -> (root, materialized splits, clips), per runs folder: studies run in one process (the test, a
# shell loop in Python) cut each data section once
_DATA_CACHE: dict[str, dict[str, tuple[Any, dict, list]]] = {}


@dataclass
class Study:
    """A study file read at one scale: its spec, the base experiment and every row's resolved experiment."""

    spec: StudySpec
    path: Path
    scale: str
    base_path: Path
    base: ExperimentSpec  # the base spec at this scale
    rows: list[tuple[RowSpec, ExperimentSpec | None]]  # each row's resolved spec (None: skipped)
    data_note: str = ""  # the imported manifest a SynthCourt base was switched to (imported_data), if any


def study_names() -> list[str]:
    return sorted(p.stem for p in STUDY_DIR.glob("*.yaml"))


def study_path(name: str) -> Path:
    path = STUDY_DIR / f"{name}.yaml"
    if not path.exists():
        raise SpecError("<name>", f"unknown study {name!r}; studies are {study_names()}", str(STUDY_DIR))
    return path


def load_study(path: str | Path, scale: str, overrides: list[str] | tuple[str, ...] = (),
               rows: list[str] | tuple[str, ...] | None = None) -> Study:
    """Read a study, resolve the base spec and every row's spec at ``scale``, and check each row's reuse.

    Args:
        overrides: ``-o`` overrides of the base experiment spec (every row gets them).
        rows: ``--rows``: the labels of the rows to run; the others are left out (printed as not run, and a
            later run of the whole study trains only what is missing). None: every row.

    Raises:
        SpecError: naming the key and the file (the study's, or the base spec's for its own keys).
    """
    path = Path(path)
    if scale not in SCALES:
        raise SpecError("--scale", f"expected one of {list(SCALES)}, got {scale!r}", str(path))
    try:
        spec = fill(StudySpec, read_spec_file(path))
    except SpecError as e:
        raise e.within(file=str(path)) from None
    if rows is not None:
        labels = [row.label for row in spec.rows]
        unknown = [label for label in rows if label not in labels]
        if unknown or not rows:
            raise SpecError("--rows", f"expected row labels of the study {labels}, got {list(rows)}", str(path))
        left_out = f"left out of this run (--rows {','.join(rows)})"
        spec = replace(spec, rows=tuple(
            row if row.label in rows or row.skip else replace(row, skip=left_out) for row in spec.rows))
    scale_spec = spec.scales[scale]
    base_path = (path.parent / scale_spec.base).resolve()
    base_overrides = [*scale_spec.overrides, *overrides]
    try:
        plain = load_spec(base_path)
        switched, data_note = imported_data(load_spec(base_path, base_overrides))
        base_overrides += switched
        base_overrides += _own_names(plain, load_spec(base_path, base_overrides), base_overrides)
        base = load_spec(base_path, base_overrides)
    except SpecError as e:
        raise SpecError(e.key, f"{e.message} (base spec of study {path}, scale {scale})", e.file) from None
    rows = []
    for i, row in enumerate(spec.rows):
        if row.skip:
            rows.append((row, None))
            continue
        row_overrides = [*row.overrides, *row.scale_overrides.get(scale, ())]
        try:
            row_spec = load_spec(base_path, [*base_overrides, *row_overrides])
            own_root = _own_data_root(row_spec, base, row_overrides)
            if own_root:
                row_spec = load_spec(base_path, [*base_overrides, *row_overrides, *own_root])
        except SpecError as e:
            raise SpecError(e.key, f"{e.message} (row {i} {row.label!r} of study {path}, scale {scale})",
                            e.file) from None
        reuse = spec.reuse if row.reuse is None else row.reuse
        try:
            _check_reuse(base, row_spec, reuse)
        except SpecError as e:
            raise SpecError(f"rows.{i}.{e.key}", e.message, str(path)) from None
        _check_factor(spec, i, base, row_spec, scale, path)
        rows.append((row, row_spec))
    return Study(spec, path, scale, base_path, base, rows, data_note)


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A resolved spec dict as dotted leaf keys (lists and empty mappings are leaves)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


_ABSENT = object()


def row_changes(base: ExperimentSpec, row: ExperimentSpec) -> list[str]:
    """The dotted leaf keys at which a row's resolved spec differs from the base's (a key only one has counts).

    Bookkeeping is left out, and only this: ``name`` (run names and the pipeline state file; a study gives a
    changed base its own) and ``data.root`` when both read SynthCourt (the folder the generated clips are
    written to: the clips are ``data.synth``'s, and a row whose ``data.synth`` differs gets a folder of its own,
    :func:`_own_data_root`). A manifest's ``data.root`` is the data and counts. What a study does beside the
    spec (``reuse`` of stages, run keys, storage paths) changes no key, so nothing else is left out.
    """
    b, r = _flat(spec_to_dict(base)), _flat(spec_to_dict(row))
    ignored = {"name"}
    if base.data.source == row.data.source == "synthcourt":
        ignored.add("data.root")
    return sorted(k for k in b.keys() | r.keys() if k not in ignored and b.get(k, _ABSENT) != r.get(k, _ABSENT))


def factor_covers(prefix: str, key: str) -> bool:
    """``key`` is ``prefix`` or under it (``*`` segments of the prefix match any one key)."""
    p, k = prefix.split("."), key.split(".")
    return len(k) >= len(p) and all(a in ("*", b) for a, b in zip(p, k))


def row_factor(spec: StudySpec, row: RowSpec) -> tuple[str, ...]:
    """The key prefixes ``row`` may change from the base: its own ``varies``, else the study's."""
    return (spec.varies or ()) if row.varies is None else row.varies


def _check_factor(spec: StudySpec, i: int, base: ExperimentSpec, row_spec: ExperimentSpec, scale: str,
                  path: Path) -> None:
    """Row ``i`` changes nothing outside its factor, and every prefix of the factor names keys of the spec."""
    row = spec.rows[i]
    factor = row_factor(spec, row)
    where = "varies" if row.varies is None else f"rows.{i}.varies"
    keys = _flat(spec_to_dict(base)).keys() | _flat(spec_to_dict(row_spec)).keys()
    for j, prefix in enumerate(factor):
        if not any(factor_covers(prefix, k) for k in keys):
            raise SpecError(f"{where}.{j}", f"no key of the experiment spec (scale {scale}) is {prefix!r} or under "
                                            "it", str(path))
    beyond = [k for k in row_changes(base, row_spec) if not any(factor_covers(p, k) for p in factor)]
    if beyond:
        shown = ", ".join(beyond[:8]) + (f" and {len(beyond) - 8} more" if len(beyond) > 8 else "")
        raise SpecError(f"rows.{i}", f"row {row.label!r} changes {shown} from the base spec at scale {scale}, "
                                     f"outside its factor (varies: {list(factor)}): an ablation varies only what "
                                     "the paper varied", str(path))


def imported_data(spec: ExperimentSpec) -> tuple[list[str], str]:
    """Overrides that train a base which would generate SynthCourt on the imported manifest at its ``data.root``.

    Returns:
        the overrides (``data.source=manifest``, and ``evaluate.split=val`` when the import has no clip of the
        spec's evaluation split but has val clips) and the line saying so; nothing for any other spec.
    """
    data = spec.data
    path = Path(data.root) / "manifest.json"
    if data.source != "synthcourt" or not path.is_file():
        return [], ""
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return [], ""  # SynthCourt rewrites an unreadable manifest of its own, or names the problem
    if not isinstance(manifest, dict) or manifest.get("dataset") == "synthcourt":
        return [], ""
    switched = ["data.source=manifest"]
    splits = {c.get("split") for c in manifest.get("clips", []) if isinstance(c, dict)}
    held_out = spec.evaluate.split
    if held_out not in splits and "val" in splits:
        switched.append("evaluate.split=val")
        held_out = f"val (no {spec.evaluate.split} clips)"
    return switched, (f"data: {data.root} holds an imported {manifest.get('dataset', 'unnamed')!r} manifest: "
                      f"training on it (data.source manifest), held-out split {held_out}")


def check_study_inputs(study: Study) -> None:
    """Every file the study's runs read and nobody generates exists (:func:`check_inputs` of the base and each
    row); complexity studies build untrained models only and read nothing.

    Raises:
        SpecError: naming the key, the missing path and the row.
    """
    if study.spec.kind == "complexity":
        return
    for label, spec in [("base", study.base), *((row.label, s) for row, s in study.rows if s is not None)]:
        try:
            check_inputs(spec)
        except SpecError as e:
            raise SpecError(e.key, f"{e.message} ({label} of study {study.spec.name}, scale {study.scale})",
                            str(study.base_path)) from None


def row_inputs(spec: ExperimentSpec) -> tuple[str, str]:
    """What a row trained on and from: its data (source, dataset, root) and its init (pretrained files or
    scratch), as ``table.md`` prints them."""
    data = spec.data
    if data.source == "h36m":
        where = f"h36m (VideoPose3D files {data.h36m.data_3d}, {data.h36m.data_2d})"
    elif data.source == "synthcourt":
        where = f"synthcourt (generated) at {data.root}"
    else:
        try:
            dataset = json.loads((Path(data.root) / "manifest.json").read_text()).get("dataset", "unnamed")
        except (OSError, json.JSONDecodeError, AttributeError):
            dataset = "unreadable"
        where = f"manifest of {dataset} at {data.root}"
    init = [f"model.{f.name}={getattr(spec.model, f.name)}" for f in fields(spec.model)
            if f.name.endswith("pretrained") and getattr(spec.model, f.name)]
    return where, ", ".join(init) or "scratch"


def _tag(overrides: list[str] | tuple[str, ...]) -> str:
    return hashlib.sha256(json.dumps(list(overrides)).encode()).hexdigest()[:6]


def _own_names(plain: ExperimentSpec, base: ExperimentSpec, overrides: list[str]) -> list[str]:
    """Overrides giving a study's changed base its own run name (and data folder when its clips differ).

    ``sportpose train`` keeps one pipeline state per spec name, and SynthCourt regenerates a data folder whose
    settings changed: a base spec changed by a study (``-o model.fusion=hybrid``, sideline views only) under the
    plain spec's name and folder would overwrite the plain spec's finished run and clips.
    """
    if not overrides or spec_to_dict(base) == spec_to_dict(plain):  # overrides that change nothing: the plain run
        return []
    return [f"name={plain.name}-{_tag(overrides)}", *_own_data_root(base, plain, overrides)]


def _own_data_root(spec: ExperimentSpec, reference: ExperimentSpec, overrides: list[str] | tuple[str, ...]) -> list[str]:
    """A data folder of its own for ``spec`` when its SynthCourt clips differ from ``reference``'s in the same
    folder (SynthCourt regenerates a folder whose settings changed)."""
    if spec.data.source == "synthcourt" and spec.data.synth != reference.data.synth \
            and spec.data.root == reference.data.root:
        return [f"data.root={reference.data.root}-{_tag(overrides)}"]
    return []


def _check_reuse(base: ExperimentSpec, row: ExperimentSpec, reuse: tuple[str, ...]) -> None:
    """A row may take a stage from the base run only when nothing that stage saw or built differs."""
    b, r = spec_to_dict(base), spec_to_dict(row)
    if not reuse:
        return
    for key in ("data", "seed"):
        if b[key] != r[key]:
            raise SpecError("reuse", f"the row changes {key}, so it cannot reuse the base run's stages {list(reuse)}")
    for stage in reuse:
        if stage not in base.train.stages:
            raise SpecError("reuse", f"unknown stage {stage!r}; the base spec's stages are {list(base.train.stages)}")
        if b["train"]["stages"][stage] != r["train"]["stages"].get(stage):
            raise SpecError("reuse", f"the row changes train.stages.{stage}, which it reuses")
        for key in reused_model_keys(base.model.kind, stage):
            if b["model"].get(key) != r["model"].get(key):
                raise SpecError("reuse", f"the row changes model.{key}, which shapes the reused stage {stage!r}")


# -- figures of one evaluation ----------------------------------------------------------------------------


def lookup(figures: dict[str, Any], key: str) -> float | None:
    """A dotted key of a row's figures (``ap_groups.Head``); None when absent or not a finite number."""
    try:
        value = float(get_key(figures, key))
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def _fmt(value: float | None, digits: int) -> str:
    return NOT_REPORTED if value is None else f"{value:.{digits}f}"


def render_table(study: Study, results: list[dict[str, Any]], protocol: str) -> str:
    """The paper's layout: one line per row, each column as "ours / paper"."""
    spec = study.spec
    lines = [f"## {spec.caption}", "",
             f"Ours / paper. {protocol}", "",
             "| " + spec.row_header + " | " + " | ".join(c.label for c in spec.columns) + " |",
             "|---" * (len(spec.columns) + 1) + "|"]
    for (row, _), result in zip(study.rows, results):
        cells = []
        for col in spec.columns:
            ours = "—" if row.skip else _fmt(lookup(result.get("figures", {}), col.key), col.digits)
            cells.append(f"{ours} / {_fmt(row.paper.get(col.label), col.digits)}")
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    skipped = [(row.label, row.skip) for row, _ in study.rows if row.skip]
    lines += ["", "Data and init of each row:"]
    for row, row_spec in study.rows:
        if row_spec is None:
            continue
        if spec.kind == "complexity":
            lines.append(f"- {row.label}: data none; init none (untrained model: shapes only)")
        else:
            data, init = row_inputs(row_spec)
            lines.append(f"- {row.label}: data {data}; init {init}")
    lines.append("")
    lines.append(f"{NOT_REPORTED}: not reported in the paper's text" + (
        " (its tables 4-12 are images the text extraction lost)" if spec.paper == "multistream" else "")
        + ", or not measured.")
    for label, why in skipped:
        lines.append(f"— {label}: not run: {why}")
    if spec.note:
        lines += ["", spec.note.strip()]
    return "\n".join(lines) + "\n"


# -- running a study --------------------------------------------------------------------------------------


class Runner:
    """Runs the rows of one study at one scale on the current Ray, reusing what is finished."""

    def __init__(self, study: Study, log: Callable[[str], None] = print):
        self.study, self.log = study, log
        self.cache_dir = runs_dir() / "reproduce" / study.spec.name / study.scale
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self._data = _DATA_CACHE.setdefault(str(runs_dir()), {})  # shared by the studies of a process
        self._base_state: dict[str, Any] | None = None

    # data ---------------------------------------------------------------------------------------------
    def data(self, spec: ExperimentSpec) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The three splits (materialized once per data section) and the clip list."""
        key = hashlib.sha256(json.dumps([spec_to_dict(spec)["data"], spec.seed], sort_keys=True).encode()).hexdigest()
        if key not in self._data:
            root = prepare_data(spec, self.log)
            clips = load_clips(root, spec.data.splits, spec.seed)
            datasets = {}
            for split in ("train", "val", "test"):
                ds, report = open_split(spec, split, clips, evaluation=(split == spec.evaluate.split))
                datasets[split] = ds.materialize()
                self.log(f"data: {split}: {report.samples} samples from {report.clips} clips")
            self._data[key] = (root, datasets, clips)
        _, datasets, clips = self._data[key]
        return datasets, clips

    # the base run -------------------------------------------------------------------------------------
    def base_run(self) -> dict[str, Any]:
        """The finished run of the base spec (``sportpose train``'s state), trained here when missing."""
        if self._base_state is not None:
            return self._base_state
        base = self.study.base
        path = _state_path(base)
        resolved = spec_to_dict(base)
        state = read_state(path) if path.exists() else None
        if state is not None and state.get("finished") and state["spec"] == resolved:
            self.log(f"base: reusing the finished run {state['parent_run_id'][:8]} of {base.name} ({path})")
        else:
            self.log(f"base: training {base.name} (no finished run of this resolved spec in {path})")
            run_pipeline(base, resume="auto", log=self.log)  # continues an interrupted run of this spec
            state = read_state(path)
        self._base_state = state
        return state

    def base_evaluation(self) -> dict[str, Any]:
        state = self.base_run()
        path = runs_dir() / "outputs" / self.study.base.name / state["parent_run_id"][:8] / "evaluation.json"
        return json.loads(path.read_text())

    def base_final_checkpoint(self) -> str:
        state = self.base_run()
        return state["stages"][stage_order(self.study.base.train.stages)[-1]]["checkpoint"]

    # one trained row ----------------------------------------------------------------------------------
    def train_row(self, row: RowSpec, spec: ExperimentSpec, parent_id: str) -> dict[str, Any]:
        """Train the row's stages that are not reused and evaluate its final model; cached when finished."""
        reuse = self.study.spec.reuse if row.reuse is None else row.reuse
        checkpoints: dict[str, str] = {}
        if reuse or spec_to_dict(spec) == spec_to_dict(self.study.base):
            state = self.base_run()
            if spec_to_dict(spec) == state["spec"]:  # the row is the base run itself
                self.log(f"row {row.label!r}: the base run")
                evaluation = self.base_evaluation()
                return {"evaluation": evaluation, "checkpoint": self.base_final_checkpoint(), "reused": "all"}
            checkpoints = {s: state["stages"][s]["checkpoint"] for s in reuse}
        key = hashlib.sha256(json.dumps([spec_hash(spec), checkpoints], sort_keys=True).encode()).hexdigest()[:12]
        cached = self.cache_dir / f"{key}.json"
        # the same resolved spec from the same checkpoints, finished for another study (table4's "Full Model" is
        # table9's "Hybrid Fusion"), is the same row: the key covers both
        found = cached if cached.exists() else next(iter(sorted(
            self.cache_dir.parent.parent.glob(f"*/{self.study.scale}/{key}.json"))), None)
        if found is not None:
            self.log(f"row {row.label!r}: finished earlier ({found})")
            result = json.loads(found.read_text())
            if found != cached:
                cached.write_text(json.dumps(result))
            return result
        datasets, clips = self.data(spec)
        out_dir = self.cache_dir / key
        out_dir.mkdir(parents=True, exist_ok=True)
        self.log(f"row {row.label!r}: training {[s for s in spec.train.stages if s not in checkpoints]}"
                 + (f" from the base run's {list(checkpoints)}" if checkpoints else ""))
        evaluation, final = train_variant(spec, checkpoints, datasets, clips, out_dir, parent_id=parent_id,
                                          label=row.label, run_key=key, log=self.log)
        result = {"evaluation": evaluation, "checkpoint": final, "reused": list(checkpoints)}
        cached.write_text(json.dumps(result, default=_json_default))
        return result


def run_study(study: Study, log: Callable[[str], None] = print, reports: Path | None = None) -> dict[str, Any]:
    """Run every row of the study, write ``reports/NAME/`` and the MLflow parent run.

    Returns:
        ``{"table": markdown, "rows": [...], "dir": report folder}``.
    """
    check_study_inputs(study)
    if study.data_note:
        log(study.data_note)
    if study.scale == "paper":
        log("warning: paper scale is the papers' settings for GPU clusters; on this machine it would take weeks")
    spec = study.spec
    out = (reports or REPO / "reports") / spec.name
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    runner = Runner(study, log)
    parent_id = tracking.start_run(study.base.name, run_name=f"reproduce-{spec.name}-{study.scale}", tags={
        "sportpose.kind": "reproduce", "sportpose.study": spec.name, "sportpose.scale": study.scale,
        "sportpose.git_commit": tracking.git_commit(), "sportpose.spec_hash": spec_hash(study.base)})
    try:
        results = reproduce_kinds.KINDS[spec.kind](runner, parent_id, out)
    except BaseException:
        tracking.end_run(parent_id, "FAILED")
        raise
    protocol = _protocol(study, results)
    table = render_table(study, results, protocol)
    (out / "table.md").write_text(table)
    payload = {"study": spec.name, "scale": study.scale, "caption": spec.caption, "protocol": protocol,
               "minutes": (time.perf_counter() - start) / 60,
               "columns": [c.label for c in spec.columns],
               "rows": [{"label": row.label, "skip": row.skip,
                         "ours": {c.label: (None if row.skip else lookup(r.get("figures", {}), c.key))
                                  for c in spec.columns},
                         "paper": {c.label: row.paper.get(c.label) for c in spec.columns},
                         **{k: v for k, v in r.items() if k != "figures"}}
                        for (row, _), r in zip(study.rows, results)]}
    (out / "results.json").write_text(json.dumps(payload, indent=1, default=_json_default))
    for name in ("table.md", "results.json", *([spec.figure] if spec.figure else [])):
        if (out / name).exists():
            tracking.log_artifact(parent_id, str(out / name), "reproduce")
    for i, r in enumerate(payload["rows"]):
        tracking.log_metrics(parent_id, {f"row{i}.{_metric_name(c)}": v for c, v in r["ours"].items() if v is not None})
    tracking.end_run(parent_id)
    log(table)
    log(f"written: {out / 'table.md'}, {out / 'results.json'}"
        + (f", {out / spec.figure}" if spec.figure and (out / spec.figure).exists() else ""))
    return {"table": table, "rows": payload["rows"], "dir": str(out)}


def _metric_name(label: str) -> str:
    return "".join(c if (c.isascii() and c.isalnum()) or c in "-_." else "_" for c in label)


def _protocol(study: Study, results: list[dict[str, Any]]) -> str:
    ev = next((r.get("protocol") for r in results if r.get("protocol")), {}) or {}
    base = study.base
    return (f"Protocol: scale {study.scale} (base spec {study.base_path.relative_to(REPO) if study.base_path.is_relative_to(REPO) else study.base_path}"
            f", {base.data.source} data), split {ev.get('split', base.evaluate.split)}, seed {ev.get('seed', base.seed)}, "
            f"boxes {ev.get('boxes', base.data.boxes)}, flip test {ev.get('flip_test', base.evaluate.flip_test)}.")
