"""Dataset formats: PoseTrack 2018 / 2017 annotations, COCO person detections, Human3.6M (VideoPose3D).

One module per format, each on top of the shared field checks (:mod:`.checks`)::

    annotations   the dataclasses every annotation format is read into
    posetrack18   PoseTrack 2018 JSON (read, write, ignore regions) and the image id rule
    posetrack17   PoseTrack 2017 ``annolist`` JSON, converted to the 2018 layout; read_posetrack (either)
    detections    COCO-style person detections
    h36m          VideoPose3D's Human3.6M ``.npz`` files

Everything the benchmarks ship is read into three plain dataclasses (`VideoAnnotation` > `FrameAnnotation` >
`PersonAnnotation`) in the PoseTrack 2018 layout (SPEC §3.2): 17 joints in file order (`skeleton.POSETRACK`),
pixel coordinates, boxes ``[x, y, w, h]``. Predictions are written back in the same layout, with per-joint
``scores``, so that the official poseval tool accepts them.

Units and conventions:
- 2D keypoints in pixels, ``(17, 3)`` float32 rows ``x, y, v``; an unlabeled joint is ``0, 0, 0`` as in the
  files (poseval treats exactly ``x == y == v == 0`` as "not annotated").
- PoseTrack image ids are ``TSSSSSSFFFF`` (T: 1 mpii, 2 bonn, 3 mpiinew; S: sequence; F: 0-based frame), made
  by :func:`posetrack_image_id`, so ``frame_index = image_id % FRAMES_PER_VIDEO``.
- Human3.6M 3D joints in mm (the VideoPose3D files hold metres), reduced from 32 to the 17 ``h36m`` joints.

Bad files raise `DataError` with one line ``path: field: message``. A missing file raises the usual
``FileNotFoundError``. The Human3.6M readers unpickle: trusted files only (:mod:`.h36m`).
"""

from sportpose.data.formats.annotations import FrameAnnotation, PersonAnnotation, VideoAnnotation
from sportpose.data.formats.detections import read_detections
from sportpose.data.formats.h36m import H36M_KEPT_JOINTS, H36M_REMOVED_JOINTS, read_h36m_2d, read_h36m_3d
from sportpose.data.formats.posetrack17 import read_posetrack, read_posetrack17
from sportpose.data.formats.posetrack18 import (
    FRAMES_PER_VIDEO,
    POSETRACK18_CATEGORY,
    SEQUENCE_TYPES,
    parse_video_name,
    posetrack_image_id,
    read_posetrack18,
    write_posetrack18,
)

__all__ = [
    "FRAMES_PER_VIDEO", "FrameAnnotation", "H36M_KEPT_JOINTS", "H36M_REMOVED_JOINTS", "POSETRACK18_CATEGORY",
    "PersonAnnotation", "SEQUENCE_TYPES", "VideoAnnotation", "parse_video_name", "posetrack_image_id",
    "read_detections", "read_h36m_2d", "read_h36m_3d", "read_posetrack", "read_posetrack17", "read_posetrack18",
    "write_posetrack18",
]
