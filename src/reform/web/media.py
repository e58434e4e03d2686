"""Audio by song id: the file's own bytes with HTTP ranges, or decoded to 16-bit WAV.

A file is opened only through its catalogue row, by the path the catalogue
holds, and served only while it is still what the scan saw: a regular file
with the size and modification time of its row (checked before opening, so a
FIFO or device put in its place never blocks a request, and again on the
opened file descriptor, so a path swapped after the check is never read).  A
file replaced since the scan, for example by a symbolic link to something
outside the library, is refused until it is scanned again.  Size and time are
not enough for a link: anyone who may write in a music folder can give a file
the size and time of another one (a private key) and link it there.  So a song
whose path is a link now is served only if the file it leads to holds the audio
whose hash the scan stored (read whole once per file, by device and inode, and
remembered); any other path is opened without following a link at its end, so
a file replaced by one between the check and the open is refused, not read.

Formats a browser cannot play (AIFF, WMA, Matroska) are decoded as they are
sent, at the file's own sample rate (at most 48 kHz), as a WAV whose length is
known from the catalogue, so ranges and seeking work there too.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import stream
from ..config import AudioConfig
from ..errors import DecodeError, ReformError
from ..library import file_hash
from ..store import FileRow

log = logging.getLogger("reform.web")

# What Chromium and Firefox play natively, by file extension.
BROWSER_TYPES = {".mp3": "audio/mpeg", ".ogg": "audio/ogg", ".oga": "audio/ogg", ".opus": "audio/ogg",
                 ".flac": "audio/flac", ".wav": "audio/wav", ".wave": "audio/wav", ".m4a": "audio/mp4",
                 ".mp4": "audio/mp4", ".aac": "audio/aac", ".webm": "audio/webm"}
WAV_TYPE = "audio/wav"
CHUNK = 256 * 1024
HEADER_BYTES = 44
MAX_RATE = 48000
MAX_WAV_DATA = 2**32 - 1 - 36   # RIFF's sizes are 32-bit: at most this many bytes of samples
MAX_DIGITS = 18       # byte positions up to an exabyte
_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class Unavailable(ReformError):
    """The song's audio cannot be served; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str, *, hint: str | None = None,
                 headers: dict[str, str] | None = None):
        super().__init__(message, hint=hint)
        self.status = status
        self.headers = headers or {}


@dataclass
class Body:
    """An answer to stream: status, headers and the bytes."""

    status: int
    headers: dict[str, str]
    chunks: Iterator[bytes]
    media_type: str


def plays_natively(row: FileRow) -> bool:
    return Path(row.path).suffix.lower() in BROWSER_TYPES


def open_checked(row: FileRow):
    """Open the file of a catalogue row for reading, if it is still the file that was scanned."""
    try:
        link = stat.S_ISLNK(os.lstat(row.path).st_mode)
        _check_same(row, os.stat(row.path))  # opening a FIFO would wait for a writer
        # O_NONBLOCK: should a FIFO appear between the check and the open, it must not block
        f = os.fdopen(os.open(row.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if link else os.O_NOFOLLOW)),
                      "rb")
    except FileNotFoundError:
        if not os.path.isdir(os.path.dirname(row.path)):   # its folder away: most often a disk not mounted
            raise Unavailable(404, "the file's folder is not there (a disk not mounted, or the music moved?)",
                              hint="once it is back the song plays; music moved for good: `reform scan` its "
                                   "new folder") from None
        raise Unavailable(404, "the file is no longer where it was scanned",
                          hint="run `reform scan` to update the library") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:   # a link since the check: not the file that was scanned
            raise _changed() from None
        raise Unavailable(409, f"the file cannot be read ({exc.strerror})") from None
    try:
        st = os.fstat(f.fileno())
        _check_same(row, st)
        if link:
            _check_audio(row, f, st)
    except OSError as exc:
        f.close()
        raise Unavailable(409, f"the file cannot be read ({exc.strerror})") from None
    except Unavailable:
        f.close()
        raise
    return f


_CHECKED: dict[tuple, None] = {}   # the files (device, inode, size, time, hash) found to hold their song
_CHECKED_MOST = 100_000


def _check_audio(row: FileRow, f, st: os.stat_result) -> None:
    """Refuse an open file, reached through a link, whose audio is not its catalogue row's (by the
    hash the scan stored): read whole, once per file (about a second per GB)."""
    key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, row.hash)
    if key in _CHECKED:
        return
    suffix = Path(row.path).suffix.lower()
    if row.hash != file_hash(f, suffix) and row.hash != file_hash(f, suffix, whole=True):
        # (also a song edited in place with its time put back, or hashed by an older ReFORM's
        # rules: a scan passes over a file whose size and time did not change)
        raise Unavailable(409, "the file this link leads to is not the one that was scanned",
                          hint="if it is the song, `touch` it and run `reform scan`, which then analyses it again")
    if len(_CHECKED) >= _CHECKED_MOST:
        _CHECKED.clear()
    _CHECKED[key] = None


def _check_same(row: FileRow, st: os.stat_result) -> None:
    if not stat.S_ISREG(st.st_mode) or st.st_size != row.size or st.st_mtime_ns != row.mtime_ns:
        raise _changed()


