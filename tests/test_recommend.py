"""Recommendations on hand-made embeddings whose answers are known, and through the CLI."""

import dataclasses
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from reform import Library
from reform.cli import main
from reform.errors import ConfigError
from reform.recommend import EXPAND, EXPAND_POWER, WALK, Filters, Recommender, Seed
from reform.search import find
from reform.store import FileRow
from reform.text import artists


def row(i, artist, album, title, digest=None):
    return FileRow(i, f"/m/{artist}/{album}/{title}.flac", 1, 1, digest or f"h{i}", "ok", None, 100.0 + i,
                   44100, 2, 100, "flac", "fv", artist, album, title, None, None, None, 0.0)


ROWS = [row(1, "A", "A1", "seed"), row(2, "A", "A1", "same album"), row(3, "A", "A2", "other album"),
        row(4, "B", "B1", "close b"), row(5, "C", "C1", "far"), row(6, "B", "B1", "copy of close b", "h4"),
        row(7, "D", "D1", "between")]
ANGLE = {"h1": 0.0, "h2": 0.1, "h3": 0.2, "h4": 0.15, "h5": 3.0, "h7": 1.5}
EMB = {h: np.array([np.cos(a), np.sin(a), 0.0], np.float32) for h, a in ANGLE.items()}


@pytest.fixture
def rec():
    """Plain cosine ranking (no query expansion): the answers below follow the angles."""
    return Recommender.of(ROWS, EMB, expand=0)


def titles(recs):
    return [r.row.title for r in recs]


def test_similar_orders_by_cosine_and_never_returns_the_seed(rec):
    seed = rec.seed_of(find(ROWS, "seed"))
    recs = rec.similar(seed, n=10)
    assert titles(recs) == ["same album", "close b", "other album", "between", "far"]
    assert recs[0].score == pytest.approx(np.cos(0.1), abs=1e-5)


def test_duplicates_are_shown_once(rec):
    seed = rec.seed_of(find(ROWS, "seed"))
    assert "copy of close b" not in titles(rec.similar(seed, n=10))
    assert len(rec) == 6


def test_filters(rec):
    seed = rec.seed_of(find(ROWS, "seed"))
    assert titles(rec.similar(seed, 10, Filters(exclude_same_artist=True))) == ["close b", "between", "far"]
    assert titles(rec.similar(seed, 10, Filters(exclude_same_album=True))) == [
        "close b", "other album", "between", "far"]
    assert titles(rec.similar(seed, 10, Filters(max_per_artist=1))) == ["same album", "close b", "between", "far"]
    assert titles(rec.similar(seed, 2)) == ["same album", "close b"]
    spelt = [row(1, "A", "Café", "seed"), row(2, "A", "cafe", "same album"), row(3, "A", None, "untagged"),
             row(4, "B", None, "untagged too")]
    other = Recommender.of(spelt, {r.hash: EMB["h1"] for r in spelt}, expand=0)
    assert sorted(titles(other.similar(other.seed_of(spelt[0]), 10, Filters(exclude_same_album=True)))) == [
        "untagged", "untagged too"]


def test_a_song_of_several_artists_is_by_each_of_them():
    """ "Artist A / Artist B / Björk" (three TPE1 values, as ReFORM joins them) is a song of Björk's
    too, and "Artist B; Other" of Artist B's; "&" stays inside a name ("Simon & Garfunkel")."""
    rows = [row(1, "Björk", "X", "x"), row(2, "Artist A / Artist B / Björk", "F", "feat"),
            row(3, "Simon & Garfunkel", "S", "duo"), row(4, "Simon", "S2", "simon"),
            row(5, "Artist B; Other", "O", "semi"), row(6, "Artist A", "A", "a alone"), row(7, "Far", "Y", "y")]
    angles = [0.0, 0.1, 0.3, 0.4, 0.5, 2.9, 3.0]
    rec = Recommender.of(rows, {r.hash: np.array([np.cos(a), np.sin(a)], np.float32)
                                for r, a in zip(rows, angles)}, expand=0)
    x, y = rec.seed_of(rows[0]), rec.seed_of(rows[-1])
    assert titles(rec.similar(x, 10, Filters(exclude_same_artist=True))) == ["duo", "simon", "semi", "a alone", "y"]
    assert titles(rec.similar(x, 10, Filters(max_per_artist=1))) == ["feat", "duo", "simon", "y"]
    assert titles(rec.mix([x, y], 10, Filters(max_per_artist=1))) == ["feat", "simon", "duo"]
    playlist = rec.playlist([x, y], 10, Filters(max_per_artist=1))
    named = [a for r in playlist for a in artists(r.row.artist)]
    assert len(playlist) >= 3 and len(named) == len(set(named))


def test_a_mix_takes_each_seeds_nearest_songs_in_turn_or_those_of_their_centre(rec):
    seeds = [rec.seed_of(find(ROWS, "seed")), rec.seed_of(find(ROWS, "far"))]
    assert titles(rec.mix(seeds, 4)) == ["same album", "between", "close b", "other album"]
    assert titles(rec.mix(seeds, 1, how="centre")) == ["between"]
    assert titles(rec.mix(seeds, 3, Filters(max_per_artist=1))) == ["same album", "between", "close b"]
    with pytest.raises(ConfigError, match="unknown way of mixing 'middle'"):
        rec.mix(seeds, 3, how="middle")


