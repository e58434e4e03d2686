"""Windows from the store: normalisation statistics, padding and masks, one-song clustering batches."""

import numpy as np

from reform import Library
from reform.dataset import Song, Windows, album_ids, fit_normaliser


def _windows(home, window=640):
    lib = Library(home, create=False)
    songs = lib.training_songs()
    norm = fit_normaliser(lib.home.spectrograms, songs)
    return lib, songs, Windows(lib.home.spectrograms, songs, norm, window)


def test_normaliser_standardises_each_mel_bin(scanned):
    lib, songs, w = _windows(scanned)
    frames = np.concatenate([lib.home.spectrograms.open(s.hash).reshape(-1, 128) for s in songs])
    z = (frames.astype(np.float32) - w.normaliser.mean) / w.normaliser.std
    assert np.abs(z.mean(0)).max() < 0.05 and np.abs(z.std(0) - 1).max() < 0.05


def test_normaliser_reads_at_most_its_share_of_a_long_song():
    class Store:   # one channel whose frame t holds t in every band
        def open(self, digest):
            return np.repeat(np.arange(10, dtype=np.float16)[None, :, None], 2, axis=2)

    for seed in range(8):   # 10 frames, at most 4: every third frame (not every second: 5 of them)
        mean = fit_normaliser(Store(), [Song("h", 1, 10)], max_frames_per_song=4, seed=seed).mean
        assert mean[0] in (np.float32(4.5), np.float32(4.0), np.float32(5.0))


def test_every_channel_once_per_pretraining_pass(scanned):
    _, songs, w = _windows(scanned)
    assert len(w.examples) == sum(s.channels for s in songs) == 7
    batches = list(w.pretrain_batches(seed=0, epoch=1, batch_size=3))
    assert sum(len(b.x) for b in batches) == 7
    assert sorted(len(b.x) for b in batches) == [2, 2, 3]  # never a lone window at the end
    assert sorted(len(b.x) for b in w.pretrain_batches(seed=0, epoch=1, batch_size=2)) == [2, 2, 3]
    x, mask = batches[0].x, batches[0].mask
    assert x.shape[1:] == (640, 128) and mask.shape[1:] == (1, 1, 640) and x.dtype == np.float16   # as stored


def test_short_song_is_padded_and_masked(scanned):
    _, songs, w = _windows(scanned)
    short = next(s for s in songs if s.frames < 640)
    out, mask = np.full((640, 128), np.nan, np.float16), np.empty((1, 1, 640), np.float32)
    w.read(short, 0, 0, out, mask)
    assert mask.sum() == short.frames and (mask[0, 0, :short.frames] == 1).all()
    assert (out[short.frames:] == 0).all() and (out[: short.frames] != 0).any()


def test_window_read_matches_the_stored_spectrogram(scanned):
    lib, songs, w = _windows(scanned)
    song = max(songs, key=lambda s: s.frames)
    out, mask = np.empty((640, 128), np.float16), np.empty((1, 1, 640), np.float32)
    w.read(song, song.channels - 1, 7, out, mask)
    assert np.array_equal(out, lib.home.spectrograms.open(song.hash)[song.channels - 1, 7:647]) and mask.all()


def test_cluster_batches_come_from_one_song(scanned):
    lib, songs, w = _windows(scanned)
    # make every song recognisable by its per-song constant offset in the stored data
    seen = []
    for b in map(w.load, w.cluster_plan(seed=3, epoch=1, batch_size=4)):
        x = b.x
        assert len(x) == 4
        ids = {_which_song(lib, songs, window) for window in x}
        assert len(ids) == 1
        seen.append(ids.pop())
    assert sorted(seen) == list(range(len(songs)))  # every song once per pass


def _which_song(lib, songs, raw):
    """Find the song whose spectrogram contains this window (T, M) as stored."""
    for i, s in enumerate(songs):
        spec = lib.home.spectrograms.open(s.hash)
        for c in range(s.channels):
            n = min(len(raw), s.frames)
            for start in range(0, max(1, s.frames - n + 1)):
                if np.array_equal(spec[c, start:start + n], raw[:n]):
                    return i
    raise AssertionError("window not found in any song")