def _changed() -> Unavailable:
    return Unavailable(409, "the file changed since it was scanned", hint="run `reform scan` to analyse it again")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte range asked for, or None for the whole file.

    A header this server does not support (several ranges, other units, bad syntax) is
    ignored, as HTTP allows; a range that starts past the end raises Unavailable(416).
    """
    match = _RANGE.match(header or "")
    if not match or not (match.group(1) or match.group(2)):
        return None
    first, last = match.groups()
    if first == "":                                   # "bytes=-N": the last N bytes
        n = _position(last)
        if n == 0:
            raise _unsatisfiable(size)
        return max(size - n, 0), size - 1
    start = _position(first)
    end = _position(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise _unsatisfiable(size)
    return start, min(end, size - 1)


def _position(digits: str) -> int:
    """A byte position; a number longer than any file size counts as past every file
    (Python's int() refuses more than 4300 digits, and the header may hold any number)."""
    return int(digits) if len(digits) <= MAX_DIGITS else 10 ** MAX_DIGITS


def _unsatisfiable(size: int) -> Unavailable:
    return Unavailable(416, "the requested range lies outside the file",
                       headers={"Content-Range": f"bytes */{size}"})


def _range_headers(rng: tuple[int, int] | None, total: int) -> tuple[int, dict[str, str]]:
    start, end = rng or (0, total - 1)
    headers = {"Accept-Ranges": "bytes", "Content-Length": str(max(end - start + 1, 0)),
               "Cache-Control": "no-cache"}
    if rng is None:
        return 200, headers
    headers["Content-Range"] = f"bytes {start}-{end}/{total}"
    return 206, headers


def file_body(row: FileRow, range_header: str | None) -> Body:
    """The file's bytes (all, or the range asked for)."""
    f = open_checked(row)
    try:
        rng = parse_range(range_header, row.size)
    except Unavailable:
        f.close()
        raise
    status, headers = _range_headers(rng, row.size)
    start, end = rng or (0, row.size - 1)

    def chunks() -> Iterator[bytes]:
        with f:
            f.seek(start)
            left = end - start + 1
            while left > 0:
                data = f.read(min(CHUNK, left))
                if not data:
                    return
                left -= len(data)
                yield data

    return Body(status, headers, chunks(), BROWSER_TYPES.get(Path(row.path).suffix.lower(),
                                                             "application/octet-stream"))


def wav_header(rate: int, channels: int, data_bytes: int) -> bytes:
    """The 44-byte header of a 16-bit PCM WAV holding ``data_bytes`` of samples."""
    block = channels * 2
    return b"".join([b"RIFF", (36 + data_bytes).to_bytes(4, "little"), b"WAVEfmt ",
                     (16).to_bytes(4, "little"), (1).to_bytes(2, "little"),
                     channels.to_bytes(2, "little"), rate.to_bytes(4, "little"),
                     (rate * block).to_bytes(4, "little"), block.to_bytes(2, "little"),
                     (16).to_bytes(2, "little"), b"data", data_bytes.to_bytes(4, "little")])


def _pcm16(block: np.ndarray, channels: int) -> bytes:
    """(C, n) float32 -> interleaved little-endian int16 bytes with ``channels`` channels."""
    if block.shape[0] != channels:                     # never expected: match the header anyway
        block = np.resize(block, (channels, block.shape[1]))
    return (np.clip(block.T, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def wav_body(row: FileRow, range_header: str | None) -> Body:
    """The song decoded to WAV as it is sent; ranges decode from the start and skip."""
    open_checked(row).close()
    rate = min(row.sample_rate or 44100, MAX_RATE)
    channels = row.channels or 1
    block = channels * 2
    # a song longer than a WAV can hold (6.2 h of 48 kHz stereo) is sent as a valid WAV of its start
    data_bytes = min(int(round((row.duration or 0.0) * rate)), MAX_WAV_DATA // block) * block
    total = HEADER_BYTES + data_bytes
    rng = parse_range(range_header, total)
    status, headers = _range_headers(rng, total)
    start, end = rng or (0, total - 1)
    header = wav_header(rate, channels, data_bytes)
    blocks = None
    if end >= HEADER_BYTES:
        try:
            _, blocks = stream(row.path, AudioConfig(sample_rate=rate), block_seconds=4.0)
        except DecodeError as exc:
            raise Unavailable(409, f"the file cannot be decoded: {exc.message}") from None

    def chunks() -> Iterator[bytes]:
        if start < HEADER_BYTES:
            yield header[start:end + 1]
        if blocks is None:
            return
        skip, stop = max(start - HEADER_BYTES, 0), end - HEADER_BYTES + 1   # in the data chunk
        pos = 0
        try:
            for block in blocks:
                size = block.shape[1] * channels * 2
                if pos + size > skip:
                    pcm = _pcm16(block, channels)
                    part = pcm[max(skip - pos, 0):max(stop - pos, 0)]
                    if part:
                        yield part
                pos += size
                if pos >= stop:
                    return
        except DecodeError as exc:  # the answer has started: end it short, say why in the log
            log.warning("%s: decoding stopped part-way: %s", row.path, exc.message)
            return
        finally:
            blocks.close()
        while pos < stop:             # decoded shorter than the catalogue says: pad with silence
            n = min(CHUNK, stop - max(pos, skip))
            yield bytes(n)
            pos = max(pos, skip) + n

    return Body(status, headers, chunks(), WAV_TYPE)
