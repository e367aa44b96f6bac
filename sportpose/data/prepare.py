"""Prepared samples: every split cut once and written as Parquet shards, streamed back for every later epoch,
stage and trial (SPEC §3.3; ``sportpose data prepare SPEC``).

Layout::

    runs/prepared/<spec name>-<fingerprint>/
        manifest.json             what shaped the shards, the clips with their splits, each split's data report
        train/ val/ test/         Parquet shards, one per clip (Ray Data ``write_parquet``)
        <split>-detections/       the evaluation split cut from ``data.boxes`` when that is a detections file

The fingerprint hashes everything that shapes the samples and nothing else: the data section without
:data:`NOT_SHAPING` fields, the seed (split assignment and augmentation draws), the clips with their splits
and the size and modification time of their files, the detections file's bytes, and
:data:`PREPARE_VERSION`. The model does not enter it, so every model, stage and trial of the spec reads the
same shards. An unchanged spec finds its folder and reuses it; a changed shaping field names another folder
and prepares that one (older folders stay until removed, so switching back costs nothing).

Tensor columns are stored as one binary value per row, their C-order bytes (``large_binary``, LZ4), and
given back their shapes and dtypes from :func:`~sportpose.data.tubes.sample_schema` when read
(:func:`decode_tensors`, zero-copy views of Arrow's buffers): ``tube`` is uint8 (B, T, H, W, 3) again, targets
float32. Ray's own tensor extension type stores a tensor as a Parquet list of scalars, one repetition level
per byte, and reading that back ran at ~50 MB/s (0.3 s for one clip's 19 MB of demo tubes, against 0.02 s
for the same bytes as binary values).

Augmentation: the train split's augmentation is drawn once, at prepare time (epoch 0's draw), and every
epoch reads the same augmented tubes. Fresh draws per epoch come from streaming the train split from video
instead (``data.stream``), at the cost of decoding it every epoch.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray
from tqdm import tqdm

from sportpose.data import h36m
from sportpose.data.dataset import (
    SPLITS,
    ClipLog,
    DataReport,
    build_split,
    clip_dataset,
    load_clips,
    surface_data_errors,
)
from sportpose.data.feed import decode_tensors, register_parquet
from sportpose.data.formats import read_posetrack
from sportpose.data.formats.annotations import doubts
from sportpose.data.tubes import sample_schema
from sportpose.data.video import open_video
from sportpose.errors import DataError
from sportpose.paths import remove_tree, runs_dir
from sportpose.spec.data import DataSpec
from sportpose.spec.experiment import ExperimentSpec
from sportpose.spec.fill import to_dict

NOT_SHAPING = ("prepared", "stream", "max_skip_fraction", "on_error")  # data fields that do not change a sample
# bump when the way samples are cut or stored changes (2: the frame_size column; 3: group bone_lengths; 4: tensors
# as binary values)
PREPARE_VERSION = 4
MANIFEST = "manifest.json"


def shaping_fields(data: DataSpec) -> dict[str, Any]:
    """The data section's fields that shape samples, as plain data."""
    return {k: v for k, v in to_dict(data).items() if k not in NOT_SHAPING}


def _variants(spec: ExperimentSpec) -> list[tuple[str, str, str]]:
    """(folder, split, boxes) of everything prepared for ``spec``."""
    out = [(split, split, "gt") for split in SPLITS]
    if spec.data.boxes != "gt":
        out.append((f"{spec.evaluate.split}-detections", spec.evaluate.split, spec.data.boxes))
    return out


def _file_stamp(path: str) -> list[Any]:
    if not path:
        return []
    try:
        st = os.stat(path)
    except OSError:
        return [path, None]
    return [path, st.st_size, st.st_mtime_ns]


def fingerprint(spec: ExperimentSpec, clips: list[dict[str, Any]]) -> str:
    """Hash of everything that shapes the prepared samples of ``spec`` (hex, 16 chars)."""
    h = hashlib.sha256()
    clip_list = [[c["name"], c["split"], *_file_stamp(c["video"]), *_file_stamp(c["annotations"]),
                  *_file_stamp(c.get("points3d", ""))] for c in sorted(clips, key=lambda c: c["name"])]
    h.update(json.dumps({"version": PREPARE_VERSION, "seed": spec.seed, "data": shaping_fields(spec.data),
                         "clips": clip_list, "evaluate_split": spec.evaluate.split}, sort_keys=True).encode())
    if spec.data.boxes != "gt":
        try:
            h.update(Path(spec.data.boxes).read_bytes())
        except OSError as e:
            raise DataError(spec.data.boxes, "data.boxes", f"cannot read the detections file: {e.strerror}") from None
    return h.hexdigest()[:16]


