"""Queries name songs the same way everywhere: file names, words without accents, clear misses."""

import os
import sqlite3
import unicodedata

import pytest

from reform import store
from reform.errors import QueryError
from reform.search import InRows, find, search_text
from reform.store import Catalogue, FileRow, SpectrogramInfo, Tags
from reform.text import agree, listing, norm, plural, shown, song_label, with_article


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


def test_a_label_is_one_line_that_cannot_drive_the_terminal():
    """A tag's escape sequence or bell reached the terminal as it was (recolouring the screen)."""
    assert song_label("Ctrl\x00Nul\x1b[31mRed\x1b[0m", "Bell\x07\ttwo\nlines", "/m/x.wav") == \
        "Ctrl Nul [31mRed [0m - Bell two lines"
    assert song_label(None, None, "/m/esc\x1b[31mred.wav") == "esc [31mred"
    assert song_label("Ñandú", "Pájaros", "/m/x.wav") == "Ñandú - Pájaros"
    long = song_label("Band", "x" * 21_000, "/m/x.wav")                     # a tag that filled the heading
    assert long == "Band - " + "x" * 199 + "…"


def test_words_without_accents_match_as_on_the_web_page():
    assert norm("Ñandú (Live)") == "nandu live"
    # letters no accent makes, typed without their key: "No song matches" on the page and here
    assert norm("Ødegård Ætherisk STRASSE Straße Łódź Þór") == "odegard aetherisk strasse strasse lodz thor"
    assert find(ROWS, "nandu").id == 5 and find(ROWS, "pajaros ñandú").id == 5
    assert [r.id for r in InRows(ROWS).with_words(norm("album").split())] == [6, 7]
    assert find(ROWS, "A seed").id == 8                 # exactly "artist title"
    untagged = [row(1, "/m/1.ogg", None, "Blue", "None"), row(2, "/m/2.ogg", "X", "None Blue")]
    assert find(untagged, "none blue").id == 2          # a missing artist is not the word "none"


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
        find(ROWS, "  ")


def test_the_files_of_one_song_in_two_formats_are_one_match():
    """A FLAC and its MP3 (one artist, title and length; other bytes): "2 songs match" named two
    files that no added word could tell apart.  The larger file stands for the song."""
    import dataclasses

    import numpy as np

    from reform import search
    from reform.recommend import Recommender

    def find(songs, text):   # as a library's recommender tells them: by their tags here (vectors far apart)
        vectors = {r.hash: np.eye(8, dtype=np.float32)[i] for i, r in enumerate(songs)}
        return search.find(songs, text, Recommender.of(songs, vectors).one_song)

    flac = dataclasses.replace(row(1, "/m/flac/race.flac", "Jörg", "Race One"), size=30_000_000)
    mp3 = dataclasses.replace(row(2, "/m/mp3/race.mp3", "Jörg", "Race One"), size=5_000_000, duration=100.4)
    other = dataclasses.replace(row(3, "/m/live/race.flac", "Jörg", "Race One (live)"), size=9, duration=160.0)
    assert find([mp3, flac], "race one").id == 1 and find([flac, mp3], "jorg").id == 1
    assert find([mp3, flac, other], "race one").id == 1       # exactly its title: the other is longer
    with pytest.raises(QueryError, match="3 songs match 'jorg'"):
        find([mp3, flac, other], "jorg")
    longer = dataclasses.replace(mp3, duration=104.0)         # another take: two songs
    with pytest.raises(QueryError, match="2 songs match 'race one'"):
        find([longer, flac], "race one")
    # an untagged "Intro" beside a band's, a live one beside the studio one: which is meant is asked
    band = row(4, "/m/band/live/intro.ogg", "Band", "Intro", "Live")
    for other in (row(5, "/m/misc/Intro.ogg", None, "Intro"), row(6, "/m/band/studio/intro.ogg", "Band", "Intro",
                                                                   "Studio")):
        with pytest.raises(QueryError, match="2 songs match 'intro'"):
            find([band, dataclasses.replace(other, size=99)], "intro")
    with pytest.raises(QueryError, match="no song matches ' !. '"):    # no letter: looked for as written
        find(ROWS, " !? ")


