"""`reform check`: damaged spectrograms, embeddings and catalogues are found, named and repaired."""

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from reform import Library
from reform.check import catalogue_problem
from reform.home import RunFiles
from reform.cli import main
from reform.errors import BusyError, StoreError
from reform.lock import WriterLock


@pytest.fixture
def home(trained, tmp_path):
    """A copy of the trained library (tiny model active, every song embedded)."""
    out = tmp_path / "home"
    shutil.copytree(trained, out)
    return out


def _songs(home) -> dict[str, object]:
    with Library(home, create=False) as lib:
        return {s.title: s for s in lib.songs()}


def _damage_spectrograms(home) -> dict[str, str]:
    """The issue's four kinds of damage, one song each; returns title -> expected reason."""
    songs = _songs(home)
    with Library(home, create=False) as lib:
        path = lib.home.spectrograms.path
        path(songs["A Four Forty"].hash).unlink()
        with open(path(songs["Chord"].hash), "r+b") as f:
            f.truncate(5000)
        np.save(path(songs["White"].hash), np.zeros((2, 10, 128), np.float16))
        spec = np.load(path(songs["Clicks"].hash), mmap_mode="r+")
        spec[0, 100, 7] = np.nan
        spec.flush()
    return {"A Four Forty": "missing", "Chord": "unreadable", "White": "damaged: float16 (2, 10, 128)",
            "Clicks": "not finite"}


def test_damaged_spectrograms_are_listed_then_analysed_again(home, capsys):
    expected = _damage_spectrograms(home)
    songs = _songs(home)
    assert main(["--home", str(home), "-q", "check"]) == 1
    out = capsys.readouterr().out
    assert "checked 5 spectrograms, their embeddings" in out and "4 problems" in out
    for title, reason in expected.items():
        line = next(x for x in out.splitlines() if x.strip().startswith(songs[title].path))
        assert "spectrogram: " in line and reason in line, line
    assert f"run `reform --home {home} check --repair`" in out

    with Library(home, create=False) as lib:
        roots = lib.home.roots()
    assert main(["--home", str(home), "-q", "check", "--repair", "--jobs", "1"]) == 0
    assert "after the repair: 0 problems" in capsys.readouterr().out
    with Library(home, create=False) as lib:
        assert lib.home.roots() == roots     # the repaired files are not folders to scan from now on
        for song in lib.songs():
            assert np.isfinite(lib.spectrogram(song.path)).all()
        assert lib.stale_embeddings() == 0
        again, _ = lib.check()
        assert again.problems == []
    # the tags the folders give (Artist/Album/NN Title) survive: a repair lost artist and album
    assert {t: (s.artist, s.album) for t, s in _songs(home).items()} == \
        {t: (s.artist, s.album) for t, s in songs.items()}
    assert songs["Chord"].artist == "Tone Band"