def test_a_mix_expands_each_seed_so_that_it_leans_to_none():
    """Expanding the seeds' centre took its two nearest songs, both of one seed's kind when that
    kind lies nearer the middle, and the other seed's songs fell out of the mix. x's mates lie
    off to a side, y's lean towards x; two songs lie between them."""
    e = np.eye(4)
    where = {"x": e[0], "x mate 1": e[0] + 0.66 * e[2], "x mate 2": e[0] + 0.73 * e[2],
             "y": e[1], "y mate 1": e[1] + 0.44 * e[0], "y mate 2": e[1] + 0.48 * e[0],
             "y mate 3": e[1] + 0.4 * e[0] + 0.1 * e[3],
             "between 1": e[0] + e[1] + 2.2 * e[3], "between 2": e[0] + e[1] + 2.4 * e[3]}
    rows = [row(i, name.split()[0], "album", name) for i, name in enumerate(where, 1)]
    emb = {r.hash: (where[r.title] / np.linalg.norm(where[r.title])).astype(np.float32) for r in rows}
    for expand in (0, 2):   # the plain cosine, and each seed expanded by its own nearest songs
        rec = Recommender.of(rows, emb, expand=expand)
        seeds = [rec.seed_of(find(rows, "x")), rec.seed_of(find(rows, "y"))]
        assert titles(rec.mix(seeds, 4, how="centre")) == ["y mate 2", "y mate 1", "y mate 3", "x mate 1"], expand
        assert titles(rec.mix(seeds, 4)) == ["x mate 1", "y mate 3", "x mate 2", "y mate 1"], expand   # in turn
    one = rec.seed_of(find(rows, "x"))
    for how in ("each", "centre"):                                       # one seed: its similar songs
        assert titles(rec.mix([one], 3, how=how)) == titles(rec.similar(one, 3))


def test_another_file_of_one_recording_is_recommended_once():
    """A FLAC and its MP3 are two recordings by their bytes: both filled the top of a list, and a
    playlist played the song twice in a row.  As long within a second, and this close: one song."""
    import dataclasses

    def at(i, title, angle, seconds):
        return dataclasses.replace(row(i, "A", "A1", title), duration=seconds), np.array(
            [np.cos(angle), np.sin(angle), 0.0], np.float32)

    made = [at(1, "seed", 0.0, 200.0), at(2, "seed mp3", 0.05, 200.4), at(3, "neighbour", 0.3, 180.0),
            at(4, "neighbour mp3", 0.32, 180.0), at(5, "alike, longer", 0.06, 230.0), at(6, "far", 1.2, 200.0)]
    rows = [r for r, _ in made]
    rec = Recommender.of(rows, {r.hash: v for r, v in made}, expand=0)
    seed = rec.seed_of(rows[0])
    assert titles(rec.similar(seed, 10)) == ["alike, longer", "neighbour", "far"]
    assert titles(rec.mix([seed, rec.seed_of(rows[5])], 10)) == ["alike, longer", "neighbour mp3"]   # once
    assert titles(rec.playlist([seed], 10)) == ["alike, longer", "neighbour", "far"]
    # nearer the seed than its tagged file, and larger (a FLAC made from an OGG): no artist or
    # album, and its file name for a title, as a scan gives an untagged file
    copy, vector = at(7, "untagged", 0.25, 180.2)
    made.append((dataclasses.replace(copy, title="track07", artist=None, album=None, size=10**9), vector))
    rows = [r for r, _ in made]
    rec = Recommender.of(rows, {r.hash: v for r, v in made}, expand=0)
    assert titles(rec.similar(rec.seed_of(rows[0]), 10)) == ["alike, longer", "neighbour", "far"]   # the tagged


def test_a_model_that_puts_every_song_close_hides_none_as_a_copy():
    """A model that collapsed, or one trained briefly on a few songs, puts every pair at 0.999:
    as long as each other within a second, every song was taken for another file of the query's
    recording, and `reform similar` said "the library has no other song"."""
    import dataclasses

    made = [(dataclasses.replace(row(i, f"A{i}", "X", f"song {i}"), duration=8.0),
             np.array([1.0, 0.01 * i, 0.0], np.float32)) for i in range(1, 11)]
    rows = [r for r, _ in made]
    rec = Recommender.of(rows, {r.hash: v for r, v in made}, expand=0)
    assert rec.copy_cosine == float("inf")
    assert len(rec.similar(rec.seed_of(rows[0]), 5)) == 5 and len(rec.playlist([rec.seed_of(rows[0])], 5)) == 5
    copy = dataclasses.replace(row(11, "A1", "X", "song 1"), duration=8.2)   # its tags still tell a copy
    rec = Recommender.of(rows + [copy], {**{r.hash: v for r, v in made}, copy.hash: made[0][1]}, expand=0)
    assert "song 1" not in titles(rec.similar(rec.seed_of(rows[0]), 10))


@pytest.mark.parametrize("copy_angle", [0.25, 0.35])
def test_a_recording_is_filtered_by_its_tagged_file_not_an_untagged_copy(copy_angle):
    """An untagged copy (no artist, no album) passed every filter: ranked above its tagged file,
    it kept a song of the seed's artist in the list; ranked below it, it brought one back."""
    import dataclasses

    def at(i, artist, title, angle, seconds):
        return dataclasses.replace(row(i, artist, f"{artist}1", title), duration=seconds), np.array(
            [np.cos(angle), np.sin(angle), 0.0], np.float32)

    made = [at(1, "A", "seed", 0.0, 200.0), at(2, "A", "neighbour", 0.3, 180.0), at(3, "A", "A again", 0.28, 300.0),
            at(4, "B", "other", 0.5, 150.0), at(5, "C", "far", 1.2, 200.0)]
    copy, vector = at(6, "A", "copy", copy_angle, 180.2)
    made.append((dataclasses.replace(copy, title="track07", artist=None, album=None, size=10**9), vector))
    rows = [r for r, _ in made]
    rec = Recommender.of(rows, {r.hash: v for r, v in made}, expand=0)
    seed = rec.seed_of(rows[0])
    assert sorted(titles(rec.similar(seed, 10))) == ["A again", "far", "neighbour", "other"]
    assert titles(rec.similar(seed, 10, Filters(exclude_same_artist=True))) == ["other", "far"]
    assert titles(rec.similar(seed, 10, Filters(exclude_same_album=True))) == ["other", "far"]
    assert titles(rec.similar(seed, 10, Filters(max_per_artist=1))) == ["A again", "other", "far"]


