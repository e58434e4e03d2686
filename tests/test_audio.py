"""Decoding every supported format to (channels, samples) float32 at 22050 Hz."""

import os
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import chord, noise, stereo, tone, write, write_encoded
from reform import audio as audio_module
from reform.audio import decode, is_audio_path, stream
from reform.config import AudioConfig
from reform.errors import DecodeError

FORMATS = [
    ("song.wav", dict(format="WAV", subtype="PCM_16")),
    ("song.flac", dict(format="FLAC")),
    ("song.aiff", dict(format="AIFF")),
    ("song.ogg", dict(format="OGG", subtype="VORBIS")),
    ("song.opus", dict(format="OGG", subtype="OPUS")),
    ("song.mp3", dict(format="MP3")),
]


@pytest.mark.parametrize("name,kwargs", FORMATS)
def test_every_format_decodes_keeping_channels(tmp_path, name, kwargs):
    sr = 48000 if name.endswith(".opus") else 44100
    audio = stereo(tone(440, 3, sr), tone(1000, 3, sr, amp=0.1))
    path = write(tmp_path / name, audio, sr, **kwargs)
    x, info = decode(path)
    assert x.dtype == np.float32 and x.shape[0] == 2
    assert info.sample_rate == sr and info.channels == 2
    assert abs(info.duration - 3.0) < 0.1  # codecs add a little padding
    # channels stay in file order: the left one is the loud one
    assert np.abs(x[0]).max() > 3 * np.abs(x[1]).max()




def test_a_flac_of_unknown_length_is_decoded(tmp_path):
    """A FLAC encoded to a pipe leaves its sample count 0, "unknown": libsndfile gives the largest
    count there is, and the file was refused as thousands of millions of hours long."""
    sr = 44100
    data = bytearray(write(tmp_path / "song.flac", stereo(tone(440, 5, sr), noise(5, sr)), sr).read_bytes())
    data[21] &= 0xF0                  # STREAMINFO's 36-bit total of samples, zeroed
    data[22:26] = bytes(4)
    streamed = tmp_path / "streamed.flac"
    streamed.write_bytes(bytes(data))
    x, info = decode(streamed)
    assert x.shape == (2, 5 * 22050) and info.damage.note() is None

def test_a_wav_whose_header_stopped_updating_is_read_to_its_end(tmp_path):
    """A recorder or editor that stopped before writing its header last leaves the length of its
    last update: libsndfile read those 5 s of 20 and called the song 5 s long, with no note.
    A WAV with a chunk after its samples (tags) is read to its declared length as before."""
    import struct

    from reform.library import content_hash

    sr = 22050
    whole = write(tmp_path / "whole.wav", stereo(tone(440, 20, sr), noise(20, sr)), sr)
    data = bytearray(whole.read_bytes())
    at = data.find(b"data")
    struct.pack_into("<I", data, at + 4, struct.unpack_from("<I", data, at + 4)[0] // 4)
    (tmp_path / "stopped.wav").write_bytes(bytes(data))
    x, info = decode(tmp_path / "stopped.wav")
    np.testing.assert_array_equal(x, decode(whole)[0])
    assert info.damage.note() is None
    other = bytearray(data)
    other[-1000:] = bytes(1000)                     # the same first 5 s, another ending: other audio
    (tmp_path / "other.wav").write_bytes(bytes(other))
    assert content_hash(str(tmp_path / "other.wav")) != content_hash(str(tmp_path / "stopped.wav"))
    tagged = bytearray(whole.read_bytes()) + b"LIST" + struct.pack("<I", 70000) + bytes(70000)
    struct.pack_into("<I", tagged, 4, len(tagged) - 8)
    (tmp_path / "tagged.wav").write_bytes(bytes(tagged))
    assert decode(tmp_path / "tagged.wav")[0].shape == (2, 20 * sr)
    assert content_hash(str(tmp_path / "tagged.wav")) == content_hash(str(whole))   # the tags are not audio


@pytest.mark.parametrize("channels", [8, 16])
def test_eight_channels_and_more_decode_through_ffmpeg_in_order(tmp_path, channels):
    """PyAV reads one plane past a planar frame of 8 channels or more: a 7.1 AAC or Opus file, or
    any such file FFmpeg decodes, ended every scan in a segfault and was never marked failed."""
    sr = 44100
    audio = np.stack([tone(110 * (c + 1), 3, sr) for c in range(channels)], axis=1)
    x, info = decode(write(tmp_path / "surround.mka", audio, sr, format="WAV"))   # PCM, read by FFmpeg
    assert info.channels == channels and x.shape == (channels, 3 * 22050)
    peaks = [int(np.argmax(np.abs(np.fft.rfft(row)))) for row in x]          # 1/3 Hz per bin
    assert peaks == [3 * 110 * (c + 1) for c in range(channels)]

@pytest.mark.parametrize("name,codec", [("song.m4a", "aac"), ("song.m4a", "alac"), ("song.caf", "alac"),
                                        ("song.wv", "wavpack"), ("song.tta", "tta")])
def test_formats_libsndfile_cannot_write_decode_too(tmp_path, name, codec):
    path = write_encoded(tmp_path / name, stereo(tone(440, 3, 44100), noise(3, sr=44100, amp=0.05)), codec, 44100)
    assert is_audio_path(path)
    x, info = decode(path)
    assert info.channels == 2 and info.codec == codec and info.sample_rate == 44100
    assert abs(x.shape[1] / 22050 - 3.0) < 0.1
    assert np.abs(x[0]).max() > 3 * np.abs(x[1]).max()          # the tone stays on the left


def test_a_wave64_file_is_scanned_as_the_wav_it_is(tmp_path):
    """Sony's 64-bit WAV (.w64) decoded as a query, yet a scan passed over it without a word."""
    path = write(tmp_path / "long.w64", stereo(tone(440, 3, 44100), noise(3, sr=44100, amp=0.05)), 44100, format="W64")
    assert is_audio_path(path)
    x, info = decode(path)
    assert info.channels == 2 and x.shape == (2, 3 * 22050)


def test_resampled_to_22050_with_soxr(tmp_path):
    path = write(tmp_path / "a.wav", tone(1000, 2, 44100), 44100)
    x, _ = decode(path)
    assert x.shape == (1, 44100)
    spectrum = np.abs(np.fft.rfft(x[0]))
    assert np.argmax(spectrum) == pytest.approx(2000, abs=2)  # 1 kHz at 2 s -> bin 2000


def test_blocks_are_bounded(tmp_path):
    path = write(tmp_path / "long.wav", noise(50, sr=22050), 22050)
    _, blocks = stream(path, AudioConfig(), block_seconds=5)
    sizes = [b.shape[1] for b in blocks]
    assert len(sizes) >= 10 and max(sizes) <= 5 * 22050 + 2048


def test_extensions():
    assert is_audio_path("x/y/Song.MP3") and is_audio_path("a.flac") and is_audio_path("a.opus")
    assert not is_audio_path("cover.jpg") and not is_audio_path("notes.txt")


@pytest.mark.parametrize("content,name", [
    (b"", "empty.wav"),
    (b"this is not music\n" * 20, "text.mp3"),
    (bytes(np.random.default_rng(0).integers(0, 256, 50000, dtype=np.uint8)), "random.ogg"),
])
def test_garbage_raises_decode_error(tmp_path, content, name):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DecodeError):
        decode(path)


@pytest.mark.parametrize("name,kwargs", [("t.wav", {}), ("t.flac", {}), ("t.ogg", {}), ("t.mp3", {})])
def test_truncated_files_are_detected(tmp_path, name, kwargs):
    full = write(tmp_path / name, stereo(tone(440, 10, 44100), noise(10, 44100)), 44100)
    data = full.read_bytes()
    cut = tmp_path / f"cut-{name}"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError, match="truncated|part-way"):
        decode(cut)


def test_unreadable_reports_path(tmp_path):
    with pytest.raises(DecodeError) as err:
        decode(tmp_path / "missing.flac")
    assert "missing.flac" in str(err.value)


def test_random_bytes_named_mp3_are_refused_in_plain_words(tmp_path):
    path = tmp_path / "random.mp3"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    plain = "not a readable audio file (no audio stream with a sample rate and channels)"
    with pytest.raises(DecodeError, match=re.escape(plain)):
        decode(path)


