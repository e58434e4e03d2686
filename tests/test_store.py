"""The SQLite catalogue and the memory-mapped spectrogram store."""

import sqlite3

import numpy as np
import pytest

from reform.errors import StoreError
from reform.home import Home
from reform.store import (SCHEMA_VERSION, Catalogue, FileRow, SpectrogramInfo, SpectrogramStore, Tags, catalogue_error,
                          one_per_recording)


def test_catalogue_is_wal_and_versioned(tmp_path):
    cat = Catalogue(tmp_path / "c.db")
    assert cat.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert cat.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert cat.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_newer_schema_is_refused(tmp_path):
    conn = sqlite3.connect(tmp_path / "c.db")
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError, match="newer"):
        Catalogue(tmp_path / "c.db")


def test_missing_library_is_a_clear_error(tmp_path):
    with pytest.raises(StoreError, match="no library"):
        Home(tmp_path / "nothing", create=False)


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


# -- a catalogue is never taken for a new library unless there is none --------------------------------
def _scanned_home(tmp_path, music):
    from reform import Library

    with Library(tmp_path / "home") as lib:
        lib.scan(music, jobs=1)
        return lib.home.path, sorted(lib.home.spectrograms.digests())


def _replace_catalogue(home, content: bytes) -> None:
    for name in ("catalogue.db-wal", "catalogue.db-shm"):
        (home / name).unlink(missing_ok=True)
    (home / "catalogue.db").write_bytes(content)


@pytest.mark.parametrize("content, reason", [
    (b"", "empty \\(0 bytes\\)"),
    (b"\x00" * 4096, "not an SQLite database"),
    (b"garbage " * 1000, "not an SQLite database"),
])
def test_a_damaged_catalogue_is_refused_and_nothing_is_deleted(tmp_path, music, content, reason):
    from reform import Library

    home, digests = _scanned_home(tmp_path, music)
    _replace_catalogue(home, content)
    with pytest.raises(StoreError, match=reason) as err:
        Library(home).scan(music, jobs=1)
    assert "reform check --repair" in err.value.hint
    assert (home / "catalogue.db").read_bytes() == content           # left as it was
    with pytest.raises(StoreError):
        Home(home, create=False)
    assert sorted(SpectrogramStore(home / "spectrograms", "x").base.rglob("*.npy")) and \
        len(list((home / "spectrograms").rglob("*.npy"))) == len(digests)


def test_opening_a_catalogue_again_in_one_process_keeps_the_others_from_taking_its_log(tmp_path):
    """The web page's jobs open the catalogue in a process that has it open already. Opening it
    must not close a descriptor of the database file: that dropped the process's SQLite locks,
    and the next command to end took itself for the only user, checkpointed and deleted the
    write-ahead log under the page (its writes were lost)."""
    import subprocess
    import sys

    path = tmp_path / "catalogue.db"
    page = Catalogue(path, create=True)
    page.conn.execute("SELECT count(*) FROM files").fetchone()
    job = Catalogue(path)                        # as a page job does, in the same process
    job.close()
    command = "from reform.store import Catalogue; c = Catalogue(__import__('sys').argv[1]); c.close()"
    subprocess.run([sys.executable, "-c", command, str(path)], check=True)   # a command that ends
    assert (tmp_path / "catalogue.db-wal").exists()   # still the page's: nobody else may checkpoint it away
    page.close()
    subprocess.run([sys.executable, "-c", command, str(path)], check=True)
    assert not (tmp_path / "catalogue.db-wal").exists()   # once the page is gone, the last user does


def test_another_programs_database_is_refused(tmp_path):
    conn = sqlite3.connect(tmp_path / "c.db")
    conn.execute("CREATE TABLE songs (x)")
    conn.close()
    with pytest.raises(StoreError, match="not a ReFORM catalogue"):
        Catalogue(tmp_path / "c.db")
    conn = sqlite3.connect(tmp_path / "d.db")
    conn.execute("PRAGMA user_version = 1")                         # our version, not our tables
    conn.close()
    with pytest.raises(StoreError, match="lacks its tables embeddings, files, meta"):
        Catalogue(tmp_path / "d.db")


