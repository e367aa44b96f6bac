"""Inference on video (SPEC §7): the Python API ``Inferencer(model)(source)`` and ``sportpose infer SOURCE --model
URI|CHECKPOINT --out DIR``. Models come from :mod:`sportpose.registry.load` (the registry or a checkpoint, rebuilt
from its spec).

- :mod:`~sportpose.inference.api`: ``Inferencer``, the streaming loop, per-frame results;
- :mod:`~sportpose.inference.sources`: videos, frame folders, images, folders of them, cameras and stream URLs;
- :mod:`~sportpose.inference.estimator`: people cut into tubes as the data pipeline cuts them, batched forward;
- :mod:`~sportpose.inference.people`: person boxes per frame (a detections file or the built-in proposal);
- :mod:`~sportpose.inference.tracker`: track ids by box IoU and keypoint similarity;
- :mod:`~sportpose.inference.smoothing`, :mod:`~sportpose.inference.track_smoothing`: keypoint tracks smoothed;
- :mod:`~sportpose.inference.writers`: H.264 overlays, PoseTrack18 files in parts, 3D skeleton animations;
- :mod:`~sportpose.inference.run`: ``sportpose infer``, a loop over the API that writes what it yields.
"""
