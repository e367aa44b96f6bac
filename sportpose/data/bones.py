"""L_skel's reference bone lengths: the training split's mean per body-scale group (SPEC §5 GSR).

``L_skel = mean |‖P_i − P_j‖ − l_ij|`` pulls a predicted skeleton towards reference lengths ``l_ij``. One adult
template would pull a child towards adult bones (a SynthCourt child is 0.55–0.8 of the adult height: 50–114 mm
per bone too long), so ``l_ij`` is the mean over the *training* split's people of each body-scale group, and
every sample (train, val and test) carries its group's lengths in its ``bone_lengths`` column (h36m edge order,
mm), which :meth:`~sportpose.models.stsp.STSPNet.loss` reads in place of the model's template.

Decisions:

- **A person's group.** A SynthCourt player is a ``child`` when its clip's 3D file marks it ``is_child``: the
  generator draws children's heights from 0.55–0.8 of the adult template and adults' from 0.9–1.1, so the flag
  is the player's body scale read on either side of the gap. Without ``is_child`` in the 3D file (an import),
  the group is the clip's ``meta.subject`` (Human3.6M: one group per subject), else its ``meta.body``, else
  none.
- **A person's lengths.** Their mean over the frames of the 3D file where every joint is finite (SynthCourt's
  bones are rigid, so any frame gives them), or, where an import measured them (``meta.bone_lengths``, as the
  Human3.6M importer writes each subject's mean), those: the 3D file is then not read.
- **Means.** A group's lengths are the mean over its training people (each person once, however many
  frames); the overall mean is over every training person. A person whose group has no training people (a
  Human3.6M test subject: S9 and S11 are in no training split) or who has no group gets the overall training
  mean: nothing of a held-out person's own skeleton enters its reference. Without any training person with 3D
  (no 3D at all) there are no lengths and the model's template applies (NaN in the column).
- **Cost.** Computed once per manifest in the driver (:func:`~sportpose.data.dataset.load_clips`), from the
  training clips' 3D files (a few KB each for SynthCourt) and cached per process by the files' sizes and
  modification times; each clip task then only looks its people's groups up.
"""

from __future__ import annotations

import functools
import os
import zipfile
from typing import Any

import numpy as np

from sportpose.errors import DataError
from sportpose.models.skeleton import H36M, convert

OVERALL = ""  # the key of the overall training mean in a clip's ``bone_groups``
CHILD, ADULT = "child", "adult"


def clip_group(meta: dict[str, Any]) -> str:
    """The group of a clip's people when its 3D file does not say (no ``is_child``): ``meta.subject``
    (Human3.6M), else ``meta.body``, else none (``""``)."""
    return str(meta.get("subject") or meta.get("body") or OVERALL)


def person_group(clip_default: str, is_child: Any = None) -> str:
    """A person's body-scale group: ``child`` / ``adult`` from the 3D file's ``is_child`` where it has one
    (SynthCourt), else the clip's group (:func:`clip_group`)."""
    if is_child is None:
        return clip_default
    return CHILD if bool(is_child) else ADULT


def bone_lengths_mm(joints: np.ndarray) -> np.ndarray:
    """(..., E) mm: the lengths of the h36m edges of ``joints`` (..., 17, 3) mm, in ``H36M.edges`` order."""
    a = [i for i, _ in H36M.edges]
    b = [j for _, j in H36M.edges]
    return np.linalg.norm(joints[..., a, :] - joints[..., b, :], axis=-1)


def _measured(clip: dict[str, Any]) -> np.ndarray | None:
    """(E,) mm: an import's measured lengths of the clip's person (``meta.bone_lengths``), checked."""
    lengths = clip.get("bone_lengths")
    if lengths is None:
        return None
    edges = len(H36M.edges)
    try:
        out = np.asarray(lengths, np.float64)
    except (TypeError, ValueError):
        out = np.zeros(0)
    if out.shape != (edges,) or not (np.isfinite(out).all() and (out > 0).all()):
        raise DataError(clip["annotations"], "meta.bone_lengths", f"expected {edges} positive lengths in mm "
                                                                  f"(h36m edges), got {lengths!r}")
    return out


