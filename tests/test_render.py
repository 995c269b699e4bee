import cv2
import numpy as np
import pytest
import torch

from talkinghead.face import detect_faces, fit_landmarks
from talkinghead.models import facemesh as fm
from talkinghead.motionspace import MotionSequence, expression_index
from talkinghead.renderer.eyes import drawn_gaze
from talkinghead.renderer.field import FIELD_STRIDE
from talkinghead.renderer.layers import BACKGROUND, background_plate
from talkinghead.renderer.mesh import closed_mesh, rasterize, rotations


def _motion(source: MotionSequence, gaze: tuple[float, float] = (0.0, 0.0), **changes: float
            ) -> MotionSequence:
    """The source motion with its gaze and each named pose or expression channel changed by a
    delta."""
    pose, expression = source.pose.copy(), source.expression.copy()
    for name, delta in changes.items():
        if name in ("yaw", "pitch", "roll", "scale"):
            pose[0, ("yaw", "pitch", "roll", "tx", "ty", "scale").index(name)] += delta
        else:
            i = expression_index(name)
            expression[0, i] = np.clip(expression[0, i] + delta, 0.0, 1.0)
    return MotionSequence(source.fps, pose, expression, source.gaze + np.array(gaze, np.float32))


def _refit(frame: np.ndarray) -> np.ndarray:
    return fit_landmarks(frame, detect_faces(frame)[0])


def _far_background(appearance, margin: float) -> np.ndarray:
    """(H, W) bool: background farther than ``margin`` inter-ocular distances from the person
    (nearer, a moving head may cover it)."""
    person = (appearance.person >= BACKGROUND).astype(np.uint8)
    grow = int(np.ceil(margin * appearance.head.iod))
    return cv2.dilate(person, np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)) == 0


def test_torch_rotations_match_the_numpy_definition():
    poses = torch.tensor([[10.0, -5.0, 3.0, 0, 0, 1], [-20.0, 12.0, -8.0, 0, 0, 1]])
    for pose, rot in zip(poses, rotations(poses), strict=True):
        expected = fm.rotation_matrix(*pose[:3].tolist())
        np.testing.assert_allclose(rot.numpy(), expected, atol=1e-6)


def test_closed_mesh_fills_eyes_and_mouth(encoded):
    appearance, _ = encoded
    h, w = appearance.image.shape[:2]
    tri_id, bary = rasterize(appearance.vertices, closed_mesh(), w, h)
    for idx in (fm.inner_lip_polygon(), fm.eye_polygon("left"), fm.eye_polygon("right")):
        x, y = appearance.vertices[list(idx), :2].mean(axis=0).astype(int)
        assert tri_id[y, x] >= 0
    inside = tri_id >= 0
    np.testing.assert_allclose(bary[inside].sum(axis=1), 1.0, atol=1e-4)


def test_source_motion_reproduces_the_photo_exactly(encoded, renderer):
    appearance, source = encoded
    np.testing.assert_array_equal(renderer.render(source)[0], appearance.image)


def test_jaw_open_opens_the_mouth_and_leaves_the_background(encoded, renderer):
    appearance, source = encoded
    frame = renderer.render(_motion(source, jawOpen=0.4))[0]
    before, after = _refit(appearance.image), _refit(frame)
    gap = lambda lm: lm[14, 1] - lm[13, 1]  # noqa: E731
    assert gap(after) - gap(before) > 0.1 * appearance.head.iod
    still = _far_background(appearance, 0.3)
    assert still.mean() > 0.1
    np.testing.assert_array_equal(frame[still], appearance.image[still])
    eyes = list(fm.eye_polygon("left") + fm.eye_polygon("right"))
    np.testing.assert_allclose(after[eyes, :2], before[eyes, :2], atol=0.03 * appearance.head.iod)


def test_head_turn_is_seen_by_the_face_tracker(encoded, renderer):
    appearance, source = encoded
    yaw0 = fm.fit_head_frame(_refit(appearance.image)).angles[0]
    for change in (-8.0, 8.0):
        frame = renderer.render(_motion(source, yaw=change))[0]
        yaw = fm.fit_head_frame(_refit(frame)).angles[0]
        assert (yaw - yaw0) == pytest.approx(change, abs=0.4 * abs(change))
        still = _far_background(appearance, 0.3)
        np.testing.assert_array_equal(frame[still], appearance.image[still])


