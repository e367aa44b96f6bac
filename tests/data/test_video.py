"""Decoding real video: the PoseTrack fixture clip with decord and with the OpenCV fallback."""


import numpy as np
import pytest

from sportpose.data.video import decord, open_video, read_frames
from sportpose.errors import DataError
from sportpose.paths import REPO

FIXTURES = REPO.parent / "shared" / "fixtures" / "posetrack18"
CLIP = FIXTURES / "videos" / "000001_mpiinew_test" / "000001_mpiinew_test.mp4"
pytestmark = pytest.mark.skipif(not CLIP.exists(), reason=f"PoseTrack fixtures not found at {FIXTURES}")


@pytest.mark.parametrize("backend", ["decord", "opencv"])
def test_decodes_real_clip(backend):
    if backend == "decord" and decord is None:
        pytest.skip("decord has no wheel for this machine")
    reader = open_video(CLIP, backend=backend)
    assert reader.num_frames == 5
    frames = read_frames(reader, [4, 0, 2, 2])
    assert sorted(frames) == [0, 2, 4]
    assert frames[0].shape == (720, 1280, 3) and frames[0].dtype == np.uint8
    assert reader.size == (1280, 720)
    assert frames[0].std() > 10  # a real picture, not a blank frame


def test_backends_agree_on_pixels():
    if decord is None:
        pytest.skip("decord has no wheel for this machine")
    a = read_frames(open_video(CLIP, backend="decord"), [3])[3].astype(int)
    b = read_frames(open_video(CLIP, backend="opencv"), [3])[3].astype(int)
    assert np.abs(a - b).mean() < 3.0


def test_decoded_frame_matches_the_jpeg():
    import cv2

    frame = read_frames(open_video(CLIP), [1])[1]
    jpeg = cv2.cvtColor(cv2.imread(str(CLIP.parent / "000001.jpg")), cv2.COLOR_BGR2RGB)
    if jpeg.shape != frame.shape:
        jpeg = cv2.resize(jpeg, (frame.shape[1], frame.shape[0]))
    assert np.abs(frame.astype(int) - jpeg.astype(int)).mean() < 12


def test_frames_beyond_the_end_are_an_error():
    with pytest.raises(DataError, match="beyond the video's 5 frames"):
        read_frames(open_video(CLIP), [2, 7])


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        open_video(tmp_path / "none.mp4")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty"):
        open_video(empty)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video" * 100)
    with pytest.raises(DataError, match=str(junk)):
        read_frames(open_video(junk), [0])


def test_planar_decoder_agrees_with_decord_and_crops_exactly():
    """The tube cutter's planar decoder: the same frames as decord (BT.601 within rounding), in any order, and a
    crop through its planes equals the crop of the whole frame converted, pixel for pixel (borders included)."""
    import cv2

    from sportpose.data.video import PlanarFrame

    reader = open_video(CLIP, planar=True)
    assert reader.num_frames == 5
    planar = read_frames(reader, [4])
    planar.update(read_frames(reader, [0, 2]))  # backwards: the reader seeks
    assert all(isinstance(f, PlanarFrame) for f in planar.values())
    reference = read_frames(open_video(CLIP), [0, 2, 4])
    for i, frame in planar.items():
        assert frame.shape == reference[i].shape
        assert np.abs(frame.rgb().astype(int) - reference[i]).mean() < 2.0
    frame, rgb = planar[2], planar[2].rgb()
    for m in ([[0.4, 0.1, -100.0], [-0.1, 0.4, -50.0]], [[0.5, 0.0, 20.0], [0.0, 0.5, 10.0]],
              [[1.0, 0.0, -1250.0], [0.0, 1.0, -700.0]], [[1.0, 0.0, 5000.0], [0.0, 1.0, 0.0]]):
        m = np.array(m)
        out = np.empty((96, 64, 3), np.uint8)
        frame.crop(m, (96, 64), out)
        np.testing.assert_array_equal(out, cv2.warpAffine(rgb, m, (64, 96), flags=cv2.INTER_LINEAR))
