"""Evaluation metrics on hand-made rankings whose answers are known, and `reform evaluate`."""

import json
import os

import numpy as np
import pytest

from reform.cli import main
from reform.errors import EvaluateError
from reform.evaluate import (average_precision, bootstrap_interval, dct_matrix, group_bootstrap_interval,
                             label_retrieval, mfcc_stats, precision_at_k, reciprocal_rank, same_song, standardise)


def test_precision_ap_rr_on_known_rankings():
    r = np.array([True, False, True, False, False, False, False, False, False, True])
    assert precision_at_k(r, 5) == pytest.approx(2 / 5)
    assert precision_at_k(r, 10) == pytest.approx(3 / 10)
    assert average_precision(r) == pytest.approx((1 / 1 + 2 / 3 + 3 / 10) / 3)
    assert reciprocal_rank(np.array([False, False, True])) == pytest.approx(1 / 3)
    assert average_precision(np.zeros(4, bool)) == 0.0 and reciprocal_rank(np.zeros(3, bool)) == 0.0


def _angles(values):
    return np.array([[np.cos(a), np.sin(a)] for a in values])


def test_same_song_retrieval_known_answer():
    # halves of song 0 and 1 are near each other; song 2's halves are far apart
    first = _angles([0.0, 1.0, 2.0])
    second = _angles([0.05, 1.05, 2.9])
    scores = same_song(first, second)
    # from 2.0 the nearest half is its partner 2.9 (0.9 away; 1.05 is 0.95 away), and back
    assert scores["top1"] == pytest.approx(1.0)
    second = _angles([0.05, 1.05, 3.1])
    scores = same_song(first, second)
    # from 2.0: 1.05 (0.95 away), 1.0 (1.0), then the partner 3.1 (1.1): rank 3; from 3.1: 2.0 first
    assert scores["top1"] == pytest.approx(5 / 6)
    assert scores["mrr"] == pytest.approx((5 + 1 / 3) / 6)


def test_label_retrieval_known_answer_and_album_filter():
    vectors = _angles([0.0, 0.1, 0.2, 1.5, 1.6, 3.0])
    labels = ["a", "a", "b", "b", "c", "lonely"]
    albums = ["x", "y", "x", "z", "z", "w"]
    res = label_retrieval(vectors, labels)
    # query 0 (a): ranking 1(a),2,3,4,5 -> AP 1, p@5 = 1/5
    # query 1 (a): ranking 0(a) or 2 first? 0 and 2 are both 0.1 away: stable order keeps 0 first
    assert res.per_label["a"]["map"] == pytest.approx(1.0)
    # query 2 (b): 1, 0, 3(b) -> AP 1/3 ; query 3 (b): 4, 2(b) -> AP 1/2
    assert res.per_label["b"]["map"] == pytest.approx((1 / 3 + 1 / 2) / 2)
    assert res.skipped_single == ["c", "lonely"] and res.queries == 4
    filtered = label_retrieval(vectors, labels, albums, exclude_same_album=True)
    # query 2 (b, album x): 0 (album x) is removed -> ranking 1, 3(b) -> AP 1/2
    # query 3 (b, album z): 4 (album z) is removed -> 2(b) first -> AP 1
    assert filtered.per_label["b"]["map"] == pytest.approx((1 / 2 + 1) / 2)
    untagged = label_retrieval(vectors, labels, [""] * 6, exclude_same_album=True)   # no album shared
    assert untagged.scores == res.scores
    accents = label_retrieval(vectors, labels, ["Café", "y", "cafe", "z", "Z!", "w"], exclude_same_album=True)
    assert accents.scores == filtered.scores        # albums compared as everywhere: case and accents aside


def test_label_errors():
    with pytest.raises(EvaluateError, match="no label is shared"):
        label_retrieval(_angles([0, 1]), ["a", "b"])
    with pytest.raises(EvaluateError, match="album"):
        label_retrieval(_angles([0, 1]), ["a", "a"], None, exclude_same_album=True)
    with pytest.raises(EvaluateError, match="at least 2"):
        same_song(_angles([0]), _angles([0]))