def test_background_plate_replaces_the_person_with_background():
    image = np.zeros((120, 160, 3), np.uint8)
    image[:] = (40, 160, 90)
    image[:, :80] += np.array([60, 0, 0], np.uint8)  # two background colours, left and right
    matte = np.zeros((120, 160))
    cv2.circle(matte, (80, 60), 30, 1.0, -1)
    image[matte > 0] = (250, 250, 250)
    plate = background_plate(image, matte, iod=40.0)
    outside = cv2.dilate((matte > 0).astype(np.uint8), np.ones((9, 9), np.uint8)) == 0
    np.testing.assert_array_equal(plate[outside], image[outside])  # background kept exactly
    inside = matte > 0
    assert np.abs(plate[inside] - (70, 160, 90)).max(axis=1).mean() < 35  # filled from around it
    assert plate[60, 60, 0] > plate[60, 100, 0] + 20  # each side from its own neighbourhood


@pytest.mark.parametrize("yaw, pitch", [(-22.0, 0.0), (22.0, 0.0), (0.0, -14.0), (12.0, 12.0)])
def test_head_turns_never_fold_the_motion_field(encoded, renderer, yaw, pitch):
    """A fold (negative Jacobian determinant) is where the warp tears: two places of the photo
    land on one. Up to 25 deg yaw and 15 deg pitch the field must compress, never fold, the
    face's edge against its hair included."""
    _, source = encoded
    pose = torch.as_tensor(source.pose.copy())
    pose[0, 0] += yaw
    pose[0, 1] += pitch
    rot, scale, shift = renderer.pose_transform(pose)
    expression = torch.as_tensor(source.expression)
    forward = renderer.forward_field(renderer.point_motion(expression), rot, scale, shift)[0].numpy()
    assert np.abs(forward).max() > 0.05 * encoded[0].head.iod  # the head did move
    dx = np.gradient(forward, axis=2) / FIELD_STRIDE
    dy = np.gradient(forward, axis=1) / FIELD_STRIDE
    det = (1 + dx[0]) * (1 + dy[1]) - dx[1] * dy[0]
    assert det.min() > 0.0


def _opening(lm: np.ndarray, upper: tuple[int, ...], lower: tuple[int, ...]) -> float:
    return float(np.mean(lm[list(lower[2:-2]), 1] - lm[list(upper[2:-2]), 1]))


def test_blink_closes_the_eyes_and_not_the_mouth(encoded, renderer):
    appearance, source = encoded
    frame = renderer.render(_motion(source, eyeBlinkLeft=1.0, eyeBlinkRight=1.0))[0]
    before, after = _refit(appearance.image), _refit(frame)
    # The face tracker sees both eyes shut: no sliver of eyeball left between the lids.
    for upper, lower in ((fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER), (fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER)):
        assert _opening(after, upper, lower) < 0.15 * _opening(before, upper, lower)
        assert _opening(after, upper, lower) < 0.015 * appearance.head.iod
    mouth = list(fm.inner_lip_polygon())
    ys, xs = appearance.vertices[mouth, 1].astype(int), appearance.vertices[mouth, 0].astype(int)
    np.testing.assert_array_equal(frame[ys, xs], appearance.image[ys, xs])


def test_a_blink_shuts_an_eye_the_photo_shows_half_closed(encoded):
    """A photo whose lids read partly closed (eyeBlink 0.31: a sleepy or squinting photo) is
    drawn through the lid curve at 0.62: a full blink still brings the upper lid all the way
    to the lower one (before the rig was rescaled for it, 0.4 of the opening stayed open)."""
    from dataclasses import replace

    from talkinghead.models.rig import build_rig
    from talkinghead.renderer import MeshWarpRenderer

    appearance, source = encoded
    head = appearance.head
    expression = source.expression.copy()
    blinks = [expression_index("eyeBlinkLeft"), expression_index("eyeBlinkRight")]
    expression[:, blinks] = 0.31
    rig = build_rig(head.to_head(appearance.vertices), expression[0]) @ head.rotation.T * head.iod
    sleepy = MotionSequence(source.fps, source.pose, expression, source.gaze)
    renderer = MeshWarpRenderer(replace(appearance, rig=rig.astype(np.float32)), sleepy)
    shut = _motion(sleepy, eyeBlinkLeft=1.0 - 0.31, eyeBlinkRight=1.0 - 0.31)
    mesh = renderer.mesh(MotionSequence(25.0, *(np.concatenate([getattr(m, k) for m in (sleepy, shut)])
                                             for k in ("pose", "expression", "gaze"))))
    for upper, lower in ((fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER), (fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER)):
        gap = (mesh[:, list(lower[2:-2]), 1] - mesh[:, list(upper[2:-2]), 1]).mean(dim=1)
        assert gap[0] > 0.05 * head.iod
        assert gap[1] < 0.05 * gap[0], gap