def _clips(spec: ExperimentSpec, clips: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    return clips if clips is not None else load_clips(spec.data.root, spec.data.splits, spec.seed)


def prepared_dir(spec: ExperimentSpec, clips: list[dict[str, Any]] | None = None) -> Path:
    """Where the prepared samples of ``spec`` live (whether or not they exist yet)."""
    return runs_dir() / "prepared" / f"{spec.name}-{fingerprint(spec, _clips(spec, clips))}"


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def is_prepared(spec: ExperimentSpec, clips: list[dict[str, Any]] | None = None) -> bool:
    """True when shards of exactly this spec's samples exist."""
    folder = prepared_dir(spec, clips)
    manifest = _read_manifest(folder)
    return (manifest is not None and manifest.get("fingerprint") == folder.name.rsplit("-", 1)[-1]
            and manifest.get("data") == shaping_fields(spec.data)
            and all((folder / name).is_dir() for name, _, _ in _variants(spec)))


def prepare(spec: ExperimentSpec, clips: list[dict[str, Any]] | None = None, progress: bool = True,
            log: Callable[[str], None] = print) -> Path:
    """Cut every split of ``spec`` once and write the samples as Parquet shards; reuse them when present.

    Args:
        spec: an ``ExperimentSpec``.
        clips: :func:`~sportpose.data.dataset.load_clips` output (default: from ``data.root``).
        progress: a tqdm bar over clips, fed by the tasks as they finish.
        log: hears a warning for each clip whose annotations are doubtful (:func:`warn_doubts`).

    Returns:
        The prepared folder (``runs/prepared/<name>-<fingerprint>``).

    Raises:
        DataError: ``on_error: raise`` and a bad clip, or a split skipped more clips than
            ``max_skip_fraction`` (nothing is kept then: the next call prepares again).
    """
    clips = _clips(spec, clips)
    folder = prepared_dir(spec, clips)
    if is_prepared(spec, clips):
        return folder
    warn_doubts(clips, log)
    partial = folder.with_name(folder.name + ".partial")
    remove_tree(partial, folder.parent)
    partial.mkdir(parents=True)
    variants = _variants(spec)
    chosen = {name: [c for c in clips if c["split"] == split] for name, split, _ in variants}
    bar = tqdm(total=sum(len(v) for v in chosen.values()), unit="clip", desc="prepare", disable=not progress)
    splits = {}
    start = time.perf_counter()
    try:
        for name, split, boxes in variants:
            bar.set_description(f"prepare {name}")
            report = DataReport(split=split, clips=len(chosen[name]), boxes=boxes)
            (partial / name).mkdir()
            if chosen[name]:
                log = ClipLog.remote()
                try:
                    ds = clip_dataset(chosen[name], spec.data, spec.seed, boxes=boxes, log=log)
                    _write_with_progress(ds, partial / name, log, bar, spec.data, boxes != "gt")
                    report.skipped, report.samples = ray.get(log.get.remote())
                finally:
                    ray.kill(log)
            report.check(spec.data.max_skip_fraction)
            splits[name] = {"split": split, "boxes": boxes, "report": report.as_dict()}
    except BaseException:
        remove_tree(partial, folder.parent)
        raise
    finally:
        bar.close()
    manifest = {
        "version": PREPARE_VERSION, "spec_name": spec.name, "fingerprint": folder.name.rsplit("-", 1)[-1],
        "seed": spec.seed, "data": shaping_fields(spec.data), "evaluate_split": spec.evaluate.split,
        "clips": [{k: c[k] for k in ("name", "split", "video", "annotations", "points3d")} for c in clips],
        "splits": splits, "seconds": round(time.perf_counter() - start, 2),
        "augmentation": "train split: drawn once at prepare time (epoch 0), the same every epoch",
    }
    (partial / MANIFEST).write_text(json.dumps(manifest, indent=1))
    remove_tree(folder, folder.parent)
    partial.rename(folder)
    return folder


def warn_doubts(clips: list[dict[str, Any]], log: Callable[[str], None], shown: int = 10) -> int:
    """Warn about readable but doubtful annotations before cutting: boxes of zero area or negative size, and
    videos shorter than their annotations (:func:`~sportpose.data.formats.annotations.doubts`); at most
    ``shown`` lines and a count of the rest. A clip that cannot be read is left to the cutting, which names it.

    Returns:
        The number of doubts found.
    """
    found = []
    for clip in clips:
        try:
            frames = open_video(clip["video"], frames=clip.get("frames")).num_frames
            found += [line for video in read_posetrack(clip["annotations"]) for line in doubts(video, frames)]
        except (DataError, OSError, RuntimeError):
            continue
    for line in found[:shown]:
        log(f"warning: {line}")
    if len(found) > shown:
        log(f"warning: {len(found) - shown} more such warnings")
    return len(found)


def tensor_columns(data: DataSpec, detections: bool = False) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """The columns stored as binary values: every non-string column with a per-row shape, and that shape."""
    return {name: (shape, np.dtype(dtype)) for name, (shape, dtype) in sample_schema(data, detections).items()
            if dtype is not str and shape}


def encode_tensors(batch: dict[str, np.ndarray], columns: dict[str, tuple[tuple[int, ...], np.dtype]]) -> pa.Table:
    """A batch of sample columns as an Arrow table whose tensor ``columns`` are binary values (no copy)."""
    out = {}
    for name, values in batch.items():
        if name in columns:
            values = np.ascontiguousarray(values)
            n, row = len(values), values[0].nbytes if len(values) else 0
            offsets = np.arange(n + 1, dtype=np.int64) * row
            out[name] = pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets),
                                                                               pa.py_buffer(values)])
        else:
            out[name] = pa.array(values)
    return pa.table(out)


