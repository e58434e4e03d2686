"""Walking folders, reading tags, and deciding what changed."""

import os
import shutil

import pytest

from conftest import tone, write
from reform.library import Entry, content_hash, known_spelling, plan, read_tags, walk
from reform.store import FileRow, Tags
from reform.text import shown, storable


def test_walk_finds_audio_recursively_and_ignores_other_files(music):
    (music / "cover.jpg").write_bytes(b"jpeg")
    (music / "notes.txt").write_text("hi")
    for name in ("intro.XM", "level1.xm", "theme.mid"):   # music in formats ReFORM does not read: counted
        (music / "Tone Band" / name).write_bytes(b"module")
    found = walk([music])
    entries, problems, unread = found.entries, found.problems, found.unread
    names = sorted(os.path.basename(e.path) for e in entries)
    assert names == ["01 A Four Forty.wav", "01 White.ogg", "02 Chord.flac", "02 Clicks.wav"]
    assert problems == [] and unread == {".xm": 2, ".mid": 1}
    assert all(e.root == str(music) for e in entries)


def test_trash_folders_and_macos_metadata_are_passed_over(tmp_path):
    """A deleted song in a trash folder was recommended, and each '._' file a Mac writes beside
    a song on a shared disk was a failed file."""
    write(tmp_path / "Album" / "song.wav", tone(440, 1))
    (tmp_path / "Album" / "._song.wav").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X")
    for trash in (".Trash-1000/files", ".Trashes/501", "$RECYCLE.BIN/S-1-5-21", ".Trash"):
        write(tmp_path / trash / "deleted.wav", tone(220, 1))
    write(tmp_path / ".hidden" / "kept.wav", tone(330, 1))             # other hidden folders are music too
    found = walk([tmp_path])
    assert [os.path.relpath(e.path, tmp_path) for e in found.entries] == [".hidden/kept.wav", "Album/song.wav"]
    assert found.problems == []


def test_a_file_named_alone_that_is_not_read_says_why(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "theme.it").write_bytes(b"module")
    found = walk([tmp_path / "notes.txt", tmp_path / "theme.it"])
    assert found.entries == [] and [p.reason for p in found.problems] == ["not an audio file (unknown extension)",
                                                              "a music format ReFORM does not read"]


def test_walk_survives_symlink_loops(tmp_path):
    root = tmp_path / "lib"
    write(root / "a" / "song.wav", tone(440, 1))
    os.symlink(root, root / "a" / "back-to-top")          # a folder loop
    os.symlink(root / "self.wav", root / "self.wav")      # a file link to itself
    found = walk([root])
    assert [os.path.basename(e.path) for e in found.entries] == ["song.wav"]
    reasons = {os.path.basename(p.path): p.reason for p in found.problems}
    assert "loop" in reasons["back-to-top"]
    assert "loop" in reasons["self.wav"]


def test_links_within_the_library_are_walked_after_every_real_folder(tmp_path):
    """A link to a folder elsewhere in the library names no song, whichever comes first by name
    and whichever folder is scanned; a link out of it (a second disk) is walked and recorded."""
    music, disk = tmp_path / "music", tmp_path / "disk"
    write(music / "A" / "a.wav", tone(300, 1))
    write(music / "B" / "b.wav", tone(400, 1))
    write(disk / "d.wav", tone(500, 1))
    (music / "A" / "0fav").symlink_to(music / "B")
    (music / "A" / "ext").symlink_to(disk)
    (music / "A" / "ext2").symlink_to(disk)                # the disk's second name, taken second
    whole = walk([music], [str(music)])
    assert [e.path for e in whole.entries] == [str(music / p) for p in ("A/a.wav", "A/ext/d.wav", "B/b.wav")]
    assert whole.links == {str(disk): str(music / "A" / "ext")}
    inside = walk([music / "A"], [str(music)]).entries
    assert [e.path for e in inside] == [str(music / "A/a.wav"), str(music / "A/ext/d.wav")]
    assert known_spelling(str(music / "A" / "0fav"), [str(music)], whole.links) == str(music / "B")
    assert known_spelling(str(disk), [str(music)], whole.links) == str(music / "A" / "ext")


def test_names_that_are_not_utf8_are_passed_over_and_listed(tmp_path):
    root = tmp_path / "lib"
    write(root / "song.wav", tone(440, 1))
    latin1 = os.path.join(os.fsencode(root), b"caf\xe9.wav")       # Latin-1 bytes, as on an old disk
    os.makedirs(os.path.join(os.fsencode(root), b"d\xe9mo"))
    shutil.copy(root / "song.wav", latin1)
    shutil.copy(root / "song.wav", os.path.join(os.fsencode(root), b"d\xe9mo", b"inside.wav"))
    open(os.path.join(os.fsencode(root), b"notes-\xe9.txt"), "w").close()   # not music: not listed
    found = walk([root])
    assert [os.path.basename(e.path) for e in found.entries] == ["song.wav"]
    assert sorted(shown(os.path.basename(p)) for p in found.unnamed) == ["caf\\xe9.wav", "d\\xe9mo"]
    assert storable("Ñandú.flac") and not storable(os.fsdecode(b"caf\xe9.wav"))