def test_two_artists_songs_of_one_title_and_length_are_two_songs():
    """Every other artist's "Intro" of about a minute was taken for another file of the seed's."""
    import dataclasses

    def at(i, artist, title, angle, seconds=60.0):
        return dataclasses.replace(row(i, artist, f"{artist} album", title), duration=seconds), np.array(
            [np.cos(angle), np.sin(angle), 0.0], np.float32)

    made = [at(1, "Metallica", "Intro", 0.0), at(2, "Slayer", "Angel", 0.2, 300.0),
            at(3, "Beyonce", "Intro", 0.9, 60.6), at(4, "Untagged", "Intro", 0.5, 60.3)]
    rows = [r for r, _ in made]
    rows[3] = dataclasses.replace(rows[3], artist=None)          # no artist: it may be the seed's file
    rec = Recommender.of(rows, {r.hash: v for r, v in zip(rows, (v for _, v in made))}, expand=0)
    assert titles(rec.similar(rec.seed_of(rows[0]), 10)) == ["Angel", "Intro"]
    assert [r.row.artist for r in rec.similar(rec.seed_of(rows[0]), 10)] == ["Slayer", "Beyonce"]


def test_playlist_flows_without_repeats(rec):
    seed = rec.seed_of(find(ROWS, "seed"))
    recs = rec.playlist([seed], length=5)
    assert len(recs) == len({r.row.hash for r in recs}) == 5
    assert "seed" not in titles(recs)
    assert titles(recs)[:3] == ["same album", "close b", "other album"]
    assert all(r.flow is not None for r in recs)


def test_a_playlist_of_several_seeds_flows_on_from_the_last_one():
    """`playlist celtic foxrun -o` wrote celtic, foxrun, then celtic's neighbours: the playlist
    started next to the first seed, and the file (seeds first) jumped back after the last."""
    rows, vectors = on_circle({"first": 0.0, "near first": 0.1, "last": 1.5, "near last": 1.4, "between": 0.75})
    rec = Recommender.of(rows, vectors, expand=0, walk=0)
    seeds = [rec.seed_of(rows[0]), rec.seed_of(rows[2])]
    assert titles(rec.playlist(seeds, 3))[0] == "near last"
    assert titles(rec.playlist(seeds[::-1], 3))[0] == "near first"


def on_circle(angles):
    rows = [row(i, f"artist {i}", f"album {i}", name) for i, name in enumerate(angles, 1)]
    return rows, {r.hash: np.array([np.cos(a), np.sin(a)], np.float32) for r, a in zip(rows, angles.values())}


def test_query_expansion_known_answer():
    rows, emb = on_circle({"seed": 0.0, "near": 0.1, "next": 0.25})
    rec = Recommender.of(rows, emb, expand=1)
    recs = rec.similar(rec.seed_of(find(rows, "seed")), n=2)
    # the query is the seed plus its nearest song weighted by its cosine cubed
    w = np.cos(0.1) ** EXPAND_POWER
    angle = np.arctan2(w * np.sin(0.1), 1 + w * np.cos(0.1))
    assert titles(recs) == ["near", "next"]
    assert [r.score for r in recs] == pytest.approx([np.cos(0.1 - angle), np.cos(0.25 - angle)], abs=1e-5)


def test_query_expansion_prefers_a_song_of_a_group_over_a_lone_one():
    # a lone song is nearest the seed; three songs close to each other lie a little further
    rows, emb = on_circle({"seed": 0.0, "lone": 0.30, "kin 1": -0.32, "kin 2": -0.34, "kin 3": -0.36})
    seed = find(rows, "seed")
    assert titles(Recommender.of(rows, emb, expand=0).similar(Recommender.of(rows, emb).seed_of(seed), 1)) == ["lone"]
    rec = Recommender.of(rows, emb, expand=3)
    assert titles(rec.similar(rec.seed_of(seed), 1)) == ["kin 1"]


def test_query_expansion_never_averages_in_a_seed():
    rows, emb = on_circle({"a": 0.0, "b": 0.05, "c": 1.0})
    rec = Recommender.of(rows, emb, expand=1)
    seeds = [rec.seed_of(find(rows, "a")), rec.seed_of(find(rows, "b"))]
    centre = np.array([np.cos(0.025), np.sin(0.025)])
    w = np.cos(1.0 - 0.025) ** EXPAND_POWER                     # c, the nearest song that is no seed
    expected = centre + w * emb[find(rows, "c").hash]
    assert np.allclose(rec.expanded(np.mean([s.vector for s in seeds], 0), [s.row for s in seeds]),
                       expected / np.linalg.norm(expected), atol=1e-6)