def test_an_interrupted_repair_keeps_every_sound_embedding(home, capsys, monkeypatch):
    """The embeddings of songs whose spectrograms are damaged came from the same audio: a repair
    cut short (or unable to reach the files) must not take the songs out of recommendations."""
    from reform.scan import ScanSummary

    _damage_spectrograms(home)
    monkeypatch.setattr(Library, "scan", lambda self, *paths, **kw: ScanSummary(interrupted=True))
    assert main(["--home", str(home), "-q", "check", "--repair", "--jobs", "1"]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and f"`reform --home {home} check --repair` goes on" in err
    with Library(home, create=False) as lib:
        assert lib.embedding_status()["missing"] == 0
        assert len(lib.similar("Chord", n=3)) == 3      # a song whose spectrogram was damaged


def test_an_embedding_that_is_not_finite_is_never_served_and_is_repaired(home, capsys):
    songs = _songs(home)
    with Library(home, create=False) as lib:
        model = lib.home.catalogue.get_meta("embedding_model")
        vectors = lib.home.catalogue.embeddings(model)
        poisoned = np.full_like(vectors[songs["Clicks"].hash], np.nan)
        lib.home.catalogue.conn.execute("UPDATE embeddings SET vector = ? WHERE hash = ?",
                                        (poisoned.tobytes(), songs["Clicks"].hash))
    assert main(["--home", str(home), "-q", "similar", "Chord", "--json", "-n", "10"]) == 0
    out = capsys.readouterr().out
    found = json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    titles = [r["title"] for r in found]
    assert "Clicks" not in titles and len(titles) == 3 and all(np.isfinite(r["score"]) for r in found)

    assert main(["--home", str(home), "-q", "check"]) == 1
    assert "embedding: the embedding holds values that are not finite numbers" in capsys.readouterr().out
    assert main(["--home", str(home), "-q", "check", "--repair"]) == 0
    with Library(home, create=False) as lib:
        assert np.isfinite(lib.embeddings()[1][songs["Clicks"].hash]).all()


def test_an_embedding_cut_inside_a_number_is_named_and_repaired(home, capsys):
    """Ten bytes left of a vector: `check`, `check --repair` and `similar` ended in numpy's traceback."""
    songs = _songs(home)
    with Library(home, create=False) as lib:
        lib.home.catalogue.conn.execute("UPDATE embeddings SET vector = substr(vector, 1, 10) WHERE hash = ?",
                                        (songs["Clicks"].hash,))
    assert main(["--home", str(home), "-q", "similar", "Chord", "--json", "-n", "10"]) == 0
    assert "Clicks" not in [r["title"] for r in json.loads(capsys.readouterr().out)]
    assert main(["--home", str(home), "-q", "check"]) == 1
    assert "embedding: the embedding is damaged: its bytes end inside a number" in capsys.readouterr().out
    with Library(home, create=False) as lib:              # two bytes too many: as many whole numbers as
        blob, = lib.home.catalogue.conn.execute("SELECT vector FROM embeddings WHERE hash = ?",
                                                (songs["White"].hash,)).fetchone()   # the others, and
        lib.home.catalogue.conn.execute("UPDATE embeddings SET vector = ? WHERE hash = ?",   # left out of queries
                                        (blob + b"\0\0", songs["White"].hash))
    assert main(["--home", str(home), "-q", "check"]) == 1
    assert capsys.readouterr().out.count("its bytes end inside a number") == 2
    assert main(["--home", str(home), "-q", "check", "--repair"]) == 0
    capsys.readouterr()
    assert main(["--home", str(home), "-q", "check"]) == 0
    with Library(home, create=False) as lib:
        assert np.isfinite(lib.embeddings()[1][songs["Clicks"].hash]).all()


def test_songs_without_an_embedding_of_another_model_are_sent_to_embed_not_to_the_repair(home, capsys):
    """With the embeddings of another model than the active one, a repair embeds with the active
    one, and the songs it analysed again still lack the stored model's: `check` sent the user to
    `check --repair` again and again, where only `reform embed` helps."""
    songs = _songs(home)
    with Library(home, create=False) as lib:
        lib.use("shipped")                             # the stored embeddings are the tiny model's
        lib.home.catalogue.drop_embeddings(hashes=[songs["Chord"].hash])
    assert main(["--home", str(home), "-q", "check"]) == 1
    out = capsys.readouterr().out
    assert "embedding: no embedding" in out and "check --repair" not in out
    assert f"`reform --home {home} embed` replaces them all, these songs' too" in out
    assert main(["--home", str(home), "-q", "embed"]) == 0
    assert main(["--home", str(home), "-q", "check"]) == 0


def test_embeddings_whose_model_the_catalogue_lost_are_still_served(home, capsys):
    """A repair of a damaged catalogue salvaged the embeddings but not the row naming their model:
    every command then said "no song has an embedding yet", and `check` found 0 problems."""
    with Library(home, create=False) as lib:
        catalogue = lib.home.catalogue
        key = catalogue.get_meta("embedding_model")
        with catalogue.transaction():
            catalogue.conn.execute("DELETE FROM meta WHERE key = 'embedding_model'")
        assert lib.home.embedding_model() == key     # the key the embeddings carry
        with catalogue.transaction():                 # another model's kept, more of them: the active one's
            catalogue.put_embeddings("older-model", [(f"h{i}", np.ones(4, np.float32)) for i in range(9)])
        assert lib.home.embedding_model() == key
    assert main(["--home", str(home), "-q", "similar", "Chord", "-n", "3"]) == 0
    assert "songs like" in capsys.readouterr().out
    assert main(["--home", str(home), "-q", "status"]) == 0
    embedded = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("embedded:"))
    assert "none" not in embedded and "run `reform embed`" not in embedded, embedded


def _flip(catalogue, old: bytes, new: bytes) -> None:
    data = catalogue.read_bytes()
    assert data.count(old) >= 1
    catalogue.write_bytes(data.replace(old, new))


