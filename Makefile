# talkinghead: `make demo` sets everything up and renders the example; `make test` runs the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3.10 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: setup demo test test-fast lint wheel-check bench bench-full reference reenactment sheets examples corpus corpus-cal weights-synthetic weights weights-real mouth-weights reenactment-val calibrate realism clean

setup: $(STAMP)

# torch first, as the CPU build (a plain `torch` requirement would pull a multi-GB CUDA build);
# mediapipe without its declared dependencies (numpy<2 and jax, which the face mesh does not
# use); then the package itself with its test tools and the Ray extra (its tests run on a
# local two-CPU Ray).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install torch==2.13.0
	$(PIP) install --no-deps mediapipe==0.10.21
	$(PIP) install -e '.[dev,ray]'
	touch $(STAMP)

demo: setup
	mkdir -p out
	$(BIN)/talkinghead render examples/astronaut.png examples/speech.wav -o out/demo.mp4 --force

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check src tests bench examples

# The wheel built, installed with plain pip into a fresh venv and used from another folder.
wheel-check: setup
	bash .ci/wheel-smoke

bench: setup
	$(BIN)/python bench/speed.py
	$(BIN)/python bench/avatar.py

bench-full: setup
	$(BIN)/python bench/speed.py --full

reference: setup
	$(BIN)/python bench/reference.py

# Self-reenactment of the real videos in ../shared/devdata (ours, with each mouth painter,
# against an affine warp), and of the realdata val split (README, "Renderer realism").
reenactment: setup
	$(BIN)/python bench/reenactment.py

VAL_VIDEOS = $(shell awk -F'\t' 'NR > 1 && $$NF == "val" {print "$(REALDATA)/videos/" $$1 ".mp4"}' $(REALDATA)/MANIFEST.tsv)
reenactment-val: setup
	$(BIN)/python bench/reenactment.py $(VAL_VIDEOS) --max-frames 250 --out out/reenactment-val

# The README's pictures (docs/): frames of the demo and the renderer across poses.
sheets: demo
	$(BIN)/python bench/sheets.py

examples: setup
	$(BIN)/python examples/make_examples.py

# The shipped motion weights, in two stages (about 2 h 15 min on 2 CPU cores all told).
# 1. MotionDiT pretrained on the synthetic corpus (about 15 minutes for the corpus and 80 for
#    training): out/weights-synthetic, the weights shipped before the real-data fine-tune
#    (its MANIFEST.json records the exact commands and the corpus seed).
CORPUS_SEED ?= 0
CORPUS_MINUTES ?= 120
corpus: setup
	$(BIN)/talkinghead corpus --out out/corpus --seed $(CORPUS_SEED) --minutes $(CORPUS_MINUTES) --workers 2

weights-synthetic: corpus
	$(BIN)/talkinghead train --corpus out/corpus --out out/weights-synthetic --steps 12000 --threads 2

# 2. Fine-tuned on the train split of ../shared/realdata (motion from the project's own
#    encoder, cached in out/video-cache), with a synthetic corpus calibrated to that split
#    mixed in for half the windows (whole blinks; about 30 minutes): weights/. The val split is
#    never trained on; weights/MANIFEST.json lists every training file.
REALDATA ?= ../shared/realdata
TRAIN_VIDEOS = $(shell awk -F'\t' 'NR > 1 && $$NF == "train" {print "$(REALDATA)/videos/" $$1 ".mp4"}' $(REALDATA)/MANIFEST.tsv)
corpus-cal: setup
	$(BIN)/talkinghead corpus --out out/corpus-cal --seed 0 --minutes 20 --workers 2 \
		--calibration bench/corpus-calibration.json

weights: weights-synthetic corpus-cal
	$(BIN)/talkinghead train --init out/weights-synthetic --corpus out/corpus-cal --real-fraction 0.5 \
		$(addprefix --videos ,$(TRAIN_VIDEOS)) --video-cache out/video-cache --out weights \
		--steps 2000 --lr 3e-4 --pose-weight 4 --threads 2

# The learned mouth interior (renderer/mouthnet.py): trained on the frames of the same train
# split, each video's mouths tracked once into out/mouth-cache (about 3 minutes), then 3000
# steps (about 25 minutes on 2 CPU cores): weights/mouth. weights/mouth/MANIFEST.json lists
# every training file.
mouth-weights: setup
	$(BIN)/talkinghead train-mouth $(addprefix --videos ,$(TRAIN_VIDEOS)) --cache out/mouth-cache \
		--out weights/mouth --steps 3000 --threads 2

# For comparison (README, "Realism"): the fine-tune on real videos alone, no corpus mixed in.
weights-real: weights-synthetic
	$(BIN)/talkinghead train --init out/weights-synthetic $(addprefix --videos ,$(TRAIN_VIDEOS)) \
		--video-cache out/video-cache --out out/weights-real --steps 2000 --lr 3e-4 --threads 2

# The corpus's motion scales measured against the realdata train split (refines the file).
calibrate: setup
	$(BIN)/python bench/calibrate.py --current bench/corpus-calibration.json

# Real against generated motion on the realdata val speakers (README, "Realism").
realism: setup
	$(BIN)/python bench/realism.py --generators baseline=baseline,shipped=weights --sheet

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache
