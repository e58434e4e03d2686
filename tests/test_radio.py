"""What plays next, on hand-made embeddings whose answers are known; player paths."""

import dataclasses
import random

import numpy as np
import pytest

from reform.errors import ConfigError, QueryError
from reform.radio import MusicRoot, Rules, next_songs
from reform.recommend import Filters, Recommender
from reform.store import FileRow


def row(i, artist, album, duration=None):
    """Song ``i``; lengths 2 s apart unless given (songs as long within a second and this close
    would be files of one recording)."""
    duration = 200.0 + 2 * i if duration is None else duration
    return FileRow(i, f"/music/{artist}/{album}/{i:02d}.flac", 1, 1, f"h{i}", "ok", None, duration, 44100, 2,
                   100, "flac", "fv", artist, album, f"song {i}", None, None, None, 0.0)


@pytest.fixture
def songs():
    """Ten songs on a circle: song i at angle i/10 (song 1 is closest to song 0, and so on)."""
    rows = [row(0, "A", "A1"), row(1, "A", "A1"), row(2, "A", "A2"), row(3, "B", "B1"), row(4, "B", "B1"),
            row(5, "C", "C1", duration=30.0), row(6, "C", "C1"), row(7, "D", "D1"), row(8, "E", "E1"),
            row(9, "F", "F1")]
    vectors = {r.hash: np.array([np.cos(r.id / 10), np.sin(r.id / 10)], np.float32) for r in rows}
    return rows, Recommender.of(rows, vectors, walk=0)   # the rules below, over the expanded query


def ids(recs):
    return [r.row.id for r in recs]


def test_what_plays_next_comes_from_the_expanded_query():
    # a lone song is nearest the one playing; three songs close to each other lie a little further
    angles = [0.0, 0.30, -0.32, -0.34, -0.36]
    rows = [row(i, f"artist {i}", f"album {i}") for i in range(len(angles))]
    vectors = {r.hash: np.array([np.cos(a), np.sin(a)], np.float32) for r, a in zip(rows, angles)}
    plain = Rules(artist_gap=0, album_gap=0)
    assert ids(next_songs(Recommender.of(rows, vectors, expand=0), [rows[0]], [rows[0]], 1, plain)) == [1]
    assert ids(next_songs(Recommender.of(rows, vectors, expand=3), [rows[0]], [rows[0]], 1, plain)) == [2]


def test_closest_first_with_artists_and_albums_spread(songs):
    rows, rec = songs
    plain = Rules(artist_gap=0, album_gap=0)
    assert ids(next_songs(rec, [rows[0]], [rows[0]], 4, plain)) == [1, 2, 3, 4]
    # A just played: 3 (B) first; then A may return (1), then B again (4) but not A (2)
    spread = Rules(artist_gap=1, album_gap=0)
    assert ids(next_songs(rec, [rows[0]], [rows[0]], 3, spread)) == [3, 1, 4]
    assert ids(next_songs(rec, [rows[0]], [rows[0]], 3, Rules(artist_gap=2, album_gap=0))) == [3, 5, 1]


def test_nothing_within_the_no_repeat_window_and_the_gaps_give_way(songs):
    rows, rec = songs
    recent = rows[1:9][::-1]  # songs 1..8 played, 8 last
    got = ids(next_songs(rec, [rows[8]], recent, 5, Rules(no_repeat=8, artist_gap=0, album_gap=0)))
    assert got == [9, 0]  # only two songs lie outside the window: never more
    got = ids(next_songs(rec, [rows[8]], recent, 2, Rules(no_repeat=3, artist_gap=0, album_gap=0)))
    assert got == [9, 5]  # the window is 3 songs (8, 7, 6): 5 may come back
    one_artist = [row(i, "Solo", "S") for i in range(4)]
    solo = Recommender.of(one_artist, {r.hash: np.array([1.0, i], np.float32) for i, r in enumerate(one_artist)})
    assert len(next_songs(solo, [one_artist[0]], [one_artist[0]], 3, Rules(artist_gap=3))) == 3


def test_durations_filters_and_blend_of_seeds(songs):
    rows, rec = songs
    assert 5 not in ids(next_songs(rec, [rows[4]], [], 9, Rules(min_duration=60, artist_gap=0)))
    got = ids(next_songs(rec, [rows[0]], [], 9, Rules(artist_gap=0, album_gap=0,
                                                        filters=Filters(exclude_same_artist=True))))
    assert got[:3] == [3, 4, 5] and not {1, 2} & set(got)
    got = ids(next_songs(rec, [rows[0]], [], 9, Rules(artist_gap=0, album_gap=0,
                                                        filters=Filters(max_per_artist=1))))
    assert got == [1, 3, 5, 7, 8, 9]
    # the newest seed weighs most: between 9 and 0 but nearer 9 (an even blend would give 4 or 5)
    assert ids(next_songs(rec, [rows[9], rows[0]], [], 1, Rules(artist_gap=0, album_gap=0))) == [6]
    with pytest.raises(QueryError, match="none of the songs"):
        next_songs(rec, [row(99, "X", "X")], [], 1)


def test_the_cap_per_artist_counts_what_played_one_song_at_a_time(songs):
    """A radio picks one song per call: the cap counted only that call's picks, so a radio playlist
    with --max-per-artist 1 held five songs of A in a row."""
    from reform.playlists import radio

    rows, rec = songs
    capped = Rules(artist_gap=0, album_gap=0, filters=Filters(max_per_artist=1))
    assert ids(next_songs(rec, [rows[0]], [rows[0]], 1, capped)) == [3]   # A has played: not 1 or 2
    assert [r.id for r in radio(rec, rows[0], 6, capped).rows] == [0, 3, 5, 7, 8, 9]
    # over the no-repeat window only: an artist heard longer ago is free again
    assert ids(next_songs(rec, [rows[0]], [rows[9], rows[0]], 1, dataclasses.replace(capped, no_repeat=1))) == [1]