def test_the_walk_and_query_expansion_need_the_cosine_and_exclude_each_other():
    plain = Recommender.of(ROWS, EMB, metric="dot")
    assert (plain.expand, plain.walk) == (0, 0)                        # off by default for the others
    default = Recommender.of(ROWS, EMB)
    assert (default.expand, default.walk) == (0, WALK)                 # the walk ranks by default
    assert (Recommender.of(ROWS, EMB, expand=2).walk, Recommender.of(ROWS, EMB, expand=0).walk) == (0, 0)
    assert Recommender.of(ROWS, EMB, walk=0).expand == EXPAND          # the expansion, as before the walk
    with pytest.raises(ConfigError, match="query expansion weighs songs by their cosine"):
        Recommender.of(ROWS, EMB, metric="euclidean", expand=2)
    with pytest.raises(ConfigError, match="the walk weighs songs by their cosine"):
        Recommender.of(ROWS, EMB, metric="dot", walk=20)
    with pytest.raises(ConfigError, match="not both"):
        Recommender.of(ROWS, EMB, expand=2, walk=20)
    with pytest.raises(ConfigError):
        Recommender.of(ROWS, EMB, expand=-1)


def test_the_walk_ranks_a_chain_of_close_songs_above_a_nearer_song_off_it_and_keeps_the_nearest_first():
    """Songs a1..a6 lie on a chain leading away from the seed, b1 and b2 apart from it and from
    each other; the nearest song (a1) stays first whatever the walk makes of it, and the chain's
    songs outrank b2, which the cosine puts before the chain's far end."""
    angles = {"seed": 0.0, "a1": 0.10, "a2": 0.20, "a3": 0.30, "a4": 0.40, "a5": 0.50, "a6": 0.60,
              "b1": -0.35, "b2": -0.55}
    rows = [row(i, f"artist {i}", f"album {i}", title, f"h{i}") for i, title in enumerate(angles)]
    vectors = {r.hash: np.array([np.cos(angles[r.title]), np.sin(angles[r.title]), 0.0], np.float32)
               for r in rows}
    cosine = titles(Recommender.of(rows, vectors, expand=0).similar(Recommender.of(rows, vectors, expand=0)
                                                                    .seed_of(rows[0]), 8))
    assert cosine == ["a1", "a2", "a3", "b1", "a4", "a5", "b2", "a6"]
    rec = Recommender.of(rows, vectors, walk=2)
    walked = rec.similar(rec.seed_of(rows[0]), 8)
    assert titles(walked)[0] == "a1" and titles(walked).index("b1") > titles(walked).index("a4")
    assert sorted(titles(walked)) == sorted(cosine)
    assert [r.score for r in walked if r.row.title == "a1"] == pytest.approx([np.cos(0.1)])   # the cosine shown
    from reform.cli import _walk_note                  # which the command line says, where it rises down the list
    assert "a score is the song's cosine to the query" in _walk_note(rec, walked)
    plain = Recommender.of(rows, vectors, expand=0)
    assert _walk_note(plain, plain.similar(plain.seed_of(rows[0]), 8)) is None


@pytest.mark.parametrize("links", [2, 3, 20])
def test_the_walk_ranks_alike_whatever_the_number_of_files_of_a_recording(links):
    """Six files of one song (a FLAC, its MP3s...) were six nodes of the walk's graph, linked to
    each other: their clique drew the walk's score to their side of the query, and the songs on
    the other side fell down the list.  They are one node, so the list is the one a single file
    gives."""
    angles = {"seed": 0.0, "a1": 0.10, "a2": 0.20, "a3": 0.30, "a4": 0.40, "b1": -0.15, "b2": -0.30,
              "b3": -0.45, "x": -0.22}

    def ranked(files: int) -> list[str]:
        rows = [row(i, f"artist {i}", f"album {i}", title, f"h{i}") for i, title in enumerate(angles)]
        rows += [dataclasses.replace(rows[-1], id=100 + c, path=f"/m/x/{c}.mp3", hash=f"hx{c}",
                                     duration=rows[-1].duration + 0.01 * c) for c in range(files - 1)]
        vectors = {r.hash: np.array([np.cos(angles[r.title]), np.sin(angles[r.title]), 0.001 * k], np.float32)
                   for k, r in enumerate(rows)}
        rec = Recommender.of(rows, vectors, walk=links)
        return titles(rec.similar(rec.seed_of(rows[0]), 8))

    assert ranked(6) == ranked(1)


def test_the_walk_over_a_query_and_its_pool_is_the_bench_diffusion_of_that_song():
    """reform.space.walk over the rest of a library is the row of the library-wide diffusion
    (`diffusion-near`, nearest kept first) that docs/method.md measured."""
    from reform.space import WALK_ALPHA, similarity, walk

    x = np.random.default_rng(3).normal(size=(40, 6))
    whole = similarity(x, average="diffusion-near", neighbours=5, keep_nearest=True, alpha=WALK_ALPHA)
    for i in (0, 17):
        others = np.delete(np.arange(40), i)
        assert np.allclose(walk(x[i], x[others], 5), whole[i, others])


# -- through the library and the CLI ----------------------------------------------------------------
@pytest.fixture
def home(trained, tmp_path):
    copy = tmp_path / "home"
    shutil.copytree(trained, copy)
    return str(copy)


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_similar_json_and_options(home, capsys):
    code, out, _ = run(capsys, "--home", home, "similar", "A Four Forty", "--json", "-n", "3")
    assert code == 0
    items = json.loads(out)
    assert len(items) == 3
    assert {"path", "artist", "title", "album", "score"} <= set(items[0])
    assert all("Four Forty" not in i["title"] for i in items)
    code, out, _ = run(capsys, "--home", home, "similar", "A Four Forty", "--json", "--exclude-same-artist")
    assert all(i["artist"] != "Tone Band" for i in json.loads(out))
    code, out, _ = run(capsys, "--home", home, "similar", "A Four Forty", "--json", "--exclude-same-album")
    assert all(i["album"] != "Sines" for i in json.loads(out))
    code, out, _ = run(capsys, "--home", home, "mix", "A Four Forty", "White", "--json", "--max-per-artist", "1")
    artists = [i["artist"] for i in json.loads(out)]
    assert len(artists) == len(set(artists))
    code, out, _ = run(capsys, "--home", home, "similar", "Clicks")
    assert code == 0 and "songs like Noise Crew - Clicks" in out and "[" in out
    assert "no file there now" not in out
    with Library(home, create=False) as lib:          # a file moved away since the scan: said beside it
        row = next(r for r in lib.songs() if r.title == "White")
        with lib.home.catalogue.transaction():
            lib.home.catalogue.conn.execute("UPDATE files SET path = ? WHERE id = ?", (row.path + ".gone", row.id))
    code, out, _ = run(capsys, "--home", home, "similar", "Clicks")
    assert [line.endswith("(no file there now)") for line in out.splitlines() if "  " in line] == \
        ["White" in line for line in out.splitlines() if "  " in line]
    assert any("White" in line for line in out.splitlines())