def test_batches_are_reproducible_per_epoch(scanned):
    _, _, w = _windows(scanned)
    a = [b.x for b in w.pretrain_batches(seed=1, epoch=5, batch_size=4)]
    b = [b.x for b in w.pretrain_batches(seed=1, epoch=5, batch_size=4)]
    c = [b.x for b in w.pretrain_batches(seed=1, epoch=6, batch_size=4)]
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not all(np.array_equal(p, q) for p, q in zip(a, c))


def test_backgrounds_are_other_songs_and_the_same_rows_in_every_process(scanned):
    lib, songs, w = _windows(scanned)
    plan = w.pretrain_plan(seed=2, epoch=1, batch_size=4, views=2, backgrounds=True)[0]
    whole = w.load(plan)
    assert len(whole.backgrounds) == 2
    for x, mask in whole.backgrounds:
        assert x.shape == whole.x.shape and mask.shape == whole.mask.shape
        for row, window in enumerate(x):
            real = int(mask[row].sum())              # a short song's window ends in padding
            assert _which_song(lib, songs, window[:real]) != whole.songs[row]
    part = w.load(plan.shard(1, 2))
    for (x, mask), (px, pmask) in zip(whole.backgrounds, part.backgrounds, strict=True):
        assert np.array_equal(px, x[1::2]) and np.array_equal(pmask, mask[1::2])
    assert not w.load(w.pretrain_plan(seed=2, epoch=1, batch_size=4, views=2)[0]).backgrounds


def test_album_ids_match_tags_loosely_and_keep_untagged_songs_apart():
    songs = [Song("a", 1, 9, "Hiss"), Song("b", 1, 9, " hiss "), Song("c", 1, 9, None), Song("d", 1, 9, ""),
             Song("e", 1, 9, "Sines"), Song("f", 1, 9, "Big  Band"), Song("g", 1, 9, "big band")]
    ids = album_ids(songs)
    assert ids[0] == ids[1] and ids[5] == ids[6]
    assert len({ids[0], ids[2], ids[3], ids[4], ids[5]}) == 5      # untagged songs are on albums of their own
    cafe = album_ids([Song(h, 1, 9, a) for h, a in (("a", "Café Tacvba"), ("b", "Cafe Tacvba"),
                                                     ("c", "cafe   tacvba"), ("d", "Cafe Tacvba (Live)"))])
    assert cafe[0] == cafe[1] == cafe[2] != cafe[3]   # as the recommender's and evaluation's album filters


def test_training_songs_carry_their_album_tags(scanned):
    with Library(scanned, create=False, read_only=True) as lib:
        albums = sorted(song.album for song in lib.training_songs())
    assert albums == ["Hiss", "Hiss", "Hiss", "Sines", "Sines"]


def test_a_pass_keeps_a_bounded_number_of_spectrograms_open(scanned, monkeypatch):
    """Each memory map holds a file descriptor: one per song for a whole run passed the usual
    limit of 1024 on a library of some thousand songs."""
    import os

    from reform import dataset

    monkeypatch.setattr(dataset, "OPEN_MAPS", 2)
    _, songs, w = _windows(scanned)
    assert len(songs) > 2
    before = len(os.listdir("/proc/self/fd"))
    for plan in w.pretrain_plan(seed=0, epoch=1, batch_size=2):
        w.load(plan)
    assert len(w._maps) == 2
    assert len(os.listdir("/proc/self/fd")) <= before + 2


def test_a_spectrogram_holding_nan_is_named_as_damage(scanned, tmp_path):
    """Training on it said 'diverged ... lower the rate with --lr'."""
    import shutil

    import pytest

    from reform.errors import StoreError

    home = tmp_path / "home"
    shutil.copytree(scanned, home)
    lib, songs, w = _windows(home)
    song = max(songs, key=lambda s: s.frames)
    spec = np.load(lib.home.spectrograms.path(song.hash), mmap_mode="r+")
    spec[0, 3, 5] = np.nan
    spec.flush()
    out, mask = np.empty((640, 128), np.float16), np.empty((1, 1, 640), np.float32)
    with pytest.raises(StoreError, match=f"spectrogram {song.hash} holds values that are not finite") as err:
        w.read(song, 0, 0, out, mask)
    assert "reform check --repair" in err.value.hint
    with pytest.raises(StoreError, match="not finite"):
        fit_normaliser(lib.home.spectrograms, songs)
    lib.close()