def test_libmpg123_prints_nothing_on_the_terminal(tmp_path, capfd):
    """libsndfile, FFmpeg's fallback, hands an MP3 to libmpg123, which printed "[src/libmpg123/parse.c:
    skip_junk():1260] error: Giving up searching valid MPEG header ..." across the scan's progress bar
    on opening a file, and a resync note for each damaged frame while reading one."""
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(100_010))   # a tag, then 100 KB of nothing
    with pytest.raises(DecodeError):
        decode(junk)
    data = bytearray(write(tmp_path / "clean.mp3", stereo(tone(440, 10, 44100), noise(10, 44100)), 44100).read_bytes())
    data[len(data) // 2:len(data) // 2 + 20_000] = bytes(20_000)
    (tmp_path / "hole.mp3").write_bytes(bytes(data))
    opened = audio_module._soundfile_blocks(str(tmp_path / "hole.mp3"), 20.0, audio_module.Damage())
    assert sum(block.shape[1] for block in opened.blocks) > 5 * 44100
    assert "mpg123" not in capfd.readouterr().err


def test_what_others_print_while_libmpg123_is_hushed_still_shows(capfd):
    """Descriptor 2 is the whole process's: a progress bar drawn meanwhile by another thread is kept."""
    with audio_module._hush.held():
        os.write(2, b"\r 40%|####      | 4/10\n")
        os.write(2, b"[src/libmpg123/parse.c:skip_junk():1260] error: Giving up searching valid MPEG header\n"
                    b"Note: Trying to resync...\n")
    assert capfd.readouterr().err == "\r 40%|####      | 4/10\n"


# -- hostile files: refused from the header, or with their own reason, before any large allocation ---
def _float_wav(path, samples) -> str:
    return str(write(path, np.asarray(samples, np.float32), 22050, subtype="FLOAT"))


@pytest.mark.parametrize("bad, reason", [
    (np.inf, "not finite numbers"), (-np.inf, "not finite numbers"), (np.nan, "not finite numbers"),
    (1e30, "1e\\+30, more than 1000 times full scale"),
])
def test_samples_that_are_not_audio_reject_the_file(tmp_path, bad, reason):
    audio = tone(440, 3)
    audio[30000] = bad
    with pytest.raises(DecodeError, match=reason):
        decode(_float_wav(tmp_path / "poison.wav", audio))


def test_a_file_of_nan_is_not_called_silent(tmp_path):
    with pytest.raises(DecodeError, match="not finite"):
        decode(_float_wav(tmp_path / "nan.wav", np.full(22050 * 3, np.nan)))


def test_an_implausible_sample_rate_is_refused_from_the_header(tmp_path):
    """The issue's 39 KB file declaring 1 Hz: 5.6 hours of audio, 2.2 GB of memory before."""
    path = write(tmp_path / "one-hertz.wav", noise(1, amp=0.5)[:20000], 22050)
    data = bytearray(path.read_bytes())
    data[24:28] = (1).to_bytes(4, "little")          # sample rate
    data[28:32] = (2).to_bytes(4, "little")          # byte rate
    path.write_bytes(bytes(data))
    with pytest.raises(DecodeError, match="implausible sample rate: 1 Hz"):
        stream(path)


def test_too_many_channels_are_refused(tmp_path):
    path = write(tmp_path / "many.wav", np.zeros((22050, audio_module.MAX_CHANNELS + 1), np.float32))
    with pytest.raises(DecodeError, match=f"too many channels: {audio_module.MAX_CHANNELS + 1}"):
        stream(path)


def test_length_is_limited_by_the_header_and_while_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(audio_module, "MAX_CHANNEL_HOURS", 10 / 3600)   # 10 channel-seconds
    path = write(tmp_path / "long.wav", stereo(tone(440, 6), tone(660, 6)))
    with pytest.raises(DecodeError, match="declares 0.1 min of 2-channel audio"):
        stream(path)
    # a header that declares no length is counted while decoding, and stopped there
    blocks = (np.zeros((2, 22050), np.float32) for _ in range(100))
    opened = audio_module._Opened(22050, 2, "pcm", None, blocks, audio_module.Damage())
    with pytest.raises(DecodeError, match="holds more than"):
        list(audio_module._resampled(str(path), opened, AudioConfig()))
    assert len(list(blocks)) == 100 - 6                     # the rest was never decoded


def test_decoded_blocks_hold_at_most_a_fixed_number_of_samples():
    for rate, channels in ((22050, 1), (44100, 2), (192000, 8), (768000, 16)):
        frames = audio_module._block_frames(20.0, rate, channels)
        assert frames * channels <= audio_module.MAX_BLOCK_VALUES
    assert audio_module._block_frames(20.0, 44100, 2) == 20 * 44100   # ordinary files: 20 s blocks


# -- damaged files: decoded as a player plays them, what was passed over noted ------------------------
def _damaged(tmp_path, name, audio, sr, damage) -> tuple[Path, Path]:
    clean = write(tmp_path / f"clean-{name}", audio, sr)
    data = bytearray(clean.read_bytes())
    damaged = tmp_path / name
    damaged.write_bytes(bytes(damage(data)))
    return clean, damaged


def _scribble(data: bytearray, at: float, n: int) -> bytearray:
    start = int(len(data) * at)
    data[start:start + n] = np.random.default_rng(7).integers(0, 256, n, dtype=np.uint8).tobytes()
    return data


def test_junk_after_the_last_mp3_frame_keeps_the_song(tmp_path):
    """Players play an MP3 with bytes of junk after its last frame (a tag some tool botched)."""
    junk = np.random.default_rng(3).integers(0, 256, 300, dtype=np.uint8).tobytes()
    clean, damaged = _damaged(tmp_path, "junk.mp3", stereo(chord(seconds=8, sr=44100), noise(8, 44100)), 44100,
                              lambda data: data + junk)
    audio, info = decode(damaged)
    reference, _ = decode(clean)
    assert abs(audio.shape[1] - reference.shape[1]) < 2048
    assert np.array_equal(audio[:, :100_000], reference[:, :100_000])
    assert decode(clean)[1].damage.note() is None
    assert "packets passed over" in info.damage.note()


def test_a_flac_damaged_mid_file_is_decoded_on_past_the_damage(tmp_path):
    """libsndfile loses sync at the damage; FFmpeg decodes the rest, sample-aligned with what came
    before (FLAC is lossless: both decoders give the same samples)."""
    sr = 44100
    clean, damaged = _damaged(tmp_path, "hurt.flac", stereo(tone(440, 30, sr), noise(30, sr)), sr,
                              lambda data: _scribble(data, 0.5, 500))
    cfg = AudioConfig(sample_rate=sr)                         # no resampling: samples compare exactly
    audio, info = decode(damaged, cfg)
    reference, _ = decode(clean, cfg)
    assert reference.shape[1] - sr < audio.shape[1] <= reference.shape[1]   # at most a frame or two lost
    assert np.array_equal(audio[:, :10 * sr], reference[:, :10 * sr])      # before the damage
    assert np.array_equal(audio[:, -10 * sr:], reference[:, -10 * sr:])    # after it, aligned again
    assert "decoded by FFmpeg past where libsndfile lost the stream" in info.damage.note()


def test_a_flac_cut_by_a_few_bytes_is_kept(tmp_path):
    sr = 44100
    clean, damaged = _damaged(tmp_path, "cut.flac", stereo(tone(440, 10, sr), noise(10, sr)), sr,
                              lambda data: data[:-100])
    audio, info = decode(damaged)
    assert audio.shape[1] > 9.5 * 22050
    assert info.damage.note().startswith("damaged: ")



@pytest.mark.parametrize("second", ["same", "mono", "other rate", "longer, mono"])
def test_a_chained_ogg_is_decoded_whole_or_noted(tmp_path, second):
    """Ogg files joined end to end (radio recordings, albums glued into one file) are a chained
    stream. FFmpeg decodes on across links of the same kind; at a link that changes channels or
    rate it stops. The length it declares is the last link's: a shorter last link lost the rest
    unsaid, and a longer one had the file refused as truncated."""
    sr = 44100
    first = write(tmp_path / "a.ogg", stereo(tone(440, 4, sr), noise(4, sr)), sr, format="OGG", subtype="VORBIS")
    other = {"same": (stereo(tone(660, 4, sr), noise(4, sr)), sr), "mono": (tone(660, 4, sr), sr),
             "other rate": (stereo(tone(660, 4, 22050), noise(4, 22050)), 22050),
             "longer, mono": (tone(660, 16, sr), sr)}[second]
    rest = write(tmp_path / "b.ogg", *other, format="OGG", subtype="VORBIS")
    chained = tmp_path / "chained.ogg"
    chained.write_bytes(first.read_bytes() + rest.read_bytes())
    audio, info = decode(chained)
    if second == "same":
        assert audio.shape[1] == pytest.approx(8 * 22050, abs=2048) and info.damage.note() is None
    else:
        assert audio.shape[1] == pytest.approx(4 * 22050, abs=2048)
        assert "chains streams that change codec, channels or sample rate" in info.damage.note()

def _mp3_without_xing(path: Path, audio: np.ndarray, sr: int = 44100) -> Path:
    """A CBR MP3 with no Xing/Info header, as older encoders wrote them: no length of its own."""
    import av

    with av.open(str(path), "w", format="mp3", options={"write_xing": "0"}) as container:
        stream = container.add_stream("libmp3lame", rate=sr, layout="stereo")
        stream.bit_rate = 192_000
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(np.round(np.clip(audio.T, -1, 1) * 32767), np.int16),
                                           format="s16p", layout="stereo")
        frame.sample_rate = sr
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