def test_a_mix_whose_scores_rise_down_the_list_says_why(home, capsys):
    """A mix listed 0.521 above 0.871 with no word, where `similar` explains the same."""
    code, out, err = run(capsys, "--home", home, "mix", "A Four Forty", "White", "-n", "3")
    scores = [float(line.split()[1]) for line in out.splitlines() if line[:4].strip().rstrip(".").isdigit()]
    assert code == 0 and len(scores) == 3 and scores != sorted(scores, reverse=True)   # this library's case
    assert "note: a mix takes each seed's nearest songs in turn" in err
    code, out, err = run(capsys, "--home", home, "mix", "A Four Forty", "White", "-n", "3", "--centre")
    assert code == 0 and "in turn" not in err


def test_a_seed_left_out_of_the_file_is_not_said_to_come_first(home, capsys, tmp_path, monkeypatch):
    from reform import export

    real = export.write_m3u   # as for a seed whose path holds a line break, which M3U cannot hold
    monkeypatch.setattr(export, "write_m3u", lambda out, rows, relative=False: [rows[0], *real(out, rows[1:])])
    out_file = tmp_path / "flow.m3u8"
    code, out, _ = run(capsys, "--home", home, "playlist", "Chord", "--length", "3", "-o", str(out_file))
    assert code == 0 and f"wrote {out_file}\n" in out and "seed song" not in out


def test_cli_playlist_writes_m3u(home, capsys, tmp_path):
    out_file = tmp_path / "lists" / "flow.m3u8"
    out_file.parent.mkdir()
    code, out, _ = run(capsys, "--home", home, "playlist", "Chord", "--length", "3", "-o", str(out_file))
    assert code == 0 and "(1 seed song first)" in out
    lines = out_file.read_text().splitlines()
    assert lines[0] == "#EXTM3U" and len(lines) == 9 and lines[1].startswith("#EXTINF:")
    assert Path(lines[2]).is_absolute()
    with Library(home) as lib:
        seed = lib.resolve("Chord", lib.recommender())
    assert lines[2] == seed.row.path and seed.row.path not in lines[3:]   # the seed plays first, once
    run(capsys, "--home", home, "playlist", "Chord", "-n", "3", "-o", str(out_file), "--relative")  # -n as elsewhere
    rel = out_file.read_text().splitlines()[2]
    assert len(out_file.read_text().splitlines()) == 9
    assert not Path(rel).is_absolute() and (out_file.parent / rel).resolve().exists()


def test_query_file_outside_the_library(home, capsys, tmp_path):
    from conftest import noise, write

    outside = write(tmp_path / "elsewhere" / "query song.wav", noise(20, seed=9))
    code, out, _ = run(capsys, "--home", home, "similar", str(outside), "--json")
    assert code == 0 and len(json.loads(out)) == 5
    with Library(home) as lib:
        assert lib.home.catalogue.file(path=str(outside)) is None  # analysed, not added
    broken = tmp_path / "broken.mp3"
    broken.write_text("not audio")
    code, _, err = run(capsys, "--home", home, "similar", str(broken))
    assert code == 1 and "cannot be decoded" in err and "plays in another player" in err   # not "try other words"
    latin1 = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"caf\xe9.wav"))   # a name that is not UTF-8
    shutil.copy(outside, latin1)
    code, out, _ = run(capsys, "--home", home, "similar", latin1)
    assert code == 0 and "songs like caf\\xe9.wav:" in out
    code, _, err = run(capsys, "--home", home, "similar", os.path.basename(latin1))
    assert code == 1 and "not UTF-8" in err



def test_an_outside_file_of_a_library_song_is_not_its_own_recommendation(home, capsys, tmp_path):
    """A FLAC from outside the library of a song the library holds as WAV (a new download of a
    song one has) listed the library's WAV first, at a cosine of 1: an outside file had no length
    or tags to tell its other files by. Its artist tag now counts for --exclude-same-artist too."""
    import mutagen.flac
    import soundfile as sf

    with Library(home) as lib:
        root = lib.home.roots()[0]
    audio, sr = sf.read(os.path.join(root, "Tone Band", "Sines", "01 A Four Forty.wav"))
    outside = tmp_path / "downloads" / "a four forty.flac"
    outside.parent.mkdir()
    sf.write(outside, audio, sr)
    code, out, _ = run(capsys, "--home", home, "similar", str(outside), "--json")
    assert code == 0 and [i for i in json.loads(out) if i["title"] == "A Four Forty"] == []
    tagged = mutagen.flac.FLAC(outside)
    tagged["artist"] = "Tone Band"
    tagged.save()
    code, out, _ = run(capsys, "--home", home, "similar", str(outside), "--json", "--exclude-same-artist")
    assert code == 0 and json.loads(out) and all(i["artist"] != "Tone Band" for i in json.loads(out))