def test_bootstrap_intervals_by_query_and_by_group():
    """Resampling queries one by one, or whole groups of them (a soundtrack's songs)."""
    assert bootstrap_interval(np.full(30, 0.4)) == pytest.approx((0.4, 0.4, 0.4))
    rng = np.random.default_rng(1)
    values = rng.random(60)
    # one query per group: the same draws, the same interval
    assert group_bootstrap_interval(values, np.arange(60)) == pytest.approx(bootstrap_interval(values))
    means = values[np.random.default_rng(0).integers(0, 60, size=(2000, 60))].mean(axis=1)   # by hand
    assert bootstrap_interval(values) == pytest.approx((values.mean(), *np.percentile(means, [2.5, 97.5])))
    # 6 groups of 10 queries that are found or missed together: the queries' interval is far too
    # narrow, the groups' is as wide as 6 independent values
    together = np.repeat([0.0, 1.0, 0.0, 1.0, 1.0, 0.0], 10)
    groups = np.repeat(list("abcdef"), 10)
    mean, low, high = group_bootstrap_interval(together, groups)
    _, q_low, q_high = bootstrap_interval(together)
    assert mean == 0.5 and high - low > 2 * (q_high - q_low)
    assert (low, high) == pytest.approx(bootstrap_interval(together[::10])[1:])
    with pytest.raises(EvaluateError):
        group_bootstrap_interval(np.zeros(0), np.zeros(0))


def test_mfcc_matches_librosa():
    librosa = pytest.importorskip("librosa")
    rng = np.random.default_rng(0)
    spec_db = rng.normal(-40, 10, (1, 300, 128))
    ours = spec_db[0] @ dct_matrix(128, 20).T
    theirs = librosa.feature.mfcc(S=spec_db[0].T, n_mfcc=20).T
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
    assert mfcc_stats(spec_db).shape == (40,)


def test_standardise():
    x = np.array([[1.0, 5.0], [3.0, 5.0]])
    np.testing.assert_allclose(standardise(x), [[-1.0, 0.0], [1.0, 0.0]])


def test_cli_evaluate_table_and_json(trained, tmp_path, capsys):
    import shutil

    home = tmp_path / "home"
    shutil.copytree(trained, home)
    out = tmp_path / "eval.json"
    assert main(["--home", str(home), "evaluate", "--json", str(out), "--per-label"]) == 0
    text, progress = capsys.readouterr()
    assert "evaluating 1/7: random" in progress and "evaluating 7/7: ReFORM (both phases)" in progress
    for name in ("random", "MFCC mean+std (20)", "log-mel mean+std", "ReFORM: untrained network",
                 "ReFORM: pretraining only (no clustering phase)", "ReFORM (both phases)"):
        assert name in text
    assert "note: only 5 songs asked about: these figures cannot tell the methods apart" in text
    assert "same-song top-1: how often the other half of a song" in text          # the columns in words
    assert "p@10 of each label's songs:" in text                                   # the per-label table named
    data = json.loads(out.read_text())
    assert data["songs"] == 5 and data["labels"] == "artist"
    assert set(data["methods"]["random"]) == {"same_song_top1", "same_song_mrr", "p5", "p10", "map"}
    # equally long halves: song length found the other half every time, a top-1 of 1.000 above every model
    assert set(data["methods"]["song length only"]) == {"p5", "p10", "map"}
    assert "| song length only | – | – |" in text and "song length only has no same-song figures" in text
    assert "Tone Band" in data["per_label"]["ReFORM (both phases)"]
    beside = home / "models" / "tiny" / "evaluation.json"
    assert json.loads(beside.read_text())["methods"] == data["methods"]  # what the web page shows


