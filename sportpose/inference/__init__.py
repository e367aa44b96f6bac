"""Inference on video (SPEC §7): ``sportpose infer VIDEO --model URI|CHECKPOINT --out DIR``. Models come from
:mod:`sportpose.registry.load` (the registry or a checkpoint, rebuilt from its spec).

- :mod:`~sportpose.inference.people`: person boxes per frame (a detections file or the built-in proposal);
- :mod:`~sportpose.inference.tracker`: track ids by box IoU and keypoint similarity;
- :mod:`~sportpose.inference.run`: the streaming loop and its outputs.
"""