def test_a_song_named_by_another_way_to_its_folder_is_the_library_song(home, capsys, tmp_path):
    """A scanned folder reached through a link, and a folder scanned through a link reached by its
    real path: the song is the library's, not an outside file that comes out as its own neighbour."""
    from conftest import build_music

    with Library(home) as lib:
        root = lib.home.roots()[0]
    song = os.path.join("Tone Band", "Sines", "01 A Four Forty.wav")
    (tmp_path / "link").symlink_to(root)
    code, out, _ = run(capsys, "--home", home, "similar", str(tmp_path / "link" / song), "--json")
    assert code == 0 and os.path.join(root, song) not in [r["path"] for r in json.loads(out)]
    with Library(home) as lib:
        assert lib.resolve(tmp_path / "link" / song).row.path == os.path.join(root, song)
        copy = shutil.copy(os.path.join(root, song), tmp_path / "copy.wav")   # the same bytes elsewhere
        assert lib.resolve(copy).row.path == os.path.join(root, song)

    build_music(tmp_path / "real")
    (tmp_path / "linked").symlink_to(tmp_path / "real")
    with Library(tmp_path / "home2") as lib:
        lib.scan(tmp_path / "linked", jobs=1, embed=True)
        seed = lib.resolve(tmp_path / "real" / song)
    assert seed.row is not None and seed.row.path == str(tmp_path / "linked" / song)


def test_bad_queries_are_one_line_errors(home, capsys, tmp_path):
    code, _, err = run(capsys, "--home", home, "similar", "no such song at all")
    assert code == 1 and err.startswith("error: no song matches") and "hint:" in err
    code, _, err = run(capsys, "--home", home, "similar", "Noise Crew")
    assert code == 1 and "songs match" in err
    code, _, err = run(capsys, "--home", str(tmp_path / "void"), "similar", "x")
    assert code == 1 and "no library" in err


def test_empty_library_and_missing_embeddings(scanned, tmp_path, capsys):
    empty = tmp_path / "empty"
    Library(empty).close()
    code, _, err = run(capsys, "--home", str(empty), "similar", "x")
    assert code == 1 and "empty" in err and f"reform --home {empty} scan" in err
    home = tmp_path / "noemb"
    shutil.copytree(scanned, home)
    code, _, err = run(capsys, "--home", str(home), "similar", "Chord")
    assert code == 1 and f"reform --home {home} embed" in err


@pytest.mark.parametrize("ext", [".npz", ".csv", ".parquet"])
def test_export(home, capsys, tmp_path, ext):
    out = tmp_path / f"all{ext}"
    code, _, _ = run(capsys, "--home", home, "export", str(out))
    assert code == 0
    if ext == ".npz":
        data = np.load(out)
        assert data["paths"].shape[0] == data["embeddings"].shape[0] == 5
        assert "Tone Band" in list(data["artist"])
    elif ext == ".csv":
        lines = out.read_text().splitlines()
        assert len(lines) == 6 and lines[0].startswith("path,artist,album,title")
    else:
        import pyarrow.parquet as pq

        import pyarrow as pa

        table = pq.read_table(out)
        assert table.num_rows == 5 and "embedding" in table.column_names
        assert table.schema.field("year").type == pa.int64()        # no song has a year: still numbers
        assert table.column("year").null_count == 5 and table.schema.field("album").type == pa.string()
        with Library(home) as lib:
            assert table.schema.metadata[b"model"].decode() == lib.embeddings()[0]   # as the .npz says
    code, _, err = run(capsys, "--home", home, "export", str(tmp_path / "x.xlsx"))
    assert code == 1 and "unknown export format" in err


def test_notes_about_stale_embeddings(home, capsys, tmp_path):
    from conftest import noise, write

    write(tmp_path / "more" / "new.wav", noise(20, seed=4))
    with Library(home) as lib:
        lib.scan(tmp_path / "more", jobs=1)
    code, _, err = run(capsys, "--home", home, "similar", "Chord")
    assert code == 0 and "1 song has no embedding yet and is left out" in err
    code, out, err = run(capsys, "--home", home, "export", str(tmp_path / "all.csv"))
    assert "wrote 5 songs" in out and "1 song has no embedding yet and is left out" in err
    with Library(home) as lib:
        lib.home.catalogue.set_meta("embedding_model", "an-older-model")
        lib.home.catalogue.put_embeddings("an-older-model", [(s.hash, np.ones(4)) for s in lib.songs()])
    code, _, err = run(capsys, "--home", home, "similar", "Chord")
    assert code == 0 and "another model than the active one" in err


def test_two_files_from_outside_the_library_of_one_name_are_two_seeds(capsys):
    """They were keyed by their label, the file name alone: the mix took one of them."""
    from reform.cli import _distinct
    from reform.recommend import Seed

    a = Seed(np.array([1.0, 0.0], np.float32), None, "track01.wav")
    b = Seed(np.array([0.0, 1.0], np.float32), None, "track01.wav")
    again = Seed(np.array([1.0, 0.0], np.float32), None, "track01.wav")    # the first file given twice
    assert _distinct([a, b, again]) == [a, b]
    assert capsys.readouterr().err == "note: track01.wav was given twice: taken once\n"