def test_tags_from_file_and_from_folder_layout(tmp_path):
    import mutagen

    tagged = write(tmp_path / "x" / "y" / "Whatever.flac", tone(440, 1))
    f = mutagen.File(tagged, easy=True)
    f["artist"], f["album"], f["title"] = "Real Artist", "Real Album", "Real Title"
    f["tracknumber"], f["date"], f["genre"] = "3/12", "1999-05-01", "Ambient"
    f.save()
    tags = read_tags(str(tagged), str(tmp_path))
    assert (tags.artist, tags.album, tags.title) == ("Real Artist", "Real Album", "Real Title")
    assert (tags.track, tags.year, tags.genre) == (3, 1999, "Ambient")

    f["tracknumber"] = "99999999999999999999"     # more than SQLite can store: the scan stopped there
    f.save()
    assert read_tags(str(tagged), str(tmp_path)).track is None

    untagged = write(tmp_path / "Some Artist" / "Some Album" / "07 - The Title.wav", tone(440, 1))
    tags = read_tags(str(untagged), str(tmp_path))
    assert (tags.artist, tags.album, tags.title, tags.track) == ("Some Artist", "Some Album", "The Title", 7)
    for disc in ("CD1", "Disc 2", "disk-3"):   # a disc's folder names neither the album nor the artist
        untagged = write(tmp_path / "Some Artist" / "Some Album" / disc / "01 Intro.wav", tone(440, 1))
        tags = read_tags(str(untagged), str(tmp_path))
        assert (tags.artist, tags.album, tags.title, tags.track) == ("Some Artist", "Some Album", "Intro", 1)
    untagged = write(tmp_path / "Some Artist" / "CD Collection" / "01 Intro.wav", tone(440, 1))
    assert read_tags(str(untagged), str(tmp_path)).album == "CD Collection"
    for many in ("Various", "Various Artists", "VA", "V.A.", "Compilations", "Soundtracks"):   # no one artist
        untagged = write(tmp_path / many / "Hits 1999" / "01 Intro.wav", tone(440, 1))
        assert (read_tags(str(untagged), str(tmp_path)).artist, read_tags(str(untagged), str(tmp_path)).album) \
            == (None, "Hits 1999")
    untagged = write(tmp_path / "Vanessa" / "Hits 1999" / "01 Intro.wav", tone(440, 1))
    assert read_tags(str(untagged), str(tmp_path)).artist == "Vanessa"
    f["artist"] = "Various Artists"                         # nor a tag naming many: the folders' (as a
    f.save()                                                # later scan fills it in: no artist flipping)
    assert read_tags(str(tagged), str(tmp_path)).artist == "x"


def test_ape_tags_of_wavpack(tmp_path):
    import mutagen

    from conftest import write_encoded

    path = write_encoded(tmp_path / "x" / "y" / "Whatever.wv", tone(440, 1), "wavpack")
    f = mutagen.File(path, easy=True)
    f.tags.update({"Artist": "Real Artist", "Album": "Real Album", "Title": "Real Title", "Track": "4/9",
                   "Year": "2001", "Genre": "Ambient"})
    f.save()
    tags = read_tags(str(path), str(tmp_path))
    assert tags == Tags("Real Artist", "Real Album", "Real Title", 4, 2001, "Ambient")


def test_id3_frames_of_a_wav_file(tmp_path):
    """WAV (and AIFF) carry ID3 frames, which mutagen's easy mode leaves under their frame names."""
    import mutagen
    from mutagen.id3 import TALB, TCON, TDRC, TIT2, TPE1, TRCK

    path = write(tmp_path / "x" / "y" / "Whatever.wav", tone(440, 1))
    f = mutagen.File(path)
    f.add_tags()
    for frame in (TPE1(encoding=3, text="Real Artist"), TALB(encoding=3, text="Real Album"),
                  TIT2(encoding=3, text="Real Title"), TRCK(encoding=3, text="5/9"),
                  TDRC(encoding=3, text="2004"), TCON(encoding=3, text="Ambient")):
        f.tags.add(frame)
    f.save()
    assert read_tags(str(path), str(tmp_path)) == Tags("Real Artist", "Real Album", "Real Title", 5, 2004, "Ambient")


@pytest.mark.parametrize("name,kwargs", [("song.ogg", {}), ("song.opus", {"format": "OGG", "subtype": "OPUS"}),
                                         ("song.flac", {})])
