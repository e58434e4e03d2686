"""`reform playlists --to DIR`: radios and mixes written for servers that import a folder,
refreshed in place, never touching a file ReFORM did not write, safe to interrupt."""

import json
import os
import shutil
from pathlib import Path

import pytest

from reform import Library
from reform import playlists as pl
from reform.cli import main
from reform.errors import ConfigError
from reform.radio import Rules
from reform.recommend import Recommender
from reform.store import FileRow


@pytest.fixture
def home(trained, tmp_path):
    copy = tmp_path / "home"
    shutil.copytree(trained, copy)
    return copy


@pytest.fixture
def setup(home):
    with Library(home, create=False) as lib:
        rec = lib.recommender()
        rows = {Path(r.path).stem: r for r in lib.songs()}
        root = Path(lib.music_root())
        yield rec, rows, root  # the recommender reads the catalogue: the library stays open


def entries(path: Path) -> list[str]:
    return [x for x in path.read_text(encoding="utf-8").splitlines() if x and not x.startswith("#")]


def test_radios_and_mixes_resolve_from_the_playlist_folder(setup, tmp_path):
    rec, rows, root = setup
    radio = pl.radio(rec, rows["02 Chord"], 4)
    assert radio.rows[0] == rows["02 Chord"] and len({r.hash for r in radio.rows}) == 4
    mix = pl.folder_mix(rec, list(rows.values()), root / "Noise Crew", 5)
    (tmp_path / "link").symlink_to(root / "Noise Crew")        # the same folder through a link
    assert pl.folder_mix(rec, list(rows.values()), tmp_path / "link", 5).rows == mix.rows
    assert {Path(r.path).stem for r in mix.rows} == {"01 A Four Forty", "02 Chord"}  # not its own songs
    folder = root / "Playlists"
    report = pl.write_folder(folder, [radio, mix], root)
    names = sorted(report.written)
    assert names == ["ReFORM mix - Noise Crew.m3u8", "ReFORM radio - Tone Band - Chord.m3u8"]
    radio_file = folder / names[1]
    assert radio_file.read_text(encoding="utf-8").startswith("#EXTM3U\n#PLAYLIST:ReFORM radio - Tone Band")
    lines = entries(radio_file)
    assert lines[0] == "../Tone Band/Sines/02 Chord.flac"  # relative to the music root, from the folder
    assert all((folder / e).resolve().is_file() for e in lines)
    manifest = json.loads((folder / pl.MANIFEST).read_text())["files"]
    assert sorted(manifest) == names and all(len(h) == 1 for h in manifest.values())
    again = pl.write_folder(folder, [radio, mix], root)
    assert sorted(again.unchanged) == names and not again.written
    docker = pl.write_folder(tmp_path / "elsewhere", [radio], root, prefix="/music/")
    assert entries(tmp_path / "elsewhere" / docker.written[0])[0] == "/music/Tone Band/Sines/02 Chord.flac"
    typed = pl.write_folder(tmp_path / "typed", [radio], root, prefix="/music")   # "/musicTone Band/..."
    assert entries(tmp_path / "typed" / typed.written[0])[0] == "/music/Tone Band/Sines/02 Chord.flac"
    mpd = pl.write_folder(tmp_path / "mpd", [radio], root, prefix="", suffix=".m3u")   # MPD's playlist folder
    assert mpd.written == ["ReFORM radio - Tone Band - Chord.m3u"]
    assert entries(tmp_path / "mpd" / mpd.written[0])[0] == "Tone Band/Sines/02 Chord.flac"
    elsewhere = pl.write_folder(tmp_path / "none", [radio], tmp_path / "other")   # no song under the root
    said = f"none of its songs lies under the music root {tmp_path / 'other'}"
    assert elsewhere.empty == [(radio.title, False, said)] and elsewhere.misplaced
    assert not elsewhere.written and elsewhere.untouched
    assert not list((tmp_path / "none").glob("*.m3u8"))


def test_entries_reach_the_songs_from_a_playlist_folder_that_is_a_link(setup, tmp_path):
    """A playlist folder linked to a folder two levels deeper: a player opening an entry goes
    `..` out of the folder the link points to, so the way to the music root starts there."""
    rec, rows, root = setup
    (tmp_path / "a" / "b" / "lists").mkdir(parents=True)
    (tmp_path / "lists").symlink_to(tmp_path / "a" / "b" / "lists")
    report = pl.write_folder(tmp_path / "lists", [pl.radio(rec, rows["02 Chord"], 3)], root)
    lines = entries(tmp_path / "lists" / report.written[0])
    assert lines and all(os.path.isfile(os.path.join(tmp_path, "lists", e)) for e in lines)


