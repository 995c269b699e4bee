"""The learned mouth interior: its crop geometry, training, weights and painting."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from talkinghead.config import MOUTH_WEIGHTS, RenderConfig
from talkinghead.errors import InputError
from talkinghead.limits import OptionError
from talkinghead.models import facemesh as fm
from talkinghead.motionspace import MotionSequence, expression_index
from talkinghead.mouthtrain import (
    MouthCritic,
    MouthPairs,
    MouthTrainConfig,
    crops_of,
    export_mouth_net,
    fit_mouth_net,
    mouth_loss,
    sample_pairs,
)
from talkinghead.renderer import MeshWarpRenderer
from talkinghead.renderer import mouthnet as mn


def _open_mouth(source: MotionSequence, jaw: float) -> MotionSequence:
    expression = source.expression.copy()
    expression[:, expression_index("jawOpen")] = jaw
    return MotionSequence(source.fps, source.pose, expression, source.gaze)


def _opening_pixels(renderer: MeshWarpRenderer, motion: MotionSequence) -> tuple[np.ndarray, np.ndarray]:
    """The mouth opening the painters fill (``mouthnet.opening_polygon``) of the moved mesh of a
    one-frame ``motion`` at the photo's scale, on the canvas: (H, W) bool, one pixel in from
    its outline, and (H, W) each pixel's distance to it."""
    polygon = mn.opening_polygon(renderer.mesh(motion), torch.tensor([[renderer.iod]]))[0].numpy()
    mask = np.zeros((renderer.height, renderer.width), np.uint8)
    cv2.fillPoly(mask, [np.round(polygon).astype(np.int32)], 1)
    inside = cv2.erode(mask, np.ones((3, 3), np.uint8)).astype(bool)
    return inside, cv2.distanceTransform(1 - mask, cv2.DIST_L2, 5)


def test_crop_puts_the_mouth_corners_on_the_crop_corners(encoded):
    appearance, _ = encoded
    vertices = torch.as_tensor(appearance.vertices, dtype=torch.float32)[None]
    turn = np.deg2rad(20.0)  # a rolled head: the crop turns with it
    rot = torch.tensor([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]], dtype=torch.float32)
    rolled = vertices.clone()
    rolled[..., :2] = (vertices[..., :2] - 128.0) @ rot.T + 128.0
    for v in (vertices, rolled):
        placement = mn.crop_placement(v)
        corners = v[:, [fm.MOUTH_CORNER_RIGHT, fm.MOUTH_CORNER_LEFT], :2]
        np.testing.assert_allclose(mn.to_crop(placement, corners)[0].numpy(), np.array(mn.CORNERS), atol=1e-3)
    # Sampling: an image holding each pixel centre's own coordinates, cropped, holds the
    # canvas positions of the crop's pixel centres.
    h, w = appearance.image.shape[:2]
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    placement = mn.crop_placement(rolled)
    crop = mn.sample_crop(torch.stack([xs, ys])[None].float(), placement)
    expected = mn.crop_points(placement).view(1, mn.CROP_H, mn.CROP_W, 2).permute(0, 3, 1, 2)
    torch.testing.assert_close(crop, expected, atol=1e-3, rtol=0)


def test_opening_mask_covers_the_opening_and_nothing_else(encoded, renderer):
    appearance, source = encoded
    motion = _open_mouth(source, 0.6)
    rot, scale, shift = renderer.pose_transform(torch.as_tensor(motion.pose))
    point_motion = renderer.point_motion(torch.as_tensor(motion.expression))
    vertices = renderer.field.move(renderer._vertices + point_motion, rot, scale, shift)
    unit = torch.tensor([[appearance.head.iod]])
    placement = mn.crop_placement(vertices)
    mask = mn.opening_mask(vertices, unit, placement)[0, 0]
    shut = mn.opening_mask(renderer._vertices[None], unit, mn.crop_placement(renderer._vertices[None]))[0, 0]
    # The opening's area in crop pixels: the polygon's (shoelace) in canvas pixels, rescaled.
    poly = mn.to_crop(placement, mn.opening_polygon(vertices, unit))[0].numpy()
    area = 0.5 * abs(np.dot(poly[:, 0], np.roll(poly[:, 1], 1)) - np.dot(poly[:, 1], np.roll(poly[:, 0], 1)))
    assert float(mask.sum()) == pytest.approx(area, rel=0.25)
    assert float(mask.sum()) > 1.4 * float(shut.sum())  # wider than the photo's smile
    assert mask[:, :10].sum() == 0 and mask[:, -10:].sum() == 0  # nothing beyond the corners