def test_a_query_of_symbols_only_is_looked_for_as_written():
    """The search words keep letters and digits, so an emoji was "the query is empty" although a
    title held it, and on the web page it listed every song."""
    rows = ROWS + [row(9, "/m/z/party 🎵.flac", "DJ", "Night 🎵 Out"), row(10, "/m/z/100%.flac", "B", "Full")]
    assert find(rows, "🎵").id == 9
    assert find(rows, "%").id == 10 and find(rows, " % ").id == 10
    with pytest.raises(QueryError, match="no song matches '♫'"):
        find(rows, "♫")


QUERIES = ["hr3-caves.ogg", "HR3-Caves.OGG", "/else/hr3-ocean.ogg", "seed.flac", "caves-hr3.OGG",  # names
           "Caves", "hr3 caves", "A seed", "Ocean of caves", "los pájaros ñandú",  # exact titles
           "ocean", "cave", "ave", "aves hr", "NANDU!", "pajaros nan", "album two",    # words, parts
           "a", "hr", "o e", "3", "u2", "a seed x",                                   # 1-2 letters
           "nothing like this", "missing.ogg", "/m/y/missing.flac", "caves",          # misses, many
           "album", "hr3", "é", "II", "♫", "?"]


def answer(songs, query):
    """What find says: the song's path, or the error's message."""
    try:
        return find(songs, query).path
    except QueryError as exc:
        return f"{exc.message} {exc.path}"


def catalogue_of(rows, path) -> Catalogue:
    cat = Catalogue(path)
    with cat.transaction():
        for r in rows:
            cat.put_ok(r.path, 1, 1, SpectrogramInfo(r.hash, 2, 100, 100.0, 44100, "ogg"),
                       Tags(r.artist, r.album, r.title), "fv")
    return cat


@pytest.mark.parametrize("fts5", [True, False], ids=["fts5", "without-fts5"])
def test_the_catalogue_answers_as_the_rows_in_memory(tmp_path, monkeypatch, fts5):
    """Every kind of query gives the same song or the same error from the catalogue's table as
    from matching the rows in Python; also where SQLite has no FTS5 (the words scanned)."""
    monkeypatch.setattr(store, "MIGRATIONS", store.MIGRATIONS[:3] + [store._schema_v4(fts5)] + store.MIGRATIONS[4:])
    cat = catalogue_of(ROWS, tmp_path / "c.db")
    assert cat._has_fts() == fts5
    rows = cat.files()
    for query in QUERIES:
        assert answer(cat, query) == answer(rows, query), query
    assert answer(cat, "Caves") == "/m/hr3/hr3-caves.ogg"           # exact title among 4 matches
    assert answer(cat, "cave").startswith("4 songs match 'cave': HR3 - Echo (/m/hr3/caves-hr3.ogg);")
    assert answer(cat, "o e").startswith("6 songs match")             # short words only: scanned
    assert answer(cat, "aves hr") .startswith("4 songs match")         # an indexed word and a short one
    assert answer(cat, "NANDU!") == "/m/x/ñandú.flac"
    for words in (["hr3", "c"], ["ave"], ["nan"], ["zz"], []):         # the lookup itself
        assert [r.path for r in cat.with_words(words)] == \
            [r.path for r in rows if all(w in search_text(r) for w in words)]


def test_the_search_words_follow_every_change(tmp_path):
    """Added, retagged, moved, failed and removed files: the table holds each file's words,
    and a rebuilt index would hold the same."""
    cat = catalogue_of(ROWS, tmp_path / "c.db")

    def words():
        return dict(cat.conn.execute("SELECT id, words FROM song_words").fetchall())

    def expected():
        return {r.id: search_text(r) for r in cat.files()}

    assert words() == expected() and len(words()) == len(ROWS)
    with cat.transaction():
        cat.put_ok("/m/hr3/hr3-caves.ogg", 2, 2, SpectrogramInfo("h1", 2, 100, 1.0, 44100, "ogg"),
                   Tags("Harmonic Rain", None, "Grotte"), "fv")         # retagged by a rescan
        cat.move("/m/x/ñandú.flac", "/m/x/rhea.flac", 1, 1, Tags("Los Pájaros", None, None))
        cat.put_failed("/m/y/other.flac", 1, 1, "not audio")
        cat.remove(["/m/hr3/hr3-ocean.ogg"])
    assert words() == expected()
    assert answer(cat, "grotte") == "/m/hr3/hr3-caves.ogg" and answer(cat, "rhea") == "/m/x/rhea.flac"
    assert "no song matches 'nandu'" in answer(cat, "nandu") and "no song" in answer(cat, "ocean")
    assert "no song" in answer(cat, "other")                         # failed files are not songs
    cat.conn.execute("INSERT INTO song_words_fts (song_words_fts) VALUES ('integrity-check')")


