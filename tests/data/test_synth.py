"""SynthCourt: video decoding, PoseTrack 2018 layout, 2D/3D consistency, occlusion, determinism, kinematics,
config validation and the dataset entry point."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import cv2
import numpy as np
import pytest

from sportpose.paths import REPO
from sportpose.errors import DataError, SpecError
from sportpose.models.skeleton import H36M, POSETRACK, SYNTH, convert, joint_angles
from sportpose.data import synthcourt
from sportpose.data.camera import Camera, clip_polygon_near, intrinsics, look_at, project
from sportpose.data.synthcourt import generate, generate_clip, load_manifest
from sportpose.spec.data import BLUR_SUBFRAMES, MOTIONS, VIEWS, SynthConfig

FIXTURES = REPO.parent / "shared" / "fixtures" / "posetrack18"
FIXTURE = FIXTURES / "annotations" / "val" / "003418_mpii_test.json"

# Four small clips: one per view group (baseline with many players), blur none and low, half of them children.
CONFIG = SynthConfig(clips=4, frames=16, min_players=2, max_players=5, views=("sideline", "baseline", "high_angle"),
                     blur=("none", "low"), child_fraction=0.5, seed=3)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthcourt")
    manifest = load_manifest(generate(out, CONFIG, progress=False))
    return out, manifest


def _clip(dataset, i):
    out, manifest = dataset
    entry = manifest["clips"][i]
    doc = json.loads((out / entry["annotations"]).read_text())
    npz = dict(np.load(out / entry["points3d"]))
    return entry, doc, npz


def test_manifest_layout(dataset):
    out, manifest = dataset
    assert manifest["dataset"] == "synthcourt" and manifest["version"] == 1
    assert manifest["config"] == synthcourt.config_dict(CONFIG)
    assert [c["name"] for c in manifest["clips"]] == [f"synth_3_{i:04d}" for i in range(CONFIG.clips)]
    for c in manifest["clips"]:
        assert c["video"] == f"videos/{c['name']}.mp4"
        assert c["annotations"] == f"annotations/{c['name']}.json"
        assert c["points3d"] == f"3d/{c['name']}.npz"
        for key in ("video", "annotations", "points3d"):
            assert (out / c[key]).is_file()
        meta = c["meta"]
        assert meta["view"] in VIEWS and meta["blur"] in BLUR_SUBFRAMES
        assert meta["occlusion"] in ("low", "medium", "high") and meta["body"] in ("adult", "child")
        assert (meta["fps"], meta["frames"], meta["width"], meta["height"]) == (25.0, 16, 320, 240)
        assert 2 <= meta["num_players"] <= 5 and set(meta["motions"]) <= set(MOTIONS)
    views = [c["meta"]["view"] for c in manifest["clips"]]
    assert views == ["sideline", "baseline", "high_angle", "sideline"]
    assert {c["meta"]["blur"] for c in manifest["clips"]} == {"none", "low"}
    assert {c["meta"]["body"] for c in manifest["clips"]} == {"adult", "child"}


def test_clips_decode_with_decord_and_opencv(dataset):
    decord = pytest.importorskip("decord")
    out, manifest = dataset
    for c in manifest["clips"]:
        reader = decord.VideoReader(str(out / c["video"]), num_threads=1)
        assert len(reader) == CONFIG.frames
        frame = reader[CONFIG.frames // 2].asnumpy()
        assert frame.shape == (CONFIG.height, CONFIG.width, 3) and frame.std() > 10  # a picture, not a blank
        cap = cv2.VideoCapture(str(out / c["video"]))
        n = 0
        while cap.read()[0]:
            n += 1
        assert n == CONFIG.frames


def test_posetrack18_layout(dataset):
    out, manifest = dataset
    for index, c in enumerate(manifest["clips"]):
        _, doc, _ = _clip(dataset, index)
        assert set(doc) == {"images", "annotations", "categories"}
        assert len(doc["images"]) == CONFIG.frames
        for f, img in enumerate(doc["images"]):
            assert img["id"] == img["frame_id"] == 10000000000 + index * 10000 + f
            assert re.fullmatch(r"1\d{6}\d{4}", str(img["id"]))
            assert img["vid_id"] == f"{index:06d}" and img["nframes"] == CONFIG.frames and img["is_labeled"] is True
            assert img["file_name"] == f"images/{c['name']}/{f:06d}.jpg"
            assert img["ignore_regions_x"] == [] and img["ignore_regions_y"] == []
        image_ids = {img["id"] for img in doc["images"]}
        assert doc["annotations"]
        for ann in doc["annotations"]:
            assert ann["image_id"] in image_ids and ann["id"] == ann["image_id"] * 100 + ann["track_id"]
            assert ann["category_id"] == 1 and ann["iscrowd"] is False and ann["scores"] == []
            kp = np.array(ann["keypoints"], dtype=float).reshape(17, 3)
            assert len(ann["keypoints"]) == 51 and set(kp[:, 2]) <= {0.0, 1.0}
            assert ann["num_keypoints"] == int(kp[:, 2].sum())
            assert np.all(kp[kp[:, 2] == 0] == 0)  # unlabeled: 0, 0, 0
            ears = [POSETRACK.index("left_ear"), POSETRACK.index("right_ear")]
            assert np.all(kp[ears] == 0)  # never labeled in PoseTrack
            x, y, w, h = ann["bbox"]
            assert w > 1 and h > 1 and x >= 0 and y >= 0
            assert x + w <= CONFIG.width + 1e-6 and y + h <= CONFIG.height + 1e-6
            vis = kp[:, 2] > 0
            assert np.all((kp[vis, 0] >= x) & (kp[vis, 0] <= x + w) & (kp[vis, 1] >= y) & (kp[vis, 1] <= y + h))
            hx, hy, hw, hh = ann["bbox_head"]
            assert hx >= 0 and hy >= 0 and hx + hw <= CONFIG.width + 1e-6 and hy + hh <= CONFIG.height + 1e-6
            head = [POSETRACK.index(n) for n in ("nose", "head_bottom", "head_top")]
            shown = [j for j in head if kp[j, 2] > 0]
            for j in shown:  # the head box contains the labeled head joints
                assert hx - 1e-6 <= kp[j, 0] <= hx + hw + 1e-6 and hy - 1e-6 <= kp[j, 1] <= hy + hh + 1e-6
            if kp[head[1], 2] > 0 and kp[head[2], 2] > 0 and hw > 0 and hh > 0:
                # PoseTrack's head boxes span about one head length (head_top to head_bottom).
                length = np.linalg.norm(kp[head[1], :2] - kp[head[2], :2])
                assert 0.6 * length <= max(hw, hh) <= 3.0 * max(length, 2.0)
                assert hw * hh <= w * h


def test_categories_match_real_posetrack18():
    if not FIXTURE.is_file():
        pytest.skip(f"no PoseTrack fixture at {FIXTURE}")
    real = json.loads(FIXTURE.read_text())["categories"]
    assert synthcourt.CATEGORIES == real


def test_3d_projects_onto_2d_and_json(dataset):
    for index in range(CONFIG.clips):
        entry, doc, npz = _clip(dataset, index)
        F, P = CONFIG.frames, entry["meta"]["num_players"]
        assert npz["joints_cam"].shape == (F, P, 21, 3) and npz["joints_cam"].dtype == np.float32
        assert npz["joints_2d"].shape == (F, P, 21, 2) and npz["visibility"].shape == (F, P, 21)
        assert npz["visibility"].dtype == np.uint8 and list(npz["track_ids"]) == list(range(P))
        assert list(npz["image_size"]) == [CONFIG.width, CONFIG.height] and float(npz["fps"]) == CONFIG.fps
        K, R, t = npz["K"], npz["R"], npz["t"]
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-9) and np.isclose(np.linalg.det(R), 1.0)
        X = npz["joints_cam"].astype(np.float64)
        uv = (X @ K.T)[..., :2] / X[..., 2:3]  # the stored joints are in camera coordinates: K @ X
        assert np.abs(uv - npz["joints_2d"]).max() < 0.5
        # ... and onto the JSON keypoints (PoseTrack order) for every labeled joint.
        uv_pt = convert(uv, "synth", "posetrack")  # (F, P, 17, 2)
        frame_of = {img["id"]: f for f, img in enumerate(doc["images"])}
        checked = 0
        for ann in doc["annotations"]:
            kp = np.array(ann["keypoints"]).reshape(17, 3)
            vis = kp[:, 2] > 0
            err = np.abs(kp[vis, :2] - uv_pt[frame_of[ann["image_id"]], ann["track_id"]][vis])
            assert err.size == 0 or err.max() < 0.5
            checked += int(vis.sum())
        assert checked > 0
        # visibility in the JSON is the npz visibility in PoseTrack order (ears excepted)
        vis_pt = convert(npz["visibility"][..., None].astype(float), "synth", "posetrack")[..., 0]
        for ann in doc["annotations"]:
            kp = np.array(ann["keypoints"]).reshape(17, 3)
            expected = vis_pt[frame_of[ann["image_id"]], ann["track_id"]].copy()
            expected[[3, 4]] = 0
            assert np.array_equal(kp[:, 2], expected)
        # world -> camera: the world floor is z = 0 and feet stand on it
        world = (X - t) @ R  # R.T @ (X - t), (F, P, 21, 3)
        ankles = world[..., [SYNTH.index("r_foot"), SYNTH.index("l_foot")], 2].min(-1)
        assert np.all(ankles > 0) and np.median(ankles) < 150


def _stacked_pair():
    """Two standing adults on the sideline camera's axis, 2.5 m apart: the far one is behind the near one."""
    rng = np.random.default_rng(0)
    camera, target = synthcourt.sample_camera("sideline", rng, 320, 240)
    players = synthcourt.sample_players(rng, 2, child=False)
    axis = target[:2] - camera.center[:2]
    axis /= np.linalg.norm(axis)
    xy = np.stack([target[:2] - 1000 * axis, target[:2] + 1500 * axis])[None]  # (1, 2, 2): near, far
    dofs = synthcourt.clamp_dofs(np.zeros((1, 2, len(synthcourt.DOFS))))
    points = synthcourt.forward_kinematics(dofs, players.lengths, np.zeros((1, 2)), xy)[0]  # (2, NPTS, 3)
    background = np.zeros((240, 320, 3), np.uint8)
    renderer = synthcourt.Renderer(camera, players, {"gain": np.ones(3), "light": np.array([0.0, -1.0])})
    ids = np.zeros((240, 320), np.uint8)
    cam = camera.to_camera(points)
    renderer.draw(background.copy(), cam, None, ids)
    uv = project(camera.K, cam[:, :21])
    return camera, ids, uv


def test_visibility_false_behind_another_player():
    camera, ids, uv = _stacked_pair()
    inside = camera.inside(uv)
    vis = synthcourt.visibility_from_ids(ids, uv, inside, radius=1)
    assert inside.all()
    assert vis[0].all()  # the near player is fully visible
    hidden = inside[1] & ~vis[1]
    assert hidden.sum() >= 4  # the far player's legs are behind the near one's upper body
    px = np.round(uv[1, hidden]).astype(int)
    assert np.all(ids[px[:, 1], px[:, 0]] == 1)  # the id buffer holds the near player there
    assert vis[1, SYNTH.index("head_top")]  # the far player's head shows above (camera looks down)


def test_visibility_from_ids_neighbourhood():
    ids = np.zeros((20, 20), np.uint8)
    ids[5:15, 5:15] = 1  # player 0
    ids[8:12, 8:12] = 2  # player 1 in front
    uv = np.array([[[10.0, 10.0], [6.0, 6.0], [12.4, 10.0]], [[10.0, 10.0], [1.0, 1.0], [30.0, 5.0]]])
    inside = np.array([[True, True, True], [True, True, False]])
    vis = synthcourt.visibility_from_ids(ids, uv, inside, radius=1)
    # (10,10) of player 0 is covered by player 1; (12.4 -> 12, 10) has a player-0 pixel within 1 px
    assert vis.tolist() == [[False, True, True], [True, False, False]]