def test_never_touches_what_it_did_not_write(setup, tmp_path):
    rec, rows, root = setup
    folder = tmp_path / "lists"
    folder.mkdir()
    radio, other = pl.radio(rec, rows["02 Chord"], 3), pl.radio(rec, rows["01 White"], 3)
    mine = folder / "ReFORM radio - Tone Band - Chord.m3u8"
    mine.write_text("#EXTM3U\nmy own list\n")
    (folder / "holiday.m3u").write_text("#EXTM3U\nbeach.flac\n")
    report = pl.write_folder(folder, [radio, other], root)
    assert report.left_alone == [(mine.name, "a file ReFORM does not manage has this name (yours, or one of "
                                             "its own you edited): remove or rename it to have ReFORM write "
                                             "this playlist")]
    assert mine.read_text() == "#EXTM3U\nmy own list\n"
    white = folder / "ReFORM radio - Noise Crew - White.m3u8"
    assert report.written == [white.name]
    # a playlist the user edited is no longer ReFORM's; one no longer asked for is removed
    chord_free = pl.write_folder(folder, [pl.radio(rec, rows["01 A Four Forty"], 3)], root)
    assert chord_free.removed == [white.name] and not white.exists()
    four_forty = folder / chord_free.written[0]
    four_forty.write_text(four_forty.read_text() + "extra.flac\n")
    report = pl.write_folder(folder, [], root)
    assert report.left_alone == [(four_forty.name, "changed since ReFORM wrote it: no longer managed "
                                                   "(remove it to have ReFORM write it again)")]
    assert four_forty.exists() and (folder / "holiday.m3u").read_text() == "#EXTM3U\nbeach.flac\n"
    assert json.loads((folder / pl.MANIFEST).read_text())["files"] == {}


def test_playlists_copied_without_their_manifest_are_taken_in_where_unchanged(setup, tmp_path):
    """`cp lists/* copy/` leaves the hidden manifest behind, and every playlist in the copy was
    then "a file ReFORM does not manage" for good.  A file holding exactly what ReFORM would write
    is taken in; one that differs is still left alone."""
    rec, rows, root = setup
    radios = [pl.radio(rec, rows["02 Chord"], 3), pl.radio(rec, rows["01 White"], 3)]
    names = pl.write_folder(tmp_path / "lists", radios, root).written
    copy = tmp_path / "copy"
    copy.mkdir()
    for name in names:
        shutil.copy(tmp_path / "lists" / name, copy / name)
    (copy / names[1]).write_text("#EXTM3U\nmine.flac\n")
    report = pl.write_folder(copy, radios, root)
    assert report.unchanged == [names[0]] and [n for n, _ in report.left_alone] == [names[1]]
    assert list(json.loads((copy / pl.MANIFEST).read_text())["files"]) == [names[0]]


def test_a_run_whose_every_playlist_is_left_alone_fails_and_changes_nothing(home, tmp_path, capsys):
    """The README promises that a run that writes no playlist exits 1 and leaves the folder as it
    was; one whose every playlist was left alone (a file of the user's in its place) said so,
    exited 0 and removed the playlists no longer asked for."""
    out = tmp_path / "lists"
    assert main(["--home", str(home), "playlists", "--to", str(out), "--radio", "White"]) == 0
    white = out / "ReFORM radio - Noise Crew - White.m3u8"
    mine = out / "ReFORM radio - Tone Band - Chord.m3u8"
    mine.write_text("#EXTM3U\nmy own list\n")
    manifest = (out / pl.MANIFEST).read_text()
    capsys.readouterr()
    assert main(["--home", str(home), "playlists", "--to", str(out), "--radio", "Chord"]) == 1
    printed, err = capsys.readouterr()
    assert f"left alone {mine.name}" in printed and "error: no playlist was written, and the folder is left" in err
    assert mine.read_text() == "#EXTM3U\nmy own list\n" and white.exists()
    assert (out / pl.MANIFEST).read_text() == manifest
    assert main(["--home", str(home), "playlists", "--to", str(out), "--radio", "Chord", "--radio", "White"]) == 0