def test_an_older_catalogue_gets_its_search_words(tmp_path):
    """A catalogue of schema 3 (no search words) is given them, once, when opened."""
    path = tmp_path / "c.db"
    catalogue_of(ROWS, path).close()
    conn = sqlite3.connect(path)                                        # back to schema 3
    conn.executescript("DROP TABLE song_words_fts; DROP TABLE song_words; DROP TRIGGER song_words_added; "
                       "DROP TRIGGER song_words_changed; DROP TRIGGER song_words_removed; "
                       "PRAGMA user_version = 3;")
    conn.close()
    cat = Catalogue(path)
    assert cat.conn.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION
    assert dict(cat.conn.execute("SELECT id, words FROM song_words")) == \
        {r.id: search_text(r) for r in cat.files()}
    assert answer(cat, "hr3-caves.ogg") == "/m/hr3/hr3-caves.ogg" and answer(cat, "nandu") == "/m/x/ñandú.flac"


def test_words_with_vowel_signs_are_words_everywhere(tmp_path):
    """Devanagari's vowel signs are spacing marks: the terminal and the API split a word where
    they stood ("गाना" was "ग न", so a query of it matched every title holding either letter),
    while the page dropped them. A catalogue of schema 4 gets its words again when opened."""
    assert norm("गाना") == "गन" and norm("हिन्दी गाना") == "हनद गन"          # as the page's \\p{M} has them
    songs = [row(1, "/m/a.flac", "X", "गाना"), row(2, "/m/b.flac", "X", "नगर")]
    assert answer(songs, "गाना") == "/m/a.flac"
    path = tmp_path / "c.db"
    catalogue_of(songs, path).close()
    conn = sqlite3.connect(path)                                            # words as schema 4 made them
    conn.executescript("UPDATE song_words SET words = 'x ग न /m/a.flac' WHERE id = 1; PRAGMA user_version = 4;")
    conn.close()
    cat = Catalogue(path)
    assert dict(cat.conn.execute("SELECT id, words FROM song_words")) == {r.id: search_text(r) for r in cat.files()}
    assert answer(cat, "गाना") == "/m/a.flac"


def test_a_name_stored_decomposed_is_found_typed_composed(tmp_path):
    """macOS writes "é" as e and an accent: the bare file name was found (by its words), the
    same name given with its folder was not ("no song in the library has this file name")."""
    decomposed = "/m/nfd/" + unicodedata.normalize("NFD", "Café Ñandú.wav")
    songs = [row(1, decomposed), row(2, "/m/nfd/Éclair.wav")]
    typed = "nfd/" + unicodedata.normalize("NFC", "Café Ñandú.wav")
    assert answer(songs, typed) == decomposed
    path = tmp_path / "c.db"
    catalogue_of(songs, path).close()
    conn = sqlite3.connect(path)                                            # the name as schema 4 keyed it
    conn.execute("UPDATE song_words SET name = ? WHERE id = 1", (os.path.basename(decomposed).casefold(),))
    conn.executescript("PRAGMA user_version = 4;")
    conn.commit()
    conn.close()
    cat = Catalogue(path)
    assert answer(cat, typed) == decomposed


def test_plural():
    assert plural(1, "song") == "1 song" and plural(2, "file") == "2 files" and plural(0, "song") == "0 songs"
    assert agree(1, "has", "have") == "has" and agree(0, "is", "are") == "are" and agree(2, "was", "were") == "were"
    assert with_article("scan") == "a scan" and with_article("embed") == "an embed"   # the page said "a embed"


