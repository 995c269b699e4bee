"""The diffusion motion generator on a tiny random network: shapes, seeds, windows, weights."""

from pathlib import Path

import numpy as np
import pytest
import torch

from talkinghead.audio import audio_features
from talkinghead.controls import Controls, apply_controls, parse_emotion, parse_gaze
from talkinghead.diffusion.guidance import guide
from talkinghead.diffusion.sampler import sample_ddim
from talkinghead.diffusion.schedule import timesteps
from talkinghead.diffusion.windows import fade_in, join, window_starts
from talkinghead.errors import InputError
from talkinghead.generator import AUDIO_DIM, MotionGenerator, SampleOptions, diffusion_motion
from talkinghead.load import SAMPLE_RATE, AudioClip
from talkinghead.models.motion_dit import MotionDiT, MotionDiTConfig
from talkinghead.motionspace import EXPRESSION_NAMES, MOTION_NAMES, MotionSequence, expression_index
from talkinghead.train import export_weights

from .helpers import tone

TINY = MotionDiTConfig(audio_dim=AUDIO_DIM, window=20, context=4, width=32, depth=1, heads=2)


@pytest.fixture(scope="module")
def features():
    out = np.zeros(int(3.3 * SAMPLE_RATE), np.float32)
    syllable = tone(0.15, freq=140)
    for start in range(0, len(out) - len(syllable), int(0.25 * SAMPLE_RATE)):
        out[start : start + len(syllable)] = syllable
    return audio_features(AudioClip(Path("x.wav"), out + 1e-4, SAMPLE_RATE, 1), 25.0, phones=False)


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = MotionDiT(TINY)
    for p in model.parameters():  # zero-initialised modulations would hide the conditions
        torch.nn.init.normal_(p, std=0.2)
    model.motion_std.fill_(1.0)
    folder = tmp_path_factory.mktemp("weights")
    export_weights(model, folder, command="test", corpus_summary={}, train_config={}, history=[])
    return folder


def _source() -> MotionSequence:
    return MotionSequence.still(np.array([5.0, -2.0, 1.0, 0.0, 0.0, 1.2]),
                                np.zeros(len(EXPRESSION_NAMES)), np.array([1.0, 0.0]), 1, 25.0)


def test_network_shapes_and_dropped_conditions():
    model = MotionDiT(TINY)
    b = 3
    out = model(torch.randn(b, 20, len(MOTION_NAMES)), torch.rand(b), torch.randn(b, 20, AUDIO_DIM),
                torch.randn(b, 4, len(MOTION_NAMES)), torch.randn(b, 2), torch.ones(b), torch.zeros(b, 5),
                keep_audio=torch.tensor([0.0, 1.0, 1.0]), keep_context=torch.ones(b),
                keep_controls=torch.zeros(b, 3))
    assert out.shape == (b, 20, len(MOTION_NAMES))


def test_slow_channels_are_band_limited_and_the_rest_untouched():
    torch.manual_seed(1)
    plain = MotionDiT(TINY)
    limited = MotionDiT(MotionDiTConfig(**{**TINY.to_dict(), "slow": (0, 1), "slow_sigma": 1.5}))
    for p in plain.parameters():
        torch.nn.init.normal_(p, std=0.2)
    limited.load_state_dict(plain.state_dict())
    b = 2
    args = (torch.randn(b, 20, len(MOTION_NAMES)), torch.rand(b), torch.randn(b, 20, AUDIO_DIM),
            torch.randn(b, 4, len(MOTION_NAMES)), torch.randn(b, 2), torch.ones(b), torch.zeros(b, 5))
    flags = dict(keep_audio=torch.ones(b), keep_context=torch.ones(b), keep_controls=torch.ones(b, 3))
    with torch.no_grad():
        raw, smooth = plain(*args, **flags), limited(*args, **flags)
    step = lambda x: torch.diff(x, dim=1).abs().mean().item()  # noqa: E731
    assert step(smooth[..., :2]) < 0.5 * step(raw[..., :2])  # frame-to-frame noise filtered out
    torch.testing.assert_close(smooth[..., 2:], raw[..., 2:])  # fast channels as they were
    torch.testing.assert_close(smooth[..., :2].mean(dim=1), raw[..., :2].mean(dim=1), atol=0.15, rtol=0)


