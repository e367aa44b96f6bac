"""SynthCourt: deterministic synthetic basketball video with exact 2D and 3D pose ground truth (SPEC §3.1).

One clip is made in five steps, all driven by ``numpy.random.default_rng([seed, index])`` so that clips are
independent and can be generated in any order or in parallel:

1. **Scene** (:mod:`.scene`): a camera from one of the view groups (``sideline``, ``baseline``, ``high_angle``)
   with per-clip jitter, 1-6 players in two jersey colours (adults 0.9-1.1 or children 0.55-0.8 of the adult
   template's height), lighting, a crowd and billboards.
2. **Behaviour** (:mod:`.motions`, root trajectories in :mod:`.scene`): each player gets a schedule of motion
   primitives (run, jog, dribble, jump shot, pass, defensive slide, idle) with per-segment style (amplitude,
   handedness, arm offsets); consecutive primitives are blended over ``BLEND_S`` seconds. Root trajectories are
   integrated at the frame rate with a steering rule that keeps players in the camera's field of view, then
   interpolated to a fine time grid (``SUB`` steps per frame).
3. **Kinematics** (:mod:`.body`): joint angles (degrees) -> forward kinematics of the 21-joint ``synth`` skeleton
   (mm, world frame: z up, x along the court, y across, origin at centre court). Every angle is a box-limited
   degree of freedom (knees and elbows only flex, 0-150 deg), so the skeleton's joint-angle limits hold by
   construction.
4. **Rendering** (OpenCV, :mod:`.render`): static background (floor with court lines, billboards, crowd,
   vignette); players drawn as shaded capsules / polygons / ellipses in painter's order over the parts of all
   players; motion blur as the average of 1/3/5 sub-frame renders; a player-id buffer at the exposure centre
   gives per-joint visibility.
5. **Output** (:mod:`.clip` for one clip, :mod:`.generate` for the dataset): ``videos/<name>.mp4`` (mp4v),
   ``annotations/<name>.json`` (PoseTrack 2018 layout), ``3d/<name>.npz`` (camera-frame joints in mm, 2D
   projections, visibility, K, R, t) and ``manifest.json``.

The modules import one way: ``body`` <- ``motions`` <- ``scene`` <- ``render`` <- ``clip`` <- ``generate``. The
config (:class:`~sportpose.spec.data.SynthConfig`) and the names of views, blur levels and motions live in
:mod:`sportpose.spec.data`, with the other YAML schemas.

Decisions where SPEC §3.1 is silent:

- Annotations are at the centre of the exposure (the middle sub-frame); blur averages sub-frames around it.
- A joint is visible (v=1) when it projects inside the frame and the id buffer holds its own player within a
  ``(2r+1)^2`` px neighbourhood (r = 1 px per 320 px of width): occlusion by another player or the ball sets
  v=0, self-occlusion keeps v=1 (the joint's position still follows from the visible body).
- PoseTrack convention "zeros when unlabeled": every v=0 keypoint (outside the frame, occluded, and the ears,
  which PoseTrack never labels) is written as 0, 0, 0. The npz keeps every projection.
- Occlusion level of a clip from the fraction of in-frame joints hidden by another player or the ball:
  ``low`` < 2%, ``medium`` < 6%, ``high`` otherwise.
- The camera is static within a clip (K, R, t are single arrays), so the play area is the floor region where a
  standing player is fully in view; players steer back into it.
- Annotation ids follow the real files: image id ``1VVVVVVFFFF`` (video number = clip index), annotation id =
  image id * 100 + track id. Image ``file_name`` entries are virtual (no JPEGs are written).
"""

from __future__ import annotations

from sportpose.data.synthcourt.body import (ADULT_HEIGHT_MM, ADULT_MM, DOFS, body_lengths, clamp_dofs,
                                            forward_kinematics, standing_height)
from sportpose.data.synthcourt.clip import CATEGORIES, generate_clip, image_id, simulate_clip
from sportpose.data.synthcourt.generate import config_dict, generate, load_manifest
from sportpose.data.synthcourt.motions import MOTION_KINDS, Segment, segment_dofs
from sportpose.data.synthcourt.render import Renderer, visibility_from_ids
from sportpose.data.synthcourt.scene import sample_camera, sample_players
from sportpose.spec.data import BALL_MOTIONS, BLUR_SUBFRAMES, MOTIONS, VIEWS, SynthConfig

__all__ = [
    "ADULT_HEIGHT_MM", "ADULT_MM", "BALL_MOTIONS", "BLUR_SUBFRAMES", "CATEGORIES", "DOFS", "MOTIONS", "MOTION_KINDS",
    "VIEWS", "Renderer", "Segment", "SynthConfig", "body_lengths", "clamp_dofs", "config_dict", "forward_kinematics",
    "generate", "generate_clip", "image_id", "load_manifest", "sample_camera", "sample_players", "segment_dofs",
    "simulate_clip", "standing_height", "visibility_from_ids",
]