def test_baseline_clip_has_hidden_joints_inside_the_frame(dataset):
    entry, _, npz = _clip(dataset, 1)
    assert entry["meta"]["view"] == "baseline"
    uv, vis = npz["joints_2d"], npz["visibility"]
    u, v = uv[..., 0], uv[..., 1]
    inside = (u >= 0) & (u <= CONFIG.width - 1) & (v >= 0) & (v <= CONFIG.height - 1)
    hidden = inside & (vis == 0)
    assert hidden.sum() > 0
    assert np.all(vis[~inside] == 0)
    assert entry["meta"]["hidden_fraction"] == pytest.approx(hidden.sum() / inside.sum(), abs=1e-4)


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    cfg = SynthConfig(clips=1, frames=6, max_players=3, views=("baseline",), seed=11)
    names = []
    for run in ("a", "b"):
        e = generate_clip(tmp_path / run, cfg, 0)
        names.append(e)
    for key in ("annotations", "points3d"):
        assert (tmp_path / "a" / names[0][key]).read_bytes() == (tmp_path / "b" / names[1][key]).read_bytes()
    assert names[0] == names[1]
    other = generate_clip(tmp_path / "c", replace(cfg, seed=12), 0)
    for key in ("annotations", "points3d"):
        assert (tmp_path / "a" / names[0][key]).read_bytes() != (tmp_path / "c" / other[key]).read_bytes()