def test_a_playlist_taken_back_and_changed_meanwhile_is_left_alone(setup, tmp_path, monkeypatch):
    """A file taken back because it held what ReFORM would write, then edited by its owner before
    ReFORM wrote the folder, was overwritten: the check and the write read it apart."""
    rec, rows, root = setup
    radio = pl.radio(rec, rows["02 Chord"], 3)
    name = pl.write_folder(tmp_path / "lists", [radio], root).written[0]
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / name).write_bytes((tmp_path / "lists" / name).read_bytes())
    real = pl._write_manifest

    def owner_edits_meanwhile(folder, files):
        (copy / name).write_text("#EXTM3U\nmine.flac\n")
        real(folder, files)
    monkeypatch.setattr(pl, "_write_manifest", owner_edits_meanwhile)
    report = pl.write_folder(copy, [radio], root)
    assert report.left_alone == [(name, pl.EDITED)] and not report.written
    assert (copy / name).read_text() == "#EXTM3U\nmine.flac\n"
    assert json.loads((copy / pl.MANIFEST).read_text())["files"] == {}
    # the same for a playlist the manifest names, edited between the check and the write
    monkeypatch.setattr(pl, "_write_manifest", lambda folder, files: (
        (tmp_path / "lists" / name).write_text("#EXTM3U\nmine too.flac\n"), real(folder, files)))
    report = pl.write_folder(tmp_path / "lists", [pl.radio(rec, rows["02 Chord"], 4)], root)
    assert report.left_alone == [(name, pl.EDITED)] and not report.written
    assert (tmp_path / "lists" / name).read_text() == "#EXTM3U\nmine too.flac\n"


