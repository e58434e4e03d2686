"""Files for other tools: M3U playlists that no file name can inject lines into, numbers that
stay numbers in .npz, output paths checked before the work."""

import os

import numpy as np
import pytest

from reform.cli import main
from reform.errors import ConfigError
from reform.export import check_output, export_embeddings, m3u_text, write_m3u
from reform.store import FileRow


def _row(path: str, title: str | None = "T", artist: str | None = "A") -> FileRow:
    return FileRow(1, path, 1, 1, "h", "ok", None, 61.4, 22050, 1, 10, "pcm", "fv",
                   artist, None, title, None, None, None, 0.0)


def test_a_path_with_a_line_break_is_left_out_and_said_so():
    good, evil = _row("/m/a.flac"), _row("/m/evil\n#EXTINF:1,x\n/etc/passwd.flac")
    crlf = _row("/m/b\r.flac")
    text, skipped = m3u_text([good, evil, crlf])
    assert skipped == [evil, crlf]
    assert text.splitlines() == ["#EXTM3U", "#EXTINF:61,A - T", "/m/a.flac",
                                 "# 2 song(s) left out: a line break in the file path cannot be "
                                 "written in M3U"]


def test_control_characters_in_names_become_spaces():
    text, _ = m3u_text([_row("/m/a.flac", title="Title\nwith\x00breaks\u2028here")])
    assert text.splitlines()[1] == "#EXTINF:61,A - Title with breaks here"


def test_write_m3u_returns_what_it_left_out(tmp_path):
    out = tmp_path / "lists" / "x.m3u8"
    out.parent.mkdir()
    rows = [_row(str(tmp_path / "m" / "a.flac")), _row(str(tmp_path / "m" / "b\nc.flac"))]
    assert write_m3u(out, rows, relative=True) == [rows[1]]
    assert out.read_text().splitlines()[2] == "../m/a.flac"
    assert [p.name for p in out.parent.iterdir()] == ["x.m3u8"]


def test_relative_paths_follow_links_on_both_sides(tmp_path):
    """With ~/Music a link to a disk, `-o ~/Music/Playlists/x.m3u8 --relative` wrote
    `../../../home/u/Music/...`: the playlist's folder was resolved through the link and the
    songs' paths were not, so the playlist broke when the disk was mounted elsewhere.  Where the
    playlist folder is the link, `..` leads out of the folder it links to, and the entry must too."""
    (tmp_path / "disk" / "Album").mkdir(parents=True)
    (tmp_path / "disk" / "Playlists").mkdir()
    (tmp_path / "disk" / "Album" / "a.flac").write_bytes(b"")
    (tmp_path / "Music").symlink_to(tmp_path / "disk")
    song = _row(str(tmp_path / "Music" / "Album" / "a.flac"))
    out = tmp_path / "Music" / "Playlists" / "x.m3u8"
    write_m3u(out, [song], relative=True)
    assert out.read_text().splitlines()[2] == "../Album/a.flac" and (out.parent / "../Album/a.flac").exists()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "disk" / "Lists").symlink_to(tmp_path / "elsewhere")
    out = tmp_path / "Music" / "Lists" / "y.m3u8"
    write_m3u(out, [song], relative=True)
    entry = out.read_text().splitlines()[2]
    assert entry == "../disk/Album/a.flac" and (out.parent / entry).exists()
    # the playlists outside a linked music folder: the way goes through the link, as written, so that
    # it holds wherever the disk is mounted and a server finds the paths it scanned
    (tmp_path / "lists").mkdir()
    out = tmp_path / "lists" / "z.m3u8"
    write_m3u(out, [song], relative=True)
    assert out.read_text().splitlines()[2] == "../Music/Album/a.flac"
    # and from a folder not made yet (reform playlists works out its entries before it makes it)
    from reform.export import relative_path
    assert relative_path(song.path, str(tmp_path / "new" / "lists")) == "../../Music/Album/a.flac"
    assert relative_path(song.path, str(tmp_path / "Music" / "Lists" / "new")) == "../../disk/Album/a.flac"