def test_a_new_catalogue_is_created_whole(tmp_path):
    Catalogue(tmp_path / "c.db").close()
    assert sorted(p.name for p in tmp_path.iterdir() if "tmp" in p.name) == []
    assert Catalogue(tmp_path / "c.db").conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_journal_left_by_a_deleted_catalogue_is_not_replayed(tmp_path):
    cat = Catalogue(tmp_path / "c.db")
    with cat.transaction():
        cat.put_failed("/old.wav", 1, 1, "r")
    stale = (tmp_path / "c.db-wal").read_bytes()
    cat.close()
    (tmp_path / "c.db").unlink()
    (tmp_path / "c.db-wal").write_bytes(stale or b"\x00" * 32)
    assert Catalogue(tmp_path / "c.db").files() == []


def test_open_checks_the_spectrogram_against_its_description(tmp_path):
    store = SpectrogramStore(tmp_path / "spec", "fv")
    store.write(SpectrogramInfo("abc", 1, 100, 2.3, 22050, "pcm"), np.zeros((1, 100, 128)))
    np.save(store.path("abc"), np.zeros((1, 50, 128), np.float16))   # overwritten: wrong shape
    with pytest.raises(StoreError, match="damaged: float16 \\(1, 50, 128\\).*100 frames"):
        store.open("abc")
    with open(store.path("abc"), "r+b") as f:
        f.truncate(200)                                                   # truncated
    with pytest.raises(StoreError, match="missing or unreadable") as err:
        store.open("abc")
    assert "reform check --repair" in err.value.hint


def test_spectrograms_and_embeddings_that_are_not_finite_are_never_stored(tmp_path):
    from reform.errors import FeatureError

    store = SpectrogramStore(tmp_path / "spec", "fv")
    bad = np.zeros((1, 10, 128))
    bad[0, 3, 5] = np.nan
    with pytest.raises(FeatureError, match="not finite"):
        store.write(SpectrogramInfo("nan", 1, 10, 0.2, 22050, "pcm"), bad)
    with pytest.raises(FeatureError):   # finite in float32, infinite in the store's float16
        store.write(SpectrogramInfo("big", 1, 10, 0.2, 22050, "pcm"), np.full((1, 10, 128), 1e6))
    assert not list((tmp_path / "spec").rglob("*.npy"))
    cat = Catalogue(tmp_path / "c.db")
    with pytest.raises(StoreError, match="not finite"):
        with cat.transaction():
            cat.put_embeddings("m", [("a", np.ones(4)), ("b", np.array([1, np.inf, 0, 0]))])
    assert cat.embeddings("m") == {}                                      # all or nothing
    cat.conn.execute("INSERT INTO embeddings VALUES ('old', 'm', ?)",
                     (np.array([np.nan] * 4, np.float32).tobytes(),))   # from an older ReFORM
    assert cat.embeddings("m") == {} and set(cat.embeddings("m", finite_only=False)) == {"old"}


def test_embeddings_of_another_size_than_most_are_left_out_of_the_matrix(tmp_path):
    cat = Catalogue(tmp_path / "c.db")
    with cat.transaction():
        cat.put_embeddings("m", [("a", np.ones(4)), ("b", np.full(4, 2.0))])
    cat.conn.execute("INSERT INTO embeddings VALUES ('odd', 'm', ?)", (np.ones(8, np.float32).tobytes(),))
    hashes, matrix = cat.embedding_matrix("m")   # damage `reform check` names: every query broke on it
    assert hashes == ["a", "b"] and matrix.tolist() == [[1.0] * 4, [2.0] * 4]
    hashes, matrix = cat.embedding_matrix("none")
    assert hashes == [] and matrix.shape == (0, 0)