def test_same_seed_same_motion_other_seed_other_motion(weights, features):
    generator = MotionGenerator.load(weights)
    a = generator.sample(features, Controls(), seed=3)
    b = generator.sample(features, Controls(), seed=3)
    c = generator.sample(features, Controls(), seed=4)
    assert a.shape == (features.n_frames, len(MOTION_NAMES))  # 83 frames: 5 windows of 20
    np.testing.assert_array_equal(a, b)
    assert np.abs(a[:, :3] - c[:, :3]).mean() > 1e-3


def test_guidance_options_and_motion_around_the_source(weights, features):
    generator = MotionGenerator.load(weights)
    options = SampleOptions(steps=4, cfg_audio=2.0, cfg_controls=1.5)
    motion = diffusion_motion(features, _source(), Controls(gaze=(5.0, 2.0), emotion="happy"),
                              generator, seed=0, options=options)
    assert motion.n_frames == features.n_frames
    assert np.all((motion.expression >= 0) & (motion.expression <= 1))


def test_weights_are_verified(weights, tmp_path):
    for name in ("MANIFEST.json", "motion_dit.safetensors"):
        (tmp_path / name).write_bytes((weights / name).read_bytes())
    data = bytearray((tmp_path / "motion_dit.safetensors").read_bytes())
    data[-1] ^= 1
    (tmp_path / "motion_dit.safetensors").write_bytes(bytes(data))
    with pytest.raises(InputError, match="SHA-256"):
        MotionGenerator.load(tmp_path)
    with pytest.raises(InputError, match="MANIFEST"):
        MotionGenerator.load(tmp_path / "missing")


def test_sampler_reaches_a_fixed_target_and_guidance_reduces_to_the_conditional():
    target = torch.full((1, 5, 3), 0.7)
    out = sample_ddim(lambda x, t: target, torch.randn(1, 5, 3), timesteps(4))
    torch.testing.assert_close(out, target)
    none, audio, full = torch.zeros(2), torch.ones(2), torch.full((2,), 3.0)
    torch.testing.assert_close(guide(none, audio, full, w_audio=1.0, w_controls=1.0), full)
    torch.testing.assert_close(guide(none, audio, full, w_audio=2.0, w_controls=0.0), 2 * audio)


def test_windows_cover_any_length_and_join_without_seams():
    for n in (1, 19, 20, 21, 77, 500):
        starts = window_starts(n, 20, 4)
        assert starts[0] == 0 and starts[-1] + 20 >= n
        assert np.all(np.diff(starts) == 16)
    w = fade_in(6)
    assert np.all(np.diff(w) > 0) and 0 < w[0] < 0.1 and 0.9 < w[-1] < 1
    # Two smooth windows that disagree by an offset: the join spreads it over the overlap.
    t = np.arange(60, dtype=np.float64)
    out = np.zeros(60)
    join(out, 0, np.sin(t[:40] / 8), 8, first=True)
    join(out, 32, np.sin(t[32:] / 8) + 0.4, 8, first=False)
    within = np.abs(np.diff(np.sin(t / 8))).max()
    assert np.abs(np.diff(out)).max() < within + 0.4 / 8 * 1.7  # no 0.4 step


def test_controls_are_obeyed():
    n = 50
    rng = np.random.default_rng(0)
    pose = np.column_stack([rng.normal(5, 3, n), rng.normal(-2, 2, n), rng.normal(1, 1, n),
                            np.zeros(n), np.zeros(n), 1.2 * (1 + 0.01 * rng.normal(size=n))])
    expression = np.full((n, len(EXPRESSION_NAMES)), 0.1)
    motion = MotionSequence(25.0, pose.astype(np.float32), expression.astype(np.float32),
                            rng.normal(0, 3, (n, 2)).astype(np.float32))
    far = apply_controls(motion, _source(), Controls(head_distance=0.7, gaze=(10.0, -5.0)))
    assert far.pose[:, 5].mean() == pytest.approx(1.2 * 0.7, rel=1e-4)
    np.testing.assert_allclose(far.gaze.mean(axis=0), [10.0, -5.0], atol=1e-4)
    camera = apply_controls(motion, _source(), Controls(gaze="camera"))
    np.testing.assert_allclose(camera.gaze, -camera.pose[:, :2], atol=1e-5)
    still = apply_controls(motion, _source(), Controls(still=True))
    np.testing.assert_allclose(still.pose[:, :5], np.repeat(_source().pose[:, :5], n, 0), atol=1e-5)
    jaw, brow = expression_index("jawOpen"), expression_index("browInnerUp")
    np.testing.assert_allclose(still.expression[:, jaw], 0.1, atol=1e-6)  # lips kept
    assert np.all(still.expression[:, brow] == 0.0)  # other expression held at the photo's
    calm = apply_controls(motion, _source(), Controls(head_motion=0.5))
    assert calm.pose[:, 0].std() == pytest.approx(0.5 * motion.pose[:, 0].std(), rel=1e-4)