def test_cli_says_which_songs_it_left_out(trained, tmp_path, capsys):
    import shutil

    from reform import Library

    home = tmp_path / "home"
    shutil.copytree(trained, home)
    with Library(home) as lib:
        row = next(r for r in lib.songs() if r.title == "White")
        with lib.home.catalogue.transaction():
            lib.home.catalogue.move(row.path, row.path + "\n/etc/passwd", row.size, row.mtime_ns, row.tags)
    out = tmp_path / "mix.m3u8"
    assert main(["--home", str(home), "-q", "playlist", "Chord", "--length", "4", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "left out of" in err and "line break" in err
    assert "/etc/passwd" not in out.read_text()


def test_cli_says_which_songs_of_its_playlist_have_no_file_now(trained, tmp_path, capsys):
    """With the music folder away (a disk not mounted), `similar -o` wrote a playlist of paths
    that were not there and said nothing; `reform playlists` leaves such songs out."""
    import shutil

    from reform import Library

    home = tmp_path / "home"
    shutil.copytree(trained, home)
    with Library(home) as lib:
        row = next(r for r in lib.songs() if r.title == "White")
        with lib.home.catalogue.transaction():
            lib.home.catalogue.move(row.path, str(tmp_path / "away" / "White.wav"), row.size, row.mtime_ns, row.tags)
    out = tmp_path / "similar.m3u8"
    assert main(["--home", str(home), "-q", "similar", "Chord", "-n", "20", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"note: 1 song in {out} has no file there now, which a player skips: {tmp_path / 'away'}" in err
    assert str(tmp_path / "away" / "White.wav") in out.read_text()   # written all the same: it may come back


def test_every_output_is_written_where_it_was_checked_and_named_printably(trained, tmp_path, monkeypatch, capsys):
    """A quoted `~` reaches ReFORM unexpanded: the check expanded it and the write did not, so
    the write failed after the work was done.  A name that is not UTF-8 is printed with its
    byte written out (a strict UTF-8 stdout could not print it raw)."""
    import shutil

    home = str(shutil.copytree(trained, tmp_path / "home"))   # evaluate saves beside the model
    monkeypatch.setenv("HOME", str(tmp_path))
    name = os.fsdecode(b"caf\xe9")
    for args, out in ((["-q", "playlist", "Chord", "--length", "3", "-o", f"~/{name}.m3u8"], f"{name}.m3u8"),
                      (["export", f"~/{name}.csv"], f"{name}.csv"),
                      (["-q", "evaluate", "--no-baselines", "--json", f"~/{name}.json"], f"{name}.json")):
        assert main(["--home", home, *args]) == 0
        assert (tmp_path / out).stat().st_size > 0
        printed = capsys.readouterr().out
        assert "caf\\xe9" in printed and name not in printed


def row(i, path, track=None, year=None, duration=None, title="t"):
    return FileRow(i, path, 1, 1, f"h{i}", "ok", None, duration, 44100, 2, 100, "flac", "fv", "A", "B", title,
                   track, year, None, 0.0)


def test_npz_stores_numbers_as_numbers(tmp_path):
    rows = [row(1, "/m/a.flac", track=3, year=1999, duration=201.5), row(2, "/m/b.flac")]
    vectors = {"h1": np.ones(4, np.float32), "h2": np.zeros(4, np.float32)}
    assert export_embeddings(tmp_path / "x.npz", rows, vectors, "model-1") == 2
    data = np.load(tmp_path / "x.npz")
    assert data["track"].dtype == np.int64 and list(data["track"]) == [3, -1]
    assert data["year"].dtype == np.int64 and list(data["year"]) == [1999, -1]
    assert data["duration"].dtype == np.float64 and data["duration"][0] == 201.5
    assert np.isnan(data["duration"][1]) and list(data["title"]) == ["t", "t"]


def test_csv_gives_back_the_embeddings_exactly(tmp_path):
    import csv

    rows = [row(1, "/m/a.flac"), row(2, "/m/b.flac")]
    vectors = {h: np.random.default_rng(i).standard_normal(64).astype(np.float32) for i, h in enumerate(("h1", "h2"))}
    export_embeddings(tmp_path / "x.csv", rows, vectors, "model-1")
    with open(tmp_path / "x.csv", newline="", encoding="utf-8") as f:
        read = list(csv.DictReader(f))
    for line, h in zip(read, ("h1", "h2")):    # 7 digits gave a third of the values back changed
        assert np.array_equal(np.array([line[f"e{i}"] for i in range(64)], np.float32), vectors[h])


def test_output_paths(tmp_path):
    assert check_output(tmp_path / "fine.csv") == tmp_path / "fine.csv"
    with pytest.raises(ConfigError, match="does not exist") as err:
        check_output(tmp_path / "no" / "dir" / "x.csv")
    assert "mkdir -p" in err.value.hint
    with pytest.raises(ConfigError, match="a folder, not a file"):
        check_output(tmp_path)
    assert list(tmp_path.iterdir()) == []  # the write probe leaves nothing behind
    killed = tmp_path / f".fine.csv.tmp-{2 ** 22 + 1}-1"        # of a run killed mid-write: gone
    other = tmp_path / f".mine.csv.tmp-{2 ** 22 + 1}-1"         # another file's: not ours to judge
    for p in (killed, other):
        p.write_bytes(b"x")
    check_output(tmp_path / "fine.csv")
    assert [p.name for p in tmp_path.iterdir()] == [other.name]


def test_playlist_title_and_own_lines():
    text, _ = m3u_text([row(1, "/m/a.flac", duration=60)], title="my\nmix", line=lambda r: "../a.flac")
    assert text == "#EXTM3U\n#PLAYLIST:my mix\n#EXTINF:60,A - t\n../a.flac\n"


def test_a_relative_path_that_reads_as_a_comment_or_blank_is_written_from_dot(tmp_path):
    """MPD and other players skip '#...' lines and strip leading blanks: a folder named
    '#1 Hits' or a file named ' intro.flac' lost its song (a radio lost its own seed)."""
    rows = [row(1, "/m/#1 Hits/a.flac"), row(2, "/m/ intro.flac"), row(3, "/m/plain.flac")]
    text, _ = m3u_text(rows, "/m")
    assert text.splitlines()[2::2] == ["./#1 Hits/a.flac", "./ intro.flac", "plain.flac"]
    text, _ = m3u_text(rows[:1])
    assert text.splitlines()[2] == "/m/#1 Hits/a.flac"                      # absolute: as it is
    text, _ = m3u_text(rows[:2], line=lambda r: os.path.relpath(r.path, "/m"))   # `reform playlists`, no prefix
    assert text.splitlines()[2::2] == ["./#1 Hits/a.flac", "./ intro.flac"]