def test_a_catalogue_with_flipped_bytes_is_one_error_then_rebuilt(home, capsys):
    catalogue = home / "catalogue.db"
    wal = home / "catalogue.db-wal"   # every connection closed: all in the file (a read-only
    assert not wal.exists() or wal.stat().st_size == 0   # reader, as the web server, leaves it empty)
    _flip(catalogue, b"White", b"\xff\xfeite")            # a path that is no longer UTF-8
    for command in (["similar", "Chord"], ["scan", "--jobs", "1"]):
        assert main(["--home", str(home), "-q", *command]) == 1, command
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 2 and "damaged" in err[0] and f"reform --home {home} check --repair" in err[1], err

    assert "could not decode" in catalogue_problem(catalogue).lower()
    assert main(["--home", str(home), "-q", "check"]) == 1
    assert "catalogue: the catalogue is damaged" in capsys.readouterr().out
    assert main(["--home", str(home), "-q", "check", "--repair", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "rebuilt the catalogue: 4 rows kept, 1 unreadable, 5 embeddings kept" in out
    assert "1 song added back from their stored spectrograms, 0 analysed" in out
    assert "0 problems" in out and list(home.glob("catalogue.db.damaged-*"))
    with Library(home, create=False) as lib:
        assert len(lib.songs()) == 5 and lib.stale_embeddings() == 0


def test_an_empty_catalogue_is_rebuilt_and_the_spectrograms_reused(scanned, tmp_path, capsys):
    home = tmp_path / "home"
    shutil.copytree(scanned, home)
    with sqlite3.connect(home / "catalogue.db") as conn:
        music = json.loads(conn.execute("SELECT value FROM meta WHERE key = 'roots'").fetchone()[0])[0]
    (home / "catalogue.db").write_bytes(b"")
    assert main(["--home", str(home), "-q", "scan", "--jobs", "1"]) == 1
    assert "empty (0 bytes)" in capsys.readouterr().err
    assert len(list((home / "spectrograms").rglob("*.npy"))) == 5   # nothing was deleted
    assert main(["--home", str(home), "-q", "check", "--repair", "--jobs", "1"]) == 0
    # the music folders are kept beside the catalogue too: the repair scans them again, and no
    # audio is decoded again
    assert "scanned the music folders again: 5 songs added back from their stored spectrograms, " \
           "0 analysed" in capsys.readouterr().out
    with Library(home, create=False) as lib:
        assert lib.home.roots() == [music] and len(lib.songs()) == 5
    (home / "folders.json").unlink()                    # without that copy: the user is told what to do
    (home / "catalogue.db").write_bytes(b"")
    assert main(["--home", str(home), "-q", "check", "--repair"]) == 0
    assert f"run `reform --home {home} scan FOLDER` to add the songs back" in capsys.readouterr().out
    with Library(home, create=False) as lib:
        summary = lib.scan(music, jobs=1)
        assert (summary.reused, summary.analysed) == (5, 0)          # no audio decoded again


def test_a_deleted_catalogue_is_named_and_built_again_from_what_remains(home, capsys):
    """Deleting catalogue.db left a home of spectrograms, runs and folders that every command
    called "no library", and `check --repair` could not be pointed at it."""
    (home / "catalogue.db").unlink()
    for command in (["status"], ["similar", "Chord"]):
        assert main(["--home", str(home), "-q", *command]) == 1, command
        err = capsys.readouterr().err
        assert "catalogue is missing (5 spectrograms, 1 training run and the list of music folders remain)" in err
        assert f"reform --home {home} check --repair" in err
    assert main(["--home", str(home), "-q", "check"]) == 1
    assert "catalogue: the catalogue is missing" in capsys.readouterr().out
    assert main(["--home", str(home), "-q", "check", "--repair", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "built a new catalogue" in out and "damaged" not in out
    assert "5 songs added back from their stored spectrograms, 0 analysed" in out
    with Library(home, create=False) as lib:
        assert len(lib.songs()) == 5 and lib.models.active_name() == "tiny"   # the choice of model too
        assert lib.stale_embeddings() == 0
        roots = lib.home.roots()
    # and the new catalogue holds them: they lived in their copies alone, so that losing the copy
    # then made the shipped model the active one ("run `reform embed`", which replaces every
    # embedding), while `check` saw no problem
    (home / "models" / "active").unlink()
    (home / "folders.json").unlink()
    with Library(home, create=False) as lib:
        assert lib.models.active_name() == "tiny" and lib.home.roots() == roots
    assert main(["--home", str(home), "-q", "check"]) == 1
    out = capsys.readouterr().out
    assert "models/active: the copy of the active model's name is missing" in out
    assert "folders.json: the copy of the music folders is missing" in out
    assert main(["--home", str(home), "-q", "check", "--repair"]) == 0
    assert (home / "models" / "active").read_text().strip() == "tiny"


def test_a_scan_of_a_home_without_its_catalogue_reuses_the_spectrograms(home, capsys):
    (home / "catalogue.db").unlink()
    (home / "catalogue.db-wal").write_bytes(b"a journal of the deleted catalogue")
    assert main(["--home", str(home), "-q", "scan", "--jobs", "1"]) == 0    # the folders from folders.json
    out = capsys.readouterr().out
    assert "catalogue is missing (5 spectrograms" in out and "reused 5" in out and "analysed 0 songs" in out
    with Library(home, create=False) as lib:
        assert len(lib.songs()) == 5
    empty = home.parent / "empty"
    empty.mkdir()
    assert main(["--home", str(empty), "-q", "status"]) == 1    # where no library was: as before
    assert "no library at" in capsys.readouterr().err


def test_a_rebuild_cut_short_is_finished_by_the_next_repair_and_loses_no_spectrogram(home, tmp_path,
                                                                                    monkeypatch, capsys):
    """Ctrl-C in the repair's scan said "0 problems" with most songs missing, the next repair
    found nothing to do, and a scan of another folder then deleted the missing songs'
    spectrograms as garbage: each of them had to be decoded again."""
    import reform.scan as scan_module
    from conftest import tone, write

    spectrograms = sorted(p.name for p in (home / "spectrograms").rglob("*.npy"))
    (home / "catalogue.db").unlink()
    analyse, calls = scan_module.analyse_entry, []

    def cut(*args, **kwargs):   # Ctrl-C after two songs
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return analyse(*args, **kwargs)

    monkeypatch.setattr(scan_module, "analyse_entry", cut)
    assert main(["--home", str(home), "-q", "check", "--repair", "--jobs", "1"]) == 130
    assert f"interrupted: 2 songs added back so far; run `reform --home {home} check --repair` again" in \
        capsys.readouterr().err
    monkeypatch.setattr(scan_module, "analyse_entry", analyse)
    with Library(home, create=False) as lib:
        assert len(lib.songs()) == 2 and lib.home.unfinished()
    main(["--home", str(home), "-q", "similar", "Chord"])     # whatever a command says, the way on too
    assert f"not all its songs are back yet: `reform --home {home} check --repair` adds them back" in \
        capsys.readouterr().err
    write(tmp_path / "other" / "new.wav", tone(880, 3))
    assert main(["--home", str(home), "-q", "scan", str(tmp_path / "other"), "--jobs", "1"]) == 0
    assert set(spectrograms) <= {p.name for p in (home / "spectrograms").rglob("*.npy")}   # none collected
    assert main(["--home", str(home), "-q", "check"]) == 1
    assert "not all its songs added back yet" in capsys.readouterr().out
    assert main(["--home", str(home), "status"]) == 0
    assert "catalogue:    made again, and not all its songs added back yet" in capsys.readouterr().out
    assert main(["--home", str(home), "-q", "check", "--repair", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "3 songs added back from their stored spectrograms, 0 analysed" in out and "0 problems" in out
    with Library(home, create=False) as lib:
        assert len(lib.songs()) == 6 and not lib.home.unfinished()


def test_the_copies_beside_the_catalogue_are_checked_and_written_again(home, capsys):
    """A deleted models/active or folders.json went unnoticed, and a later loss of the catalogue
    then took the user's model, or the music folders, with it."""
    (home / "models" / "active").unlink()
    (home / "folders.json").write_text("[]\n")
    assert main(["--home", str(home), "-q", "check"]) == 1
    out = capsys.readouterr().out
    assert "copies beside the catalogue: 2 problems" in out
    assert "models/active: the copy of the active model's name is missing or differs" in out
    assert "folders.json: the copy of the music folders is missing or differs" in out
    assert main(["--home", str(home), "-q", "check", "--repair"]) == 0
    assert "copies beside the catalogue: written again" in capsys.readouterr().out
    assert (home / "models" / "active").read_text() == "tiny\n"
    (home / "catalogue.db").unlink()                 # what the copies are for
    assert main(["--home", str(home), "-q", "check", "--repair"]) == 0
    capsys.readouterr()
    with Library(home, create=False) as lib:
        assert lib.models.active_name() == "tiny" and len(lib.songs()) == 5


def test_the_active_model_outlives_an_emptied_catalogue(home, capsys):
    """Which model the user chose is not in the audio, so a scan cannot find it again."""
    with Library(home, create=False) as lib:
        assert lib.models.active_name() == "tiny"
    (home / "catalogue.db").write_bytes(b"")
    assert main(["--home", str(home), "-q", "check", "--repair"]) == 0
    capsys.readouterr()
    with Library(home, create=False) as lib:
        assert lib.models.active_name() == "tiny"
        lib.use("shipped")                  # and a choice made after the rebuild is the one kept
    with sqlite3.connect(home / "catalogue.db") as conn:
        conn.execute("DELETE FROM meta WHERE key = 'active_model'")
    with Library(home, create=False) as lib:
        assert lib.models.active_name() == "shipped"


def test_a_catalogue_of_the_first_schema_is_rebuilt_with_its_rows(tmp_path):
    from reform.check import rebuild_catalogue
    from reform.store import MIGRATIONS, Catalogue

    conn = sqlite3.connect(tmp_path / "catalogue.db")  # no retry column, no plays table yet
    conn.executescript(MIGRATIONS[0] + "PRAGMA user_version = 1;")
    conn.execute("INSERT INTO files (path, size, mtime_ns, status, reason, updated_at) "
                 "VALUES ('/m/a.wav', 1, 1, 'failed', 'permission denied: the file cannot be read', 0)")
    conn.commit()
    conn.close()
    assert rebuild_catalogue(tmp_path / "catalogue.db").kept == 1
    catalogue = Catalogue(tmp_path / "catalogue.db")
    assert catalogue.file(path="/m/a.wav").reason.startswith("permission denied")
    catalogue.close()


def test_a_lost_spectrogram_of_a_file_that_is_gone_says_why_it_cannot_come_back(home, tmp_path, capsys):
    with Library(home, create=False) as lib:
        song = next(s for s in lib.songs() if s.title == "Chord")
        lib.home.spectrograms.path(song.hash).unlink()
    moved = tmp_path / "moved.flac"
    shutil.move(song.path, moved)                       # its disk is away
    assert main(["--home", str(home), "-q", "train", "--name", "again", "--max-epochs", "1"]) == 1
    err = capsys.readouterr().err    # named by its path before any epoch, not by a hash in the middle of one
    assert f"1 song of the library has a spectrogram that is lost or cannot be read: {song.path}" in err
    assert "--forget-missing" in err
    assert main(["--home", str(home), "-q", "check", "--repair"]) == 1
    out = capsys.readouterr().out.split("after the repair")[1]
    assert "the file is not there either, so it cannot be analysed again" in out
    assert main(["--home", str(home), "-q", "check"]) == 1   # no "run check --repair": it just could not help
    out = capsys.readouterr().out
    assert "cannot be analysed again" in out and "check --repair" not in out
    shutil.move(moved, song.path)                        # back: the repair analyses it again
    assert main(["--home", str(home), "-q", "check", "--repair"]) == 0


def test_a_truncated_spectrogram_is_named_by_train_and_left_out_by_evaluate(home, capsys):
    """`train` and `evaluate` stopped on one damaged spectrogram, named by its hash, where `embed`
    leaves the song out: train now names the song before any epoch, evaluate leaves it out."""
    songs = _songs(home)
    with Library(home, create=False) as lib:
        with open(lib.home.spectrograms.path(songs["Chord"].hash), "r+b") as f:
            f.truncate(5000)
    assert main(["--home", str(home), "-q", "train", "--name", "again", "--max-epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert f"1 song of the library has a spectrogram that is lost or cannot be read: {songs['Chord'].path}" in err
    assert "check --repair" in err
    assert main(["--home", str(home), "-q", "evaluate", "--no-baselines"]) == 0
    out = capsys.readouterr().out
    assert "1 song left out: its spectrogram is missing or damaged (" in out and "02 Chord" in out


def test_the_play_history_outlives_the_catalogue(home, capsys):
    """Plays are nowhere in the music: a deleted catalogue took `reform mpd`'s history, and with
    it `reform playlists --most-played`, without a word."""
    with Library(home, create=False) as lib:
        songs = {s.title: s for s in lib.songs()}
        with lib.home.catalogue.transaction():       # a play recorded before the copy existed
            lib.home.catalogue.add_play(songs["White"], "mpd", when=1.0)
        for title in ("Chord", "Chord", "Clicks"):
            lib.home.record_play(songs[title], "mpd")
        before = lib.home.catalogue.plays()
    assert len(before) == 4 and len((home / "plays.jsonl").read_text().splitlines()) == 4
    (home / "catalogue.db").unlink()
    assert main(["--home", str(home), "-q", "status"]) == 1
    assert "the list of music folders and the play history remain" in capsys.readouterr().err
    assert main(["--home", str(home), "-q", "check", "--repair"]) == 0
    capsys.readouterr()
    with Library(home, create=False) as lib:
        assert lib.home.catalogue.plays() == before
        assert [r.title for r in lib.most_played(1)] == ["Chord"]
    log = home / "plays.jsonl"                      # a crash in the middle of a line, then a play
    log.write_text(log.read_text()[:-40])
    with Library(home, create=False) as lib:
        lib.home.record_play(songs["White"], "mpd")
    (home / "catalogue.db").unlink()
    assert main(["--home", str(home), "-q", "check", "--repair"]) == 0
    capsys.readouterr()
    with Library(home, create=False) as lib:                # the cut line alone is lost
        assert lib.home.catalogue.plays()[:3] == before[:3] and len(lib.home.catalogue.plays()) == 4
    (home / "plays.jsonl").unlink()                 # the copy lost: found, and written again
    assert main(["--home", str(home), "-q", "check"]) == 1
    assert "plays.jsonl: the copy of the play history is missing" in capsys.readouterr().out
    assert main(["--home", str(home), "-q", "check", "--repair"]) == 0
    assert len((home / "plays.jsonl").read_text().splitlines()) == 4


def test_plays_only_the_copy_holds_are_put_back_not_cut_from_it(home, capsys):
    """A catalogue that lost some plays (a rebuild stopped before its salvage, a table read in
    part) and then recorded one held 1 of 4: `check` called the copy different, and the repair
    wrote the catalogue's one play over the copy's four."""
    with Library(home, create=False) as lib:
        songs = {s.title: s for s in lib.songs()}
        for title in ("Chord", "Chord", "Clicks"):
            lib.home.record_play(songs[title], "mpd")
        with lib.home.catalogue.transaction():
            lib.home.catalogue.conn.execute("DELETE FROM plays")
        lib.home.record_play(songs["White"], "mpd")
    assert main(["--home", str(home), "-q", "check"]) == 1
    assert "the copy of the play history is missing or differs" in capsys.readouterr().out
    assert main(["--home", str(home), "-q", "check", "--repair"]) == 0
    with Library(home, create=False) as lib:
        plays = lib.home.catalogue.plays()
        assert sorted(p[0] for p in plays) == sorted(songs[t].hash for t in ("Chord", "Chord", "Clicks", "White"))
        assert [r.title for r in lib.most_played(1)] == ["Chord"]
    assert len((home / "plays.jsonl").read_text().splitlines()) == 4
    assert main(["--home", str(home), "-q", "check", "--repair"]) == 0   # put back once, not again
    with Library(home, create=False) as lib:
        assert len(lib.home.catalogue.plays()) == 4


def test_a_catalogue_made_again_while_a_music_folder_is_away_keeps_its_spectrograms(home, tmp_path, capsys):
    """The rebuild's scan found no song in the absent folder, took itself for finished, and
    collected every spectrogram of that folder as garbage: all of it decoded again later."""
    with Library(home, create=False) as lib:
        music = Path(lib.home.roots()[0])
    stored = {p.name for p in (home / "spectrograms").rglob("*.npy")}
    (home / "catalogue.db").unlink()
    music.rename(tmp_path / "away")
    assert main(["--home", str(home), "-q", "check", "--repair"]) == 0
    assert f"{music} holds no audio now (a disk not mounted, or the music moved?)" in capsys.readouterr().out
    assert {p.name for p in (home / "spectrograms").rglob("*.npy")} == stored
    assert main(["--home", str(home), "-q", "scan"]) == 0          # nor does a plain scan
    assert {p.name for p in (home / "spectrograms").rglob("*.npy")} == stored
    (tmp_path / "away").rename(music)
    assert main(["--home", str(home), "-q", "check", "--repair"]) == 0
    assert "5 songs added back from their stored spectrograms, 0 analysed" in capsys.readouterr().out
    with Library(home, create=False) as lib:
        assert len(lib.songs()) == 5 and not lib.home.unfinished()


@pytest.mark.parametrize("folder", ["Music #2", "what?"])
def test_a_repair_keeps_the_rows_whatever_the_home_is_called(trained, tmp_path, folder):
    """The damaged catalogue was opened as the URI 'file:PATH?mode=ro': a '#' or '?' in the
    path ended it there, and the repair kept nothing and said '0 unreadable'."""
    from reform.check import rebuild_catalogue

    home = tmp_path / folder
    shutil.copytree(trained, home)
    songs = len(_songs(home))
    rebuilt = rebuild_catalogue(home / "catalogue.db")
    assert rebuilt.kept >= songs and rebuilt.lost == 0 and rebuilt.embeddings >= songs
    assert len(_songs(home)) == songs


def test_a_rebuild_stopped_in_its_salvage_is_finished_from_the_damaged_copy(trained, tmp_path, monkeypatch,
                                                                           capsys):
    """The new catalogue was made in place and filled later: Ctrl-C in a long salvage left an
    empty catalogue that passed every check, and the songs' embeddings and plays, kept only in
    the damaged copy, were never read again."""
    import reform.check as check_module

    home = tmp_path / "home"
    shutil.copytree(trained, home)
    songs = _songs(home)
    with Library(home, create=False) as lib:
        embedded = len(lib.home.catalogue.embeddings(lib.home.embedding_model()))
    real = check_module._salvage

    def stopped(conn, table):
        if table == "embeddings":
            raise KeyboardInterrupt
        return real(conn, table)
    monkeypatch.setattr(check_module, "_salvage", stopped)
    with pytest.raises(KeyboardInterrupt):
        check_module.rebuild_catalogue(home / "catalogue.db")
    monkeypatch.setattr(check_module, "_salvage", real)
    with pytest.raises(StoreError, match="a rebuild of this library's catalogue was stopped before it ended"):
        Library(home, create=True)                        # a catalogue made now would be replaced
    with WriterLock(home).hold("check --repair"):         # a repair at work is said as one
        with pytest.raises(BusyError, match=r"check --repair \(PID \d+\).* is rebuilding its catalogue"):
            Library(home, create=False, read_only=True)
    assert main(["--home", str(home), "-q", "check"]) == 1
    assert "catalogue: a rebuild of the catalogue was stopped before it ended" in capsys.readouterr().out
    assert main(["--home", str(home), "-q", "check", "--repair"]) == 0
    assert f"rebuilt the catalogue: {len(songs)} rows kept, 0 unreadable, {embedded} embeddings kept" in \
        capsys.readouterr().out
    assert len(_songs(home)) == len(songs) and not (home / "catalogue.db.rebuilding").exists()
    assert not list(home.glob("catalogue.db.new*"))
    aside = next(home.glob("catalogue.db.damaged-*[0-9]"))   # stopped once the new one was in place
    (home / "catalogue.db.rebuilding").write_text(aside.name)
    assert main(["--home", str(home), "-q", "check", "--repair"]) == 0
    assert f"rebuilt the catalogue: {len(songs)} rows kept, 0 unreadable, {embedded} embeddings kept" in \
        capsys.readouterr().out


def test_a_repair_keeps_the_rows_of_a_table_whose_index_alone_is_damaged(home):
    """SQLite listed the rowids from the smallest covering index: that index damaged, the
    table's rows (all readable) were dropped and counted as 0 lost."""
    from reform.check import rebuild_catalogue

    songs = len(_songs(home))
    with sqlite3.connect(home / "catalogue.db") as conn:
        conn.execute("PRAGMA journal_mode = DELETE")     # every page in the file itself
        page = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'files_hash'").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
        plan = conn.execute("EXPLAIN QUERY PLAN SELECT rowid FROM files").fetchall()
    conn.close()
    assert "files_hash" in str(plan)                     # the listing SQLite would have used
    with open(home / "catalogue.db", "r+b") as f:
        f.seek((page - 1) * size)
        f.write(bytes(size))
    rebuilt = rebuild_catalogue(home / "catalogue.db")
    assert rebuilt.kept >= songs and rebuilt.lost == 0
    assert len(_songs(home)) == songs


def test_a_spectrogram_whose_header_states_an_impossible_shape_is_named(home, capsys):
    """np.load raised OverflowError for a negative or huge dimension, and `reform check` crashed."""
    songs = _songs(home)
    with Library(home, create=False) as lib:
        path = lib.home.spectrograms.path(songs["Chord"].hash)
    data = path.read_bytes()
    assert b"'shape': (2, " in data
    path.write_bytes(data.replace(b"'shape': (2, ", b"'shape': (-2,", 1))    # two channels -> minus two
    assert main(["--home", str(home), "-q", "check"]) == 1
    line = next(x for x in capsys.readouterr().out.splitlines() if songs["Chord"].path in x)
    assert "spectrogram: " in line


def test_a_scan_of_another_folder_after_the_catalogue_was_lost_says_nothing_of_the_others(home, tmp_path,
                                                                                          capsys):
    """It said the library's music folder, there and full but not scanned, 'holds no audio now'."""
    from conftest import tone, write

    with Library(home, create=False) as lib:
        music = Path(lib.home.roots()[0])
    (home / "catalogue.db").unlink()
    other = write(tmp_path / "other" / "Other.wav", tone(300, 4)).parent
    assert main(["--home", str(home), "-q", "scan", str(other), "--jobs", "1", "--no-embed"]) == 0
    out = capsys.readouterr().out
    assert "holds no audio now" not in out
    assert main(["--home", str(home), "-q", "check", "--repair"]) == 0   # which brings the rest back
    with Library(home, create=False) as lib:
        assert len(lib.songs()) == 6 and str(music) in lib.home.roots()


def test_a_damaged_file_of_a_training_run_is_named_with_the_way_out(home, capsys):
    """A cut checkpoint went unnoticed until `train --resume` failed; a cut model.pt's hint said
    to train again, where the run's checkpoint writes it again."""
    with Library(home, create=False) as lib:
        run = next(r for r in lib.models.runs() if r.usable)
    files = RunFiles(run.folder)
    assert main(["--home", str(home), "-q", "check"]) == 0
    capsys.readouterr()
    with open(files.model, "r+b") as f:
        f.truncate(files.model.stat().st_size // 2)
    assert main(["--home", str(home), "-q", "check"]) == 1
    out = capsys.readouterr().out
    assert f"run {run.name}: model.pt: the model file is damaged" in out
    assert f"`reform --home {home} train --resume --name {run.name}` writes it again from the run's checkpoint" in out
    assert main(["--home", str(home), "-q", "check", "--repair"]) == 1   # the active model: nothing embeds
    assert f"`reform --home {home} train --resume --name {run.name}` writes it again" in capsys.readouterr().err
    # and so it does: a run at its end said "nothing to do" and left the damaged file as it was
    before = files.checkpoint.read_bytes()
    assert main(["--home", str(home), "-q", "train", "--resume", "--name", run.name]) == 0
    assert main(["--home", str(home), "-q", "check"]) == 0 and files.checkpoint.read_bytes() == before
    # a repair of the rest says the run's file is left: "after the repair: 0 problems", exit 1
    with open(files.model, "r+b") as f:
        f.truncate(files.model.stat().st_size // 2)
    assert main(["--home", str(home), "-q", "use", "shipped"]) == 0
    _damage_spectrograms(home)
    capsys.readouterr()
    assert main(["--home", str(home), "-q", "check", "--repair"]) == 1
    out = capsys.readouterr().out
    assert out.count(f"run {run.name}: model.pt: the model file is damaged") == 2
    assert "after the repair: 1 problem\n" in out
    assert main(["--home", str(home), "-q", "train", "--resume", "--name", run.name]) == 0
    assert not RunFiles(run.folder).problems()
    pretrained = files.pretrain.read_bytes()   # a resume past the pretraining never writes it again
    files.pretrain.write_bytes(pretrained[: len(pretrained) // 2])
    assert "model.pt does not need it: delete it" in RunFiles(run.folder).problems()[files.pretrain]
    files.pretrain.write_bytes(pretrained)
    with open(files.checkpoint, "r+b") as f:
        f.truncate(1000)
    assert main(["--home", str(home), "-q", "check"]) == 1
    out = capsys.readouterr().out
    assert f"run {run.name}: checkpoint.pt: the model file is damaged" in out
    assert "the run cannot go on" in out
    # which resuming says too (its hint was about choosing a model.pt, or `reform use shipped`)
    assert main(["--home", str(home), "-q", "train", "--resume", "--name", run.name]) == 1
    assert f"the run cannot go on; a new one can start from its model.pt: `reform --home {home} train --name " \
           f"{run.name}-2 --init {files.model}`" in capsys.readouterr().err
    with open(files.model, "r+b") as f:   # a damaged model.pt is not offered
        f.truncate(files.model.stat().st_size // 2)
    assert main(["--home", str(home), "-q", "train", "--resume", "--name", run.name]) == 1
    assert f"start from its pretrain.pt: `reform --home {home} train --name {run.name}-2 --init {files.pretrain}`" \
        in capsys.readouterr().err


def test_with_the_music_folders_lost_too_status_says_to_scan_them(home, capsys):
    """check --repair said to run `reform scan FOLDER`, and status sent the user back to check --repair;
    then a scan of one folder took every other song's spectrogram for garbage."""
    with Library(home) as lib:
        music = Path(lib.home.roots()[0])
    (home / "catalogue.db").unlink()
    (home / "folders.json").unlink()
    assert main(["--home", str(home), "-q", "check", "--repair"]) == 0
    assert f"run `reform --home {home} scan FOLDER`" in capsys.readouterr().out
    assert main(["--home", str(home), "status"]) == 0
    out = capsys.readouterr().out
    assert ("made again, and not all its songs added back yet: the music folders were not known: "
            f"`reform --home {home} scan FOLDER` each of them adds its songs back") in out
    assert "no song yet" not in out   # said once, by the line above (after a repair cut short, against it)
    with Library(home) as lib:
        stored = set(lib.home.spectrograms.digests())
    for named in ([str(music / "Tone Band")], []):   # the folder named, then the folders the library now knows
        assert main(["--home", str(home), "-q", "scan", "--no-embed", *named]) == 0
        out = capsys.readouterr().out
        assert "3 analysed songs of the catalogue lost are not back yet" in out and "analysed 1" not in out
        with Library(home) as lib:
            assert set(lib.home.spectrograms.digests()) == stored and lib.home.unfinished()
    assert main(["--home", str(home), "-q", "scan", "--no-embed", str(music / "Noise Crew")]) == 0
    assert "analysed 0 songs" in capsys.readouterr().out   # all back, folder by folder: finished
    with Library(home) as lib:
        assert not lib.home.unfinished() and len(lib.songs()) == 5
