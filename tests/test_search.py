"""Queries name songs the same way everywhere: file names, words without accents, clear misses."""

import pytest

from reform.errors import QueryError
from reform.search import find, matching
from reform.store import FileRow
from reform.text import norm, plural


def row(i, path, artist=None, title=None, album=None, digest=None):
    return FileRow(i, path, 1, 1, digest or f"h{i}", "ok", None, 100.0, 44100, 2, 100, "ogg", "fv",
                   artist, album, title, None, None, None, 0.0)


ROWS = [row(1, "/m/hr3/hr3-caves.ogg", "HR3", "Caves"), row(2, "/m/hr3/hr3-caves-2.ogg", "HR3", "Caves II"),
        row(3, "/m/hr3/hr3-ocean.ogg", "HR3", "Ocean of caves"), row(4, "/m/hr3/caves-hr3.ogg", "HR3", "Echo"),
        row(5, "/m/x/ñandú.flac", "Los Pájaros", "Ñandú"), row(6, "/m/y/seed.flac", "A", "seed", "album one"),
        row(7, "/m/y/other.flac", "A", "other", "album two"), row(8, "/m/copy/seed.flac", "A", "seed", digest="h6")]


def test_a_file_name_names_its_song():
    assert find(ROWS, "hr3-caves.ogg").id == 1          # four songs hold those words; one has the name
    assert find(ROWS, "HR3-Caves.OGG").id == 1          # case does not matter
    assert find(ROWS, "/somewhere/else/hr3-ocean.ogg").id == 3  # nor the folder, when the name is unique
    assert find(ROWS, "seed.flac").id == 8              # two copies of one recording: one song, its first path


def test_words_without_accents_match_as_on_the_web_page():
    assert norm("Ñandú (Live)") == "nandu live"
    assert find(ROWS, "nandu").id == 5 and find(ROWS, "pajaros ñandú").id == 5
    assert [r.id for r in matching(ROWS, "album")] == [6, 7]
    assert find(ROWS, "A seed").id == 8                 # exactly "artist title"


def test_misses_say_what_is_wrong():
    with pytest.raises(QueryError, match="no such file") as err:
        find(ROWS, "/m/y/missing.flac")
    assert err.value.path == "/m/y/missing.flac" and "reform scan" in err.value.hint
    with pytest.raises(QueryError, match="no such file"):
        find(ROWS, "missing.ogg")
    with pytest.raises(QueryError, match="no song matches 'nothing like this'") as err:
        find(ROWS, "nothing like this")
    assert "fewer words" in err.value.hint
    with pytest.raises(QueryError, match="2 songs match 'album'") as err:
        find(ROWS, "album")
    assert "seed" in str(err.value) and "other" in str(err.value)
    with pytest.raises(QueryError, match="empty"):
        find(ROWS, " !? ")


def test_plural():
    assert plural(1, "song") == "1 song" and plural(2, "file") == "2 files" and plural(0, "song") == "0 songs"