def test_models_are_named_in_the_table_and_the_shipped_ones_figures_are_kept(trained, tmp_path, capsys):
    import shutil

    home = tmp_path / "home"
    shutil.copytree(trained, home)
    assert main(["--home", str(home), "evaluate", "--model", "shipped", "--model", "tiny", "--no-baselines"]) == 0
    text = capsys.readouterr().out
    assert "ReFORM shipped (both phases)" in text and "ReFORM tiny (both phases)" in text
    assert "not saved: the models named with --model are compared" in text
    # the shipped model's figures are kept in the home (its own folder is the installation's): they
    # were not, and `reform models` kept sending the user to `reform evaluate` for them
    assert main(["--home", str(home), "use", "shipped"]) == 0
    assert main(["--home", str(home), "evaluate", "--no-baselines"]) == 0
    kept = home / "models" / "shipped-evaluation.json"
    assert f"saved for the model: {kept}" in capsys.readouterr().out
    p10 = json.loads(kept.read_text())["methods"]["ReFORM (both phases)"]["p10"]
    assert main(["--home", str(home), "models"]) == 0
    assert next(line for line in capsys.readouterr().out.splitlines() if line.startswith("* shipped")).split()[3] \
        == f"{p10:.3f}"
    from reform.web.app import create_app
    from starlette.testclient import TestClient
    model = TestClient(create_app(home), base_url="http://127.0.0.1:8765").get("/api/model").json()
    assert model["evaluation"]["ReFORM (both phases)"]["p10"] == p10


def test_cli_evaluate_labels_file(trained, tmp_path, capsys):
    import shutil

    from reform import Library

    home = tmp_path / "home"              # evaluate writes evaluation.json beside the model
    shutil.copytree(trained, home)
    with Library(home) as lib:
        paths = [s.path for s in lib.songs()]
    tsv = tmp_path / "labels.tsv"
    lines = ["path\tgroup"] + [f"{p}\t{'g1' if i < 3 else 'g2'}" for i, p in enumerate(paths[:4])]
    lines.append("/not/in/library.ogg\tg3")
    tsv.write_text("\n".join(lines) + "\n")
    assert main(["--home", str(home), "evaluate", "--labels-file", str(tsv), "--no-baselines"]) == 0
    text = capsys.readouterr().out
    assert "1 path of the labels file is not in the library: ignored (/not/in/library.ogg)" in text   # named
    assert "1 song has no labels.tsv:group label: left out" in text
    assert main(["--home", str(home), "evaluate", "--labels-file", str(tsv), "--label-column", "nope"]) == 1
    err = capsys.readouterr().err
    assert "no column 'nope'" in err and "hint: name the column of labels with --label-column" in err
    (tmp_path / "no-path.tsv").write_text("file\tgroup\nx.ogg\tg1\n")
    assert main(["--home", str(home), "evaluate", "--labels-file", str(tmp_path / "no-path.tsv")]) == 1
    err = capsys.readouterr().err
    assert "no 'path' column (it has: file, group)" in err and "hint: give --labels-file the path of a TSV" in err
    excel = tmp_path / "excel.tsv"                               # saved with a UTF-8 byte-order mark
    excel.write_bytes(b"\xef\xbb\xbf" + tsv.read_bytes())
    assert main(["--home", str(home), "evaluate", "--labels-file", str(excel), "--no-baselines"]) == 0
    assert "1 song has no excel.tsv:group label: left out" in capsys.readouterr().out
    assert main(["--home", str(home), "evaluate", "--labels-file", str(tmp_path / "none.tsv")]) == 1
    out, err = capsys.readouterr()
    assert "cannot read the labels file" in err and "hint: give --labels-file the path of a TSV" in err
    assert out == ""   # no "device: cpu" before the refusal
    # options that were silently dropped: refused in one line
    assert main(["--home", str(home), "evaluate", "--labels-file", str(tsv), "--labels", "album"]) == 1
    assert "hint: give one: a tag (--labels) or a file of labels (--labels-file)" in capsys.readouterr().err
    assert main(["--home", str(home), "evaluate", "--label-column", "group"]) == 1
    assert "--label-column names a column of the labels file, and none is given" in capsys.readouterr().err
    # files as spreadsheets and hands write them: each one error line, or read as meant
    labels = [f"{p}\t{'g1' if i < 3 else 'g2'}" for i, p in enumerate(paths[:4])]
    (tmp_path / "latin1.tsv").write_bytes("path\tgroup\n/m/é.ogg\tg1\n".encode("latin-1"))
    assert main(["--home", str(home), "evaluate", "--labels-file", str(tmp_path / "latin1.tsv")]) == 1
    assert "the labels file is not UTF-8 text" in capsys.readouterr().err
    for encoding in ("utf-16", "utf-16-le", "utf-16-be"):   # with its byte-order mark, and without (was garbled)
        (tmp_path / "utf16.tsv").write_text("\n".join(["path\tgroup", *labels]) + "\n", encoding=encoding)
        assert main(["--home", str(home), "evaluate", "--labels-file", str(tmp_path / "utf16.tsv"),
                     "--no-baselines"]) == 0, encoding
        assert "labels: utf16.tsv:group" in capsys.readouterr().out
    (tmp_path / "short.tsv").write_text("group\tpath\nlonely\n\n" + "\n".join(
        f"{g}\t{p}" for p, g in (line.split("\t") for line in labels)) + "\n")
    assert main(["--home", str(home), "evaluate", "--labels-file", str(tmp_path / "short.tsv"),
                 "--no-baselines"]) == 0
    capsys.readouterr()
    sub = tmp_path / "lists"                          # paths relative to the file's own folder
    sub.mkdir()
    (sub / "rel.tsv").write_text("path\tgroup\n" + "\n".join(
        f"{os.path.relpath(p, sub)}\t{g}" for p, g in (line.split("\t") for line in labels))
        + f"\n{paths[0]}\tg2\n")
    assert main(["--home", str(home), "evaluate", "--labels-file", str(sub / "rel.tsv"), "--no-baselines"]) == 0
    assert "1 path of the labels file has two different labels: the last one is kept" in capsys.readouterr().out
    (tmp_path / "elsewhere.tsv").write_text("path\tgroup\n/x/a.ogg\tg1\n/x/b.ogg\tg1\n")
    assert main(["--home", str(home), "evaluate", "--labels-file", str(tmp_path / "elsewhere.tsv")]) == 1
    assert "none of the 2 paths of the labels file is a song of the library" in capsys.readouterr().err