def test_children_are_shorter(dataset):
    _, manifest = dataset
    heights = {"adult": [], "child": []}
    for index, c in enumerate(manifest["clips"]):
        _, _, npz = _clip(dataset, index)
        body = c["meta"]["body"]
        assert npz["is_child"].tolist() == [body == "child"] * c["meta"]["num_players"]
        # measured on the skeleton: highest head_top above the floor over the clip
        X = npz["joints_cam"].astype(np.float64)
        top = ((X - npz["t"]) @ npz["R"])[..., SYNTH.index("head_top"), 2].max(0)  # (P,) mm
        assert np.all(top < npz["height_mm"] + 500)  # at most a jump above standing height
        heights[body] += npz["height_mm"].tolist()
    adult = synthcourt.ADULT_HEIGHT_MM
    assert all(0.9 * adult - 1 <= h <= 1.1 * adult + 1 for h in heights["adult"])
    assert all(0.55 * adult - 1 <= h <= 0.8 * adult + 1 for h in heights["child"])
    lengths = synthcourt.body_lengths(np.array([0.6, 1.0]))
    assert np.allclose(synthcourt.standing_height(lengths), [0.6 * adult, adult])
    assert lengths["head_top"][0] / lengths["head_top"][1] > 0.6  # children's heads are relatively large


def _segment(motion, style_seed=0):
    rng = np.random.default_rng(style_seed)
    kind = synthcourt.MOTION_KINDS[motion]
    return synthcourt.Segment(motion=motion, start=0.0, end=2.0, cadence_hz=float(np.mean(kind.cadence_hz)),
                              speed_mm_s=float(np.mean(kind.speed_mm_s)), heading=0.0, side=1.0,
                              style=synthcourt.motions._sample_style(rng, motion))


@pytest.mark.parametrize("motion", MOTIONS)
def test_motions_move_the_limbs(motion):
    seg = _segment(motion)
    t = np.arange(50) / 25.0  # 2 s at 25 fps
    phase = 2 * np.pi * seg.cadence_hz * t
    dofs = synthcourt.segment_dofs(seg, phase, t)[:, None]  # (T, 1, D)
    pts = synthcourt.forward_kinematics(dofs, synthcourt.body_lengths(np.array([1.0])), np.zeros((50, 1)),
                                        np.zeros((50, 1, 2)))
    rel = pts[:, 0, :21] - pts[:, 0, :1]  # root-relative, (T, 21, 3)
    limbs = [SYNTH.index(n) for n in ("l_wrist", "r_wrist", "l_foot", "r_foot")]
    speed = np.linalg.norm(np.diff(rel[:, limbs], axis=0), axis=-1).mean() * 25.0  # mm/s
    assert speed > (30.0 if motion == "idle" else 150.0), speed
    # bone lengths stay fixed: rigid segments, moving joints
    for a, b in H36M.edges:
        bone = np.linalg.norm(pts[:, 0, a] - pts[:, 0, b], axis=-1)
        assert bone.std() < 1e-6


def test_players_move_across_the_court():
    cfg = SynthConfig(clips=1, frames=50, min_players=1, max_players=1, motions=("run",), seed=5)
    sim = synthcourt.simulate_clip(cfg, 0)
    root = sim["points"][:, 0, 0, :2]  # (S, 2) world mm
    assert np.linalg.norm(root[-1] - root[0]) > 1500 or np.linalg.norm(np.diff(root, axis=0), axis=-1).sum() > 4000


def test_joint_angles_within_skeleton_limits(dataset):
    lo = np.array([lim.min_deg for lim in H36M.angle_limits])
    hi = np.array([lim.max_deg for lim in H36M.angle_limits])
    for index in range(CONFIG.clips):
        _, _, npz = _clip(dataset, index)
        angles = joint_angles(npz["joints_cam"][..., :17, :].astype(np.float64), H36M)
        assert np.all(angles >= lo - 1e-6) and np.all(angles <= hi + 1e-6)
    # by construction: any DOF vector, clamped to its box, respects the limits
    rng = np.random.default_rng(0)
    box_lo, box_hi = synthcourt.body._LO, synthcourt.body._HI
    dofs = synthcourt.clamp_dofs(box_lo + rng.random((20000, 1, len(synthcourt.DOFS))) * (box_hi - box_lo))
    pts = synthcourt.forward_kinematics(dofs, synthcourt.body_lengths(np.array([0.7])), np.zeros((20000, 1)),
                                        np.zeros((20000, 1, 2)))
    angles = joint_angles(pts[:, 0, :17], H36M)
    assert np.all(angles >= lo) and np.all(angles <= hi + 1e-6)