def test_an_interrupted_run_leaves_nothing_unrecognised(setup, tmp_path, monkeypatch):
    rec, rows, root = setup
    folder = tmp_path / "lists"
    first = [pl.radio(rec, rows["02 Chord"], 3), pl.radio(rec, rows["01 White"], 3)]
    pl.write_folder(folder, first, root)
    longer = [pl.radio(rec, rows["02 Chord"], 5), pl.radio(rec, rows["01 White"], 5)]
    real, calls = pl._replace, []

    def interrupted(path, text):
        calls.append(path)
        if len(calls) == 3:  # the manifest, one playlist, then Ctrl-C
            raise KeyboardInterrupt
        real(path, text)
    monkeypatch.setattr(pl, "_replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        pl.write_folder(folder, longer, root)
    monkeypatch.setattr(pl, "_replace", real)
    assert not list(folder.glob(".*tmp*"))
    killed = folder / f".ReFORM radio - x.m3u8.tmp-{2 ** 22 + 1}-1"   # a run killed mid-write (SIGKILL)
    killed.write_text("#EXTM3U\n")
    report = pl.write_folder(folder, longer, root)
    assert not report.left_alone and len(report.written) == 1 and len(report.unchanged) == 1
    assert all(len(entries(folder / n)) == 5 for n in report.written + report.unchanged)
    assert not killed.exists()
    with pytest.raises(ConfigError, match="this is a file, not a folder"):
        pl.write_folder(folder / report.written[0], longer, root)


def test_cli_radios_mixes_and_most_played(home, tmp_path, capsys):
    out = tmp_path / "lists"
    assert main(["--home", str(home), "playlists", "--to", str(out), "--most-played", "2"]) == 1
    assert "no play is recorded yet" in capsys.readouterr().err and not out.exists()
    with Library(home) as lib:
        played = {Path(r.path).stem: r for r in lib.songs()}
        with lib.home.catalogue.transaction():
            for name in ("01 White", "01 White", "02 Clicks"):
                lib.home.catalogue.add_play(played[name], "mpd")
        root = Path(lib.music_root())
    assert main(["--home", str(home), "playlists", "--to", str(out), "--radio", "Chord", "--most-played", "1",
                 "--radio", "White", "--mix", str(root / "Tone Band"), "--length", "3",
                 "--music-root", str(root)]) == 0
    printed = capsys.readouterr().out   # White asked for twice (most played, and by name): one radio
    assert printed.count("wrote ") == 3 and "(2)" not in printed and "ReFORM radio - Noise Crew - White.m3u8" in printed
    assert entries(out / "ReFORM radio - Noise Crew - White.m3u8")[0] == \
        os.path.relpath(played["01 White"].path, out)
    assert main(["--home", str(home), "playlists", "--to", str(out)]) == 1
    assert "no playlist asked for" in capsys.readouterr().err
    assert main(["--home", str(home), "playlists", "--to", str(out), "--mix", str(root / "Tone Bnad")]) == 1
    assert "no such folder" in capsys.readouterr().err
    assert main(["--home", str(home), "playlists", "--to", str(out), "--radio", "Chord",
                 "--min-duration", "600"]) == 0      # a radio of its seed alone is written, and said
    assert "ReFORM radio - Tone Band - Chord holds its seed alone: no other song passes the rules (no song of " \
           "the last 50, at least 600 s long)" in capsys.readouterr().err
    assert main(["--home", str(home), "playlists", "--to", str(out), "--radio", "Chord", "--min-duration", "600",
                 "--max-duration", "10"]) == 1
    assert "is above the longest" in capsys.readouterr().err


def test_a_most_played_song_without_an_embedding_is_said_and_the_others_written(home, tmp_path, capsys):
    """A most-played song scanned without an embedding failed the whole command, with a hint to
    scan the folder it had been scanned from."""
    out = tmp_path / "lists"
    with Library(home) as lib:
        played = {Path(r.path).stem: r for r in lib.songs()}
        with lib.home.catalogue.transaction():
            lib.home.catalogue.add_play(played["01 White"], "mpd")
            lib.home.catalogue.drop_embeddings(hashes=[played["01 White"].hash])
    assert main(["--home", str(home), "playlists", "--to", str(out), "--most-played", "1"]) == 1
    error = capsys.readouterr().err
    assert "1 most played song has no embedding to start a radio from: Noise Crew - White" in error
    assert "embed` embeds the songs scanned without one" in error and not out.exists()
    assert main(["--home", str(home), "playlists", "--to", str(out), "--most-played", "1", "--radio", "Chord"]) == 0
    printed, error = capsys.readouterr()
    assert printed.count("wrote ") == 1 and "note: 1 most played song has no embedding" in error


def test_a_wrong_music_root_writes_nothing_and_removes_nothing(home, tmp_path, capsys):
    """A mistyped --music-root emptied every playlist, and the playlists asked for were removed
    as 'no longer asked for' with exit 0 (from cron, the server's playlists silently went).  A
    root that is not there is most often a disk not mounted, and said so; it was called "not a
    folder", with a hint to give another root."""
    out = tmp_path / "lists"
    with Library(home) as lib:
        root = Path(lib.music_root())
    radio = out / "ReFORM radio - Tone Band - Chord.m3u8"
    assert main(["--home", str(home), "playlists", "--to", str(out), "--radio", "Chord"]) == 0
    before = radio.read_text(encoding="utf-8")
    capsys.readouterr()
    assert main(["--home", str(home), "playlists", "--to", str(out), "--radio", "Chord",
                 "--music-root", str(tmp_path / "Musc")]) == 1
    assert "the music root is not there (a disk not mounted?)" in capsys.readouterr().err
    assert main(["--home", str(home), "playlists", "--to", str(out), "--radio", "Chord",
                 "--music-root", str(radio)]) == 1
    assert "the music root is not a folder" in capsys.readouterr().err
    (tmp_path / "elsewhere").mkdir()
    assert main(["--home", str(home), "playlists", "--to", str(out), "--radio", "Chord",
                 "--music-root", str(tmp_path / "elsewhere")]) == 1
    printed, err = capsys.readouterr()
    assert "no playlist was written" in err and "removed" not in printed
    assert "(an earlier file of it is kept)" in printed
    assert radio.read_text(encoding="utf-8") == before
    # a root narrower than the library: the radio chooses its songs there, not only its seed
    assert main(["--home", str(home), "playlists", "--to", str(out), "--radio", "Chord", "--length", "5",
                 "--music-root", str(root / "Tone Band")]) == 0
    inside = [p for p in (root / "Tone Band").rglob("*") if p.is_file()]
    assert len(entries(radio)) == min(5, len(inside)) > 1
    assert main(["--home", str(home), "playlists", "--to", str(out), "--radio", "Chord"]) == 0
    assert radio.read_text(encoding="utf-8") == before                 # the manifest still knew it


def test_a_folder_mix_keeps_the_gaps_and_lengths_the_command_is_given(tmp_path):
    """`playlists --mix` was handed the filters alone: --max-duration let longer songs in, and
    --artist-gap gave four songs of one artist in a row, where the radios of the same command
    kept both."""
    import numpy as np

    def song(i, artist, angle, seconds=None):   # lengths apart: one album's songs are not taken for one recording
        folder, seconds = ("seeds" if artist == "Seed" else "lib"), seconds or 200.0 + 10 * i
        return FileRow(i, f"{tmp_path}/{folder}/{artist}/{i}.flac", 1, 1, f"h{i}", "ok", None, seconds, 44100, 2,
                       100, "flac", "fv", artist, f"{artist} album", f"song {i}", None, None, None, 0.0), angle

    made = [song(1, "Seed", 0.0), song(2, "A", 0.05), song(3, "A", 0.1), song(4, "A", 0.15), song(5, "A", 0.2),
            song(6, "B", 0.3), song(7, "C", 0.4), song(8, "D", 0.12, seconds=400.0), song(9, "E", 0.5)]
    rows = [r for r, _ in made]
    rec = Recommender.of(rows, {r.hash: np.array([np.cos(a), np.sin(a)], np.float32) for r, a in made}, walk=0)
    plain = pl.folder_mix(rec, rows, tmp_path / "seeds", 6, Rules(artist_gap=0, album_gap=0)).rows
    assert [r.id for r in plain] == [2, 3, 8, 4, 5, 6]                    # the nearest, in order
    ruled = pl.folder_mix(rec, rows, tmp_path / "seeds", 6, Rules(artist_gap=1, album_gap=0, max_duration=300))
    assert [r.id for r in ruled.rows] == [2, 6, 3, 7, 4, 9]               # A never twice in a row, no 400 s song
    short = pl.folder_mix(rec, rows, tmp_path / "seeds", 6, Rules(artist_gap=3, album_gap=0, max_duration=300))
    assert [r.id for r in short.rows] == [2, 6, 7, 9, 3, 4]               # too few others: the gap gives way


def test_a_mix_replaces_the_songs_it_cannot_hold_with_the_next_ones(setup):
    """Songs outside the music root were dropped from the mix after it was chosen: a mix of
    --length 6 came out with 2 songs while the root held more."""
    rec, rows, root = setup
    songs = list(rows.values())
    first = pl.folder_mix(rec, songs, root / "Noise Crew", 1).rows[0]
    kept = pl.folder_mix(rec, songs, root / "Noise Crew", 1, Rules(keep=lambda r: r.hash != first.hash))
    assert len(kept.rows) == 1 and kept.rows[0].hash != first.hash
    assert {Path(kept.rows[0].path).parent.parent.name} == {"Tone Band"}        # not a seed either


def test_a_run_that_can_write_no_playlist_removes_none(home, tmp_path, capsys):
    """A mix of a folder holding every song (a cron line's typo) has nothing to mix in: it was
    blamed on the music root, and the run ended in an error after removing the playlists no
    longer asked for."""
    out = tmp_path / "lists"
    with Library(home) as lib:
        root = Path(lib.music_root())
    assert main(["--home", str(home), "playlists", "--to", str(out), "--radio", "Chord"]) == 0
    before = sorted(out.glob("*.m3u8"))
    capsys.readouterr()
    assert main(["--home", str(home), "playlists", "--to", str(out), "--mix", str(root)]) == 1
    printed, err = capsys.readouterr()
    assert f"not written ReFORM mix - {root.name}: every song of the library with an embedding lies in this " \
           "folder, so none is left to mix in" in printed
    assert "error: no playlist was written, and the folder is left as it was" in err
    assert "removed" not in printed and "music root" not in printed + err
    assert sorted(out.glob("*.m3u8")) == before
    # a folder that is not there yet is not made by a run that writes nothing ("left as it was")
    assert main(["--home", str(home), "playlists", "--to", str(tmp_path / "new"), "--mix", str(root)]) == 1
    assert not (tmp_path / "new").exists()


def test_the_playlist_folder_is_made_with_its_parents_and_a_file_in_its_place_is_refused_first(home, tmp_path,
                                                                                                  capsys, monkeypatch):
    """--to "pls/Play lists" failed when pls was missing, though the help says "created if
    missing"; and a file given as --to was refused only after the radios had been made."""
    nested = tmp_path / "pls" / "Play lists"
    assert main(["--home", str(home), "playlists", "--to", str(nested), "--radio", "Chord"]) == 0
    assert len(list(nested.glob("*.m3u8"))) == 1
    made = []
    monkeypatch.setattr(pl, "radio", lambda *a, **k: made.append(a) or pytest.fail("a radio was made"))
    a_file = next(nested.glob("*.m3u8"))
    for given in (a_file, a_file / "sub"):                        # the file itself, or a folder "inside" it
        assert main(["--home", str(home), "playlists", "--to", str(given), "--radio", "Chord"]) == 1
        assert "this is a file, not a folder" in capsys.readouterr().err and not made
    # a folder that cannot be made (nothing can be created in /proc, whoever asks): refused first too
    assert main(["--home", str(home), "playlists", "--to", "/proc/reform-lists/pl", "--radio", "Chord"]) == 1
    assert "error: /proc: cannot create the playlist folder" in capsys.readouterr().err and not made


def test_file_names_are_safe_and_distinct():
    taken = set()
    assert pl.file_name('AC/DC: "Live"?', taken) == "AC-DC- -Live.m3u8"
    assert pl.file_name("ac-dc- -live", taken) == "ac-dc- -live (2).m3u8"
    assert pl.file_name("...", taken) == "ReFORM playlist.m3u8"
    cut_after_dash = "x" * (pl.MAX_NAME - 3) + " - Laboratory"             # cut right after " - "
    assert pl.file_name(cut_after_dash, taken) == "x" * (pl.MAX_NAME - 3) + ".m3u8"
    assert pl.file_name(cut_after_dash, taken) == "x" * (pl.MAX_NAME - 3) + " (2).m3u8"


def test_a_long_title_in_a_script_of_wide_letters_still_makes_a_file(setup, tmp_path):
    """A radio of a song titled in 120 Japanese letters stopped `reform playlists` with "File name
    too long": 120 letters of 3 bytes each, and the artist before them, are more than the 255
    bytes a file name may have.  Names are cut to MAX_NAME_BYTES too, so that with " (2)", the
    extension and the temporary name a file is first written under they fit."""
    rec, rows, root = setup
    title = "ReFORM radio - " + "アーティスト" * 10 + " - " + "曲" * 120
    report = pl.write_folder(tmp_path / "lists", [pl.Playlist(title, [rows["02 Chord"]]),
                                                  pl.Playlist(title + "!", [rows["01 White"]])], root)
    first, second = report.written
    assert second == first.replace(".m3u8", " (2).m3u8") and first.startswith("ReFORM radio - アーティスト")
    assert len(second.encode("utf-8")) <= pl.MAX_NAME_BYTES + len(" (2).m3u8") < 255
    assert entries(tmp_path / "lists" / second) and len(first) < len(title)


def test_a_gone_radio_seed_or_file_leaves_the_other_playlists_written(home, tmp_path, capsys, monkeypatch):
    """From cron: one --radio whose song left the library stopped every playlist's refresh
    (exit 1), and files deleted since the last scan were written into the playlists. A radio
    whose own song's file is gone came out without the song it is named after: it is said and
    not written (an earlier file of it stays)."""
    out = tmp_path / "lists"
    with Library(home) as lib:
        rows = {Path(r.path).stem: r for r in lib.songs()}
        gone = str(Path(rows["02 Clicks"].path).with_name("02 Clicks (deleted).wav"))
        with lib.home.catalogue.transaction():      # deleted since the last scan
            lib.home.catalogue.conn.execute("UPDATE files SET path = ? WHERE path = ?", (gone, rows["02 Clicks"].path))
    assert main(["--home", str(home), "playlists", "--to", str(out), "--radio", "Chord", "--radio", "No Such Song",
                 "--radio", "Clicks", "--length", "5"]) == 0
    printed, err = capsys.readouterr()
    assert "note: --radio No Such Song: no song matches" in err and "its playlist is not written" in err
    assert "not written ReFORM radio - Noise Crew - Clicks: its song cannot be in it: its file is gone " \
           "since the last scan" in printed
    written = sorted(out.glob("*.m3u8"))
    assert [p.name for p in written] == ["ReFORM radio - Tone Band - Chord.m3u8"]
    listed = [e for p in written for e in entries(p)]
    assert not any("deleted" in e for e in listed)
    assert len(entries(out / "ReFORM radio - Tone Band - Chord.m3u8")) == 4   # every song still there
    assert main(["--home", str(home), "playlists", "--to", str(out), "--radio", "No Such Song"]) == 1
    err = capsys.readouterr().err   # said once, as the error, not a note before it too
    assert err.count("no song matches") == 1 and err.startswith("error: no song matches")
    assert sorted(out.glob("*.m3u8")) == written                            # nothing written, nothing removed
    # a file that goes between choosing the songs and writing them is still left out, and said
    monkeypatch.setattr(pl, "unwritable", lambda row, root: None)
    assert main(["--home", str(home), "playlists", "--to", str(out), "--radio", "Chord", "--radio", "Clicks",
                 "--length", "5"]) == 0
    assert "note: 2 songs left out: their files changed while the playlists were made" in capsys.readouterr().out
    assert not any("deleted" in e for p in out.glob("*.m3u8") for e in entries(p))


def test_a_radio_from_a_file_outside_the_library_is_refused_in_plain_words(home, tmp_path, capsys):
    from conftest import tone, write

    outside = write(tmp_path / "elsewhere" / "track01.wav", tone(523, 8))
    out = tmp_path / "lists"
    assert main(["--home", str(home), "playlists", "--to", str(out), "--radio", str(outside),
                 "--radio", "Chord", "--length", "3"]) == 0          # an AttributeError's traceback before
    err = capsys.readouterr().err
    assert "a radio starts from a song of the library, and this file is not one" in err
    assert [p.name for p in out.glob("*.m3u8")] == ["ReFORM radio - Tone Band - Chord.m3u8"]


def test_a_radio_or_mix_written_short_says_so(home, tmp_path, capsys):
    """A radio of 30 songs asked for over a library of five was written with five and not a word,
    where similar, mix and playlist say how many of those asked for they found."""
    out = tmp_path / "lists"
    with Library(home) as lib:
        root = Path(lib.music_root())
    assert main(["--home", str(home), "playlists", "--to", str(out), "--radio", "Chord", "--length", "30",
                 "--mix", str(root / "Tone Band")]) == 0
    err = capsys.readouterr().err
    held = len(entries(out / "ReFORM radio - Tone Band - Chord.m3u8"))
    assert 1 < held < 30 and f"ReFORM radio - Tone Band - Chord holds {held} of the 30 songs asked for: " \
        "the library has no more" in err   # every song: not "no more pass the rules (no song of the last 50)"
    assert main(["--home", str(home), "playlists", "--to", str(out), "--radio", "Chord", "--length", "30",
                 "--min-duration", "10"]) == 0   # the 6-second song is left out: the rules hold it back
    assert f"holds {held - 1} of the 30 songs asked for: no more pass the rules (" in capsys.readouterr().err
    assert "ReFORM mix - Tone Band holds " in err and "of the 30 songs asked for: no more pass the filters" in err
    with Library(home, create=False) as lib:          # a file moved away since the scan: no more pass the
        gone = next(r for r in lib.songs() if "Chord" not in r.path)   # rules was not why
        with lib.home.catalogue.transaction():
            lib.home.catalogue.conn.execute("UPDATE files SET path = ? WHERE id = ?", (gone.path + ".gone", gone.id))
        songs = len(lib.songs())
    assert main(["--home", str(home), "playlists", "--to", str(out), "--radio", "Chord", "--length", "30"]) == 0
    assert f"holds {held - 1} of the 30 songs asked for: the library has no more that a playlist here can hold " \
        f"({songs - 1} of its {songs} songs)" in capsys.readouterr().err


def test_a_library_of_several_music_folders_asks_which_one_the_players_know(home, tmp_path, capsys):
    """Files scanned one by one were "342 music folders", with no word of the folder holding them."""
    from conftest import tone, write

    with Library(home) as lib:
        music = Path(lib.music_root())
    loose = write(tmp_path / "loose" / "one.wav", tone(300, 3))
    assert main(["--home", str(home), "-q", "scan", str(loose), "--jobs", "1"]) == 0
    capsys.readouterr()
    assert main(["--home", str(home), "playlists", "--to", str(tmp_path / "lists"), "--radio", "Chord"]) == 1
    err = capsys.readouterr().err
    assert "the library's songs were scanned from 1 music folder and 1 file scanned on its own" in err
    assert f"({os.path.commonpath([str(music), str(loose)])} holds every one)" in err