def file_stamp(path: str) -> tuple:
    """(path, size, mtime): a cache key that changes when the file does (None, None when it is missing)."""
    try:
        st = os.stat(path)
    except OSError:
        return (path, None, None)
    return (path, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _people(stamp: tuple, default: str) -> tuple[tuple[str, tuple[float, ...]], ...]:
    """(group, (E,) mm) of every person of one 3D file whose joints are finite in some frame."""
    path = stamp[0]
    try:
        with np.load(path) as z:
            joints = z["joints_cam"]
            layout = str(z["layout"]) if "layout" in z.files else "synth"
            is_child = z["is_child"] if "is_child" in z.files else None
    except FileNotFoundError:
        raise DataError(path, "", "file not found") from None
    except KeyError as e:
        raise DataError(path, str(e).strip("'\""), "missing") from None
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise DataError(path, "", f"cannot be read: {str(e).splitlines()[0][:200]}") from None
    if joints.ndim != 4 or layout not in ("synth", "h36m"):
        raise DataError(path, "joints_cam", f"expected (F, P, J, 3) {layout} joints, got {joints.shape}")
    joints = convert(joints, layout, "h36m")  # (F, P, 17, 3) mm
    out = []
    for p in range(joints.shape[1]):
        finite = np.isfinite(joints[:, p]).all(axis=(1, 2))  # (F,)
        if not finite.any():
            continue
        lengths = bone_lengths_mm(joints[finite, p]).mean(0)  # (E,)
        group = person_group(default, None if is_child is None else is_child[p])
        out.append((group, tuple(float(v) for v in lengths)))
    return tuple(out)


def training_bone_lengths(clips: list[dict[str, Any]]) -> dict[str, list[float]]:
    """The mean bone lengths (mm, h36m edges) of each body-scale group over the training clips' people, and the
    overall training mean under :data:`OVERALL`; {} when no training clip has 3D.

    Args:
        clips: :func:`~sportpose.data.dataset.load_clips` entries with their splits (``meta`` holding the
            clip's ``subject`` / ``body``, and ``bone_lengths`` where an import measured them).

    A training clip whose 3D file cannot be read adds no one (the pipeline skips and reports that clip when it
    cuts it).

    Raises:
        DataError: a training clip's ``meta.bone_lengths`` are malformed.
    """
    people: list[tuple[str, np.ndarray]] = []
    for clip in clips:
        if clip["split"] != "train":
            continue
        default = clip.get("bone_group", OVERALL)
        measured = _measured(clip)
        if measured is not None:
            people.append((default, measured))
        elif clip.get("points3d"):
            try:
                people += [(g, np.asarray(v)) for g, v in _people(file_stamp(clip["points3d"]), default)]
            except DataError:
                continue  # the clip's own task meets the same error, skips the clip and reports it
    if not people:
        return {}
    groups: dict[str, list[np.ndarray]] = {}
    for group, lengths in people:
        groups.setdefault(group, []).append(lengths)
    out = {g: np.mean(v, axis=0) for g, v in sorted(groups.items()) if g != OVERALL}
    out[OVERALL] = np.mean([v for _, v in people], axis=0)
    return {g: [round(float(x), 3) for x in v] for g, v in out.items()}


def lengths_for(groups: dict[str, list[float]], group: str) -> np.ndarray:
    """(E,) float32 mm: ``group``'s training mean, the overall training mean for a group without training
    people, NaN (the model's template) without any."""
    lengths = groups.get(group, groups.get(OVERALL))
    if lengths is None:
        return np.full(len(H36M.edges), np.nan, np.float32)
    return np.asarray(lengths, np.float32)


__all__ = ["ADULT", "CHILD", "OVERALL", "bone_lengths_mm", "clip_group", "lengths_for", "person_group",
           "training_bone_lengths"]