def _toy_clips(n_clips: int = 2, frames: int = 40) -> list[MouthPairs]:
    """Renders whose opening is a flat grey against real frames whose opening shows a bright
    band over a dark cavity, each clip in its own skin colour."""
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[: mn.CROP_H, : mn.CROP_W]
    clips = []
    for _ in range(n_clips):
        skin = rng.uniform(80, 200, 3)
        rendered = np.zeros((frames, mn.CROP_H, mn.CROP_W, 3), np.uint8)
        real = np.zeros_like(rendered)
        masks = np.zeros((frames, mn.CROP_H, mn.CROP_W), np.uint8)
        gaps = rng.uniform(0.0, 0.3, frames).astype(np.float32)
        for t in range(frames):
            inside = ((xs - 48) / 22.0) ** 2 + ((ys - 26) / (3 + 40 * gaps[t])) ** 2 < 1.0
            image = np.broadcast_to(skin, (mn.CROP_H, mn.CROP_W, 3)).copy()
            rendered[t], masks[t] = image, inside * 255
            rendered[t][inside] = 120
            image[inside] = 30
            image[inside & (ys < 26)] = 235  # "teeth" under the upper lip
            real[t] = image
        clips.append(MouthPairs(rendered, masks, real, masks.copy(), np.zeros(frames, int), rendered[:1],
                                masks[:1], gaps))
    return clips


def test_training_lowers_the_loss_and_the_weights_round_trip(tmp_path):
    config = MouthTrainConfig(steps=150, batch_size=8, lr=3e-3, width=8, threads=1)
    clips = _toy_clips()
    torch.manual_seed(config.seed)
    untrained = mn.MouthNet(mn.MouthNetConfig(width=config.width))  # as training starts
    model, history = fit_mouth_net(clips, config)
    assert history[-1]["step"] == 150
    batch = sample_pairs(clips, np.random.default_rng(9), 16)
    rendered, mask, real, photo, photo_mask = (torch.as_tensor(x) for x in batch)
    rendered, real, photo = (x.permute(0, 3, 1, 2).float() / 255.0 for x in (rendered, real, photo))
    mask, photo_mask = (x[:, None].float() / 255.0 for x in (mask, photo_mask))
    with torch.no_grad():
        losses = [float(mouth_loss(net(mn.net_input(rendered, mask, photo, photo_mask)), real, mask, 1.0))
                  for net in (untrained, model)]
    assert losses[1] < 0.5 * losses[0]
    manifest = export_mouth_net(model, tmp_path, command="test", config=config, history=history,
                                videos=[{"file": "toy.mp4"}])
    assert manifest["videos"] == [{"file": "toy.mp4"}]
    loaded = load = mn.load_mouth_net(tmp_path)
    x = torch.rand(2, 8, mn.CROP_H, mn.CROP_W)
    with torch.no_grad():
        torch.testing.assert_close(load(x), model(x))
    assert loaded.config.width == 8
    weights = tmp_path / mn.WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(InputError, match="do not match"):
        mn.load_mouth_net(tmp_path)


def test_the_critic_learns_to_tell_a_blurred_mouth_from_a_sharp_one():
    """The adversarial term's point: a pixel loss is content with a blurred average where the
    teeth may or may not show; the critic is not."""
    from talkinghead.mouthtrain import _least_squares, _patch_weights

    torch.manual_seed(0)
    clip = _toy_clips(1, 40)[0]
    real = torch.as_tensor(clip.real).permute(0, 3, 1, 2).float() / 255.0
    mask = torch.as_tensor(clip.masks)[:, None].float() / 255.0
    blurred = real + mask * (torch.nn.functional.avg_pool2d(real, 9, stride=1, padding=4) - real)
    weights = _patch_weights(mask)
    far = torch.zeros_like(mask)
    far[..., :, :4] = 1.0
    assert float(_patch_weights(far).sum()) > 0 and float((_patch_weights(far) * weights).sum()) == 0
    critic = MouthCritic(width=16)
    optimiser = torch.optim.Adam(critic.parameters(), lr=1e-3, betas=(0.5, 0.999))
    for _ in range(60):
        loss = (_least_squares(critic(real, mask), 1.0, weights)
                + _least_squares(critic(blurred, mask), 0.0, weights))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    critic.eval()
    with torch.no_grad():
        sharp_score = float((critic(real, mask) * weights).sum() / weights.sum())
        blur_score = float((critic(blurred, mask) * weights).sum() / weights.sum())
    assert sharp_score > 0.7 and blur_score < 0.3