def test_a_song_of_several_artists_is_by_each_of_them():
    """ "Artist A / Björk" shares Björk with the seed and Artist A with "Artist A"; "Simon & Garfunkel"
    is one name, not Garfunkel's."""
    rows = [row(0, "Björk", "X"), row(1, "Artist A / Björk", "F"), row(2, "Artist A", "A"), row(3, "Other", "O"),
            row(4, "Simon & Garfunkel", "S"), row(5, "Garfunkel", "G")]
    rec = Recommender.of(rows, {r.hash: np.array([np.cos(r.id / 10), np.sin(r.id / 10)], np.float32) for r in rows},
                         expand=0)
    no_gaps = dict(artist_gap=0, album_gap=0)
    assert ids(next_songs(rec, [rows[0]], [], 3, Rules(**no_gaps, filters=Filters(exclude_same_artist=True)))) == [
        2, 3, 4]
    assert ids(next_songs(rec, [rows[0]], [], 4, Rules(**no_gaps, filters=Filters(max_per_artist=1)))) == [1, 3, 4, 5]
    assert ids(next_songs(rec, [rows[0]], [rows[0]], 3, Rules(artist_gap=1, album_gap=0))) == [2, 3, 1]


def test_shuffle_draws_among_the_best_and_rules_are_checked(songs):
    rows, rec = songs
    rules = Rules(artist_gap=0, album_gap=0, shuffle=3)
    got = ids(next_songs(rec, [rows[0]], [], 2, rules, random.Random(1)))
    assert len(got) == 2 and set(got) <= {1, 2, 3, 4, 5, 6}
    assert got == ids(next_songs(rec, [rows[0]], [], 2, rules, random.Random(1)))  # a seed repeats it
    # the gaps hold in the drawn order too (a plain draw from the best put A's songs side by side)
    spread = Rules(artist_gap=1, album_gap=0, shuffle=3)
    for seed in range(20):
        got = next_songs(rec, [rows[0]], [rows[0]], 4, spread, random.Random(seed))
        named = ["A"] + [r.row.artist for r in got]
        assert len(got) == 4 and all(a != b for a, b in zip(named, named[1:])), (seed, named)
    with pytest.raises(ConfigError, match="negative"):
        Rules(no_repeat=-1)
    with pytest.raises(ConfigError, match=r"shortest length asked for \(600 s\) is above the longest \(10 s\)"):
        Rules(min_duration=600, max_duration=10)
    assert Rules(min_duration=600).limits() == "no song of the last 50, at least 600 s long"
    assert Rules(no_repeat=0, filters=Filters(max_per_artist=1)).limits() == "the artist and album filters"


def test_another_file_of_a_song_just_played_or_picked_is_no_next_song(songs):
    """A FLAC and its MP3 have two hashes: the MP3 came back once the gaps let it."""
    import dataclasses

    rows, _ = songs
    mp3 = dataclasses.replace(row(10, "Z", "Z1"), duration=rows[0].duration + 0.3, title=rows[0].title)
    near = dataclasses.replace(row(11, "Y", "Y1"), duration=rows[3].duration + 0.3, title=rows[3].title)
    made = rows + [mp3, near]
    angles = {r.hash: r.id / 10 for r in rows} | {mp3.hash: 0.001, near.hash: 0.301}
    rec = Recommender.of(made, {h: np.array([np.cos(a), np.sin(a)], np.float32) for h, a in angles.items()})
    got = next_songs(rec, [rows[0]], [rows[0]], 9, Rules(artist_gap=0, album_gap=0))
    assert mp3.hash not in {r.row.hash for r in got}                 # the seed's other file
    assert len({r.row.hash for r in got} & {rows[3].hash, near.hash}) == 1   # one file of song 3


@pytest.mark.parametrize("decay", [0.0, -0.5, 1.5])
def test_a_seed_decay_outside_its_range_is_refused(decay):
    with pytest.raises(ConfigError, match="seed_decay must be above 0 and at most 1"):
        Rules(seed_decay=decay)


def test_music_root_maps_player_names_both_ways(songs):
    rows, _ = songs
    root = MusicRoot()
    assert root.to_library("A/A1/00.flac") is None
    assert root.learn("A/A1/00.flac", rows) and root.local == "/music"
    assert root.to_library("B/B1/03.flac") == "/music/B/B1/03.flac"
    assert root.to_player("/music/B/B1/03.flac") == "B/B1/03.flac"
    assert root.to_player("/elsewhere/x.flac") is None
    assert not MusicRoot().learn("not/in/the/library.flac", rows)
    twice = rows + [dataclasses.replace(rows[3], id=30, path="/backup/music/B/B1/03.flac", hash="h30")]
    unsure = MusicRoot()   # a backup scanned too: which of the two folders MPD plays from is unknown
    assert not unsure.learn("B/B1/03.flac", twice) and unsure.candidates == ["/backup/music", "/music"]
    assert unsure.learn("A/A1/00.flac", twice) and unsure.local == "/music" and unsure.candidates == []
    assert MusicRoot("/music/A").to_player("/music/A/A1/00.flac") == "A1/00.flac"
