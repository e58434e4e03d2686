"""Which bytes of an audio file are its audio, so that a change of tags changes no identity.

A tagger (Picard, beets, a player's editor) rewrites a file's tags in place: its bytes change,
its audio does not.  Hashing the whole file made every re-tagged song a new recording to decode
again, and the same recording in two albums' tags two songs to recommend.  The spans below
leave out what taggers write, and keep everything that describes or holds the audio:

* MP3: everything between the ID3v2 tags at the start and the APEv2, Lyrics3v2 and ID3v1 tags
  at the end;
* FLAC: the STREAMINFO block and the frames after the last metadata block;
* Ogg (Vorbis, Opus, FLAC in Ogg): the payload of the first page (the codec's identification)
  and of every page from the first with a positive granule position on, past the header pages
  that hold the comments (the page numbers and checksums, which shift when the comments grow,
  are left out too);
* WAV, AIFF: the format and sample chunks;
* MP4/M4A: the ``ftyp`` box and the ``mdat`` boxes.

Anything not recognised, or not laid out as expected, is hashed whole: a changed tag can then
cost a decode, never a wrong identity.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

Span = tuple[int, int]   # [start, end) byte offsets


def audio_spans(f: BinaryIO, size: int, suffix: str) -> tuple[str, list[Span]] | None:
    """The format's name and the byte spans that hold its audio, or None to hash the file whole."""
    reader = _READERS.get(suffix)
    if reader is None:
        return None
    try:
        spans = reader(f, size)
    except (OSError, ValueError, struct.error):
        return None
    if not spans or any(not 0 <= a <= b <= size for a, b in spans):
        return None
    return reader.__name__.strip("_"), spans


def _mp3(f: BinaryIO, size: int) -> list[Span]:
    start = 0
    while True:                                    # ID3v2 tags (sometimes more than one)
        f.seek(start)
        head = f.read(10)
        if len(head) < 10 or head[:3] != b"ID3":
            break
        start += 10 + _syncsafe(head[6:10]) + (10 if head[5] & 0x10 else 0)
    f.seek(start)
    if f.read(2)[:1] != b"\xff":                   # no frame where the audio should begin
        return []
    end = size
    while True:                                    # tags at the end, in any order
        if end - 128 >= start and _at(f, end - 128, 3) == b"TAG":
            end -= 128
        elif end - 32 >= start and _at(f, end - 32, 8) == b"APETAGEX":
            footer = _at(f, end - 32, 32)
            (length,), (flags,) = struct.unpack("<I", footer[12:16]), struct.unpack("<I", footer[20:24])
            if length < 32:                        # the size counts the footer itself
                raise ValueError("an APE tag shorter than its footer")
            end -= length + (32 if flags & 0x80000000 else 0)
        elif end - 15 >= start and _at(f, end - 9, 9) == b"LYRICS200":
            end -= 15 + int(_at(f, end - 15, 6))
        else:
            break
    return [(start, end)]


def id3_overrun(f: BinaryIO, size: int) -> int | None:
    """Where an MP3's first frame is, when its ID3v2 tag at the start claims a size that does
    not end on a frame (a tagger's bug, or bytes lost), so that FFmpeg, which trusts that size,
    finds no audio; None for a file whose tag is sound or that has none.  The first frame is
    the first place where MPEG frame headers follow each other three times, the check decoders
    use to tell a real frame from a stray 0xFF in the tag's text or cover."""
    head = _at(f, 0, 10)
    if len(head) < 10 or head[:3] != b"ID3":
        return None
    try:
        claimed = 10 + _syncsafe(head[6:10]) + (10 if head[5] & 0x10 else 0)
    except ValueError:
        claimed = size                             # not even a size: no frame where it points
    if claimed < size and _chained(f, claimed, size):
        return None
    data = _at(f, 10, min(size, _SEARCHED) - 10)
    at = data.find(b"\xff")
    while at != -1:
        if _chained(f, 10 + at, size):
            return 10 + at
        at = data.find(b"\xff", at + 1)
    return None


_SEARCHED = 16 << 20          # bytes searched for the first frame: a tag with a large cover fits


def _chained(f: BinaryIO, at: int, size: int, frames: int = 3) -> bool:
    """Whether ``frames`` MPEG audio frames of one version, layer and sample rate follow each
    other from byte ``at`` on (the last may end past the file's end: a file cut short)."""
    first = None
    for _ in range(frames):
        header = _at(f, at, 4)
        length = _frame_length(header) if len(header) == 4 else None
        if length is None or (first is not None and header[1] != first[1]) \
                or (first is not None and (header[2] ^ first[2]) & 0x0C):
            return False
        first = first or header
        at += length
        if at >= size:
            return True
    return True


# kbit/s by bitrate index, for (MPEG-1 or not, layer 1, 2 or 3); index 0 (free format) and 15 are refused
_BITRATES = {
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}   # by version bits