@pytest.mark.parametrize("field,value", [
    ("clips", 0), ("frames", 0), ("frames", 10000), ("width", 321), ("height", 16), ("fps", 0.0),
    ("min_players", 0), ("max_players", 7), ("min_players", 4), ("views", ("sideline", "courtside")),
    ("views", ()), ("blur", ("medium",)), ("motions", ("moonwalk",)), ("child_fraction", 1.5), ("seed", -1),
    ("clips", 2.5), ("views", "sideline"),
])
def test_bad_config_raises_spec_error(field, value):
    kwargs = {field: value}
    if (field, value) == ("min_players", 4):
        kwargs["max_players"] = 3
    with pytest.raises(SpecError) as err:
        SynthConfig(**kwargs)
    assert err.value.key == field


def test_config_accepts_yaml_lists():
    cfg = SynthConfig(views=["baseline", "high_angle"], blur=["high"], motions=["run"])
    assert cfg.views == ("baseline", "high_angle") and cfg.blur == ("high",) and cfg.motions == ("run",)


def test_generate_skips_same_config_and_regenerates_otherwise(tmp_path):
    cfg = SynthConfig(clips=2, frames=3, max_players=1)
    path = generate(tmp_path, cfg, progress=False)
    stamp = (tmp_path / "videos/synth_0_0001.mp4").stat().st_mtime_ns
    assert generate(tmp_path, cfg, progress=False) == path
    assert (tmp_path / "videos/synth_0_0001.mp4").stat().st_mtime_ns == stamp  # nothing rewritten
    smaller = replace(cfg, clips=1, seed=2)
    generate(tmp_path, smaller, progress=False)
    manifest = load_manifest(tmp_path)
    assert manifest["config"]["seed"] == 2 and [c["name"] for c in manifest["clips"]] == ["synth_2_0000"]
    names = sorted(p.name for p in (tmp_path / "annotations").iterdir())
    assert names == ["synth_2_0000.json"]  # clips of the earlier config are gone
    assert not list(tmp_path.rglob("*.tmp*"))


def test_load_manifest_errors(tmp_path):
    with pytest.raises(DataError):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text('{"dataset": "other"}')
    with pytest.raises(DataError, match="dataset"):
        load_manifest(tmp_path / "manifest.json")


def test_camera_projection_and_near_clipping():
    K = intrinsics(400.0, 160.0, 120.0)
    eye, target = np.array([0.0, -8000.0, 3000.0]), np.array([0.0, 0.0, 1000.0])
    R, t = look_at(eye, target)
    cam = Camera(K=K, R=R, t=t, width=320, height=240)
    assert np.allclose(cam.center, eye)
    uv, z = cam.project_world(target[None])
    assert np.allclose(uv, [[160.0, 120.0]]) and z[0] == pytest.approx(np.linalg.norm(target - eye))
    up, _ = cam.project_world(target[None] + [0.0, 0.0, 500.0])
    assert up[0, 1] < 120.0  # world up is image up
    right, _ = cam.project_world(target[None] + [500.0, 0.0, 0.0])
    assert right[0, 0] > 160.0  # looking along +y, world +x is to the right
    poly = np.array([[0.0, 0.0, -100.0], [100.0, 0.0, 500.0], [0.0, 100.0, 500.0]])
    clipped = clip_polygon_near(poly, 100.0)
    assert len(clipped) == 4 and np.all(clipped[:, 2] >= 100.0 - 1e-9)


TINY = SynthConfig(clips=1, frames=4, width=96, height=64, max_players=1, seed=3)


def test_a_folder_of_someone_else_s_files_is_never_written_into(tmp_path):
    own = tmp_path / "my-footage"
    own.mkdir()
    (own / "annotations").mkdir()
    (own / "annotations" / "game1.json").write_text("{}")
    (own / "manifest.json").write_text(json.dumps({"dataset": "folder", "clips": []}))
    before = sorted(p.name for p in own.rglob("*"))
    with pytest.raises(DataError, match="is 'folder', not 'synthcourt'|SynthCourt did not write"):
        generate(own, TINY, progress=False)
    (own / "manifest.json").unlink()
    with pytest.raises(DataError, match="holds files SynthCourt did not write") as e:
        generate(own, TINY, progress=False)
    assert e.value.path == str(own) and e.value.field == "data.root"
    assert sorted(p.name for p in own.rglob("*")) == [n for n in before if n != "manifest.json"]


def test_synthcourt_regenerates_only_the_folders_it_made(tmp_path):
    out = tmp_path / "court"
    generate(out, TINY, progress=False)
    assert (out / ".synthcourt").exists()
    generate(out, replace(TINY, frames=5), progress=False)  # its own folder: regenerated
    assert load_manifest(out / "manifest.json")["config"]["frames"] == 5