def test_parsing_gaze_and_emotion():
    assert parse_gaze("camera") == "camera"
    assert parse_gaze("10,-5") == (10.0, -5.0)
    assert parse_emotion("happy:0.5") == ("happy", 0.5)
    assert parse_emotion("sad") == ("sad", 1.0)
    for bad in ("10", "a,b", "90,0"):
        with pytest.raises(ValueError):
            parse_gaze(bad)
    for bad in ("bored", "happy:2", "happy:x"):
        with pytest.raises(ValueError):
            parse_emotion(bad)


@pytest.mark.slow
def test_diffusion_runs_at_its_own_frame_rate_and_is_retimed(tmp_path, photo, short_speech, monkeypatch):
    """The network learned motion at 25 fps: at --fps 50 it still samples 25 fps features,
    and the pipeline retimes the motion to the output's 50 fps."""
    from talkinghead.config import RenderConfig
    from talkinghead.mux import probe
    from talkinghead.pipeline import render

    seen = []
    original = MotionGenerator.sample

    def spy(self, features, *args, **kwargs):
        seen.append((features.fps, features.n_frames))
        return original(self, features, *args, **kwargs)

    monkeypatch.setattr(MotionGenerator, "sample", spy)
    result = render(photo, short_speech, tmp_path / "x.mp4", RenderConfig(fps=50.0, size=64, device="cpu"))
    assert seen == [(25.0, 40)]  # 1.6 s of speech
    assert result.frames == 80 and probe(tmp_path / "x.mp4").fps == pytest.approx(50.0)


def test_a_window_drawn_from_given_noise_ignores_the_seed(weights):
    """The streaming engine gives every frame its own starting and per-step noise, so that
    ticks redrawing a frame agree: with both given, the sampler's own seed plays no part."""
    from talkinghead.generator import WindowSampler

    generator = MotionGenerator.load(weights)
    rng = np.random.default_rng(0)
    d, w = len(MOTION_NAMES), 12
    audio = rng.normal(size=(w, AUDIO_DIM)).astype(np.float32)
    noise = rng.normal(size=(w, d)).astype(np.float32)
    steps = rng.normal(size=(4, w, d)).astype(np.float32)
    options = SampleOptions(steps=4, eta=1.0)
    a, b = (WindowSampler(generator, Controls(), seed=s, options=options).window(audio, np.zeros((0, d)),
                                                                               noise, steps)
            for s in (1, 2))
    np.testing.assert_array_equal(a, b)
    c = WindowSampler(generator, Controls(), seed=1, options=options).window(audio, np.zeros((0, d)), noise)
    assert np.abs(c - a).mean() > 1e-4  # without it, the seed's draws decide


def test_the_traced_denoiser_gives_the_networks_estimate(weights):
    """Sampling runs ``model.denoise`` through one TorchScript trace: it must give the
    network's numbers for every shape it meets (full windows, a stream's short ones, one or
    three guidance branches), not only the shape it was traced with."""
    from talkinghead.models.motion_dit import Conditions

    generator = MotionGenerator.load(weights)
    cfg, g = generator.model.config, torch.Generator().manual_seed(1)
    for batch, frames in ((3, cfg.window), (1, cfg.window - 7), (3, 5), (2, cfg.window + 3)):
        x = torch.randn(batch, frames, cfg.motion_dim, generator=g)
        t = torch.rand(batch, generator=g)
        parts = (torch.randn(batch, frames, cfg.width, generator=g),
                 torch.randn(batch, cfg.context, cfg.width, generator=g),
                 torch.randn(batch, cfg.width, generator=g))
        with torch.no_grad(), torch.jit.optimized_execution(False):
            if frames > cfg.window:  # longer than the positions it learned: refused, as eager
                with pytest.raises(RuntimeError):
                    generator.denoiser()(x, t, *parts)
                continue
            traced = generator.denoiser()(x, t, *parts)
            eager = generator.model.denoise(x, t, Conditions(*parts))
        assert traced.shape == (batch, frames, cfg.motion_dim)
        torch.testing.assert_close(traced, eager, rtol=1e-5, atol=1e-6)
    assert generator.denoiser() is generator.denoiser()  # traced once