def test_tags_that_group_nothing_leave_the_same_song_protocol(tmp_path):
    from reform.assess import evaluation_songs
    from reform.store import FileRow

    def row(i, artist):
        return FileRow(i, f"/m/{i}.ogg", 1, 1, f"h{i}", "ok", None, 100.0, 44100, 2, 100, "ogg", "fv",
                       artist, None, None, None, None, None, 0.0)

    untagged = [row(1, "A"), row(2, "B"), row(3, None), row(4, None)]     # no artist twice
    rows, labels, _, notes, source = evaluation_songs(untagged, "artist")
    assert [r.id for r in rows] == [1, 2, 3, 4] and labels is None and source is None
    assert notes == ["no artist tag is shared by two songs: only the same-song protocol runs "
                     "(try --labels-file)"]                  # no song has an album or genre tag to try
    _, _, _, notes, _ = evaluation_songs(untagged, "genre")   # never suggests the tag just tried
    assert notes == ["no song has a genre tag: only the same-song protocol runs (try --labels artist, or "
                     "--labels-file)"]
    rows, labels, _, notes, _ = evaluation_songs(untagged + [row(5, "A")], "artist")
    assert labels == ["A", "B", "A"] and notes == ["2 songs have no artist label: left out"]
    tsv = tmp_path / "labels.tsv"
    tsv.write_text("path\tgroup\n/m/1.ogg\tg1\n/m/2.ogg\tg2\n")
    with pytest.raises(EvaluateError, match="no labels.tsv:group label is shared by two songs"):
        evaluation_songs(untagged, label_file=str(tsv))
    # one label for every song: every neighbour relevant, a perfect p@10 for any method at all
    same = [row(1, "A"), row(2, "A"), row(3, None)]
    rows, labels, _, notes, _ = evaluation_songs(same, "artist")
    assert len(rows) == 3 and labels is None
    assert notes == ["every labelled song has the same artist label ('A'): only the same-song protocol runs"]
    tsv.write_text("path\tgroup\n/m/1.ogg\tg1\n/m/2.ogg\tg1\n")
    with pytest.raises(EvaluateError, match="the same labels.tsv:group label .'g1'.: label retrieval cannot tell"):
        evaluation_songs(untagged, label_file=str(tsv))


