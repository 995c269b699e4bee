"""Speech synthesis with exact phoneme timing, through libespeak-ng from espeakng-loader.

Used to make the example clip and, later, the synthetic training corpus: the synthesis
callback reports each phoneme's start in the audio, so the speech comes with a perfect
alignment. espeak-ng is not thread-safe; one synthesis runs at a time per process.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_END = 5
_EVENT_PHONEME = 7
_PARAMETERS = {"rate": 1, "volume": 2, "pitch": 3, "range": 4}


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint),
                ("text_position", ctypes.c_int), ("length", ctypes.c_int),
                ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                             ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Speech:
    samples: np.ndarray  # (S,) float32 mono in [-1, 1]
    sample_rate: int  # Hz (22050 for espeak-ng voices)
    phonemes: tuple[tuple[float, str], ...]  # (start in seconds, espeak phoneme mnemonic)


@lru_cache(maxsize=1)
def _library() -> tuple[ctypes.CDLL, int]:
    import espeakng_loader

    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.POINTER(ctypes.c_uint),
                                 ctypes.c_void_p]
    data_parent = str(Path(espeakng_loader.get_data_path()).parent).encode()
    rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_parent,
                                 _INITIALIZE_PHONEME_EVENTS)
    if rate <= 0:
        raise RuntimeError("libespeak-ng failed to initialise")
    return lib, rate


def synthesize(text: str, voice: str = "en-us", *, rate: int = 160, pitch: int = 50,
               pitch_range: int = 50, volume: int = 100) -> Speech:
    """Speak ``text`` with an espeak-ng voice (e.g. "en-us", "de", "ja", "en-us+f3").

    rate: words per minute; pitch, pitch_range: 0-100; volume: 0-200.
    """
    lib, sample_rate = _library()
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise ValueError(f"espeak-ng has no voice {voice!r}")
    for name, value in (("rate", rate), ("pitch", pitch), ("range", pitch_range),
                        ("volume", volume)):
        lib.espeak_SetParameter(_PARAMETERS[name], int(value), 0)
    chunks: list[np.ndarray] = []
    phonemes: list[tuple[float, str]] = []

    def on_audio(wav, n, events) -> int:
        if n > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != 0:
            event = events[i]
            if event.type == _EVENT_PHONEME:
                name = event.id.string.decode("utf-8", errors="replace")
                phonemes.append((event.audio_position / 1000.0, name))
            i += 1
        return 0

    callback = _CALLBACK(on_audio)  # kept referenced until synthesis is over
    lib.espeak_SetSynthCallback(callback)
    data = text.encode("utf-8") + b"\0"
    if lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None) != 0:
        raise RuntimeError("espeak-ng failed to synthesize")
    lib.espeak_Synchronize()
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    return Speech(samples=(samples.astype(np.float32) / 32768.0), sample_rate=sample_rate,
                  phonemes=tuple(phonemes))