def test_a_shut_lid_folds_its_lashes_onto_the_seam(encoded, renderer):
    """The lash band just above the upper lid contour comes down with a blink to the lower
    lid, not a band's height above it (a shut eye drawn as two dark lines round an almond)."""
    from talkinghead.models.rig import LID_FOLD

    def contour_y(contour: np.ndarray, x: np.ndarray) -> np.ndarray:
        order = np.argsort(contour[:, 0])
        return np.interp(x, contour[order, 0], contour[order, 1])

    appearance, source = encoded
    head = appearance.head
    shut = _motion(source, eyeBlinkLeft=1.0, eyeBlinkRight=1.0)
    mesh = renderer.mesh(MotionSequence(25.0, *(np.concatenate([getattr(m, k) for m in (source, shut)])
                                             for k in ("pose", "expression", "gaze")))).numpy()
    before, after = (head.to_head(m) for m in mesh)
    for upper, lower in ((fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER), (fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER)):
        up = before[list(upper)]
        above = contour_y(up[:, :2], before[:, 0]) - before[:, 1]
        centre = up[:, 0].mean()
        band = np.flatnonzero((above > 0.01) & (above < LID_FOLD) & (np.abs(before[:, 0] - centre) < 0.2))
        assert len(band) >= 2
        seam = contour_y(after[list(lower), :2], after[band, 0])
        # Within 0.015 inter-ocular distances of the seam (0.05 without the fold).
        assert np.all(np.abs(seam - after[band, 1]) < 0.015), seam - after[band, 1]


def test_a_batch_renders_as_its_frames_do_alone(encoded, renderer):
    _, source = encoded
    frames = [_motion(source, jawOpen=0.3, yaw=4.0), _motion(source, eyeBlinkRight=0.7),
              _motion(source, mouthSmileLeft=0.6, pitch=-3.0)]
    batch = MotionSequence(25.0, *(np.concatenate([getattr(m, k) for m in frames])
                                   for k in ("pose", "expression", "gaze")))
    together = renderer.render(batch)
    for i, motion in enumerate(frames):
        alone = renderer.render(motion)[0]
        assert np.abs(together[i].astype(int) - alone.astype(int)).max() <= 1


def test_gaze_moves_the_irises_and_the_upper_lids_follow_a_vertical_look(encoded, renderer):
    appearance, source = encoded
    iod = appearance.head.iod
    base = renderer.render(source)[0]
    frames = renderer.render(MotionSequence(25.0, *(np.concatenate([getattr(m, k) for m in (
        _motion(source, gaze=(15.0, 0.0)), _motion(source, gaze=(-15.0, 0.0)),
        _motion(source, gaze=(0.0, 12.0)), _motion(source, gaze=(0.0, -12.0)))])
        for k in ("pose", "expression", "gaze"))))

    def iris_offsets(lm):
        """(2, 2) each iris centre against its eye's corners (x) and lid midline (y), in iod."""
        rows = []
        for iris, upper, lower in ((fm.LEFT_IRIS, fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER),
                                   (fm.RIGHT_IRIS, fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER)):
            mid = 0.5 * (lm[list(upper)].mean(axis=0) + lm[list(lower)].mean(axis=0))
            rows.append([(lm[iris[0], 0] - 0.5 * (lm[upper[0], 0] + lm[upper[-1], 0])) / iod,
                         (lm[iris[0], 1] - mid[1]) / iod])
        return np.array(rows)

    src = iris_offsets(_refit(base))
    # The renderer moves an iris by half the eye's width times sin(angle drawn): 0.04 iod at 15
    # degrees; the angle drawn is that of the gaze curve, which the tracker reads back as 15.
    # Accept 40 % to 150 % of the shift drawn.
    drawn = drawn_gaze(np.array([15.0, 0.0]))[0]
    shift = 0.04 * np.sin(np.deg2rad(drawn)) / np.sin(np.deg2rad(15.0))
    for frame, sign in zip(frames[:2], (1.0, -1.0), strict=True):
        dx = (iris_offsets(_refit(frame)) - src)[:, 0] * sign
        assert np.all(dx > 0.4 * shift) and np.all(dx < 1.5 * shift), dx
    assert np.all((iris_offsets(_refit(frames[2])) - src)[:, 1] < -0.005)  # looking up
    # The upper lids ride on the eyeball: up with a look up, down with a look down, by
    # LID_FOLLOW of the iris's drawn shift (half the eye's width times the sine's change).
    from talkinghead.renderer.field import LID_FOLLOW

    looks = MotionSequence(25.0, *(np.concatenate([getattr(m, k) for m in (
        source, _motion(source, gaze=(0.0, 12.0)), _motion(source, gaze=(0.0, -12.0)))])
        for k in ("pose", "expression", "gaze")))
    mesh = renderer.mesh(looks).numpy()
    pitch = source.gaze[0, 1] + drawn_gaze(np.array([0.0, 12.0]))[1]
    sine = abs(np.sin(np.deg2rad(pitch)) - np.sin(np.deg2rad(source.gaze[0, 1])))
    for upper in (fm.LEFT_EYE_UPPER, fm.RIGHT_EYE_UPPER):
        half = 0.5 * np.linalg.norm(mesh[0, upper[-1], :2] - mesh[0, upper[0], :2])
        lid = mesh[:, list(upper[2:-2]), 1].mean(axis=1)
        assert lid[1] - lid[0] < -0.5 * LID_FOLLOW * half * sine  # up
        assert lid[2] - lid[0] > 0.5 * LID_FOLLOW * half * sine  # down
    # A look aside redraws the eyes only.
    eyes = appearance.vertices[list(fm.eye_polygon("left") + fm.eye_polygon("right")), :2]
    yy, xx = np.mgrid[0 : base.shape[0], 0 : base.shape[1]]
    far = np.min(np.hypot(xx[..., None] + 0.5 - eyes[:, 0], yy[..., None] + 0.5 - eyes[:, 1]), axis=-1)
    for frame in frames[:2]:
        np.testing.assert_array_equal(frame[far > 0.2 * iod], base[far > 0.2 * iod])