def test_a_file_mostly_damaged_is_refused(tmp_path):
    """Beyond a tenth of its declared length missing (the Xing header's), or, where no length is
    declared, beyond a tenth of its packets undecodable: no longer a song with a scratch."""
    song = stereo(chord(seconds=30, sr=44100), noise(30, 44100))
    junk = np.random.default_rng(5).integers(0, 256, 400_000, dtype=np.uint8).tobytes()
    _, damaged = _damaged(tmp_path, "wreck.mp3", song, 44100, lambda data: data[: len(data) // 10] + junk)
    with pytest.raises(DecodeError, match=r"the file is truncated or damaged: 2\.\d s decoded of 30\.0 s"):
        decode(damaged)
    bare = _mp3_without_xing(tmp_path / "bare.mp3", song).read_bytes()
    (tmp_path / "bare-wreck.mp3").write_bytes(bare[: len(bare) // 10] + junk)
    with pytest.raises(DecodeError, match=r"the file is damaged: \d+ of \d+ packets could not be decoded"):
        decode(tmp_path / "bare-wreck.mp3")


def test_what_is_missing_is_noted_and_too_much_missing_refuses_the_file(tmp_path):
    """A cut-off download keeps what is there, noted in seconds; beyond a tenth of its declared length
    (a WAV's data chunk, an AIFF's COMM chunk, an MP3's Xing header) it is refused."""
    song = stereo(chord(seconds=20, sr=44100), noise(20, 44100))
    for name in ("cut.wav", "cut.aiff", "cut.mp3"):
        full = write(tmp_path / f"full-{name}", song, 44100).read_bytes()
        (tmp_path / name).write_bytes(full[: int(len(full) * 0.95)])
        audio, info = decode(tmp_path / name)
        assert 18.5 < audio.shape[1] / 22050 < 19.5
        assert re.fullmatch(r"damaged: 1\.[01] s of 20\.0 s missing", info.damage.note()), (name, info.damage.note())
        (tmp_path / name).write_bytes(full[: int(len(full) * 0.8)])
        with pytest.raises(DecodeError, match=r"the file is truncated or damaged: 1\d\.\d s decoded of 20\.0 s"):
            decode(tmp_path / name)


def test_padding_and_tags_after_an_mp3_are_not_damage(tmp_path):
    """Zeros after the last frame, and an APE tag holding a cover (which FFmpeg's demuxer reads as
    frames, and counts into the length it estimates), play as the clean file does."""
    import os

    from mutagen.apev2 import BINARY, APEv2, APEValue

    clean = write(tmp_path / "clean.mp3", stereo(chord(seconds=10, sr=44100), noise(10, 44100)), 44100)
    padded = tmp_path / "padded.mp3"
    padded.write_bytes(clean.read_bytes() + bytes(64))
    covered = tmp_path / "covered.mp3"
    covered.write_bytes(clean.read_bytes())
    tag = APEv2()
    tag["Cover Art (Front)"] = APEValue(b"cover.jpg\0" + os.urandom(300_000), BINARY)
    tag.save(covered)
    reference, _ = decode(clean)
    bare = _mp3_without_xing(tmp_path / "bare.mp3", stereo(chord(seconds=10, sr=44100), noise(10, 44100)))
    bare_reference, _ = decode(bare)
    bare_padded = tmp_path / "bare-padded.mp3"            # no Xing header: FFmpeg's length would count these
    bare_padded.write_bytes(bare.read_bytes() + bytes(300_000))
    tag.save(bare_padded)
    audio, info = decode(bare_padded)
    assert info.damage.note() is None and np.array_equal(audio, bare_reference)
    for path in (padded, covered):
        audio, info = decode(path)
        assert info.damage.note() is None, path.name
        assert abs(audio.shape[1] - reference.shape[1]) < 1024        # (the gapless trim needs the header)
        assert np.array_equal(audio[:, :200_000], reference[:, :200_000]), path.name


def test_a_damaged_aac_packet_is_passed_over(tmp_path):
    """FFmpeg's AAC decoder refuses some damaged packets with EPERM, not 'invalid data'."""
    song = write_encoded(tmp_path / "clean.m4a", stereo(chord(seconds=20, sr=44100), noise(20, 44100)), "aac", 44100)
    data = bytearray(song.read_bytes())
    rng = np.random.default_rng(7)
    for at in rng.integers(len(data) // 10, len(data) * 8 // 10, 20):
        data[at:at + 20] = rng.integers(0, 256, 20, dtype=np.uint8).tobytes()
    hurt = tmp_path / "hurt.m4a"
    hurt.write_bytes(bytes(data))
    audio, info = decode(hurt)
    assert audio.shape[1] > 18 * 22050
    assert "packets passed over" in info.damage.note()


def test_a_container_that_cannot_be_read_to_its_end_keeps_what_came_before(tmp_path):
    """WavPack's demuxer fails on bytes after the last block, and on a block cut short: the stream
    ends there, and what is missing of the declared length decides (as for every format)."""
    clean = write_encoded(tmp_path / "clean.wv", stereo(chord(seconds=20, sr=44100), noise(20, 44100)),
                          "wavpack", 44100)
    reference, _ = decode(clean)
    (tmp_path / "junk.wv").write_bytes(clean.read_bytes() + bytes(4096))
    audio, info = decode(tmp_path / "junk.wv")
    assert info.damage.note() is None and np.array_equal(audio, reference)      # nothing lost: no damage
    (tmp_path / "cut.wv").write_bytes(clean.read_bytes()[: int(clean.stat().st_size * 0.97)])
    audio, info = decode(tmp_path / "cut.wv")
    assert 18 * 22050 < audio.shape[1] < reference.shape[1] and "s of 20.0 s missing" in info.damage.note()


def test_an_mp3_whose_id3_tag_misstates_its_size_decodes_as_the_sound_file(tmp_path):
    """FFmpeg trusts the tag's size and finds no audio where it points; the decoder looks for the
    first frame itself, and `reform errors` says what was wrong with the file."""
    from mutagen.id3 import ID3, TIT2

    path = write(tmp_path / "song.mp3", stereo(chord(seconds=6, sr=44100), noise(6, 44100)), 44100)
    tags = ID3()
    tags.add(TIT2(encoding=3, text="x" * 500))
    tags.save(path)
    data = bytearray(path.read_bytes())
    data[6:10] = bytes((10_000_000 >> shift) & 0x7F for shift in (21, 14, 7, 0))   # 10 MB, in a 100 kB file
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(bytes(data))
    reference, clean = decode(path)
    audio, info = decode(broken)
    assert np.array_equal(audio, reference)
    assert clean.damage.note() is None
    assert "ID3 tag states a wrong size" in info.damage.note()
