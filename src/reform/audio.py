"""Decode any supported audio file to float32 blocks of shape (channels, samples) at 22050 Hz.

Files are streamed in blocks and resampled with soxr as they are decoded, so
memory stays bounded even for an hour-long recording.  libsndfile (through
``soundfile``) reads the uncompressed and lossless formats; PyAV (FFmpeg's
libraries, shipped inside its wheel) reads the compressed ones, and each
backend is the other's fallback.

Whatever a file claims, it is checked before anything large is allocated: a
sample rate, channel count or length outside the limits below is refused from
the header, a block never holds more than ``MAX_BLOCK_VALUES`` samples, the
length is counted again while decoding (headers lie), and a sample that is not
a finite number, or absurdly beyond full scale, rejects the file with its own
reason rather than poisoning its spectrogram.

A file damaged part-way is decoded as a player would play it: FFmpeg passes over a
packet it cannot decode, and where libsndfile gives up mid-file FFmpeg decodes the
rest.  What was passed over is noted (``AudioInfo.damage``), and the file is only
refused when too much is missing (more than a tenth of its packets, or of its length).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import soxr

from .config import AudioConfig
from .errors import DecodeError
from .payload import audio_spans, chunks, id3_overrun, wav_order, wav_runs_on

# Extensions ReFORM scans, and the backend tried first for each (measured in bench/ingest.py:
# PyAV decodes Vorbis/Opus/MP3 faster than libsndfile; libsndfile is fastest on PCM and FLAC).
SOUNDFILE_FIRST = {".wav", ".wave", ".w64", ".flac", ".aif", ".aiff", ".aifc"}
PYAV_FIRST = {".mp3", ".ogg", ".oga", ".opus", ".m4a", ".mp4", ".aac", ".wma", ".webm", ".mka",
              ".wv", ".tta", ".caf"}
AUDIO_EXTENSIONS = frozenset(SOUNDFILE_FIRST | PYAV_FIRST)
# Music ReFORM does not read, counted by a scan so that it is not skipped without a word: tracker
# modules and MIDI (no decoder or synthesiser in the PyAV wheel), and Monkey's Audio, Musepack and
# DSD, which PyAV decodes but no encoder at hand can make a test file of.
UNREAD_EXTENSIONS = frozenset({".mod", ".xm", ".it", ".s3m", ".mid", ".midi", ".ape", ".mpc", ".dsf", ".dff"})

BLOCK_SECONDS = 20.0  # decoded audio per block; large enough that per-block overhead is negligible

# Limits on what a file may hold (see the module docstring; README, "Scanning in detail").
MIN_RATE, MAX_RATE = 4000, 768_000      # Hz: below is no music, above no recorder
MAX_CHANNELS = 16
MAX_CHANNEL_HOURS = 8.0                 # channels x hours: 4 h of stereo, 8 h of mono
MAX_BLOCK_VALUES = 1 << 22              # samples (all channels) per decoded block: 16 MB of float32
MAX_SAMPLE = 1000.0                     # 60 dB above full scale: larger values are not audio
MAX_BAD_SHARE = 0.1                     # of a file's packets that may be passed over as undecodable
MAX_MISSING_SHARE = 0.1                 # of a file's declared length that may fail to decode ...
MISSING_SLACK = 0.05                    # ... beyond these seconds (encoder delay and padding)
SF_COUNT_MAX = 2**63 - 1                # libsndfile's frame count of a file of unknown length
MISSING_NOTED = 0.5                     # seconds missing that make a file "damaged"


@dataclass
class Damage:
    """What decoding had to pass over in a damaged file, filled in as its blocks are read."""

    bad_packets: int = 0          # packets FFmpeg could not decode, passed over
    packets: int = 0              # packets FFmpeg was given
    resumed: str = ""             # libsndfile's complaint where it lost the stream and FFmpeg went on
    unread: str = ""              # FFmpeg's complaint where the container could not be read on
    missing: float = 0.0          # seconds of the declared length that did not decode
    declared: float = 0.0         # seconds the file declares
    tag_skipped: int = 0          # bytes of a start tag whose stated size was wrong, passed over
    relinked: bool = False        # a chained stream's next link changed codec, channels or rate: the rest unread

    def note(self) -> str | None:
        """One line for `reform errors`, or None for a file that decoded cleanly."""
        parts = []
        if self.missing >= MISSING_NOTED:
            parts.append(f"{self.missing:.1f} s of {self.declared:.1f} s missing")
        if self.bad_packets:
            parts.append(f"{self.bad_packets} of {self.packets} packets passed over (they could not be decoded)")
        if self.resumed:
            parts.append(f"decoded by FFmpeg past where libsndfile lost the stream ({self.resumed})")
        if self.relinked:   # the declared length is some link's own (the last page's), not the file's
            parts.append("the file chains streams that change codec, channels or sample rate, which FFmpeg "
                         "cannot decode on: only the first was analysed")
        elif self.unread and (not self.declared or self.missing >= MISSING_NOTED):   # (else: junk at the end)
            parts.append(f"the rest of the file could not be read ({self.unread})")
        if self.tag_skipped:
            parts.append(f"its ID3 tag states a wrong size; the audio was found {self.tag_skipped} bytes in")
        return "damaged: " + "; ".join(parts) if parts else None


@dataclass(frozen=True)
class AudioInfo:
    """What the source file holds, before resampling."""

    sample_rate: int
    channels: int
    duration: float   # seconds, as counted while decoding
    codec: str
    damage: Damage = field(default_factory=Damage, compare=False)   # complete once decoded


def is_audio_path(path: str | os.PathLike) -> bool:
    """True when the file extension is one ReFORM analyses."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def unread_format(path: str | os.PathLike) -> str | None:
    """The extension of a music format ReFORM does not read (UNREAD_EXTENSIONS), else None."""
    suffix = Path(path).suffix.lower()
    return suffix if suffix in UNREAD_EXTENSIONS else None