def test_a_look_down_never_shuts_an_eye_the_tracker_reads_narrow(portrait, face, monkeypatch):
    """The far eye of a turned head can read nearly shut (0.9) while it shows open: a look down
    moved its lid by the iris's shift in pixels, most of its narrow mesh opening, and shut it
    (one eye closed). Each lid now closes at most LID_FOLLOW_MAX_CLOSING of its opening."""
    import dataclasses

    from talkinghead.encode import encode
    from talkinghead.renderer import MeshWarpRenderer
    from talkinghead.renderer import field as field_module

    landmarks = face.landmarks.copy()  # the tracker's reading of the left eye: narrow
    upper, lower = list(fm.LEFT_EYE_UPPER[1:-1]), list(fm.LEFT_EYE_LOWER[1:-1])
    landmarks[upper, 1] += 0.9 * (landmarks[lower, 1].mean() - landmarks[upper, 1].mean())
    appearance, source = encode(portrait, dataclasses.replace(face, landmarks=landmarks), size=256)
    assert source.expression[0, expression_index("eyeBlinkLeft")] > 0.7
    looks = MotionSequence(25.0, *(np.concatenate([getattr(m, k) for m in (
        source, _motion(source, gaze=(0.0, -12.0)))]) for k in ("pose", "expression", "gaze")))

    def closed_share(limit: float) -> dict[str, float]:
        monkeypatch.setattr(field_module, "LID_FOLLOW_MAX_CLOSING", limit)
        mesh = MeshWarpRenderer(appearance, source).mesh(looks).numpy()
        shares = {}
        for side, up, lo in (("left", fm.LEFT_EYE_UPPER, fm.LEFT_EYE_LOWER),
                             ("right", fm.RIGHT_EYE_UPPER, fm.RIGHT_EYE_LOWER)):
            gap = mesh[:, list(lo[2:-2]), 1].mean(axis=1) - mesh[:, list(up[2:-2]), 1].mean(axis=1)
            shares[side] = float(1.0 - gap[1] / gap[0])
        return shares

    limit = field_module.LID_FOLLOW_MAX_CLOSING
    bounded, unbounded = closed_share(limit), closed_share(np.inf)
    assert unbounded["left"] > 0.6  # shut, or nearly, by the look alone
    assert bounded["left"] < 1.2 * limit
    assert 0.1 < bounded["right"] < 1.2 * limit  # the other eye follows


def test_below_the_jaw_only_the_neck_turns_with_the_head(encoded, renderer):
    """A head roll moves the chin, but not the collar or shoulders beside the neck."""
    appearance, source = encoded
    pose = source.pose.copy()
    pose[0, 2] += 12.0
    rot, scale, shift = renderer.pose_transform(torch.as_tensor(pose))
    expression = torch.as_tensor(source.expression)
    forward = renderer.forward_field(renderer.point_motion(expression), rot, scale, shift)[0].numpy()
    head, iod = appearance.head, appearance.head.iod
    down = head.rotation[:2, 1] / np.linalg.norm(head.rotation[:2, 1])
    across = np.array([down[1], -down[0]])
    chin = appearance.vertices[fm.CHIN, :2]

    def moved(point: np.ndarray) -> float:
        assert renderer.x0 <= point[0] < renderer.x1 and renderer.y0 <= point[1] < renderer.y1
        j, i = ((point - (renderer.x0, renderer.y0)) // FIELD_STRIDE).astype(int)
        return float(np.hypot(*forward[:, i, j]))

    at_chin = moved(chin - 0.1 * iod * down)
    beside = [moved(chin + 0.3 * iod * down + side * 1.8 * iod * across) for side in (-1, 1)]
    assert at_chin > 2.0
    assert max(beside) < 0.15 * at_chin


def test_cpu_resampling_matches_grid_sample():
    """OpenCV's remap and resize, used on the CPU, give grid_sample's and interpolate's values."""
    from talkinghead.renderer.resample import remap, upsample

    gen = torch.Generator().manual_seed(0)
    image = torch.rand(1, 40, 50, 4, generator=gen)
    maps = torch.rand(3, 30, 20, 2, generator=gen) * torch.tensor([60.0, 50.0]) - 5.0
    grid = (maps + 0.5) * torch.tensor([2.0 / 50, 2.0 / 40]) - 1.0
    for border, padding in ((True, "border"), (False, "zeros")):
        expected = torch.nn.functional.grid_sample(
            image.permute(0, 3, 1, 2).expand(3, -1, -1, -1), grid, mode="bilinear",
            padding_mode=padding, align_corners=False).permute(0, 2, 3, 1)
        torch.testing.assert_close(remap(image, maps, border), expected, atol=1e-4, rtol=0)
    field = torch.rand(2, 3, 12, 16, generator=gen)
    expected = torch.nn.functional.interpolate(field, size=(24, 32), mode="bilinear",
                                               align_corners=False).permute(0, 2, 3, 1)
    torch.testing.assert_close(upsample(field, 24, 32), expected, atol=1e-5, rtol=0)


def test_the_person_layer_is_never_negative_and_makes_up_the_photo(encoded, renderer):
    """The premultiplied person colour is never negative (laid over other background it
    would show as dark blots), and with the plate it makes up the photo exactly."""
    appearance, _ = encoded
    layers = renderer.layers[0].numpy().astype(np.float64)
    person, clear = layers[..., :3], layers[..., 3:]
    assert person.min() >= -1e-5
    assert (clear < 1.0).mean() > 0.2  # the portrait's person is in it
    rect = (slice(renderer.y0, renderer.y1), slice(renderer.x0, renderer.x1))
    plate = renderer.plate_here[0].numpy()
    np.testing.assert_allclose(person[rect] + clear[rect] * plate, appearance.image[rect] / 255.0,
                               atol=1e-5)


def test_the_torch_resampling_path_renders_as_the_opencv_one(encoded, renderer, monkeypatch):
    """Off the CPU the renderer resamples with grid_sample: the same frames (run here on the
    CPU with OpenCV switched off)."""
    import talkinghead.renderer.resample as resample

    _, source = encoded
    motion = _motion(source, yaw=12.0, pitch=-6.0, jawOpen=0.5, eyeBlinkLeft=0.6)
    with_opencv = renderer.render(motion)[0].astype(int)
    monkeypatch.setattr(resample, "OPENCV", False)
    with_torch = renderer.render(motion)[0].astype(int)
    assert np.abs(with_opencv - with_torch).max() <= 2
    assert (with_opencv != with_torch).mean() < 0.01


def test_timing_the_stages_names_each_and_changes_no_frame(encoded):
    from talkinghead.renderer import MeshWarpRenderer

    appearance, source = encoded
    renderer = MeshWarpRenderer(appearance, source)
    motion = _motion(source, yaw=6.0, jawOpen=0.4, eyeBlinkLeft=0.8)
    untimed = renderer.render(motion)
    renderer.stage_seconds = {}
    timed = renderer.render(motion)
    np.testing.assert_array_equal(timed, untimed)
    assert list(renderer.stage_seconds) == ["forward field", "coarse Newton", "fine Newton",
                                            "full-resolution step", "layers", "eyes", "mouth",
                                            "to bytes"]
    assert all(seconds > 0 for seconds in renderer.stage_seconds.values())
