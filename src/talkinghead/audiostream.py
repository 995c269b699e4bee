"""Audio that arrives on a pipe (``talkinghead render PHOTO -``): a WAV stream, or raw PCM
whose rate, channel count and encoding are given. Samples come out as they arrive, in the
stream's own rate and channels; the streaming engine mixes and resamples them."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from talkinghead.errors import InputError

ENCODINGS = ("s16le", "s24le", "s32le", "f32le", "f64le", "u8")
STREAMING_SIZES = (0, 0xFFFFFFFF)  # what a WAV writer that cannot seek back puts in its sizes
READ_SIZE = 1 << 14  # bytes asked for at a time (a read returns what has arrived)


@dataclass(frozen=True)
class PcmFormat:
    rate: int  # samples per second
    channels: int
    encoding: str  # one of ENCODINGS

    @property
    def width(self) -> int:
        """Bytes per sample of one channel."""
        return {"s16le": 2, "s24le": 3, "s32le": 4, "f32le": 4, "f64le": 8, "u8": 1}[self.encoding]

    def decode(self, data: bytes) -> np.ndarray:
        """(n, channels) float32 in [-1, 1] (floats as they are) of whole sample frames."""
        raw = np.frombuffer(data, np.uint8)
        if self.encoding == "s24le":
            triples = raw.reshape(-1, 3).astype(np.int32)
            values = (triples[:, 0] | (triples[:, 1] << 8) | (triples[:, 2] << 16)) << 8
            samples = values.astype(np.float64) / 2.0**31
        elif self.encoding == "u8":
            samples = (raw.astype(np.float64) - 128.0) / 128.0
        else:
            dtype = {"s16le": "<i2", "s32le": "<i4", "f32le": "<f4", "f64le": "<f8"}[self.encoding]
            values = np.frombuffer(data, dtype)
            samples = values.astype(np.float64)
            if self.encoding[0] == "s":
                samples /= float(np.iinfo(values.dtype).max + 1)
        return samples.astype(np.float32).reshape(-1, self.channels)


def _read(stream: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes, fewer only at the end of the stream."""
    parts, got = [], 0
    while got < n:
        part = stream.read(n - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def read_wav_header(stream: BinaryIO, name: str) -> tuple[PcmFormat, int | None]:
    """The format and the data size in bytes (None when the writer could not know it) of a
    WAV stream, read up to the first byte of its samples."""
    head = _read(stream, 12)
    if not head:
        raise InputError(name, "no audio on stdin (the stream is empty)")
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise InputError(name, "not a WAV stream (for raw PCM give --audio-rate and --audio-format)")
    pcm = None
    while True:
        chunk = _read(stream, 8)
        if len(chunk) < 8:
            raise InputError(name, "the stream ended inside its WAV header")
        kind, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if kind == b"data":
            if pcm is None:
                raise InputError(name, "WAV stream without a fmt chunk before its data")
            return pcm, None if size in STREAMING_SIZES else size
        body = _read(stream, size + (size & 1))
        if len(body) < size:
            raise InputError(name, "the stream ended inside its WAV header")
        if kind == b"fmt ":
            pcm = _wav_format(body, name)


def _wav_format(body: bytes, name: str) -> PcmFormat:
    if len(body) < 16:
        raise InputError(name, "WAV fmt chunk is too short")
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
    if tag == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the real tag opens the GUID
        tag = struct.unpack("<H", body[24:26])[0]
    encodings = {(1, 8): "u8", (1, 16): "s16le", (1, 24): "s24le", (1, 32): "s32le",
                 (3, 32): "f32le", (3, 64): "f64le"}
    if (tag, bits) not in encodings:
        raise InputError(name, f"unsupported WAV encoding (format {tag}, {bits} bits): "
                               "send 8-32-bit integer or float PCM")
    if not 1 <= channels <= 32 or not 1_000 <= rate <= 384_000:
        raise InputError(name, f"WAV header says {channels} channels at {rate} Hz")
    return PcmFormat(rate, channels, encodings[tag, bits])


def pcm_blocks(stream: BinaryIO, pcm: PcmFormat, name: str, declared: int | None = None
               ) -> Iterator[np.ndarray]:
    """(n, channels) float32 blocks of ``stream``'s samples as they arrive. A stream that ends
    before the ``declared`` byte count of its header is cut short: an InputError after the
    samples that came."""
    frame = pcm.width * pcm.channels
    left = declared
    rest = b""
    read = getattr(stream, "read1", stream.read)
    while left is None or left > 0:
        data = read(READ_SIZE if left is None else min(READ_SIZE, left))
        if not data:
            break
        if left is not None:
            left -= len(data)
        data = rest + data
        whole = len(data) - len(data) % frame
        rest = data[whole:]
        if whole:
            yield pcm.decode(data[:whole])
    if left:
        heard = (declared - left) / frame / pcm.rate
        raise InputError(name, f"the stream ended after {heard:.2f} s of the "
                               f"{declared / frame / pcm.rate:.2f} s its WAV header declares")