def test_the_three_metrics_rank_alike_on_unit_song_vectors():
    """What --metric's help says: song vectors have unit length, so dot and euclidean order every
    list as the plain cosine does (a mix's centre too, which is not of unit length); the scores
    differ.  (With the cosine, songs are ranked by the walk by default, which the others lack.)"""
    rows = [row(i, f"artist {i}", f"album {i}", f"title {i}") for i in range(40)]
    x = np.random.default_rng(6).normal(size=(40, 8)).astype(np.float32)
    vectors = {r.hash: v / np.linalg.norm(v) for r, v in zip(rows, x)}
    lists = {}
    for metric in ("cosine", "dot", "euclidean"):
        rec = Recommender.of(rows, vectors, metric=metric, expand=0)
        seeds = [rec.seed_of(rows[i]) for i in (0, 7)]
        lists[metric] = ([r.row.id for r in rec.similar(seeds[0], 12)],
                         [r.row.id for r in rec.mix(seeds, 12, how="centre")],
                         [round(r.score, 3) for r in rec.similar(seeds[0], 3)])
    assert lists["dot"][:2] == lists["cosine"][:2] == lists["euclidean"][:2]
    assert lists["dot"][2] == lists["cosine"][2] != lists["euclidean"][2]


def test_a_copy_given_beside_its_original_is_named_as_a_copy(capsys):
    """`mix song.flac backup/song.flac` was told "Artist - Song was given twice": the user gave two
    files, and did not know they hold one audio."""
    from reform.cli import _distinct

    first = dataclasses.replace(row(1, "A", "Album", "Song"), path="/music/song.flac")
    copy = dataclasses.replace(first, id=2, path="/backup/song.flac")
    seeds = [Seed(np.array([1.0, 0.0], np.float32), r, "A - Song") for r in (first, copy, first)]
    assert _distinct(seeds) == seeds[:1]
    assert capsys.readouterr().err == ("note: /backup/song.flac holds the same audio as /music/song.flac: taken once\n"
                                       "note: A - Song was given twice: taken once\n")


def test_query_expansion_never_averages_in_another_file_of_a_seed():
    """The seed's MP3 was one of the two songs its query was averaged with: the list moved."""
    import dataclasses

    rows, emb = on_circle({"seed": 0.0, "n1": 0.3, "n2": 0.45, "far": 2.0})
    rows = [dataclasses.replace(r, duration=100.0 + 10 * i) for i, r in enumerate(rows)]
    mp3 = dataclasses.replace(rows[0], id=9, path="/m/seed.mp3", hash="h9")
    alone = Recommender.of(rows, emb, expand=2)
    with_mp3 = Recommender.of(rows + [mp3], emb | {"h9": np.array([np.cos(0.001), np.sin(0.001)], np.float32)},
                              expand=2)
    assert np.allclose(with_mp3.expanded(emb[rows[0].hash], [rows[0]]), alone.expanded(emb[rows[0].hash], [rows[0]]))
    assert [(r.row.title, round(r.score, 6)) for r in with_mp3.similar(with_mp3.seed_of(rows[0]), 3)] == \
        [(r.row.title, round(r.score, 6)) for r in alone.similar(alone.seed_of(rows[0]), 3)]


def test_query_expansion_of_a_file_from_outside_never_averages_in_its_library_file():
    """`reform similar ~/Downloads/song.flac` with the song's OGG in the library: the OGG was one
    of the two songs the query was averaged with, so the expansion added one neighbour, not two."""
    import dataclasses

    rows, emb = on_circle({"song": 0.0, "n1": 0.3, "n2": 0.45, "far": 2.0})
    rows = [dataclasses.replace(r, duration=100.0 + 10 * i) for i, r in enumerate(rows)]
    rec = Recommender.of(rows, emb, expand=2)
    vector = np.array([np.cos(0.001), np.sin(0.001)], np.float32)   # the FLAC: not the same bytes
    flac = dataclasses.replace(rows[0], id=0, path="/downloads/song.flac", hash="outside")
    seed = Seed(vector, None, "song.flac", outside=flac)
    as_library_song = rec.expanded(emb[rows[0].hash], [rows[0]])
    assert np.allclose(rec.expanded(vector, [], [(flac, vector)]), as_library_song, atol=2e-3)
    assert [r.row.title for r in rec.similar(seed, 3)] == ["n1", "n2", "far"]
    assert [round(r.score, 2) for r in rec.similar(seed, 3)] == \
        [round(r.score, 2) for r in rec.similar(rec.seed_of(rows[0]), 3)]


def test_another_artists_album_of_the_same_name_is_another_album():
    """--exclude-same-album took every "Greatest Hits" for the seed's; a compilation (artists
    differ, one folder) and an artist's two discs (two folders) are still one album each."""
    import dataclasses

    def at(i, artist, album, title, folder, angle):
        return dataclasses.replace(row(i, artist, album, title), path=f"/m/{folder}/{title}.flac"), np.array(
            [np.cos(angle), np.sin(angle), 0.0], np.float32)

    made = [at(1, "Queen", "Greatest Hits", "Bohemian", "Queen/GH", 0.0),
            at(2, "Queen", "Greatest Hits", "Somebody", "Queen/GH/CD2", 0.1),
            at(3, "ABBA", "Greatest Hits", "SOS", "ABBA/GH", 0.2),
            at(4, "Weezer", "Weezer", "Buddy Holly", "Weezer/W", 0.3),
            at(5, "Various", "Greatest Hits", "Other", "Queen/GH", 0.4)]    # beside the seed: its album
    rows = [r for r, _ in made]
    rec = Recommender.of(rows, {r.hash: v for r, v in made}, expand=0)
    got = rec.similar(rec.seed_of(rows[0]), 10, Filters(exclude_same_album=True))
    assert titles(got) == ["SOS", "Buddy Holly"]
    # the evaluation's album filter groups them the same way: it took every "Greatest Hits" for one
    from reform.assess import evaluation_songs
    from reform.recommend import album_groups

    groups = album_groups(rows)
    assert groups[0] == groups[1] == groups[4] and len({groups[0], groups[2], groups[3]}) == 3
    kept, _, albums, _, _ = evaluation_songs(rows, "album")
    of = {r.title: album for r, album in zip(kept, albums)}
    assert of["Bohemian"] == of["Somebody"] == of["Other"] != of["SOS"]
    assert of["Buddy Holly"] not in (of["Bohemian"], of["SOS"])