@dataclass
class _Opened:
    """A backend's view of an opened file: format facts plus the lazy block iterator."""

    rate: int
    channels: int
    codec: str
    declared_frames: int | None   # length the container announces, used to spot truncation
    blocks: Iterator[np.ndarray]  # (channels, n) float32 at the source rate
    damage: Damage                # what the blocks pass over, as they are read


class _Resampler:
    """Streams (channels, n) float32 blocks through soxr; a no-op when the rates already match.

    One soxr stream per channel: each channel row is already contiguous, so no
    interleaving copies are needed on the way in or out (measured in bench/ingest.py).
    """

    def __init__(self, in_rate: int, out_rate: int, channels: int, quality: str):
        self._streams = []
        if in_rate != out_rate:
            self._streams = [soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=quality)
                             for _ in range(channels)]

    def push(self, block: np.ndarray, last: bool = False) -> np.ndarray:
        if not self._streams:
            return block
        rows = [s.resample_chunk(np.ascontiguousarray(row), last=last) for s, row in zip(self._streams, block)]
        return np.stack(rows)


# What libmpg123 (libsndfile's MP3 decoder) prints by itself on stderr, line by line:
# "[src/libmpg123/parse.c:skip_junk():1260] error: Giving up searching valid MPEG header ...",
# "Note: Trying to resync...".
_C_CHATTER = re.compile(rb"(\[[^]\n]*:\w+\(\):\d+\] \w+: |(?<![^\n\r])(Note|Warning|Error): )[^\n]*\n?")