def test_a_long_listing_is_cut_and_says_how_many_more():
    assert listing(["a", "b"]) == "a; b" and listing([]) == ""
    names = [f"/m/{i}.ogg" for i in range(13)]
    assert listing(names, more="`reform status --json` lists them all") == \
        "; ".join(names[:10]) + "; and 3 more (`reform status --json` lists them all)"
    assert listing(names, limit=12) == "; ".join(names[:12]) + "; and 1 more"
    assert listing(names[:10], total=700_000) == "; ".join(names[:10]) + "; and 699990 more"   # only the first made


def test_every_interface_names_a_song_alike():
    assert row(1, "/m/a.ogg", "HR3", "Caves").label == "HR3 - Caves"
    assert row(2, "/m/track13.ogg").label == "track13"                 # untagged: the file name, no "? - ?"
    assert row(3, "/m/track14.ogg", "HR3").label == "HR3 - track14"    # no title tag
    assert row(4, "/m/x.ogg", title="Ocean").label == "Ocean"           # no artist tag
    assert row(5, "/m/y.ogg", "The\tBand ", "Line one\nline two").label == "The Band - Line one line two"
    listing = r"2 songs match 'hr3': HR3 - Caves II \(/m/hr3/hr3-caves-2.ogg\); HR3 - Caves \("
    with pytest.raises(QueryError, match=listing):
        find(ROWS[:2], "hr3")


def test_a_path_is_shown_with_its_control_characters_written_out():
    """`reform errors` printed a \\x01 or a line break in a file name as it is."""
    assert shown("/m/\x01ctrl.mp3") == "/m/\\x01ctrl.mp3"
    assert shown("/m/new\nline.wav") == "/m/new\\nline.wav"
    assert shown("/m/café 🎵.flac") == "/m/café 🎵.flac"
    assert shown(os.fsdecode(b"/m/caf\xe9.flac")) == "/m/caf\\xe9.flac"


def test_an_untagged_song_is_found_by_its_folders_names(tmp_path):
    """Two soundtracks' untagged "track18" could be told apart by their whole paths alone: "2 songs
    match", and no words could name either.  A catalogue of schema 5 gets the words when opened."""
    songs = [row(1, "/games/drascula/audio/track18.ogg"), row(2, "/games/warzone2100/music/track18.opus"),
             row(3, "/games/tagged/music/track18.ogg", "Band", "Track 18")]
    assert answer(songs, "drascula track18") == "/games/drascula/audio/track18.ogg"
    assert answer(songs, "warzone2100 track18") == "/games/warzone2100/music/track18.opus"
    assert answer(songs, "tagged track18").startswith("no song matches")   # a tagged song: by its tags
    path = tmp_path / "c.db"
    catalogue_of(songs, path).close()
    conn = sqlite3.connect(path)                                            # words as schema 5 made them
    conn.executescript("UPDATE song_words SET words = 'track18 track18 ogg' WHERE id = 1; "
                       "PRAGMA user_version = 5;")
    conn.close()
    cat = Catalogue(path)
    assert dict(cat.conn.execute("SELECT id, words FROM song_words")) == {r.id: search_text(r) for r in cat.files()}
    assert answer(cat, "drascula track18") == "/games/drascula/audio/track18.ogg"


def test_a_catalogue_of_schema_6_forgets_various_artists_as_an_artist(tmp_path):
    """"Various Artists" from a compilations folder (or a tag) stayed the songs' artist in every
    catalogue made before the layout passed it over: schema 7 takes it away, and its search words."""
    songs = [row(1, "/m/Various Artists/Hits/01 a.ogg", "Various Artists", "a", "Hits"),
             row(2, "/m/VA/Hits 2/01 b.ogg", "V.A.", "b", "Hits 2"), row(3, "/m/Vanessa/Hits/01 c.ogg", "Vanessa", "c")]
    path = tmp_path / "c.db"
    catalogue_of(songs, path).close()
    conn = sqlite3.connect(path)
    conn.executescript("PRAGMA user_version = 6;")
    conn.close()
    cat = Catalogue(path)
    assert {r.title: r.artist for r in cat.files()} == {"a": None, "b": None, "c": "Vanessa"}
    assert dict(cat.conn.execute("SELECT id, words FROM song_words")) == {r.id: search_text(r) for r in cat.files()}
    cat.close()