def test_training_with_the_critic_changes_the_network_from_its_start_on_only():
    base = MouthTrainConfig(steps=40, batch_size=8, width=8, threads=1)
    plain, plain_history = fit_mouth_net(_toy_clips(), base)
    config = MouthTrainConfig(**{**base.__dict__, "adversarial_weight": 0.5, "adversarial_start": 0.5})
    judged, history = fit_mouth_net(_toy_clips(), config)
    assert "critic" not in plain_history[-1] and history[-1]["critic"] > 0 and history[-1]["verdict"] > 0
    x = torch.rand(2, 8, mn.CROP_H, mn.CROP_W)
    with torch.no_grad():
        assert not torch.allclose(plain(x), judged(x))
    # Until the critic's start the two train alike: the critic alone draws nothing from the
    # network's random streams.
    late = fit_mouth_net(_toy_clips(), MouthTrainConfig(**{**config.__dict__, "adversarial_start": 1.0}))[0]
    with torch.no_grad():
        torch.testing.assert_close(late(x), plain(x))


def test_crops_of_a_frame_and_its_mesh(encoded, renderer):
    appearance, source = encoded
    motion = _open_mouth(source, 0.5)
    frame = renderer.render(motion)
    vertices = renderer.mesh(motion)
    crops, masks = crops_of(frame, vertices, torch.tensor([[appearance.head.iod]]))
    assert crops.shape == (1, mn.CROP_H, mn.CROP_W, 3) and masks.shape == (1, mn.CROP_H, mn.CROP_W)
    opening = masks[0] > 127
    assert opening.sum() > 100
    # The mouth was repainted inside the opening: there the render differs from the still
    # photo cut at the same place; above the lips (the jaw does not move it) it hardly does.
    still, _ = crops_of(appearance.image[None], vertices, torch.tensor([[appearance.head.iod]]))
    change = np.abs(crops[0].astype(float) - still[0]).mean(axis=-1)
    assert change[opening].mean() > 20 and change[:12].mean() < 4  # above the lips: still
    torch.testing.assert_close(vertices, renderer.field.move(
        renderer._vertices + renderer.point_motion(torch.as_tensor(motion.expression)),
        *renderer.pose_transform(torch.as_tensor(motion.pose))))


def test_pairs_whose_openings_disagree_are_not_used():
    clip = _toy_clips(1, 6)[0]
    clip.real_masks[:3] = 0  # the real mouth shut where the render opened it
    clip.masks[5] = 0
    clip.real_masks[5] = 0  # both shut: usable
    assert clip.usable.tolist() == [3, 4, 5]


def test_mouth_option_is_checked_and_chooses_the_painter(photo, tmp_path):
    from talkinghead.api import Avatar

    with pytest.raises(OptionError, match="mouth"):
        RenderConfig(mouth="painted")
    assert RenderConfig().mouth_weights is None  # procedural by default
    assert RenderConfig().with_options(mouth="learned").mouth_weights == MOUTH_WEIGHTS
    custom = RenderConfig().with_options(mouth=tmp_path)  # a folder of weights
    assert custom.mouth_weights == tmp_path
    with pytest.raises(InputError, match=r"MANIFEST\.json"):  # before any work on the photo
        Avatar.from_photo(tmp_path / "no such photo.png", config=custom)
    avatar = Avatar.from_photo(photo, size=128, motion="baseline", mouth="procedural")
    assert avatar.decoder._mouth.net is None
    with pytest.raises(InputError, match="--mouth is fixed"):
        avatar.motion(photo, mouth="learned")


def test_shipped_mouth_weights_list_their_training_files():
    manifest = json.loads((MOUTH_WEIGHTS / mn.MANIFEST_FILE).read_text())
    assert manifest["videos"] and all(v["sha256"] for v in manifest["videos"])
    assert manifest["command"].startswith("talkinghead train-mouth")


def test_learned_painter_repaints_the_opening_only(encoded, renderer):
    appearance, source = encoded
    learned = MeshWarpRenderer(appearance, source, mouth_net=mn.load_mouth_net(MOUTH_WEIGHTS))
    expression = np.repeat(source.expression, 3, axis=0)
    jaw = expression_index("jawOpen")
    expression[1:, jaw] = (0.5, 0.7)  # frame 0 keeps the photo's mouth (jaw 0.31)
    motion = MotionSequence(source.fps, np.repeat(source.pose, 3, axis=0), expression,
                            np.repeat(source.gaze, 3, axis=0))
    ours, theirs = learned.render(motion), renderer.render(motion)
    np.testing.assert_array_equal(ours[0], theirs[0])  # an unchanged mouth is not painted
    for t in (1, 2):
        opening, distance = _opening_pixels(renderer, motion.frames(t, t + 1))
        change = np.abs(ours[t].astype(int) - theirs[t]).max(axis=-1)
        assert change[opening].mean() > 5  # repainted
        assert change[distance > 3].max() == 0  # and nothing beyond its anti-aliased edge