class _Hush:
    """Keeps what a C library prints on stderr (file descriptor 2) off the terminal, where it broke
    into the scan's progress bar: while any thread is inside :meth:`held`, descriptor 2 is a
    temporary file; when the last one leaves, it is the terminal again, and what other threads
    wrote meanwhile (a progress bar, a log line) is written there, the C library's lines left out
    (a file that fails says why in its DecodeError, which `reform errors` lists)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.holders = 0
        self.saved: int | None = None       # the real stderr, while held
        self.sink = None                    # the temporary file standing in for it

    @contextmanager
    def held(self) -> Iterator[None]:
        with self.lock:
            if not self.holders:
                self._take()
            self.holders += 1
        try:
            yield
        finally:
            with self.lock:
                self.holders -= 1
                if not self.holders:
                    self._give_back()

    def _take(self) -> None:
        if sys.stderr is not None:
            sys.stderr.flush()              # Python's pending text reaches the terminal first
        try:
            sink = tempfile.TemporaryFile()
            saved = os.dup(2)
        except OSError:                     # no stderr at all (a daemon's), or no room: nothing hushed
            return
        os.dup2(sink.fileno(), 2)
        self.saved, self.sink = saved, sink

    def _give_back(self) -> None:
        if self.saved is None:
            return
        os.dup2(self.saved, 2)
        os.close(self.saved)
        self.sink.seek(0)
        others = _C_CHATTER.sub(b"", self.sink.read())
        self.sink.close()
        self.saved = self.sink = None
        if others:
            with open(2, "wb", closefd=False) as stderr:
                stderr.write(others)


_hush = _Hush()


def _soundfile_blocks(path: str, block_seconds: float, damage: Damage) -> _Opened:
    import soundfile as sf

    with _hush.held():   # libmpg123 complains of junk when it is handed something that is not an MP3
        f = sf.SoundFile(path)
    if f.channels < 1 or f.samplerate < 1:
        f.close()
        raise DecodeError("the file has no audio channels", path=path)
    # a header that counts nothing (a recorder stopped before writing it), or says the length is
    # unknown (a FLAC encoded to a pipe, which libsndfile gives as the largest count): FFmpeg reads on
    if f.frames == 0 or f.frames >= SF_COUNT_MAX:
        f.close()
        raise DecodeError("the file declares no samples", path=path)

    def blocks() -> Iterator[np.ndarray]:
        done = 0
        mpeg = f.subtype.startswith("MPEG_LAYER")   # decoded by libmpg123, which reports every resync
        with f:
            size = _block_frames(block_seconds, f.samplerate, f.channels)
            while True:
                try:
                    with _hush.held() if mpeg else nullcontext():
                        data = f.read(size, dtype="float32", always_2d=True)  # (n, C)
                except Exception as exc:  # lost sync in a damaged FLAC: FFmpeg may read on
                    yield from _resumed(path, block_seconds, f.samplerate, f.channels, done, exc, damage)
                    return
                if len(data) == 0:
                    return
                done += len(data)
                yield np.ascontiguousarray(data.T)

    return _Opened(f.samplerate, f.channels, f"{f.format}/{f.subtype}".lower(), f.frames, blocks(), damage)


def _resumed(path: str, block_seconds: float, rate: int, channels: int, done: int, cause: Exception,
             damage: Damage) -> Iterator[np.ndarray]:
    """The rest of a file libsndfile gave up on after ``done`` frames, decoded by FFmpeg: from the
    start, its first ``done`` frames dropped (the formats libsndfile reads first are PCM and
    lossless, so both decoders give the same samples).  ``cause`` is raised if FFmpeg cannot."""
    try:
        other = _pyav_blocks(path, block_seconds, damage)
    except Exception:
        raise cause from None
    if (other.rate, other.channels) != (rate, channels):
        _close(other)
        raise cause
    damage.resumed = _reason(cause)
    for block in other.blocks:
        if done >= block.shape[1]:
            done -= block.shape[1]
            continue
        yield np.ascontiguousarray(block[:, done:]) if done else block
        done = 0


def _pyav_blocks(path: str, block_seconds: float, damage: Damage, read_on: bool = False) -> _Opened:
    """FFmpeg's decoder; ``read_on``: a WAV whose samples go on past its header's length, read
    to the end of the file (:func:`reform.payload.wav_runs_on`)."""
    import av

    # Tags are read by mutagen; a tag that is not UTF-8 (Latin-1 in old Vorbis files) must
    # not make PyAV refuse the file and hand it to the slower libsndfile decoder.
    try:
        container = av.open(path, metadata_errors="replace", options={"ignore_length": "1"} if read_on else {})
    except av.error.InvalidDataError:
        if (skip := _broken_id3(path)) is None:
            raise
        # an ID3 tag whose size points past its end: FFmpeg looks for frames there, finds none
        container = av.open(path, format="mp3", options={"skip_initial_bytes": str(skip)},
                            metadata_errors="replace")
        damage.tag_skipped = skip
    try:
        if not container.streams.audio:
            raise DecodeError("the file holds no audio stream", path=path)
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or stream.rate
        channels = stream.codec_context.channels
        codec = stream.codec_context.name
        declared = None
        if read_on:
            pass   # the header's length is the one known to be wrong
        elif stream.duration is not None and stream.time_base is not None:
            declared = int(round(float(stream.duration * stream.time_base) * rate))
        elif container.duration:
            declared = int(round(container.duration / 1e6 * rate))
    except Exception:
        container.close()
        raise
    if not rate or not channels:
        container.close()
        # what FFmpeg makes of random bytes named .mp3: a stream of no known format
        raise DecodeError("not a readable audio file (no audio stream with a sample rate and channels)", path=path)
    audio_end = None
    if Path(path).suffix.lower() == ".mp3":
        # without a Xing header FFmpeg estimates the length from the file's size, tags, covers
        # and padding included: no length is better than a wrong one (a clean file was refused)
        audio_end, declared = _mp3_layout(path)
    # Convert whatever sample format the codec produces to planar float32 (most codecs
    # already decode to it, and then the conversion is skipped). From 8 channels on, PyAV counts
    # one plane more than a planar frame holds and reads past it (a segfault that stopped every
    # scan for good): such files gather as interleaved float32 instead.
    kind = "flt" if channels >= 8 else "fltp"
    converter = av.AudioResampler(format=kind, layout=stream.codec_context.layout, rate=rate)

    def as_float32(frame) -> list:
        if frame.format.name == kind:
            return [frame]
        frame.pts = None  # let the converter ignore timestamp gaps
        return converter.resample(frame)

    def blocks() -> Iterator[np.ndarray]:
        # A frame holds about a thousand samples, and turning each into an array took a
        # quarter of the decoding time: frames gather in libav's FIFO and leave it as blocks.
        fifo = av.AudioFifo()
        target = _block_frames(block_seconds, rate, channels)
        changed = 0
        with container:
            packets = container.demux(stream)
            while True:
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.error.FFmpegError as exc:   # the container cannot be read on: the stream
                    damage.unread = _reason(exc)      # ends here (the missing length is checked after)
                    damage.relinked = isinstance(exc, av.error.PatchWelcomeError) and container.format.name == "ogg"
                    break
                if audio_end is not None and packet.pos is not None and packet.pos + packet.size > audio_end:
                    break   # an APE or ID3v1 tag after the last frame, which the demuxer took for audio
                try:
                    frames = packet.decode()
                except av.error.FFmpegError:  # a damaged packet: players pass over it too
                    if any(bytes(packet)):    # (zeros after the last frame are padding, not damage)
                        damage.packets += 1
                        damage.bad_packets += 1
                    continue
                damage.packets += 1
                for frame in frames:
                    try:
                        if frame.sample_rate != rate or frame.layout.nb_channels != channels:
                            raise ValueError
                        for out in as_float32(frame):
                            out.pts = None  # the FIFO would otherwise insist on gapless timestamps
                            fifo.write(out)
                    except ValueError:  # junk parsed as a frame of another kind, or a real change
                        changed += 1
                        damage.bad_packets += 1
                if fifo.samples >= target:
                    yield _fifo_block(fifo, channels, path)
            if fifo.samples:
                yield _fifo_block(fifo, channels, path)
        # where the length is declared, what is missing of it decides (_resampled); where it is
        # not, the share of packets that could not be decoded
        if declared is None and damage.bad_packets > MAX_BAD_SHARE * damage.packets:
            if changed * 2 > damage.bad_packets:
                raise DecodeError("the channel layout or sample rate changes inside the file", path=path)
            raise DecodeError(f"the file is damaged: {damage.bad_packets} of {damage.packets} packets "
                              "could not be decoded", path=path)

    return _Opened(rate, channels, codec, declared, blocks(), damage)


def _broken_id3(path: str) -> int | None:
    """Where the audio of an MP3 begins whose ID3v2 tag misstates its size (reform.payload)."""
    if Path(path).suffix.lower() != ".mp3":
        return None
    with open(path, "rb") as f:
        return id3_overrun(f, os.fstat(f.fileno()).st_size)


def _mp3_layout(path: str) -> tuple[int | None, int | None]:
    """Where an MP3's frames end and its trailing tags begin (reform.payload), and the samples its
    Xing or Info header counts, where either can be told.  FFmpeg estimates the length from the
    file's size when a large APE tag (a cover) makes it disagree with that header."""
    with open(path, "rb") as f:
        found = audio_spans(f, os.fstat(f.fileno()).st_size, ".mp3")
        if not found:
            return None, None
        start, end = found[1][0]
        f.seek(start)
        head = f.read(64)
    if len(head) < 64 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0 or (head[1] >> 1) & 3 != 1:
        return end, None                                 # not a Layer III frame
    mpeg1 = (head[1] >> 3) & 3 == 3
    mono = head[3] >> 6 == 3
    at = 4 + (17 if mono else 32) if mpeg1 else 4 + (9 if mono else 17)   # after the side information
    if head[at:at + 4] not in (b"Xing", b"Info") or not head[at + 7] & 1:
        return end, None
    frames = int.from_bytes(head[at + 8:at + 12], "big")
    return end, frames * (1152 if mpeg1 else 576)