def test_a_labels_file_may_name_any_copy_of_a_song(tmp_path):
    """Of two byte-for-byte copies the evaluation keeps one (the tagged one); a labels file that
    named only the other copy lost the song ("has no label: left out")."""
    from reform.assess import evaluation_songs
    from reform.store import FileRow

    def row(i, path, digest, artist=None):
        return FileRow(i, path, 1, 1, digest, "ok", None, 100.0, 44100, 2, 100, "ogg", "fv",
                       artist, None, None, None, None, None, 0.0)

    songs = [row(1, "/m/a.ogg", "h1"), row(2, "/m/b.ogg", "h2"), row(3, "/m/c.ogg", "h3"),
             row(4, "/m/copies/c.ogg", "h3", artist="Tagged")]   # the copy kept: it is tagged
    tsv = tmp_path / "labels.tsv"
    tsv.write_text("path\tgroup\n/m/a.ogg\tg1\n/m/b.ogg\tg2\n/m/c.ogg\tg1\n")
    rows, labels, _, notes, _ = evaluation_songs(songs, label_file=str(tsv))
    assert [(r.path, label) for r, label in zip(rows, labels)] == [
        ("/m/a.ogg", "g1"), ("/m/b.ogg", "g2"), ("/m/copies/c.ogg", "g1")]
    assert notes == ["1 file left out as a copy of the same audio as another file"]   # said, as the README has it


def test_a_flac_and_its_mp3_are_one_song_of_the_evaluation(tmp_path):
    """Two files of one title by one artist, as long within a second, are one recording, as the
    recommendations take them: kept as two songs, each half found the other file's half (a
    same-song top-1 of chance) and each file the other as a neighbour of its label. Their label
    may come from either file; other songs of one title but another artist or length stay."""
    from reform.assess import evaluation_songs
    from reform.store import FileRow

    def row(i, path, digest, title, artist, seconds):
        return FileRow(i, path, 1, 1, digest, "ok", None, seconds, 44100, 2, 100, "ogg", "fv",
                       artist, None, title, None, None, None, 0.0)

    songs = [row(1, "/m/a.flac", "h1", "Caves", "HR3", 100.0), row(2, "/m/mp3/a.mp3", "h2", "caves", "HR3", 100.6),
             row(3, "/m/b.flac", "h3", "Caves", "Other", 100.2),      # another artist's Caves
             row(4, "/m/c.flac", "h4", "Caves", "HR3", 130.0),        # a longer take
             row(5, "/m/d.flac", "h5", "Sea", None, 60.0), row(6, "/m/mp3/d.mp3", "h6", "Sea", "HR3", 60.4)]
    tsv = tmp_path / "labels.tsv"
    tsv.write_text("path\tgroup\n/m/a.flac\tg1\n/m/b.flac\tg2\n/m/c.flac\tg1\n/m/mp3/d.mp3\tg2\n")
    rows, labels, _, notes, _ = evaluation_songs(songs, label_file=str(tsv))
    assert [(r.path, label) for r, label in zip(rows, labels)] == [   # the file the lists show: the tagged one
        ("/m/a.flac", "g1"), ("/m/b.flac", "g2"), ("/m/c.flac", "g1"), ("/m/mp3/d.mp3", "g2")]
    assert notes == ["2 files left out as another file of a recording counted (one title, by one artist or "
                     "an untagged one, as long within a second)"]
    rows, labels, *_ = evaluation_songs(songs, "artist")   # a tag from either file of the recording
    assert [(r.path, label) for r, label in zip(rows, labels)] == [
        ("/m/a.flac", "HR3"), ("/m/b.flac", "Other"), ("/m/c.flac", "HR3"), ("/m/mp3/d.mp3", "HR3")]


def test_cli_evaluate_too_small(tmp_path, capsys):
    from conftest import tone, write
    from reform import Library

    write(tmp_path / "m" / "one.wav", tone(440, 20))
    with Library(tmp_path / "h") as lib:
        lib.scan(tmp_path / "m", jobs=1)
    assert main(["--home", str(tmp_path / "h"), "evaluate"]) == 1
    assert "at least 2 songs" in capsys.readouterr().err


