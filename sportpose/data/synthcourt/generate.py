"""A SynthCourt dataset: many clips, serially or in a pool of spawned processes, with a progress bar, and the
manifest written last; reading a manifest back."""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path

import cv2
from tqdm import tqdm

from sportpose.data.synthcourt.clip import generate_clip, write_bytes_atomic
from sportpose.errors import DataError
from sportpose.spec.data import SynthConfig


MANIFEST_VERSION = 1


def config_dict(config: SynthConfig) -> dict:
    """The config as it is stored in the manifest (JSON types: tuples become lists)."""
    return json.loads(json.dumps(asdict(config)))


def load_manifest(path_or_dir: str | Path) -> dict:
    """Read a SynthCourt manifest (a ``manifest.json`` or its folder).

    Clip paths in it are relative to the manifest's folder, which is added as ``"root"`` (absolute path).

    Raises:
        DataError: missing file, not JSON, or not a SynthCourt manifest.
    """
    path = Path(path_or_dir)
    if path.is_dir():
        path = path / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(str(path), "", "no SynthCourt manifest here (run the generator first)") from None
    except json.JSONDecodeError as e:
        raise DataError(str(path), "", f"not valid JSON: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("dataset") != "synthcourt":
        raise DataError(str(path), "dataset", "expected 'synthcourt'")
    if manifest.get("version") != MANIFEST_VERSION:
        raise DataError(str(path), "version", f"expected {MANIFEST_VERSION}, got {manifest.get('version')!r}")
    manifest["root"] = str(path.parent.resolve())
    return manifest


def _refuse_foreign(path: Path) -> None:
    """A manifest that SynthCourt did not write (an imported dataset, a user's own) is never replaced.

    Raises:
        DataError: naming the manifest and the source it says it holds.
    """
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, OSError):
        return  # unreadable: a SynthCourt manifest cut short by an interrupted run is rewritten
    dataset = manifest.get("dataset") if isinstance(manifest, dict) else None
    if dataset != "synthcourt":
        raise DataError(str(path), "dataset", f"is {dataset!r}, not 'synthcourt': a dataset SynthCourt did not write "
                                              "is never overwritten (train on it with data.source: manifest, or give "
                                              "SynthCourt another data.root)")


MARKER = ".synthcourt"  # written into every folder SynthCourt generates: the only folders it rewrites


def _refuse_unmarked(out: Path) -> None:
    """A non-empty folder SynthCourt did not make (no marker, no SynthCourt manifest) is never written into.

    Raises:
        DataError: naming the folder and the way to train on what it holds.
    """
    if not out.is_dir() or (out / MARKER).exists() or not any(out.iterdir()):
        return
    try:
        manifest = json.loads((out / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        manifest = None
    if isinstance(manifest, dict) and manifest.get("dataset") == "synthcourt":
        return  # generated before the marker existed
    raise DataError(str(out), "data.root", "holds files SynthCourt did not write; it generates only into an empty "
                                           "folder or one it made (to train on your data: data.source: manifest "
                                           "after `sportpose data import`; else give SynthCourt another data.root)")


def _complete(out: Path, manifest: dict) -> bool:
    return all((out / c[k]).is_file() for c in manifest.get("clips", []) for k in ("video", "annotations", "points3d"))


def _clip_worker(out_dir: str, config: SynthConfig, index: int) -> dict:
    cv2.setNumThreads(1)
    return generate_clip(out_dir, config, index)


def generate(out_dir: str | Path, config: SynthConfig, progress: bool = True, workers: int = 1) -> Path:
    """Write the clips and the manifest; returns the manifest path.

    Skips all work when ``out_dir/manifest.json`` exists with the same config and all its files; otherwise
    removes that manifest first, (re)writes every clip, deletes clip files of earlier runs that this config does
    not produce, and writes the manifest last, so an interrupted run never leaves a manifest pointing to missing
    or stale clips.

    Args:
        out_dir: dataset folder.
        config: what to generate.
        progress: show a tqdm progress bar over frames.
        workers: processes generating clips in parallel (spawned, one clip per task).
    """
    out = Path(out_dir)
    manifest_path = out / "manifest.json"
    wanted = config_dict(config)
    _refuse_unmarked(out)
    if manifest_path.exists():
        _refuse_foreign(manifest_path)
        try:
            old = load_manifest(manifest_path)
            if old.get("config") == wanted and _complete(out, old):
                return manifest_path
        except DataError:
            pass
        manifest_path.unlink()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("generated by sportpose SynthCourt; this folder may be regenerated\n")
    bar = tqdm(total=config.clips * config.frames, unit="frame", desc="SynthCourt", disable=not progress)
    entries: list[dict | None] = [None] * config.clips
    try:
        if workers <= 1:
            for i in range(config.clips):
                entries[i] = generate_clip(out, config, i, on_frame=lambda: bar.update(1))
        else:
            with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
                futures = {pool.submit(_clip_worker, str(out), config, i): i for i in range(config.clips)}
                for fut in as_completed(futures):
                    entries[futures[fut]] = fut.result()
                    bar.update(config.frames)
    finally:
        bar.close()

    keep = {Path(e[k]).name for e in entries for k in ("video", "annotations", "points3d")}
    for sub in ("videos", "annotations", "3d"):
        for stale in (out / sub).glob("synth_*"):
            if stale.name not in keep:
                stale.unlink()
    manifest = {"dataset": "synthcourt", "version": MANIFEST_VERSION, "config": wanted, "clips": entries}
    write_bytes_atomic(manifest_path, json.dumps(manifest, indent=1).encode())
    return manifest_path