def _block_frames(block_seconds: float, rate: int, channels: int) -> int:
    """Frames per decoded block: ``block_seconds``, but never more than MAX_BLOCK_VALUES samples."""
    return max(1, min(int(block_seconds * rate), MAX_BLOCK_VALUES // max(channels, 1)))


def _fifo_block(fifo, channels: int, path: str) -> np.ndarray:
    """Everything waiting in the FIFO as one (channels, n) float32 array."""
    frame = fifo.read()
    data = frame.to_ndarray()
    if frame.format.is_packed:   # (1, n * channels), interleaved
        data = np.ascontiguousarray(data.reshape(-1, len(frame.layout.channels)).T)
    if data.shape[0] != channels:
        raise DecodeError("the file holds another channel count than its header says", path=path)
    return data


def _open(path: str, block_seconds: float) -> _Opened:
    """Open with the preferred backend, falling back to the other; raise DecodeError if both fail."""
    backends = [_soundfile_blocks, _pyav_blocks]
    if Path(path).suffix.lower() in (".wav", ".wave") and _wav_runs_on(path):
        # libsndfile stops at the length the header declares; FFmpeg reads on to the end if told
        backends = [partial(_pyav_blocks, read_on=True), _soundfile_blocks]
    elif Path(path).suffix.lower() not in SOUNDFILE_FIRST:
        backends.reverse()
    first_error: Exception | None = None
    for backend in backends:
        try:
            return backend(path, block_seconds, Damage())
        except PermissionError:
            raise DecodeError("permission denied: the file cannot be read", path=path) from None
        except Exception as exc:  # each backend raises its own types for unreadable data
            first_error = first_error or exc
    if isinstance(first_error, DecodeError):
        raise first_error
    raise DecodeError(f"not a readable audio file ({_reason(first_error)})", path=path)


def _reason(exc: BaseException | None) -> str:
    """A decoder's complaint, short: FFmpeg's error number and the path it repeats left out."""
    if getattr(exc, "strerror", None):   # PyAV's and the OS's errors: "[Errno 1094995529] ...: 'path'"
        text = exc.strerror
    else:
        text = " ".join(str(exc).split()) if exc is not None else ""
    return text[:160] or type(exc).__name__


def _wav_runs_on(path: str) -> bool:
    with open(path, "rb") as f:
        return wav_runs_on(f, os.fstat(f.fileno()).st_size)


def _riff_frames(path: str) -> int | None:
    """The frames a WAV's data chunk declares, where the file is cut short of them (libsndfile
    silently reads what is there, and reports that as the length)."""
    with open(path, "rb") as f:
        if (order := wav_order(f)) is None:
            return None
        size, block_align = os.fstat(f.fileno()).st_size, 0
        for kind, pos, length in chunks(f, size, 12, order):
            if kind == b"fmt ":
                f.seek(pos + 20)
                block_align = int.from_bytes(f.read(2), order)
            elif kind == b"data":
                cut = length != 0xFFFFFFFF and pos + 8 + length > size
                return length // block_align if cut and block_align else None
    return None


def _aiff_frames(path: str) -> int | None:
    """The frames an AIFF's COMM chunk declares (libsndfile reports what is there of them)."""
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] != b"FORM" or head[8:12] not in (b"AIFF", b"AIFC"):
            return None
        for kind, pos, _ in chunks(f, os.fstat(f.fileno()).st_size, 12, "big"):
            if kind == b"COMM":
                f.seek(pos + 10)
                frames = f.read(4)
                return int.from_bytes(frames, "big") if len(frames) == 4 else None
    return None


def _ogg_truncation(path: str) -> str | None:
    """An Ogg stream cut short ends without a page flagged end-of-stream."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        f.seek(max(0, size - 65536))
        tail = f.read()
    at = tail.rfind(b"OggS")
    if at < 0 or at + 6 > len(tail):
        return None  # not an Ogg file after all: leave it to the decoder
    if not tail[at + 5] & 0x04:
        return "the file is truncated: its last Ogg page is not the end of the stream"
    return None




def stream(path: str | os.PathLike, cfg: AudioConfig = AudioConfig(),
           block_seconds: float = BLOCK_SECONDS) -> tuple[AudioInfo, Iterator[np.ndarray]]:
    """Decode ``path`` lazily.

    Returns
    -------
    info : AudioInfo
        Source sample rate, channel count and codec; ``duration`` is the length the
        container declares (0 if unknown): count the blocks for the exact value.
    blocks : iterator of ndarray, shape (channels, n), float32
        Consecutive blocks resampled to ``cfg.sample_rate``, channels in file order.
        Raises DecodeError part-way if too much of the stream is damaged or missing; what
        was passed over is in ``info.damage`` once the last block is read.
    """
    path = os.fspath(path)
    if os.path.exists(path) and not os.access(path, os.R_OK):
        raise DecodeError("permission denied: the file cannot be read", path=path)
    opened = _open(path, block_seconds)
    suffix = Path(path).suffix.lower()
    try:
        # an Ogg stream tells no length of its own: cut short, how much is missing is unknown
        problem = _ogg_truncation(path) if suffix in (".ogg", ".oga", ".opus") else None
        if suffix in (".wav", ".wave"):
            opened.declared_frames = _riff_frames(path) or opened.declared_frames
        elif suffix in (".aif", ".aiff", ".aifc"):
            opened.declared_frames = _aiff_frames(path) or opened.declared_frames
    except OSError as exc:
        _close(opened)
        raise DecodeError(f"the file cannot be read ({_reason(exc)})", path=path) from exc
    if problem is None:
        problem = _implausible(opened)
    if problem:
        _close(opened)
        raise DecodeError(problem, path=path)
    declared = (opened.declared_frames or 0) / opened.rate
    info = AudioInfo(sample_rate=opened.rate, channels=opened.channels, duration=declared,
                     codec=opened.codec, damage=opened.damage)
    return info, _resampled(path, opened, cfg)


def _implausible(opened: _Opened) -> str | None:
    """Why a file's header cannot describe music ReFORM will analyse, before any decoding."""
    if not MIN_RATE <= opened.rate <= MAX_RATE:
        return (f"implausible sample rate: {opened.rate} Hz (ReFORM reads {MIN_RATE} to "
                f"{MAX_RATE} Hz)")
    if opened.channels > MAX_CHANNELS:
        return f"too many channels: {opened.channels} (at most {MAX_CHANNELS})"
    if opened.declared_frames:
        return _too_long(opened.declared_frames / opened.rate, opened.channels, "declares")
    return None


def _too_long(seconds: float, channels: int, verb: str) -> str | None:
    if seconds * channels <= MAX_CHANNEL_HOURS * 3600:
        return None
    length = f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"
    return (f"too long to analyse: the file {verb} {length} of {channels}-channel audio; at "
            f"most {MAX_CHANNEL_HOURS:g} channel-hours are read per file "
            f"({MAX_CHANNEL_HOURS / 2:g} h of stereo)")


def _close(opened: _Opened) -> None:
    close = getattr(opened.blocks, "close", None)
    if close is not None:
        close()


def _check_samples(block: np.ndarray, path: str) -> None:
    """Refuse NaN, infinity and values far beyond full scale (float files can hold anything)."""
    if not block.size:
        return
    hi, lo = float(block.max()), float(block.min())
    if not (np.isfinite(hi) and np.isfinite(lo)):
        raise DecodeError("the audio holds samples that are not finite numbers (NaN or infinity)",
                          path=path)
    if max(hi, -lo) > MAX_SAMPLE:
        raise DecodeError(f"the audio holds samples of {max(hi, -lo):.3g}, more than "
                          f"{MAX_SAMPLE:g} times full scale: not audio", path=path)


def _resampled(path: str, opened: _Opened, cfg: AudioConfig) -> Iterator[np.ndarray]:
    resampler = _Resampler(opened.rate, cfg.sample_rate, opened.channels, cfg.resample_quality)
    decoded = 0
    try:
        for block in opened.blocks:
            decoded += block.shape[1]
            _check_samples(block, path)
            problem = _too_long(decoded / opened.rate, opened.channels, "holds more than")
            if problem:
                raise DecodeError(problem, path=path)
            out = resampler.push(block)
            if out.shape[1]:
                yield out
        tail = resampler.push(np.zeros((opened.channels, 0), np.float32), last=True)
        if tail.shape[1]:
            yield tail
    except DecodeError:
        raise
    except Exception as exc:  # a truncated or corrupt stream fails part-way through
        raise DecodeError(f"decoding failed part-way ({_reason(exc)})", path=path) from exc
    if opened.damage.relinked:   # a chain FFmpeg cannot decode on: its declared length is another link's
        return
    declared = (opened.declared_frames or 0) / opened.rate
    missing = declared - decoded / opened.rate
    if missing > MAX_MISSING_SHARE * declared + MISSING_SLACK:
        raise DecodeError(f"the file is truncated or damaged: {decoded / opened.rate:.1f} s decoded of "
                          f"{declared:.1f} s declared", path=path)
    if declared:
        opened.damage.missing, opened.damage.declared = max(missing, 0.0), declared


def decode(path: str | os.PathLike, cfg: AudioConfig = AudioConfig()) -> tuple[np.ndarray, AudioInfo]:
    """Decode a whole file at once.

    Returns
    -------
    audio : ndarray, shape (channels, samples), float32 at ``cfg.sample_rate``
    info : AudioInfo whose duration is the decoded length in seconds
    """
    info, blocks = stream(path, cfg)
    parts = list(blocks)
    audio = np.concatenate(parts, axis=1) if parts else np.zeros((info.channels, 0), np.float32)
    duration = audio.shape[1] / cfg.sample_rate
    return audio, AudioInfo(info.sample_rate, info.channels, duration, info.codec, info.damage)