def _frame_length(h: bytes) -> int | None:
    """Bytes of the MPEG audio frame whose 4-byte header is ``h``, or None if it is no header."""
    version, layer = (h[1] >> 3) & 3, 4 - ((h[1] >> 1) & 3)
    bitrate, rate = h[2] >> 4, (h[2] >> 2) & 3
    if h[0] != 0xFF or h[1] & 0xE0 != 0xE0 or version == 1 or layer == 4 or bitrate in (0, 15) or rate == 3:
        return None
    mpeg1, padding = version == 3, (h[2] >> 1) & 1
    bits = _BITRATES[mpeg1, layer][bitrate - 1] * 1000
    sample_rate = _RATES[version][rate]
    if layer == 1:
        return (12 * bits // sample_rate + padding) * 4
    return (144 if mpeg1 or layer == 2 else 72) * bits // sample_rate + padding


def _syncsafe(b: bytes) -> int:
    value = 0
    for byte in b:
        if byte & 0x80:
            raise ValueError("not a syncsafe integer")
        value = (value << 7) | byte
    return value


def _at(f: BinaryIO, offset: int, n: int) -> bytes:
    f.seek(offset)
    return f.read(n)


def _flac(f: BinaryIO, size: int) -> list[Span]:
    if _at(f, 0, 4) != b"fLaC":
        return []
    pos, spans = 4, []
    while True:
        head = _at(f, pos, 4)
        if len(head) < 4:
            raise ValueError("metadata runs past the end")
        kind, length = head[0] & 0x7F, int.from_bytes(head[1:4], "big")
        if kind == 0:                               # STREAMINFO: rate, channels, length, MD5
            spans.append((pos, pos + 4 + length))
        pos += 4 + length
        if head[0] & 0x80:                          # the last metadata block
            break
    if not spans or pos > size:
        return []
    return spans + [(pos, size)]


def _ogg(f: BinaryIO, size: int) -> list[Span]:
    spans, headers = [], True
    for index, (header, payload) in enumerate(_ogg_pages(f, size)):
        headers = headers and struct.unpack("<q", header[6:14])[0] <= 0   # 0, or -1: no packet ends here
        if index == 0 or not headers:               # the identification (rate, channels), and the audio
            spans.append(payload)
    return spans


def _ogg_pages(f: BinaryIO, size: int) -> Iterator[tuple[bytes, Span]]:
    pos = 0
    while pos < size:
        header = _at(f, pos, 27)
        if len(header) < 27 or header[:4] != b"OggS":
            raise ValueError("not an Ogg page")
        segments = f.read(header[26])
        start = pos + 27 + len(segments)
        end = start + sum(segments)
        if len(segments) < header[26] or end > size:
            raise ValueError("a page runs past the end")
        yield header, (start, end)
        pos = end


def chunks(f: BinaryIO, size: int, start: int, order: str) -> Iterator[tuple[bytes, int, int]]:
    """The chunks of a RIFF or AIFF file from ``start``: (kind, offset, length it declares)."""
    pos = start
    while pos + 8 <= size:
        head = _at(f, pos, 8)
        length = int.from_bytes(head[4:8], order)
        yield head[:4], pos, length
        pos += 8 + length + (length & 1)


def wav_order(f: BinaryIO) -> str | None:
    """The byte order of a WAV's numbers ("little" for RIFF, "big" for RIFX); None for a file
    that is not a WAV."""
    head = _at(f, 0, 12)
    if head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
        return None
    return "little" if head[:4] == b"RIFF" else "big"


RUN_ON_BYTES = 64 * 1024   # audio after a WAV's declared data that counts as the recording going on


def wav_runs_on(f: BinaryIO, size: int) -> bool:
    """Whether a WAV's samples go on past the length its data chunk declares, to the end of the
    file: a recorder or editor that stopped before writing its header last leaves the length
    of its last update.  Told by what follows the declared data: not another chunk (a four-letter
    name whose length fits the file), and more of it than stray padding."""
    if (order := wav_order(f)) is None:
        return False
    for kind, pos, n in chunks(f, size, 12, order):
        if kind == b"data":
            after = pos + 8 + n + (n & 1)
            if n in (0, 0xFFFFFFFF) or size - after < RUN_ON_BYTES:
                return False   # no length at all (every decoder reads on), or none left over
            following = _at(f, after, 8)
            named = all(0x20 <= c < 0x7F for c in following[:4])
            return not (named and after + 8 + int.from_bytes(following[4:8], order) <= size + 1)
    return False


def _wav(f: BinaryIO, size: int) -> list[Span]:
    if (order := wav_order(f)) is None:
        return []
    runs_on = wav_runs_on(f, size)
    spans = []
    for kind, pos, n in chunks(f, size, 12, order):
        if kind == b"fmt ":
            spans.append((pos, min(pos + 8 + n, size)))
        elif kind == b"data":
            spans.append((pos, size if runs_on else min(pos + 8 + n, size)))
            if runs_on:
                break   # what follows is samples, not chunks
    return spans if len(spans) == 2 else []


def _aiff(f: BinaryIO, size: int) -> list[Span]:
    head = _at(f, 0, 12)
    if head[:4] != b"FORM" or head[8:12] not in (b"AIFF", b"AIFC"):
        return []
    spans = [(pos, min(pos + 8 + n, size)) for kind, pos, n in chunks(f, size, 12, "big") if kind in (b"COMM", b"SSND")]
    return spans if len(spans) == 2 else []


def _mp4(f: BinaryIO, size: int) -> list[Span]:
    spans, pos, kinds = [], 0, set()
    while pos + 8 <= size:
        head = _at(f, pos, 8)
        length, kind = int.from_bytes(head[:4], "big"), head[4:8]
        header = 8
        if length == 1:                             # a 64-bit size follows
            length, header = int.from_bytes(f.read(8), "big"), 16
        elif length == 0:                           # to the end of the file
            length = size - pos
        if length < header:
            raise ValueError("a box shorter than its header")
        if kind in (b"ftyp", b"mdat"):
            spans.append((pos + header, min(pos + length, size)))
            kinds.add(kind)
        pos += length
    return spans if kinds == {b"ftyp", b"mdat"} else []


_READERS = {
    ".mp3": _mp3, ".flac": _flac, ".ogg": _ogg, ".oga": _ogg, ".opus": _ogg,
    ".wav": _wav, ".wave": _wav, ".aif": _aiff, ".aiff": _aiff, ".aifc": _aiff,
    ".m4a": _mp4, ".mp4": _mp4,
}