def write_samples(ds: ray.data.Dataset, path: str | Path, data: DataSpec, detections: bool = False) -> None:
    """Write a dataset of samples as Parquet shards with binary tensor columns (:func:`encode_tensors`)."""
    columns = tensor_columns(data, detections)
    ds.map_batches(encode_tensors, fn_args=(columns,), batch_size=None, batch_format="numpy",
                   zero_copy_batch=True).write_parquet(str(path), compression="lz4")


def read_samples(path: str | Path, data: DataSpec, detections: bool = False) -> ray.data.Dataset:
    """A lazy Dataset of the samples of :func:`write_samples`' shards, tensor columns with their shapes.

    Map tasks read groups of consecutive shards (:func:`shard_groups`) with pyarrow and yield one block per
    shard, its tensors decoded (:func:`decode_tensors`). ``ray.data.read_parquet`` would do the reading too, but
    starts a file-listing actor and a reader pool for every execution of the dataset (every epoch of a stage):
    seconds on a busy machine, for shards whose names are known here. Shards are one per clip, often a dozen
    samples: one task each spent more on Ray's task overhead than on reading (``bench/data_pipeline.py``'s
    Parquet source: ~2000 tubes/s with a task per shard, ~2600 with four shards per task, on 2 CPUs). pyarrow
    reads with ``use_threads=False``: a Ray task has one CPU, where pyarrow's thread pool only costs (one
    task's read: 2600-4400 tubes/s threaded, 5400-5700 not).
    """
    columns = tensor_columns(data, detections)
    files = sorted(Path(path).glob("*.parquet"))
    cpus = int(ray.cluster_resources().get("CPU", 1)) if ray.is_initialized() else 1
    groups = shard_groups([(str(f), f.stat().st_size) for f in files], cpus)

    def read(batch: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        for file in batch["files"][0]:
            table = pq.read_table(file, use_threads=False)
            if table.num_rows:
                yield decode_tensors(table, columns)

    ds = ray.data.from_items([{"files": g} for g in groups],
                             override_num_blocks=max(1, len(groups))).map_batches(read, batch_size=1,
                                                                                  batch_format="numpy")
    return register_parquet(ds, [str(f) for f in files], columns)  # training workers may read the files themselves


def shard_groups(files: list[tuple[str, int]], cpus: int, target_bytes: int = 64 << 20) -> list[list[str]]:
    """Consecutive runs of ``files`` ((path, size in bytes), in order), one per read task: as many runs as make
    about ``target_bytes`` each, and at least four per CPU (while there are files enough), so that every CPU
    reads and a training worker's split has blocks to take; the runs hold about equal bytes."""
    if not files:
        return []
    total = sum(size for _, size in files)
    count = min(len(files), max(4 * max(cpus, 1), -(-total // target_bytes)))
    groups: list[list[str]] = []
    current: list[str] = []
    cumulative = 0
    for k, (path, size) in enumerate(files):
        current.append(path)
        cumulative += size
        closable = len(groups) < count - 1
        # a run ends at its share of the bytes, or when each group still to make needs one of the files left
        if closable and (cumulative >= total * (len(groups) + 1) / count
                         or len(files) - k - 1 == count - len(groups) - 1):
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def _write_with_progress(ds: ray.data.Dataset, path: Path, log: Any, bar: tqdm, data: DataSpec,
                         detections: bool) -> None:
    """:func:`write_samples` while the bar follows the clips the tasks report as finished."""
    outcome: dict[str, BaseException] = {}

    def write() -> None:
        try:
            surface_data_errors(lambda: write_samples(ds, path, data, detections))
        except BaseException as e:  # re-raised in the caller's thread
            outcome["error"] = e

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    seen = 0
    while True:
        thread.join(0.25)
        finished = ray.get(log.progress.remote())
        bar.update(finished - seen)
        seen = finished
        if not thread.is_alive():
            break
    if "error" in outcome:
        raise outcome["error"]


def _variant(spec: ExperimentSpec, split: str, evaluation: bool) -> str:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if evaluation and spec.data.boxes != "gt":
        if split != spec.evaluate.split:
            raise ValueError(f"detections are prepared for the evaluation split {spec.evaluate.split!r}, not {split!r}")
        return f"{split}-detections"
    return split


def prepared_report(spec: ExperimentSpec, split: str, *, evaluation: bool = False,
                    clips: list[dict[str, Any]] | None = None) -> DataReport:
    """The data report written when ``split`` was prepared.

    Raises:
        DataError: the spec's samples are not prepared.
    """
    folder = prepared_dir(spec, clips)
    manifest = _read_manifest(folder)
    if manifest is None:
        raise DataError(str(folder), MANIFEST, "not prepared (run `sportpose data prepare SPEC`)")
    return DataReport.from_dict(manifest["splits"][_variant(spec, split, evaluation)]["report"])


def load_prepared(spec: ExperimentSpec, split: str, *, evaluation: bool = False,
                  clips: list[dict[str, Any]] | None = None) -> ray.data.Dataset:
    """A lazy Ray Dataset streaming the prepared samples of ``split`` from Parquet.

    Args:
        evaluation: read the detection-box samples of the evaluation split when ``data.boxes`` is a file.

    Raises:
        DataError: the spec's samples are not prepared.
    """
    report = prepared_report(spec, split, evaluation=evaluation, clips=clips)
    if report.samples == 0:
        return ray.data.from_items([])
    variant = _variant(spec, split, evaluation)
    return read_samples(prepared_dir(spec, clips) / variant, spec.data, variant.endswith("-detections"))


def open_split(spec: ExperimentSpec, split: str, clips: list[dict[str, Any]] | None = None, *, evaluation: bool = False,
               progress: bool = True) -> tuple[ray.data.Dataset, DataReport]:
    """A split's samples the way the spec asks for them, and the split's data report.

    ``data.prepared``: prepared Parquet shards (prepared first when missing), streamed. Otherwise cut from
    video now: materialised once, or, for the train split with ``data.stream``, re-cut every epoch.
    ``data.source: h36m``: lazy windows of Human3.6M 2D keypoints and 3D joints
    (:func:`sportpose.data.h36m.open_split`).

    Args:
        spec: an ``ExperimentSpec``.
        split: train, val or test.
        clips: :func:`~sportpose.data.dataset.load_clips` output (default: from ``data.root``).
        evaluation: samples for evaluation: cut with ``data.boxes`` (ground truth or detections).
        progress: progress bar while preparing.

    Raises:
        DataError: a bad clip under ``on_error: raise``, or more clips skipped than ``max_skip_fraction``.
    """
    data = spec.data
    if data.source == "h36m":  # 2D keypoint windows sliced from VideoPose3D's arrays: nothing to decode or prepare
        return h36m.open_split(data, split, spec.seed)
    clips = _clips(spec, clips)
    if data.prepared:
        prepare(spec, clips, progress=progress)
        report = prepared_report(spec, split, evaluation=evaluation, clips=clips)
        report.check(data.max_skip_fraction)
        return load_prepared(spec, split, evaluation=evaluation, clips=clips), report
    boxes = data.boxes if evaluation else "gt"
    stream = data.stream and split == "train" and not evaluation
    return build_split(clips, data, split, spec.seed, boxes=boxes, stream=stream)