def test_garbage_collection_spares_what_a_live_writer_owns(tmp_path):
    import os
    import time

    store = SpectrogramStore(tmp_path / "spec", "fv")
    info = SpectrogramInfo("old", 1, 10, 0.2, 22050, "pcm")
    store.write(info, np.zeros((1, 10, 128)))
    os.utime(store.path("old"), (time.time() - 60,) * 2)
    started = time.time() - 1
    store.write(SpectrogramInfo("new", 1, 10, 0.2, 22050, "pcm"), np.zeros((1, 10, 128)))
    live = store.path("old").with_name(f".x.npy.tmp-{os.getpid()}-1")
    dead = store.path("old").with_name(f".x.npy.tmp-{2 ** 22 + 7}-1")
    live.write_bytes(b"writing")
    dead.write_bytes(b"abandoned")
    store.collect_garbage(set(), written_before=started)
    assert not store.exists("old") and store.exists("new")           # another writer's, not recorded yet
    assert live.exists() and not dead.exists()


def test_a_full_disk_rolls_the_catalogue_back_with_one_error(tmp_path):
    """SQLite's own 'database or disk is full' becomes a WriteError; nothing is half-written."""
    import subprocess
    import sys

    code = f"""
import resource, signal, sys
from reform.errors import WriteError
from reform.store import Catalogue, SpectrogramInfo, Tags
cat = Catalogue({str(tmp_path / 'c.db')!r})
with cat.transaction():
    cat.put_failed("/first.wav", 1, 1, "kept")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))   # a disk that fills up
try:
    with cat.transaction():
        for i in range(5000):
            cat.put_failed(f"/m/{{i:05d}}-{{'x' * 200}}.wav", i, i, "r" * 200)
except WriteError as exc:
    print("WriteError", exc.message, "|", exc.hint)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith("WriteError cannot write the catalogue"), out.stdout + out.stderr
    assert "free" in out.stdout and "what was finished is kept" in out.stdout   # EFBIG: an I/O error
    cat = Catalogue(tmp_path / "c.db")
    assert [r.path for r in cat.files()] == ["/first.wav"]
    assert cat.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_version_1_catalogues_learn_which_failures_to_retry(tmp_path):
    from reform.store import MIGRATIONS

    conn = sqlite3.connect(tmp_path / "c.db")
    conn.executescript(MIGRATIONS[0] + "PRAGMA user_version = 1;")
    for path, reason in (("/m/locked.wav", "permission denied: the file cannot be read"),
                         ("/m/bad.wav", "not a readable audio file")):
        conn.execute("INSERT INTO files (path, size, mtime_ns, status, reason, updated_at) "
                     "VALUES (?, 1, 1, 'failed', ?, 0)", (path, reason))
    conn.commit()
    conn.close()
    cat = Catalogue(tmp_path / "c.db")
    assert cat.file(path="/m/locked.wav").retry and not cat.file(path="/m/bad.wav").retry
    assert cat.most_played(5) == []


def test_read_only_catalogue_reads_and_never_writes(tmp_path):
    cat = Catalogue(tmp_path / "c.db")
    with cat.transaction():
        cat.put_failed("/m/bad.mp3", 1, 2, "not a readable audio file")
    cat.close()
    reader = Catalogue(tmp_path / "c.db", read_only=True)
    assert reader.counts()["failed"] == 1
    with pytest.raises(sqlite3.OperationalError, match="readonly") as refused:
        reader.set_meta("k", "v")
    error = catalogue_error(refused.value, tmp_path / "c.db")   # said as a home one cannot write to
    assert "writable" in error.hint and "check the disk" not in error.hint
    reader.close()
    with pytest.raises(StoreError, match="no catalogue"):
        Catalogue(tmp_path / "none.db", read_only=True)


def test_a_recording_is_shown_under_a_copy_that_is_there(tmp_path):
    """A moved folder that a scan keeps (as it keeps an unmounted disk) leaves gone copies."""
    def row(i, path, digest):
        return FileRow(i, str(path), 1, 1, digest, "ok", None, 10.0, 44100, 2, 100, "wav", "fv",
                       None, None, None, None, None, None, 0.0)

    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "song.wav").write_bytes(b"x")
    gone, there = row(1, tmp_path / "away" / "song.wav", "h1"), row(2, tmp_path / "new" / "song.wav", "h1")
    lone = row(3, tmp_path / "away" / "lone.wav", "h2")
    both_gone = [row(4, tmp_path / "a" / "z.wav", "h3"), row(5, tmp_path / "b" / "z.wav", "h3")]
    chosen = one_per_recording([gone, there, lone, *both_gone])
    assert chosen["h1"] is there and chosen["h2"] is lone and chosen["h3"] is both_gone[0]
    (tmp_path / "away").mkdir()
    (tmp_path / "away" / "song.wav").write_bytes(b"x")
    assert one_per_recording([there, gone])["h1"] is gone     # both there: the first by name
    import dataclasses
    tagged = dataclasses.replace(there, artist="Aleksi", album="Wesnoth")   # a tagged copy, later by name
    assert one_per_recording([gone, tagged])["h1"] is tagged  # shown before an untagged "empty.mp3"
    cat = Catalogue(tmp_path / "c.db")            # the rows a recommender shows: the same choice
    info = SpectrogramInfo("h1", 2, 100, 2.3, 44100, "pcm")
    with cat.transaction():
        for path in (tmp_path / "a-old" / "song.wav", tmp_path / "new" / "song.wav"):
            cat.put_ok(str(path), 1, 1, info, Tags(), "fv")
    assert cat.rows_by_hash(["h1"])["h1"].path == str(tmp_path / "new" / "song.wav")


def test_a_disk_io_error_on_a_full_disk_is_said_to_be_a_full_disk(tmp_path, monkeypatch):
    """SQLite reports a full disk as 'disk I/O error' when its journal cannot grow."""
    import collections
    import sqlite3

    from reform import store
    from reform.store import catalogue_error

    exc = sqlite3.OperationalError("disk I/O error")
    exc.sqlite_errorcode = 10   # SQLITE_IOERR
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(store.shutil, "disk_usage", lambda _: usage(100 << 20, 100 << 20, 4096))
    assert "No space left on device" in str(catalogue_error(exc, tmp_path / "catalogue.db"))
    monkeypatch.setattr(store.shutil, "disk_usage", lambda _: usage(100 << 20, 50 << 20, 50 << 20))
    assert "disk I/O error" in str(catalogue_error(exc, tmp_path / "catalogue.db"))


def test_a_home_moved_while_spectrograms_are_written_is_not_made_again(tmp_path):
    """A home renamed during a scan: the spectrograms still to come made its folders again at the
    old place, and the scan ended "analysed 19 songs" with half of them there."""
    from reform.errors import WriteError

    home = tmp_path / "home"
    home.mkdir()
    store = SpectrogramStore(home / "spectrograms", "v1")
    store.write(SpectrogramInfo("ab12", 1, 10, 0.2, 22050, "pcm"), np.zeros((1, 10, 128)))
    home.rename(tmp_path / "moved")
    with pytest.raises(WriteError, match="the library home is not there any more") as err:
        store.write(SpectrogramInfo("cd34", 1, 10, 0.2, 22050, "pcm"), np.zeros((1, 10, 128)))
    assert err.value.path == str(home) and not home.exists()
    fresh = SpectrogramStore(tmp_path / "new" / "spectrograms", "v1")   # a new home's store is made
    (tmp_path / "new").mkdir()
    fresh.write(SpectrogramInfo("ef56", 1, 10, 0.2, 22050, "pcm"), np.zeros((1, 10, 128)))
    assert fresh.exists("ef56")


def test_a_spectrogram_whose_header_is_garbled_is_said_to_be_damaged(tmp_path):
    """numpy reads a file whose magic bytes are gone as pickled objects, and its message, which
    `reform check` passed on, advised loading it unsafely."""
    store = SpectrogramStore(tmp_path / "spectrograms", "v1")
    store.write(SpectrogramInfo("ab12", 1, 10, 0.2, 22050, "pcm"), np.zeros((1, 10, 128)))
    with open(store.path("ab12"), "r+b") as f:
        f.write(b"XXXXXX")
    with pytest.raises(StoreError, match=r"unreadable \(its header is damaged\)") as err:
        store.open("ab12")
    assert "pickle" not in str(err.value) and "check --repair" in err.value.hint
