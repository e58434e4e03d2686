"""The content hash covers a file's audio, not its tags: a re-tagged song keeps its identity."""

import hashlib
import shutil

import mutagen
import numpy as np
import pytest

from conftest import noise, stereo, tone, write, write_encoded
from reform.library import content_hash, stored_hash
from reform.store import AUDIO_HASHES, SpectrogramInfo, SpectrogramStore

COVER = bytes(np.random.default_rng(0).integers(0, 256, 100_000, dtype=np.uint8))   # spans many Ogg pages


def _tag(path, title: str) -> None:
    """Tags as a tagger writes them: text, and a cover large enough to move the audio's bytes."""
    f = mutagen.File(path)
    if f.tags is None:
        f.add_tags()
    suffix = path.suffix
    if suffix in (".mp3", ".wav", ".aiff"):
        from mutagen.id3 import APIC, TIT2
        f.tags.add(TIT2(encoding=3, text=title))
        f.tags.add(APIC(encoding=3, mime="image/png", type=3, desc="", data=COVER))
    elif suffix == ".m4a":
        from mutagen.mp4 import MP4Cover
        f.tags["\xa9nam"] = [title]
        f.tags["covr"] = [MP4Cover(COVER, imageformat=MP4Cover.FORMAT_PNG)]
    else:
        import base64

        from mutagen.flac import Picture
        picture = Picture()
        picture.data, picture.type, picture.mime = COVER, 3, "image/png"
        if suffix == ".flac":
            f.add_picture(picture)
        else:
            f.tags["metadata_block_picture"] = [base64.b64encode(picture.write()).decode("ascii")]
        f.tags["title"] = [title]
    f.save()


def _make(path, seconds: float = 4.0, freq: float = 440.0):
    sr = 48000 if path.suffix == ".opus" else 44100           # Opus runs at 48 kHz
    audio = stereo(tone(freq, seconds, sr), noise(seconds, sr))
    if path.suffix == ".m4a":
        return write_encoded(path, audio, "aac", sr)
    if path.suffix == ".opus":
        return write(path, audio, sr, format="OGG", subtype="OPUS")
    return write(path, audio, sr)


@pytest.mark.parametrize("name", ["a.mp3", "a.flac", "a.ogg", "a.opus", "a.wav", "a.aiff", "a.m4a"])
def test_a_retagged_file_keeps_its_hash_and_other_audio_does_not(tmp_path, name):
    song = _make(tmp_path / name)
    before = content_hash(str(song))
    copy = tmp_path / f"copy{song.suffix}"
    shutil.copy(song, copy)
    _tag(copy, "A title a tagger wrote")
    assert copy.read_bytes() != song.read_bytes()
    assert content_hash(str(copy)) == before
    _tag(copy, "Another, longer title that a second tagger wrote over the first")
    assert content_hash(str(copy)) == before
    other = _make(tmp_path / f"other{song.suffix}", freq=445.0)
    assert content_hash(str(other)) != before


def test_a_file_not_laid_out_as_its_extension_says_is_hashed_whole(tmp_path):
    text = tmp_path / "notes.mp3"
    text.write_text("not an mp3 at all\n" * 50)
    assert content_hash(str(text)) == hashlib.sha256(text.read_bytes()).hexdigest()[:40]
    mp3 = _make(tmp_path / "a.mp3").read_bytes()
    bogus = tmp_path / "bogus-ape.mp3"                      # an APE footer counting no bytes: no endless loop
    bogus.write_bytes(mp3 + b"APETAGEX" + bytes(24))
    assert content_hash(str(bogus)) == hashlib.sha256(bogus.read_bytes()).hexdigest()[:40]
    cut = tmp_path / "cut.flac"
    cut.write_bytes(write(tmp_path / "full.flac", tone(440, 2)).read_bytes()[:30])   # metadata cut short
    assert content_hash(str(cut)) == hashlib.sha256(cut.read_bytes()).hexdigest()[:40]


def test_a_library_scanned_before_keeps_recognising_its_files(tmp_path):
    """Its store holds spectrograms under whole files' hashes: a moved file, or a new copy, is still
    found under them; a store made now holds the audio's hashes alone, and says so."""
    song = _make(tmp_path / "a.flac")
    whole = hashlib.sha256(song.read_bytes()).hexdigest()[:40]
    audio = content_hash(str(song))
    assert audio != whole
    spec = np.zeros((1, 10, 4), np.float32)

    def stored(store, digest):
        store.write(SpectrogramInfo(digest, 1, 10, 1.0, 44100, "flac"), spec)

    new = SpectrogramStore(tmp_path / "new", "v1")
    assert stored_hash(str(song), new) == audio
    stored(new, whole)                                  # made now: a whole file's hash is never looked for
    assert not SpectrogramStore(tmp_path / "new", "v1").whole_file_hashes
    assert stored_hash(str(song), SpectrogramStore(tmp_path / "new", "v1")) == audio
    old = SpectrogramStore(tmp_path / "old", "v1")
    stored(old, whole)
    (tmp_path / "old" / "v1" / AUDIO_HASHES).unlink()   # as an earlier version left it
    old = SpectrogramStore(tmp_path / "old", "v1")
    assert old.whole_file_hashes
    assert stored_hash(str(song), old) == whole                      # stored before: kept
    other = _make(tmp_path / "b.flac", freq=500.0)
    assert stored_hash(str(other), old) == content_hash(str(other))  # new audio: the audio's hash


def test_tags_at_the_end_of_an_mp3_are_left_out(tmp_path):
    """ID3v1 and APEv2 tags after the last frame, as old taggers and players write them."""
    from mutagen.apev2 import APEv2
    from mutagen.id3 import ID3, TIT2

    song = _make(tmp_path / "a.mp3")
    before = content_hash(str(song))
    ape = APEv2()
    ape["Title"] = "Older tagger"
    ape.save(song)
    tags = ID3()
    tags.add(TIT2(encoding=3, text="Old tagger"))
    tags.save(song, v1=2)                                   # ID3v2 at the start, ID3v1 after the APE tag
    assert song.read_bytes()[-128:-125] == b"TAG" and b"APETAGEX" in song.read_bytes()[-400:]
    assert content_hash(str(song)) == before


def _misstated(path, size: int):
    """``path`` with its ID3v2 tag claiming ``size`` bytes (syncsafe), as a broken tagger leaves it."""
    data = bytearray(path.read_bytes())
    data[6:10] = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    broken = path.with_name("broken-" + path.name)
    broken.write_bytes(bytes(data))
    return broken


def test_an_id3_tag_that_misstates_its_size_is_passed_over_to_the_first_frame(tmp_path):
    """The cover's bytes hold stray 0xFF bytes; only a run of three chained frame headers counts."""
    import io

    from reform.payload import id3_overrun

    path = _make(tmp_path / "a.mp3")
    _tag(path, "Tone")
    data = path.read_bytes()
    assert id3_overrun(io.BytesIO(data), len(data)) is None                 # a sound tag: nothing to do
    untagged = write(tmp_path / "plain.mp3", tone(440, 2.0, 44100), 44100)
    assert id3_overrun(io.BytesIO(untagged.read_bytes()), untagged.stat().st_size) is None
    first = data.index(b"\xff\xfb", data.index(COVER[:64]) + len(COVER))   # where the audio really begins
    for claimed in (10_000_000, 50, len(data) - 200):                       # past the end, early, mid-audio
        broken = _misstated(path, claimed).read_bytes()
        assert id3_overrun(io.BytesIO(broken), len(broken)) == first, claimed
