"""Corpus -> training -> weights -> sampling, end to end on a tiny corpus and network."""

import json
import subprocess
import sys

import pytest

from talkinghead.audio import audio_features
from talkinghead.controls import Controls
from talkinghead.load import load_audio


@pytest.mark.slow
def test_corpus_train_export_load_sample(tmp_path, short_speech):
    pytest.importorskip("espeakng_loader")
    from talkinghead.corpus import generate_corpus
    from talkinghead.generator import MotionGenerator
    from talkinghead.train import TrainConfig, train

    summary = generate_corpus(tmp_path / "corpus", seed=1, minutes=0.15, shard_minutes=0.1)
    assert summary["clips"] >= 1 and (tmp_path / "corpus" / "shard-000.npz").exists()
    config = TrainConfig(steps=3, batch_size=4, width=32, depth=1, threads=1, checkpoint_every=2)
    manifest = train(tmp_path / "corpus", tmp_path / "weights", config, command="test")
    assert manifest["files"]["motion_dit.safetensors"]["bytes"] > 0
    assert json.loads((tmp_path / "weights" / "MANIFEST.json").read_text())["corpus"]["seed"] == 1
    generator = MotionGenerator.load(tmp_path / "weights")
    features = audio_features(load_audio(short_speech), 25.0)
    motion = generator.sample(features, Controls(emotion="happy"), seed=0)
    assert motion.shape == (features.n_frames, 41)


@pytest.mark.slow
def test_real_video_motion_has_real_statistics():
    from talkinghead.corpus import corpus_statistics
    from talkinghead.train import video_motion

    from .helpers import devdata

    motion, audio = video_motion(devdata("videos", "v06_f_older_glasses_5s.mp4"))
    assert motion.shape == (len(audio), 41)
    stats = corpus_statistics([motion], 25.0)
    assert 1.0 < stats["yaw_std"] < 8.0 and 0.3 < stats["delta_pose_deg"] < 2.0
    assert 0.9 < float(motion[:, 5].mean()) < 1.1  # scale relative to the median face size


@pytest.mark.slow
def test_torchrun_ddp_trains_on_two_processes(tmp_path):
    """The multi-GPU path, run as torchrun runs it, on CPU (gloo): two processes, gradients
    averaged by DistributedDataParallel, weights written once by rank 0."""
    pytest.importorskip("espeakng_loader")
    from talkinghead.corpus import generate_corpus
    from talkinghead.generator import MotionGenerator

    generate_corpus(tmp_path / "corpus", seed=2, minutes=0.1, shard_minutes=0.1)
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29533",
         "-m", "talkinghead", "train", "--corpus", str(tmp_path / "corpus"), "--out",
         str(tmp_path / "weights"), "--steps", "2", "--batch-size", "2"],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    manifest = json.loads((tmp_path / "weights" / "MANIFEST.json").read_text())
    assert manifest["train"]["world_size"] == 2 and manifest["train"]["steps"] == 2
    checksums = manifest["train"]["rank_checksums"]  # each rank's final averaged weights
    assert len(checksums) == 2 and checksums[0] == checksums[1]
    MotionGenerator.load(tmp_path / "weights")  # SHA-256 and size match what rank 0 wrote


