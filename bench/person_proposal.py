"""How good the built-in person proposal of ``sportpose infer`` is, against its two cues alone (issue 8).

Run: ``python bench/person_proposal.py`` (about a minute; the clips are generated once into ``runs/bench/``).

Measured against ground-truth person boxes, as recall and precision at IoU >= 0.5 (each ground-truth box
matched at most once, greedy by IoU), per frame, pooled:

- **SynthCourt**: 12 clips of 48 frames, 320x240, 1-4 players, the three camera views (sideline, baseline,
  high_angle) and the three blur levels; the proposal is fed every frame in order, as ``sportpose infer``
  feeds it. Rows: ``auto`` (what infer uses: motion under a still camera, the playing surface otherwise),
  ``motion`` alone, ``surface`` alone. SynthCourt's cameras are still, so ``auto`` is motion after three
  warm-up frames.
- **PoseTrack fixtures**: the three annotated 1920x1080 validation frames of ``../shared/fixtures`` (single
  images: only the surface cue can run; persons without a box are skipped). Real footage, crowded scenes.

The tracker's boxes propagated from poses are not part of this measurement (they need a model); they add
recall on the frames where a tracked person's blob is lost.

The last line is ``name=value`` pairs for the run log.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from sportpose.data.synthcourt import generate, load_manifest
from sportpose.data.formats import read_posetrack18
from sportpose.data.video import iter_frames, open_video
from sportpose.inference.people import ForegroundProposal
from sportpose.inference.tracker import box_iou
from sportpose.paths import runs_dir
from sportpose.spec.data import SynthConfig

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures" / "posetrack18"
CONFIG = SynthConfig(clips=12, frames=48, width=320, height=240, min_players=1, max_players=4,
                     views=("sideline", "baseline", "high_angle"), blur=("none", "low", "high"), seed=21)


def match(found: list[np.ndarray], truth: list[np.ndarray]) -> tuple[int, int, int]:
    """(true positives, proposals, ground-truth boxes) of one frame at IoU >= 0.5, greedy by IoU."""
    if not found or not truth:
        return 0, len(found), len(truth)
    iou = box_iou(np.stack(found), np.stack(truth))
    hits = 0
    while iou.size and iou.max() >= 0.5:
        i, j = np.unravel_index(np.argmax(iou), iou.shape)
        hits += 1
        iou[i, :] = -1
        iou[:, j] = -1
    return hits, len(found), len(truth)


def synthcourt(cue: str) -> tuple[int, int, int, dict[str, tuple[int, int, int]]]:
    root = runs_dir() / "bench" / "synthcourt-proposal"
    manifest = load_manifest(generate(root, CONFIG, progress=False))
    total = np.zeros(3, int)
    per_view: dict[str, np.ndarray] = {}
    for clip in manifest["clips"]:
        (video,) = read_posetrack18(root / clip["annotations"])
        boxes = {f.frame_index: [p.bbox.astype(float) for p in f.persons if p.bbox is not None] for f in video.frames}
        proposal = ForegroundProposal(cue=cue)
        reader = open_video(root / clip["video"])
        for part, frames in iter_frames(reader, range(reader.num_frames)):
            for index, image in zip(part, frames):
                counts = np.array(match([b for b, _ in proposal(index, image)], boxes.get(index, [])))
                total += counts
                per_view.setdefault(clip["meta"]["view"], np.zeros(3, int))
                per_view[clip["meta"]["view"]] += counts
    return (*total, {k: tuple(v) for k, v in per_view.items()})


def posetrack_images() -> tuple[int, int, int]:
    total = np.zeros(3, int)
    for file in sorted((FIXTURES / "annotations" / "val").glob("*.json")):
        (video,) = read_posetrack18(file)
        for frame in video.frames:
            image = cv2.imread(str(FIXTURES / "images" / "val" / video.name / Path(frame.file_name).name))
            if image is None:
                continue
            found = ForegroundProposal(cue="surface")(frame.frame_index, cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
            truth = [p.bbox.astype(float) for p in frame.persons if p.bbox is not None]
            total += np.array(match([b for b, _ in found], truth))
    return tuple(total)


def rates(tp: int, found: int, truth: int) -> tuple[float, float]:
    return tp / max(truth, 1), tp / max(found, 1)


def main() -> None:
    pairs = []
    print(f"{'data':<34} {'cue':<8} {'recall':>7} {'precision':>9} {'boxes':>6} {'truth':>6}")
    for cue in ("auto", "motion", "surface"):
        tp, found, truth, per_view = synthcourt(cue)
        recall, precision = rates(tp, found, truth)
        print(f"{'SynthCourt (12 clips x 48 frames)':<34} {cue:<8} {recall:>7.2f} {precision:>9.2f} {found:>6} {truth:>6}")
        pairs += [(f"synth_{cue}_recall", recall), (f"synth_{cue}_precision", precision)]
        if cue == "auto":
            for view, counts in sorted(per_view.items()):
                r, p = rates(*counts)
                print(f"{'  view ' + view:<34} {cue:<8} {r:>7.2f} {p:>9.2f} {counts[1]:>6} {counts[2]:>6}")
                pairs.append((f"synth_auto_recall_{view}", r))
    if FIXTURES.is_dir():
        tp, found, truth = posetrack_images()
        recall, precision = rates(tp, found, truth)
        print(f"{'PoseTrack fixtures (3 images)':<34} {'surface':<8} {recall:>7.2f} {precision:>9.2f} {found:>6} {truth:>6}")
        pairs += [("posetrack_surface_recall", recall), ("posetrack_surface_precision", precision)]
    print("(recall and precision at IoU >= 0.5 against the ground-truth person boxes)")
    print(" ".join(f"{k}={v:.3g}" for k, v in pairs))


if __name__ == "__main__":
    main()