def test_a_mix_of_many_songs_compares_each_song_met_with_the_seeds_of_about_its_length(monkeypatch):
    """A mix of a folder's 200 songs took 7 s on a library of 2000: each seed's expanded query
    compared the 400 songs it met with all 200 seeds (S cubed comparisons); only seeds within a
    second of a song's length can be another file of it."""
    import reform.recommend as recommend

    rng = np.random.default_rng(0)
    rows = [dataclasses.replace(row(i, f"artist {i}", f"album {i}", f"title {i}"), duration=100.0 + 3 * i)
            for i in range(300)]
    rec = Recommender.of(rows, {r.hash: rng.normal(size=16).astype(np.float32) for r in rows})
    calls = {"pairs": 0}
    for name, module in (("one_recording", Recommender), ("_one_recording", recommend)):
        original = getattr(module, name)

        def counted(*args, original=original):
            calls["pairs"] += 1
            return original(*args)
        monkeypatch.setattr(module, name, counted)
    seeds = [rec.seed_of(r) for r in rows[:60]]
    mixed = rec.mix(seeds, 10)
    assert len(mixed) == 10 and not {r.row.id for r in mixed} & set(range(60))
    assert calls["pairs"] < 60 * 60   # it was 401,046: every song met against every seed, for every seed


def test_the_song_the_walk_keeps_first_is_one_that_can_be_shown():
    """The MP3 of the seed, nearer than any other song, took the walk's first place, and was then
    passed over as a file of the seed: the nearest song that could be shown lost its place."""
    cluster = [np.array([0.94, -0.34 * np.cos(t), 0.34 * np.sin(t)]) for t in np.linspace(-0.3, 0.3, 12)]
    vectors = [np.array([1.0, 0.0, 0.0]), np.array([0.955, 0.2966, 0.0])] + cluster
    rows = [row(0, "A", "A1", "seed"), row(1, "B", "B1", "aside")] + [
        row(2 + i, f"C{i}", f"C{i}", f"near {i}") for i in range(12)]
    emb = {r.hash: v.astype(np.float32) for r, v in zip(rows, vectors)}
    rec = Recommender.of(rows, emb)
    assert titles(rec.similar(rec.seed_of(rows[0]), 3))[0] == "aside"
    mp3 = dataclasses.replace(rows[0], id=99, path="/m/A/A1/seed.mp3", hash="h99", duration=rows[0].duration + 0.3)
    emb[mp3.hash] = np.array([0.999, 0.0, 0.0447], np.float32)
    rec = Recommender.of(rows + [mp3], emb)
    shown = titles(rec.similar(rec.seed_of(rows[0]), 3))
    assert shown[0] == "aside" and "seed" not in shown


@pytest.mark.parametrize("size", ["small", "beyond the pool"])
def test_the_recommender_walks_as_the_evaluation_ranks(size):
    """Over a library larger than the walk's pool each query walks over its own 256 nearest
    songs, itself not among them (the search took 256 songs, the query's own one of them); over
    a small one, with the fewer links space.walk_links gives it, as the evaluation does."""
    from reform.recommend import WALK_POOL
    from reform.space import walks

    n = 40 if size == "small" else WALK_POOL + 4
    rows = [dataclasses.replace(row(i, f"artist {i}", f"album {i}", f"title {i}"), duration=100.0 + 3 * i)
            for i in range(n)]
    x = np.random.default_rng(4).normal(size=(n, 12)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    rec = Recommender.of(rows, {r.hash: v for r, v in zip(rows, x)})
    scores = walks(x.astype(np.float64), WALK, WALK_POOL)
    for q in (0, n // 2, n - 1):
        expected = [f"title {j}" for j in np.argsort(-scores[q], kind="stable") if j != q][:10]
        assert titles(rec.similar(rec.seed_of(rows[q]), 10)) == expected


def test_two_numbered_tracks_of_one_album_are_two_recordings_however_alike():
    """Two movements of one length on one album, 0.995 apart as a small model hears them, were
    taken for one recording: `similar` never showed the second ("18 of the 1000 songs asked for"
    in a library of 20).  The same track in two formats is still one."""
    def at(i, title, track, angle, seconds):
        r = dataclasses.replace(row(i, "A", "Suite", title), duration=seconds, track=track)
        return r, np.array([np.cos(angle), np.sin(angle), 0.0], np.float32)

    made = [at(1, "Movement 1", 1, 0.0, 200.0), at(2, "Movement 2", 2, 0.1, 200.4),
            at(3, "Movement 2", 2, 0.105, 200.3), at(4, "far", 5, 1.5, 100.0)]
    made = [(dataclasses.replace(made[2][0], path="/m/A/Suite/Movement 2.mp3"), made[2][1]) if r.id == 3 else (r, v)
            for r, v in made]
    rows = [r for r, _ in made]
    rec = Recommender.of(rows, {r.hash: v for r, v in made}, expand=0)
    assert rec.copy_cosine < 1.0 and np.cos(0.1) < 0.996
    shown = titles(rec.similar(rec.seed_of(rows[0]), 10))
    assert shown.count("Movement 2") == 1 and "far" in shown   # the track shown once, its MP3 a copy of it
    from reform.recommend import tagged_as_one

    interludes = [dataclasses.replace(rows[0], title="Interlude", track=t) for t in (3, 9)]
    assert not tagged_as_one(*interludes)