@pytest.mark.slow
def test_training_lowers_the_loss_and_real_videos_are_recorded(tmp_path):
    """A tiny network on one real video and a tiny corpus: the loss falls, the manifest
    lists the video by SHA-256, and a second run reads the extracted motion from the cache."""
    pytest.importorskip("espeakng_loader")
    from talkinghead.corpus import generate_corpus
    from talkinghead.generator import file_sha256
    from talkinghead.train import TrainConfig, train

    from .helpers import devdata

    video = devdata("videos", "v06_f_older_glasses_5s.mp4")
    generate_corpus(tmp_path / "corpus", seed=3, minutes=0.1, shard_minutes=0.1)
    config = TrainConfig(steps=150, batch_size=8, width=32, depth=1, threads=1, checkpoint_every=150,
                         lr=3e-3, real_fraction=0.5)
    cache = tmp_path / "cache"
    manifest = train(tmp_path / "corpus", tmp_path / "weights", config, videos=[video],
                     video_cache=cache, command="test")
    losses = [h["loss"] for h in manifest["loss_history"]]
    assert losses[-1] < 0.6 * losses[0], losses
    assert manifest["videos"] == [{"file": video.name, "sha256": file_sha256(video),
                                   "seconds": manifest["videos"][0]["seconds"]}]
    assert 4.0 < manifest["videos"][0]["seconds"] < 6.0
    entries = list(cache.glob("*.npz"))
    assert len(entries) == 1
    stamp = entries[0].stat().st_mtime_ns
    again = train(None, tmp_path / "again", TrainConfig(steps=1, batch_size=2, width=32, depth=1),
                  videos=[video], video_cache=cache, init=tmp_path / "weights", command="test")
    assert entries[0].stat().st_mtime_ns == stamp  # read from the cache, not re-extracted
    assert again["init"]["sha256"] == manifest["files"]["motion_dit.safetensors"]["sha256"]
    assert again["config"] == manifest["config"]  # fine-tuning keeps the network's shape
    # ...and normalises the motion by its own data (the pretraining's scale would hide
    # channels that the corpus never moves)
    import numpy as np

    from talkinghead.generator import MotionGenerator
    from talkinghead.train import load_video_clips, motion_normalisation

    tuned = MotionGenerator.load(tmp_path / "again").model
    mean, std = motion_normalisation(load_video_clips([video], cache)[0])
    np.testing.assert_allclose(tuned.motion_std.numpy(), std, rtol=1e-6)
    np.testing.assert_allclose(tuned.motion_mean.numpy(), mean, rtol=1e-6, atol=1e-7)


def test_real_clips_blink_with_both_eyes_at_once(tmp_path):
    """The encoder reads each lid with its own noise; training clips from real videos get
    both eyelids at their mean (a generator trained on the noise winks), nothing else changes."""
    import numpy as np

    from talkinghead.generator import file_sha256
    from talkinghead.motionspace import MOTION_NAMES
    from talkinghead.train import EXTRACTION_VERSION, load_video_clips

    video = tmp_path / "talk.mp4"
    video.write_bytes(b"not decoded: the cache entry below answers for it")
    rng = np.random.default_rng(0)
    motion = rng.uniform(0, 1, (50, len(MOTION_NAMES))).astype(np.float32)
    audio = rng.normal(size=(50, 4)).astype(np.float32)
    cache = tmp_path / "cache"
    cache.mkdir()
    np.savez(cache / f"{file_sha256(video)}-v{EXTRACTION_VERSION}.npz", motion=motion, audio=audio,
             usable=True)
    (clip,), used = load_video_clips([video], cache)
    left, right = MOTION_NAMES.index("eyeBlinkLeft"), MOTION_NAMES.index("eyeBlinkRight")
    np.testing.assert_allclose(clip.motion[:, left], (motion[:, left] + motion[:, right]) / 2, atol=1e-6)
    np.testing.assert_array_equal(clip.motion[:, left], clip.motion[:, right])
    others = [i for i in range(len(MOTION_NAMES)) if i not in (left, right)]
    np.testing.assert_array_equal(clip.motion[:, others], motion[:, others])
    assert used[0]["seconds"] == 2.0 and clip.real and not clip.emotion_given
    # The gaze target of a real video is its median frame's gaze: 0 in its relative motion.
    assert clip.gaze_given and (clip.controls[:2] == 0).all()


def test_corpus_windows_leave_the_channels_the_corpus_holds_still_to_the_real_videos():
    import numpy as np

    from talkinghead.motionspace import MOTION_NAMES
    from talkinghead.train import TrainClip, _windows, corpus_still_channels

    rng = np.random.default_rng(0)
    d = len(MOTION_NAMES)

    def clip(real: bool) -> TrainClip:
        motion = rng.normal(size=(90, d)).astype(np.float32)
        if not real:
            motion[:, 7] = 0.3  # the corpus holds channel 7 at a constant
        return TrainClip(np.zeros((90, 4), np.float32), motion, np.zeros(8, np.float32),
                         emotion_given=not real, real=real)

    clips = [clip(False), clip(False), clip(True)]
    still = corpus_still_channels(clips)
    assert still[7] and still.sum() == 1
    assert not corpus_still_channels(clips[:2]).any()  # a corpus alone: everything supervised
    batch = _windows(clips, rng, 16, 30, 5, np.zeros(d), np.ones(d), np.array([0.25, 0.25, 0.5]), still)
    corpus_rows = batch["emotion_given"] == 1
    assert corpus_rows.any() and (~corpus_rows).any()
    assert (batch["channels"][corpus_rows, 7] == 0).all() and (batch["channels"][~corpus_rows] == 1).all()
    assert (batch["channels"][:, np.arange(d) != 7] == 1).all()