def test_vorbis_comments_in_latin1_read_as_latin1(tmp_path, name, kwargs):
    """Old taggers wrote Latin-1 into Vorbis comments, which are UTF-8: ``ALBUM=Apn\\xe9e`` showed as
    ``Apn\\ufffde`` in every listing, export and query."""
    import io

    import mutagen
    from mutagen.ogg import OggPage

    path = write(tmp_path / name, tone(440, 1, 48000), 48000, **kwargs)
    f = mutagen.File(path)
    f["album"], f["artist"], f["title"] = "Apn#e", "Bj#rk #live#", "Caf\u00e9 \u20ac"   # the title is UTF-8 already
    f["encoder"] = "by-samplitude"
    f.save()
    data = path.read_bytes().replace(b"Apn#e", b"Apn\xe9e").replace(b"Bj#rk #live#", b"Bj\xf6rk \x93live\x94")
    # and a comment without "=", as warmux's files hold: the whole block was then read as mutagen
    # replaced it, U+FFFD and all
    data = data.replace(b"encoder=by-samplitude", b"encoded by samplitude")
    if name.endswith((".ogg", ".opus")):   # the pages' checksums, as a tagger writes them
        pages, written = io.BytesIO(data), []
        while pages.tell() < len(data):
            written.append(OggPage(pages).write())
        data = b"".join(written)
    path.write_bytes(data)
    tags = read_tags(str(path))
    assert (tags.album, tags.artist, tags.title) == ("Apn\u00e9e", "Bj\u00f6rk \u201clive\u201d", "Caf\u00e9 \u20ac")


def test_tags_of_a_file_named_as_another_format(tmp_path):
    """An MP3 named .flac decodes, but its tags were lost: mutagen chose its FLAC reader by the
    name, which failed."""
    import mutagen

    from conftest import write_encoded

    mp3 = write_encoded(tmp_path / "cover.mp3", tone(440, 1), "libmp3lame")
    f = mutagen.File(mp3, easy=True)
    if f.tags is None:
        f.add_tags()
    f.tags.update({"artist": "Real Artist", "title": "Big Cover"})
    f.save()
    named = tmp_path / "Band" / "Record" / "cover.flac"
    named.parent.mkdir(parents=True)
    shutil.copy(mp3, named)
    tags = read_tags(str(named), str(tmp_path))
    assert (tags.artist, tags.album, tags.title) == ("Real Artist", "Record", "Big Cover")


def test_broken_tags_fall_back_to_layout(tmp_path):
    path = tmp_path / "Band" / "Record" / "02 Song.mp3"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x7f" + b"\xff" * 100)  # a corrupt ID3 header
    tags = read_tags(str(path), str(tmp_path))
    assert (tags.artist, tags.album, tags.title, tags.track) == ("Band", "Record", "Song", 2)


def _row(path, size, mtime, status="ok", fv="v1"):
    return FileRow(1, path, size, mtime, "h", status, None, 1.0, 22050, 1, 10, "x", fv,
                   None, None, None, None, None, None, 0.0)


def test_plan_sorts_new_changed_unchanged_removed():
    entries = [Entry("/m/new.wav", 1, 1, "/m"), Entry("/m/same.wav", 2, 2, "/m"),
               Entry("/m/changed.wav", 3, 3, "/m"), Entry("/m/old-features.wav", 4, 4, "/m"),
               Entry("/m/failed.wav", 5, 5, "/m")]
    known = {"/m/same.wav": _row("/m/same.wav", 2, 2), "/m/changed.wav": _row("/m/changed.wav", 3, 99),
             "/m/old-features.wav": _row("/m/old-features.wav", 4, 4, fv="v0"),
             "/m/failed.wav": _row("/m/failed.wav", 5, 5, status="failed"),
             "/m/gone.wav": _row("/m/gone.wav", 6, 6), "/elsewhere/kept.wav": _row("/elsewhere/kept.wav", 7, 7)}
    p = plan(entries, [], known, ["/m"], "v1")
    assert sorted(e.path for e in p.todo) == ["/m/changed.wav", "/m/new.wav", "/m/old-features.wav"]
    assert sorted(e.path for e in p.unchanged) == ["/m/failed.wav", "/m/same.wav"]
    assert [r.path for r in p.removed] == ["/m/gone.wav"]  # files outside the scanned roots stay


def test_content_hash_sees_bytes_only(tmp_path):
    a = write(tmp_path / "a.wav", tone(440, 1))
    b = tmp_path / "b.wav"
    b.write_bytes(a.read_bytes())
    c = write(tmp_path / "c.wav", tone(441, 1))
    assert content_hash(str(a)) == content_hash(str(b)) != content_hash(str(c))