def test_evaluate_ranks_the_models_songs_as_recommendations_do(trained):
    from reform import Library
    from reform import evaluate as ev
    from reform.assess import evaluation_songs
    from reform.embed import Embedder
    from reform.recommend import EXPAND_POWER
    from reform.space import similarity

    with Library(trained) as lib:
        plain_report = lib.evaluate(expand=0, stages=False, baselines=False, progress=True)
        expanded_report = lib.evaluate(expand=1, stages=False, baselines=False)
        plain, expanded = plain_report.results[0], expanded_report.results[0]
        assert not any("nearest song" in n for n in plain_report.notes)
        assert any("averaged with its 1 nearest song first" in n for n in expanded_report.notes)
        # the same songs in the same order as the evaluation, embedded by the same model
        rows, labels, *_ = evaluation_songs(lib.home.catalogue.files(status="ok"))
        order = np.random.default_rng(0).permutation(len(rows))
        specs = [lib.home.spectrograms.open(rows[i].hash) for i in order]
        counted = []   # a step per song, for the progress bar of a minute-long method
        vectors = ev.featurize(specs, Embedder(lib.load_model()).song, standardised=False, step=counted.append)
        assert counted == [1] * len(specs)
        labels = [labels[i] for i in order]
        with pytest.raises(EvaluateError):
            lib.evaluate(expand=-1, stages=False, baselines=False)
    assert plain.same_song == ev.score("x", vectors, labels, None, False).same_song
    vectors.metric = lambda v: similarity(v, average="queries", neighbours=1, alpha=EXPAND_POWER)
    assert expanded.same_song == ev.score("x", vectors, labels, None, False).same_song
    assert expanded.labels.scores == ev.score("x", vectors, labels, None, False).labels.scores


def test_the_table_bolds_the_best_of_every_column():
    """Only p@10's best was bold: the best same-song method (often a baseline) went unmarked."""
    from reform.evaluate import LabelResult, MethodScores, markdown

    def method(name, top1, p10):
        return MethodScores(name, {"top1": top1, "mrr": top1 + 0.1},
                            LabelResult({"p5": p10, "p10": p10, "map": p10 / 2}, {}, 4))

    table = markdown([method("model", 0.5, 0.8), method("song length", 0.9, 0.3), method("twin", 0.5, 0.8)])
    lines = table.splitlines()
    assert lines[2] == "| model | 0.500 | 0.600 | **0.800** | **0.800** | **0.400** |"
    assert lines[3] == "| song length | **0.900** | **1.000** | 0.300 | 0.300 | 0.150 |"
    assert lines[4] == "| twin | 0.500 | 0.600 | **0.800** | **0.800** | **0.400** |"   # a tie: both
    plain = markdown([MethodScores("model", {"top1": 0.5, "mrr": 0.6}, None)])
    assert plain.splitlines()[2] == "| model | **0.500** | **0.600** |"


def test_an_evaluation_without_labels_leaves_one_with_them_beside_the_model(trained, tmp_path, capsys):
    """`evaluate --labels genre` on a library without genre tags measures no p@10, and replaced the
    saved evaluation by artist: `reform models` and the page lost the model's p@10 without a word."""
    import shutil

    home = tmp_path / "home"
    shutil.copytree(trained, home)
    beside = home / "models" / "tiny" / "evaluation.json"
    assert main(["--home", str(home), "evaluate", "--no-baselines"]) == 0
    assert json.loads(beside.read_text())["labels"] == "artist"
    capsys.readouterr()
    assert main(["--home", str(home), "evaluate", "--no-baselines", "--labels", "genre"]) == 0
    out = capsys.readouterr().out
    assert "no song has a genre tag" in out
    assert ("not saved: the evaluation kept for the model measured p@10 by artist, and this one by no label; "
            "--json FILE keeps the figures") in out
    assert json.loads(beside.read_text())["labels"] == "artist"
    assert main(["--home", str(home), "evaluate", "--no-baselines", "--labels", "album"]) == 0   # labels: replaced
    assert json.loads(beside.read_text())["labels"] == "album"


def test_the_shipped_models_figures_are_kept_in_a_home_that_never_trained(scanned, tmp_path, capsys):
    """A home with no models folder yet (scanned, never trained): the figures were said not to be
    saved, "the model's folder cannot be written"."""
    import shutil

    home = tmp_path / "home"
    shutil.copytree(scanned, home)
    assert not (home / "models").exists()
    assert main(["--home", str(home), "-q", "evaluate", "--no-baselines"]) == 0
    kept = home / "models" / "shipped-evaluation.json"
    assert f"saved for the model: {kept}" in capsys.readouterr().out and kept.exists()
