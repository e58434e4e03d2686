"""The SQLite catalogue and the memory-mapped spectrogram store."""

import sqlite3

import numpy as np
import pytest

from reform.errors import StoreError
from reform.store import SCHEMA_VERSION, Catalogue, Home, SpectrogramInfo, SpectrogramStore, Tags


def test_catalogue_is_wal_and_versioned(tmp_path):
    cat = Catalogue(tmp_path / "c.db")
    assert cat.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert cat.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert cat.integrity_ok()


def test_newer_schema_is_refused(tmp_path):
    conn = sqlite3.connect(tmp_path / "c.db")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        Catalogue(tmp_path / "c.db")


def test_missing_library_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="no library"):
        Home(tmp_path / "nothing", "fv", create=False)


def test_rows_roundtrip_and_move_keeps_id(tmp_path):
    cat = Catalogue(tmp_path / "c.db")
    info = SpectrogramInfo("abc", 2, 100, 2.3, 44100, "vorbis")
    with cat.transaction():
        cat.put_ok("/m/a.ogg", 10, 20, info, Tags(artist="A", title="T"), "fv")
        cat.put_failed("/m/bad.mp3", 1, 2, "not a readable audio file")
    row = cat.file(path="/m/a.ogg")
    assert (row.hash, row.channels, row.frames, row.artist, row.status) == ("abc", 2, 100, "A", "ok")
    assert cat.counts()["songs"] == 1 and cat.counts()["failed"] == 1
    with cat.transaction():
        cat.move("/m/a.ogg", "/m/b.ogg", 10, 30, Tags(artist="A"))
    moved = cat.file(path="/m/b.ogg")
    assert moved.id == row.id and cat.file(path="/m/a.ogg") is None


def test_rollback_on_error(tmp_path):
    cat = Catalogue(tmp_path / "c.db")
    with pytest.raises(RuntimeError):
        with cat.transaction():
            cat.put_failed("/x.wav", 1, 1, "r")
            raise RuntimeError("boom")
    assert cat.files() == []


def test_spectrogram_store_windows_are_memory_mapped(tmp_path):
    store = SpectrogramStore(tmp_path / "spec", "fv1")
    spec = np.random.default_rng(0).normal(-40, 10, (2, 5000, 128)).astype(np.float32)
    store.write(SpectrogramInfo("deadbeef", 2, 5000, 116.0, 44100, "flac"), spec)
    mapped = store.open("deadbeef")
    assert isinstance(mapped, np.memmap) and mapped.dtype == np.float16
    window = mapped[1, 1000:1640]             # one channel, 640 frames: a contiguous slice
    assert window.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(window, spec[1, 1000:1640], atol=0.05)
    assert store.info("deadbeef").frames == 5000
    assert not list((tmp_path / "spec").rglob("*.tmp-*"))


def test_garbage_collection_keeps_only_live_audio(tmp_path):
    store = SpectrogramStore(tmp_path / "spec", "fv2")
    old = SpectrogramStore(tmp_path / "spec", "fv1")
    for s, name in ((store, "keep"), (store, "drop"), (old, "stale")):
        s.write(SpectrogramInfo(name, 1, 10, 0.2, 22050, "pcm"), np.zeros((1, 10, 128)))
    freed = store.collect_garbage({"keep"})
    assert freed > 0
    assert store.exists("keep") and not store.exists("drop") and not old.exists("stale")
