"""The reform command: exit codes, JSON output, the home folder option, and every rough edge a
new user hit (options checked before the work, hints, read-only homes)."""

import json
import shutil
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

import reform
from conftest import SR, reform_cmd, run_unprivileged, tone, write
from reform.cli import main


def test_a_scan_tells_new_songs_from_changed_ones(tmp_path, music, capsys):
    """"analysed 2 songs" lumped a new file with one whose audio changed."""
    home = str(tmp_path / "home")
    assert main(["--home", home, "-q", "scan", str(music), "--jobs", "1", "--no-embed"]) == 0
    write(music / "Tone Band" / "Sines" / "01 A Four Forty.wav", tone(880, 4))
    write(music / "Tone Band" / "Sines" / "03 New.wav", tone(220, 4))
    capsys.readouterr()
    assert main(["--home", home, "-q", "scan", "--jobs", "1", "--no-embed"]) == 0
    assert "analysed 2 songs (1 new, 1 changed), " in capsys.readouterr().out


def test_a_file_scanned_on_its_own_is_not_called_missing(tmp_path, music, capsys):
    """`reform scan FILE` keeps the file among the music folders, and `status` (and the page)
    said the file was not there, as if its disk were away."""
    home = str(tmp_path / "home")
    song = music / "Tone Band" / "Sines" / "02 Chord.flac"
    assert main(["--home", home, "-q", "scan", str(song), "--jobs", "1", "--no-embed"]) == 0
    capsys.readouterr()
    assert main(["--home", home, "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["missing_folders"] == []
    assert main(["--home", home, "status"]) == 0
    assert "is not there" not in capsys.readouterr().out
    song.rename(tmp_path / "elsewhere.flac")
    assert main(["--home", home, "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["missing_folders"] == [str(song)]


def test_scan_status_errors_json(tmp_path, music, capsys):
    home = str(tmp_path / "home")
    (music / "broken.mp3").write_text("nope")
    (music / "tune.xm").write_bytes(b"module")
    assert main(["--home", home, "-q", "scan", str(music), "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "analysed 4 songs" in out and "failed 1" in out
    assert "skipped 1 file in formats ReFORM does not read: .xm (1)" in out
    assert main(["--home", home, "status", "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["songs"] == 4 and status["failed"] == 1
    assert isinstance(status["songs"], int) and isinstance(status["failed"], int)
    assert main(["--home", home, "errors", "--json"]) == 0
    errors = json.loads(capsys.readouterr().out)
    assert len(errors) == 1 and errors[0]["path"].endswith("broken.mp3") and errors[0]["reason"]
    assert main(["--home", home, "-q", "scan"]) == 0
    assert "nothing to do: 4 songs unchanged" in capsys.readouterr().out
    music.rename(tmp_path / "unmounted")
    assert main(["--home", home, "status"]) == 0      # said by the scan alone, and only when one ran
    assert f"music folder: {music} is not there (a disk not mounted?): its songs are kept" in capsys.readouterr().out
    assert main(["--home", home, "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["missing_folders"] == [str(music)]
    assert main(["--home", home, "-q", "scan", "--no-embed"]) == 0
    assert (f"{music} holds no audio now (a disk not mounted, or the music moved?): its 4 songs are kept. "
            f"Moved: `reform --home {home} scan NEW-FOLDER` first (nothing is decoded again); then, or if it "
            f"is gone for good, `reform --home {home} scan --forget-missing {music}` forgets them"
            ) in capsys.readouterr().out
    # unnamed, a folder without audio keeps its songs: one run from cron while the disk was away
    # emptied the library
    assert main(["--home", home, "-q", "scan", "--no-embed", "--forget-missing"]) == 0
    out = capsys.readouterr().out
    assert "its 4 songs are kept" in out and "removed" not in out
    assert main(["--home", home, "-q", "scan", "--no-embed", "--forget-missing", str(music)]) == 0
    assert "removed 4 songs that were there" in capsys.readouterr().out   # and the failed file


def test_a_damaged_file_is_analysed_and_listed_by_errors(tmp_path, capsys):
    """A FLAC with a scribbled patch mid-file plays in every player: the scan keeps it, says so,
    and `reform errors` lists what was passed over, for it and for a copy of it."""
    from conftest import noise, stereo, tone, write

    music = tmp_path / "music"
    clean = write(tmp_path / "clean.flac", stereo(tone(440, 20), noise(20)))
    data = bytearray(clean.read_bytes())
    data[len(data) // 2: len(data) // 2 + 400] = bytes(range(200)) * 2
    (music / "hurt.flac").parent.mkdir()
    (music / "hurt.flac").write_bytes(bytes(data))
    home = str(tmp_path / "home")
    assert main(["--home", home, "-q", "scan", str(music), "--no-embed"]) == 0
    out = capsys.readouterr().out
    assert "analysed 1 song" in out and "failed 0" in out
    assert f"1 damaged file analysed, passing over what could not be read (see `reform --home {home} errors`)" in out
    shutil.copy(music / "hurt.flac", music / "hurt copy.flac")
    assert main(["--home", home, "-q", "scan", "--no-embed"]) == 0
    assert main(["--home", home, "errors"]) == 0
    out = capsys.readouterr().out
    assert "no failures\n\nanalysed, passing over what could not be read (2 files):" in out
    assert f"{music / 'hurt copy.flac'}: damaged: decoded by FFmpeg past where libsndfile lost the stream" in out
    assert main(["--home", home, "errors", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(e["analysed"], e["reason"].startswith("damaged: ")) for e in listed] == [(True, True)] * 2
    assert main(["--home", home, "status"]) == 0
    assert "damaged:      2 (analysed, passing over what could not be read" in capsys.readouterr().out


def _scan_twice(home: str, first, second, capsys) -> str:
    """Scan ``first`` then ``second`` into ``home`` (no embedding); the second scan's output."""
    assert main(["--home", home, "-q", "scan", str(first), "--no-embed"]) == 0
    capsys.readouterr()
    assert main(["--home", home, "-q", "scan", str(second), "--no-embed"]) == 0
    return capsys.readouterr().out


def test_one_folder_under_two_names_is_one_set_of_songs(tmp_path, music, capsys):
    """~/Music a link to the disk's folder: scanning both names doubled every count of `status`."""
    link = tmp_path / "Music"
    link.symlink_to(music)
    home = str(tmp_path / "home")
    out = _scan_twice(home, music, link, capsys)
    assert f"{link} is {music} under another name: scanned as {music}" in out
    assert "nothing to do: 4 songs unchanged" in out
    album = next(p for p in (link / "Tone Band").iterdir() if p.is_dir())
    assert main(["--home", home, "-q", "scan", str(album), "--no-embed"]) == 0
    assert f"scanned as {music / 'Tone Band' / album.name}" in capsys.readouterr().out
    assert main(["--home", home, "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["songs"] == 4
    assert main(["--home", home, "-q", "scan", "--no-embed"]) == 0                   # the library's one name
    assert "nothing to do: 4 songs unchanged" in capsys.readouterr().out
    both = str(tmp_path / "both")                                # both names in one command
    assert main(["--home", both, "-q", "scan", str(music), str(link), "--no-embed"]) == 0
    assert "analysed 4 songs" in capsys.readouterr().out
    first = str(tmp_path / "first")                              # a subfolder first, then its parent's link
    assert main(["--home", first, "-q", "scan", str(music / "Tone Band"), "--no-embed"]) == 0
    assert main(["--home", first, "-q", "scan", str(link), "--no-embed"]) == 0
    assert "analysed 2 songs" in capsys.readouterr().out
    assert main(["--home", first, "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["songs"] == 4


def test_a_folder_scanned_through_a_link_inside_the_library_is_known_by_that_name(tmp_path, capsys):
    """music/x -> ../other, then `reform scan other`: its songs were counted twice."""
    from conftest import tone, write

    music, other = tmp_path / "music", tmp_path / "other"
    write(music / "a" / "song.wav", tone(440, 2))
    for i in range(2):
        write(other / f"{i}.wav", tone(500 + 50 * i, 2))
    (music / "x").symlink_to("../other")
    home = str(tmp_path / "home")
    out = _scan_twice(home, music, other, capsys)
    assert f"{other} is {music / 'x'} under another name: scanned as {music / 'x'}" in out
    assert "nothing to do: 2 songs unchanged" in out
    (music / "x").unlink()                                     # a link that is gone names nothing
    assert main(["--home", home, "-q", "scan", str(other), "--no-embed"]) == 0
    assert "under another name" not in capsys.readouterr().out


def _scanned_with_a_favourite(tmp_path, capsys) -> tuple:
    """music/A/Album1 (a song), music/B/Album2 (two) and music/A/fav -> ../B/Album2, a folder of
    favourites, scanned into tmp_path/home: (the music folder, the home)."""
    music = tmp_path / "music"
    write(music / "A" / "Album1" / "01 one.wav", tone(300, 2))
    for i in range(2):
        write(music / "B" / "Album2" / f"0{i + 1} two{i}.wav", tone(500 + 70 * i, 2))
    (music / "A" / "fav").symlink_to("../B/Album2")
    home = str(tmp_path / "home")
    assert main(["--home", home, "-q", "scan", str(music), "--no-embed"]) == 0
    assert "analysed 3 songs" in capsys.readouterr().out
    return music, home


def test_a_folder_of_links_to_albums_elsewhere_in_the_library_adds_no_song(tmp_path, capsys):
    """music/A/fav -> ../B/Album2, a folder of favourites: the walk took the link first (A before
    B), so the album's songs were A/fav's, tagged "fav" by A; `scan music/B` then added them a
    second time, and so did `scan music/A` into a library that had scanned B alone."""
    music, home = _scanned_with_a_favourite(tmp_path, capsys)
    with sqlite3.connect(tmp_path / "home" / "catalogue.db") as db:
        rows = db.execute("SELECT path, artist, album FROM files WHERE path LIKE '%two%' ORDER BY path").fetchall()
    assert rows == \
        [(str(music / "B" / "Album2" / f"0{i + 1} two{i}.wav"), "B", "Album2") for i in range(2)]
    for folder in ("B", "A", "A/fav"):
        assert main(["--home", home, "-q", "scan", str(music / folder), "--no-embed"]) == 0
        assert "nothing to do" in capsys.readouterr().out
    assert main(["--home", home, "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["songs"] == 3
    apart = str(tmp_path / "apart")                        # the album's own folder first, then the links'
    assert main(["--home", apart, "-q", "scan", str(music / "B"), "--no-embed"]) == 0
    assert main(["--home", apart, "-q", "scan", str(music / "A"), "--no-embed"]) == 0
    assert "analysed 1 song," in capsys.readouterr().out
    assert main(["--home", apart, "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["songs"] == 3


def test_songs_an_older_walk_named_through_a_link_take_their_real_names(tmp_path, capsys):
    """A home of the version that took music/A/fav -> ../B/Album2 first: `scan music/A` found its
    songs gone ("a disk not mounted?", and --forget-missing deleted their analysis), `scan music/B`
    added them a second time; and a folder of such links alone was "no audio files found"."""
    music, home = _scanned_with_a_favourite(tmp_path, capsys)
    real, link = str(music / "B" / "Album2"), str(music / "A" / "fav")
    with reform.Library(home, create=False) as lib:          # as the older version left it
        with lib.home.catalogue.transaction() as db:
            db.execute("UPDATE files SET path = replace(path, ?, ?), artist = 'A', album = 'fav' WHERE path LIKE ?",
                       (real, link, real + "%"))
            lib.home.catalogue.set_meta("links", json.dumps({real: link}))
    capsys.readouterr()
    for folder in ("A", "B"):
        assert main(["--home", home, "-q", "scan", str(music / folder), "--no-embed"]) == 0
        out = capsys.readouterr().out
        assert "holds no audio now" not in out and "duplicate" not in out
        assert ("nothing to do: 1 song unchanged" if folder == "A" else "reused 2 (same audio in place 2)") in out
    assert main(["--home", home, "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["songs"] == 3
    with sqlite3.connect(tmp_path / "home" / "catalogue.db") as db:   # their tags read again, by the real folders
        rows = db.execute("SELECT path, artist, album FROM files WHERE path LIKE '%two%' ORDER BY path").fetchall()
    assert rows == [(str(music / "B" / "Album2" / f"0{i + 1} two{i}.wav"), "B", "Album2") for i in range(2)]
    (music / "Favourites").mkdir()                         # a folder of links alone: said, and no slip
    (music / "Favourites" / "best").symlink_to("../B/Album2")
    assert main(["--home", home, "-q", "scan", str(music / "Favourites"), "--no-embed"]) == 0
    assert "no audio files found in " + str(music / "Favourites") + " but through 1 link to folders elsewhere in " \
        f"the library, whose songs are scanned there: {music / 'Favourites' / 'best'}" in capsys.readouterr().out


def test_a_link_to_a_folder_beside_it_is_neither_a_loop_nor_a_second_song(tmp_path, capsys):
    """music/z -> music/a, or music/0 -> music/a: the real folder's songs, once, and no failure;
    a link back to a folder it lies in is still a loop."""
    from conftest import tone, write

    music = tmp_path / "music"
    write(music / "a" / "song.wav", tone(440, 2))
    (music / "z").symlink_to(music / "a")
    (music / "0").symlink_to(music / "a")
    (music / "a" / "up").symlink_to(music)
    home = str(tmp_path / "home")
    assert main(["--home", home, "-q", "scan", str(music), "--no-embed"]) == 0
    assert "analysed 1 song," in capsys.readouterr().out
    assert main(["--home", home, "errors", "--json"]) == 0
    assert [(e["path"], "loop" in e["reason"]) for e in json.loads(capsys.readouterr().out)] == \
        [(str(music / "a" / "up"), True)]
    assert main(["--home", home, "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["songs"] == 1
    # named, the link is the folder it leads to: `scan music/z` counted its song twice, and every
    # later scan called music/z a disk away; `forget music/z` passed over music/a for good, since
    # `scan music/a` did not take back what was forgotten under the link's name
    assert main(["--home", home, "-q", "scan", str(music / "z"), "--no-embed"]) == 0
    out = capsys.readouterr().out
    assert f"{music / 'z'} is {music / 'a'} under another name" in out and "nothing to do: 1 song" in out
    assert main(["--home", home, "-q", "scan", "--no-embed"]) == 0
    out = capsys.readouterr().out
    assert "nothing to do: 1 song unchanged" in out and "holds no audio now" not in out
    assert main(["--home", home, "forget", str(music / "z")]) == 0
    out = capsys.readouterr().out
    assert f"{music / 'z'} is {music / 'a'} under another name" in out and f"scans pass over {music / 'a'}" in out
    assert main(["--home", home, "-q", "scan", str(music / "a"), "--no-embed"]) == 0
    assert "analysed 1 song" in capsys.readouterr().out   # (forget freed its spectrogram)
    # the loop a/up -> music, which the scan lists: forgetting where it leads forgot the whole
    # music folder and deleted its spectrograms
    assert main(["--home", home, "forget", str(music / "a" / "up")]) == 1
    assert f"{music / 'a' / 'up'} is a link to {music}, a music folder of the library" in capsys.readouterr().err
    assert main(["--home", home, "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["songs"] == 1
    assert main(["--home", home, "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["songs"] == 1


def test_retry_failed_does_not_suggest_itself(tmp_path, capsys):
    from conftest import tone, write

    music = tmp_path / "music"
    write(music / "song.wav", tone(440, 2))
    (music / "self.wav").symlink_to(music / "self.wav")     # a link to itself: never listable
    home = str(tmp_path / "home")
    assert main(["--home", home, "-q", "scan", str(music), "--no-embed"]) == 0
    assert "failed 1" in capsys.readouterr().out
    assert main(["--home", home, "-q", "scan", "--no-embed"]) == 0
    assert f"1 file failed before and did not change: skipped (`reform --home {home} scan --retry-failed`" in \
        capsys.readouterr().out
    assert main(["--home", home, "-q", "scan", "--no-embed", "--retry-failed"]) == 0
    out = capsys.readouterr().out
    assert f"1 path still cannot be listed (see `reform --home {home} errors`)" in out and "--retry-failed" not in out


def test_a_large_library_on_the_shipped_model_is_told_of_reform_train(tmp_path, music, monkeypatch, capsys):
    from reform import cli

    home = str(tmp_path / "home")
    assert main(["--home", home, "-q", "scan", str(music / "Tone Band"), "--jobs", "1"]) == 0
    assert "reform train" not in capsys.readouterr().out          # 2 songs: below the measured sizes
    monkeypatch.setattr(cli, "TRAIN_TIP_SONGS", 3)
    assert main(["--home", home, "-q", "scan", str(music), "--jobs", "1"]) == 0
    assert f"tip: `reform --home {home} train` learns this library's own music" in capsys.readouterr().out


def test_train_starts_a_small_library_from_the_shipped_model(home, capsys):
    from reform import Library
    from reform.checkpoint import load_bundle

    args = ["--home", str(home), "train", "--phase", "pretrain", "--max-epochs", "1"]
    assert main(args + ["--name", "small"]) == 0
    out = capsys.readouterr().out
    assert "fine-tuning the shipped model: on libraries of fewer than 60 songs" in out
    with Library(home, create=False) as lib:
        shipped = lib.load_model("shipped")
    tuned = load_bundle(home / "models" / "small" / "pretrain.pt")
    assert tuned.cfg == shipped.cfg and tuned.normaliser.mean.tolist() == shipped.normaliser.mean.tolist()
    # settings the shipped model was not trained with start from random weights
    assert main(args + ["--name", "narrow", "--widths", "4,8", "--embedding-dim", "8"]) == 0
    out = capsys.readouterr().out     # and say so: --init auto's help promises the shipped model here
    assert "fine-tuning" not in out and "starting from random weights: the shipped model is trained" in out
    assert load_bundle(home / "models" / "narrow" / "pretrain.pt").cfg.widths == (4, 8)


def test_a_resume_with_a_higher_cap_says_which_phase_had_ended_before_it(home, capsys):
    """It printed "pretrain: reached the cap of 1 epoch" beside "cluster: reached the cap of 2
    epochs", as though the pretraining had stopped short in this run."""
    run = ["--home", str(home), "train", "--name", "r", "--init", "scratch", "--widths", "4,8", "--embedding-dim", "8"]
    assert main(run + ["--max-epochs", "1"]) == 0
    capsys.readouterr()
    assert main(["--home", str(home), "train", "--resume", "--name", "r", "--max-epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert "pretrain: reached the cap of 1 epoch, before this resume\ncluster: reached the cap of 2 epochs\n" in out


def test_a_clustering_phase_goes_on_from_the_runs_own_pretraining(home, capsys):
    """Not from the shipped model (--init auto on a small library): the run's architecture and
    input scaling are its pretraining's, so it resumes; finished work is never started again."""
    from reform.checkpoint import load_bundle

    base = ["--home", str(home), "train", "--name", "p1", "--max-epochs", "1"]
    assert main(base + ["--phase", "pretrain", "--init", "scratch", "--widths", "4,8", "--embedding-dim", "8",
                        "--cluster-batch-size", "3"]) == 0
    # the way on said, in the output and in `reform models` (which called it "in progress or interrupted")
    assert f"pretrained only: `reform --home {home} train --phase cluster --name p1` adds" in capsys.readouterr().out
    assert main(["--home", str(home), "models"]) == 0
    assert f"pretrained (1 epoch): `reform --home {home} train --phase cluster --name p1`" in capsys.readouterr().out
    assert main(base + ["--phase", "cluster"]) == 0
    out = capsys.readouterr().out
    assert "goes on from its pretraining" in out and "fine-tuning" not in out
    pretrained = load_bundle(home / "models" / "p1" / "pretrain.pt")
    model = load_bundle(home / "models" / "p1" / "model.pt")
    assert model.cfg.widths == (4, 8) and model.normaliser.mean.tolist() == pretrained.normaliser.mean.tolist()
    # with the run's own settings, the options given winning (the defaults took their place: 16, 400)
    settings = json.loads((home / "models" / "p1" / "config.json").read_text())["train"]
    assert settings["cluster_batch_size"] == 3 and settings["max_epochs"] == 1
    from reform.cli import _own_settings, build_parser                  # a preset named counts too
    args = build_parser().parse_args(base[:5] + ["--phase", "cluster", "--preset", "recon",
                                                 "--cluster-batch-size", "5"])
    own = _own_settings(home / "models" / "p1", args, None)
    assert (own.learning_rate, own.cluster_batch_size, own.batch_size) == (1e-3, 5, settings["batch_size"])
    assert main(["--home", str(home), "train", "--resume", "--name", "p1", "--max-epochs", "2"]) == 0
    capsys.readouterr()
    (home / "models" / "p1" / "model.pt").unlink()     # as if killed during its clustering phase
    assert main(base + ["--phase", "cluster"]) == 1
    assert "has trained already" in capsys.readouterr().err
    # a clustering phase with nothing to start from is refused before any run is made (an empty
    # folder was left, which `reform models` listed as a run in progress)
    assert main(["--home", str(home), "train", "--name", "p2", "--phase", "cluster", "--init", "scratch"]) == 1
    assert "starts from a pretrained model, and this run has none" in capsys.readouterr().err
    assert not (home / "models" / "p2").exists()


def test_augmentation_that_leaves_little_of_a_window_is_refused_first(home, capsys):
    assert main(["--home", str(home), "train", "--pitch-bins", "500", "--stripes", "1000"]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and "leave too little of a window to learn from: --pitch-bins at most 32 (a " \
        "quarter of the bands); --stripes x --stripe-bins at most 64 (half the bands); --stripes x " \
        "--stripe-frames at most 320 (half the window)\n" in captured.err
    assert not (home / "models").exists() or not any((home / "models").iterdir())


def test_a_run_that_collapsed_is_said_and_not_made_active(home, capsys, monkeypatch):
    from reform import train

    monkeypatch.setattr(train, "embedding_spread",   # every song at one point, as the note's rate of 0.1 ends
                        lambda model, probe: {"spread_between": 0.0, "spread_within": 0.0, "spread_ratio": None})
    assert main(["--home", str(home), "train", "--name", "fall", "--max-epochs", "1", "--init", "scratch",
                 "--widths", "4,8", "--embedding-dim", "8"]) == 0
    captured = capsys.readouterr()
    assert ("warning: the clustering phase learnt nothing usable: every song's embedding ended at one point "
            "(the model collapsed); a lower learning rate (--lr, --cluster-lr) avoids it") in captured.err
    assert f"not made active: it failed (above); `reform --home {home} use fall` makes it active anyway" in captured.out
    assert main(["--home", str(home), "models"]) == 0
    assert "failed: pretrain: every song's embedding ended at one point" in capsys.readouterr().out


def test_train_refuses_before_it_says_how_it_would_start(tmp_path, music, capsys):
    import shutil

    import torch

    one = tmp_path / "one"
    one.mkdir()
    shutil.copy(music / "Tone Band" / "Sines" / "01 A Four Forty.wav", one)
    home = str(tmp_path / "home")
    assert main(["--home", home, "-q", "scan", str(one), "--jobs", "1", "--no-embed"]) == 0
    capsys.readouterr()
    assert main(["--home", home, "train"]) == 1
    out, err = capsys.readouterr()
    assert "training needs at least 2 analysed songs" in err and "fine-tuning" not in out
    if not torch.cuda.is_available():
        assert main(["--home", home, "train", "--device", "cuda"]) == 1
        out, err = capsys.readouterr()
        assert "CUDA" in err and "fine-tuning" not in out


def test_reform_home_environment_variable(tmp_path, music, monkeypatch, capsys):
    monkeypatch.setenv("REFORM_HOME", str(tmp_path / "envhome"))
    assert main(["-q", "scan", str(music / "Tone Band"), "--jobs", "1"]) == 0
    assert (tmp_path / "envhome" / "catalogue.db").exists()
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["songs"] == 2


def test_errors_are_one_line_and_nonzero(tmp_path, capsys):
    assert main(["--home", str(tmp_path / "none"), "status"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no library at") and "hint:" in err
    assert main(["--home", str(tmp_path / "h"), "scan", str(tmp_path / "missing")]) == 1
    err = capsys.readouterr().err   # the hint about the folder, not about --home
    assert "no such file or folder" in err and "hint: check the name (a disk not mounted? mount it first)" in err
    assert main(["--home", str(tmp_path / "h"), "scan"]) == 1
    assert "no music folder is known yet" in capsys.readouterr().err
    assert not (tmp_path / "h").exists()   # no library made for a scan that could not start
    with pytest.raises(SystemExit) as done:                 # `--home "$UNSET"` took the default home
        main(["--home", "", "status"])
    assert done.value.code == 2 and "error: --home is empty" in capsys.readouterr().err


def test_embedding_with_another_model_says_the_active_one_stays(trained, tmp_path, capsys):
    """One set of embeddings is kept: `embed --model shipped` replaced the active model's, said
    nothing of it, and every recommendation warned from then on."""
    import shutil

    home = tmp_path / "home"
    shutil.copytree(trained, home)
    assert main(["--home", str(home), "-q", "embed", "--model", "shipped"]) == 0
    assert f"note: the active model is still run tiny; `reform --home {home} use shipped` makes the model " \
           "shipped with ReFORM the one recommendations expect" in capsys.readouterr().err
    assert main(["--home", str(home), "-q", "embed"]) == 0      # the active model's own: no note
    assert "note:" not in capsys.readouterr().err
    (home / "models" / "tiny").rename(home / "models" / "lost")  # the active run gone: embedding another
    assert main(["--home", str(home), "-q", "embed", "--model", "shipped"]) == 0   # is the way out


def test_verbose_shows_traceback(tmp_path):
    from reform.errors import StoreError

    with pytest.raises(StoreError):
        main(["--home", str(tmp_path / "none"), "--verbose", "status"])


def test_help_is_instant_and_does_not_import_torch():
    code = "import sys; from reform.cli import build_parser; build_parser(); print('torch' in sys.modules)"
    result = subprocess.run(reform_cmd("--help"), capture_output=True, text=True)
    assert result.returncode == 0 and "scan" in result.stdout
    check = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert check.stdout.strip() == "False"


# -- what a new user hit ---------------------------------------------------------------------------------
def test_version_and_global_options_after_the_command(tmp_path, music, capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"reform {reform.__version__}"
    home = str(tmp_path / "home")
    assert main(["scan", str(music / "Tone Band"), "--jobs", "1", "--home", home, "-q"]) == 0
    capsys.readouterr()
    assert main(["status", "--json", "--home", home]) == 0
    assert json.loads(capsys.readouterr().out)["songs"] == 2


@pytest.mark.parametrize("argv, message", [
    (["similar", "x", "-n", "-5"], "argument -n: must be at least 1, not -5"),
    (["playlist", "x", "--length", "0"], "argument --length/-n: must be at least 1, not 0"),
    (["playlist", "x", "--length", "-3"], "must be at least 1, not -3"),
    (["mix", "x", "--max-per-artist", "0"], "argument --max-per-artist: must be at least 1"),
    (["scan", "--jobs", "-1"], "argument --jobs: must be at least 1, not -1"),
    (["train", "--max-epochs", "0"], "argument --max-epochs: must be at least 1, not 0"),
    (["train", "--projection-dim", "-1"], "argument --projection-dim: must be at least 0, not -1"),
    (["train", "--widths", "1,2,abc"], "argument --widths: give whole numbers above 0 separated by commas"),
    (["mpd", "--ahead", "two"], "argument --ahead: give a whole number, not 'two'"),
    (["train", "--threads", "100000"], "argument --threads: must be at most"),   # 2000 threads stalled a run
])
def test_nonsense_values_are_refused_before_any_work(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["--home", str(tmp_path / "home"), *argv])
    err = capsys.readouterr().err
    assert done.value.code == 2 and message in err and not (tmp_path / "home").exists()
    assert err.startswith("error: ") and err.splitlines()[1].startswith("hint: `reform ") and err.count("\n") == 2


def test_output_paths_are_checked_before_the_work(trained, tmp_path, capsys):
    home = str(trained)
    for argv in (["playlist", "Chord", "-o", str(tmp_path / "missing" / "dir" / "x.m3u8")],
                 ["export", str(tmp_path / "missing" / "x.csv")],
                 ["evaluate", "--json", str(tmp_path / "missing" / "e.json")]):
        assert main(["--home", home, *argv]) == 1
        out, err = capsys.readouterr()
        assert out == "" and "does not exist" in err and "hint: create it first" in err, argv
    assert main(["--home", home, "similar", "Chord", "-o", str(tmp_path)]) == 1
    assert "this is a folder, not a file" in capsys.readouterr().err
    assert main(["--home", home, "export", str(tmp_path)]) == 1       # an example of what it writes
    assert f"e.g. {tmp_path / 'reform.npz'}" in capsys.readouterr().err
    assert main(["--home", home, "export", str(tmp_path / "x.txt")]) == 1
    assert "hint: end the file name with .npz, .csv or .parquet" in capsys.readouterr().err
    for name in ("x.pls", "x.npz", "x"):          # -o writes M3U only: nothing else is written as it
        assert main(["--home", home, "similar", "Chord", "-o", str(tmp_path / name)]) == 1
        assert "hint: end the file name with .m3u8 (or .m3u)" in capsys.readouterr().err
        assert not (tmp_path / name).exists()
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    result = run_unprivileged(reform_cmd("--home", home, "export", str(locked / "x.csv")))
    assert result.returncode == 1 and "cannot write in the folder" in result.stderr
    assert "Traceback" not in result.stderr and not list(locked.iterdir())


def test_every_error_has_a_hint_line():
    from reform import errors
    from reform.cli import hint_for

    kinds = [k for k in vars(errors).values() if isinstance(k, type) and issubclass(k, errors.ReformError)]
    assert len(kinds) >= 15
    for kind in kinds:
        assert hint_for(kind("something went wrong"), "similar"), kind
    assert hint_for(errors.ConfigError("bad"), "similar") == "`reform similar --help` lists the options"
    assert hint_for(errors.QueryError("x", hint="mine"), "similar") == "mine"


def test_every_option_says_what_it_does():
    from reform.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, sub in [("reform", parser), *commands.items()]:
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest}"


def test_the_demo_names_a_command_that_works(tmp_path, monkeypatch):
    from reform import cli

    script = tmp_path / "venv" / "bin" / "reform"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [str(script), "demo"])
    monkeypatch.setenv("PATH", "/usr/bin:/bin")            # `make demo` does not activate the venv
    assert cli._invocation() == "venv/bin/reform"
    monkeypatch.setenv("PATH", f"{script.parent}:/usr/bin")  # an activated venv
    assert cli._invocation() == "reform"
    monkeypatch.setattr(sys, "argv", ["/somewhere/reform/__main__.py"])  # python -m reform
    assert cli._invocation().endswith(" -m reform")


def test_home_that_is_a_file(tmp_path, capsys):
    home = tmp_path / "home"
    home.write_text("oops")
    for argv in (["status"], ["scan", str(tmp_path)]):
        assert main(["--home", str(home), *argv]) == 1
        err = capsys.readouterr().err
        assert "the library home is a file, not a folder" in err and "hint: give --home" in err


def test_status_names_the_model_and_the_embedded_songs(trained, capsys):
    assert main(["--home", str(trained), "status"]) == 0
    out = capsys.readouterr().out
    assert "active model: tiny (version " in out and "embedded:     5 of 5 songs" in out


def test_status_flags_an_active_model_that_cannot_be_loaded(trained, tmp_path, capsys):
    """A cut or altered model file is named by `status` (without loading torch), as `check`
    names it: every scan and query that embeds would stop on it."""
    import json

    home = tmp_path / "home"
    shutil.copytree(trained, home)
    model = home / "models" / "tiny" / "model.pt"
    whole = model.read_bytes()
    data = bytearray(whole)
    data[len(data) // 2] ^= 0xFF        # one byte of the weights changed: a checksum no longer matches
    for damage, why in ((whole[:5000], "the model file is damaged"), (bytes(data), "does not match its checksum")):
        model.write_bytes(damage)
        assert main(["--home", str(home), "status"]) == 0
        out = capsys.readouterr().out
        assert why in out and f"`reform --home {home} use shipped`" in out
        assert main(["--home", str(home), "status", "--json"]) == 0
        assert why in json.loads(capsys.readouterr().out)["model"]["problem"]
    model.write_bytes(whole)
    assert main(["--home", str(home), "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["model"]["problem"] is None


def test_progress_bars_are_drawn_on_a_terminal_only(monkeypatch):
    """A log or a pipe (cron) got every update of a bar, separated by carriage returns."""
    import io

    from reform import progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stream, drawn in ((Terminal(), True), (io.StringIO(), False)):
        monkeypatch.setattr("sys.stderr", stream)
        with progress.Bar(True, "scanning", "song") as bar:
            bar.start(3)
            bar.step(3)
        assert ("3/3" in stream.getvalue()) is drawn and ("\r" in stream.getvalue()) is drawn


def test_an_empty_folder_is_not_a_library(tmp_path, capsys):
    """A folder without music, or a file that is none, given to a scan is a slip: it was
    remembered (every later scan went through it again) with exit 0."""
    (tmp_path / "empty").mkdir()
    home = str(tmp_path / "home")
    assert main(["--home", home, "scan", str(tmp_path / "empty")]) == 1
    out = capsys.readouterr().out
    assert "no audio files found in" in out and "unchanged" not in out and "library: 0 songs" in out
    assert main(["--home", home, "scan"]) == 1
    assert "no music folder is known yet" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("a shopping list")
    (tmp_path / "tune.ape").write_bytes(b"MAC ")
    for name, said in (("notes.txt", "not an audio file (unknown extension)"),
                       ("tune.ape", "a music format ReFORM does not read")):
        assert main(["--home", str(tmp_path / "other"), "scan", str(tmp_path / name)]) == 1
        assert said in capsys.readouterr().err and not (tmp_path / "other").exists()   # no home made for it


@pytest.mark.parametrize("schema", [None, 4], ids=["current", "schema-4"])
def test_read_only_home_answers_the_commands_that_only_read(trained, tmp_path, schema):
    """Also a catalogue of the previous schema, which cannot be migrated there: the release that
    brought schema 5 made every read-only home unreadable ("attempt to write a readonly database")."""
    home = tmp_path / "home"
    shutil.copytree(trained, home)
    with sqlite3.connect(home / "catalogue.db") as conn:   # as a home copied without its -wal and -shm
        if schema is not None:
            conn.execute(f"PRAGMA user_version = {schema}")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for name in ("catalogue.db-wal", "catalogue.db-shm"):
        (home / name).unlink(missing_ok=True)
    for path in [home, *home.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    out = tmp_path / "out"
    out.mkdir()
    try:
        for argv in (["status"], ["similar", "Chord", "-n", "2"], ["export", str(out / "songs.npz")],
                     ["models"], ["errors"], ["check"]):
            result = run_unprivileged(reform_cmd("--home", str(home), *argv))
            assert result.returncode == 0 and "Traceback" not in result.stderr, (argv, result.stderr)
        scan = run_unprivileged(reform_cmd("--home", str(home), "scan"))
        assert scan.returncode == 1 and "hint:" in scan.stderr and "Traceback" not in scan.stderr
        train = run_unprivileged(reform_cmd("--home", str(home), "train", "--max-epochs", "1"))
        assert train.returncode == 1 and "writable" in train.stderr and train.stdout == ""
    finally:
        for path in [home, *home.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)


def test_query_by_file_name_and_a_missing_path(trained, tmp_path, capsys):
    assert main(["--home", str(trained), "similar", "02 Chord.flac", "-n", "1"]) == 0
    assert "songs like Tone Band - Chord:" in capsys.readouterr().out
    assert main(["--home", str(trained), "similar", "/no/such/song.flac"]) == 1
    err = capsys.readouterr().err
    assert "no such file" in err and "try fewer words" not in err
    assert main(["--home", str(trained), "similar", str(trained)]) == 1   # a folder
    err = capsys.readouterr().err
    assert "this is a folder, and a query is one song" in err and "--mix FOLDER" in err
    write(tmp_path / "silence.wav", np.zeros(SR * 5, np.float32))     # outside the library
    write(tmp_path / "blip.wav", tone(440, 0.2))
    for name, said in (("silence.wav", "the audio is silent"), ("blip.wav", "too short: 0.20 s of audio")):
        assert main(["--home", str(trained), "similar", str(tmp_path / name)]) == 1   # as a scan refuses it
        assert f"the query file cannot be analysed: {said}" in capsys.readouterr().err


def test_a_seed_given_twice_is_taken_once_and_a_short_list_says_why(trained, capsys):
    """`mix A A` named A twice in its heading, and a playlist of 50 from 5 songs, or one the
    filters cut to one song per artist, came up short without a word."""
    home = str(trained)
    assert main(["--home", home, "mix", "Chord", "02 Chord.flac", "-n", "2"]) == 0   # by name, by file
    captured = capsys.readouterr()
    assert "a mix from Tone Band - Chord:" in captured.out
    assert "note: Tone Band - Chord was given twice: taken once" in captured.err
    assert main(["--home", home, "playlist", "Chord", "--length", "50"]) == 0
    assert "note: 4 of the 50 songs asked for: the library has no more" in capsys.readouterr().err
    assert main(["--home", home, "similar", "Chord", "-n", "4", "--max-per-artist", "1"]) == 0
    captured = capsys.readouterr()
    shown = [line for line in captured.out.splitlines() if line.strip()[:1].isdigit()]
    assert f"note: {len(shown)} of the 4 songs asked for: the filters leave no more" in captured.err
    assert main(["--home", home, "similar", "Chord", "-n", "2"]) == 0
    assert "note:" not in capsys.readouterr().err



def test_slips_of_the_command_line_are_named_with_the_way_out(trained, capsys):
    home = str(trained)
    with pytest.raises(SystemExit) as stop:
        main(["--home", home, "similar", "tone", "band", "chord"])        # the words not quoted
    assert stop.value.code == 2
    assert f'hint: put a query of several words in quotes: `reform --home {home} similar "tone band chord"`; or, ' \
        f"for songs like several songs at once: `reform --home {home} mix tone band chord`" in capsys.readouterr().err
    with pytest.raises(SystemExit):                                     # an option mistyped: its name
        main(["--home", home, "playlist", "Chord", "--lenght", "5"])
    assert "hint: did you mean --length? `reform playlist --help` lists its options" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--home", home, "similar", "Chord", "--n", "3"])
    assert "hint: did you mean -n? `reform similar --help` lists its options" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--home", home, "similar", "Chord", "--zzz"])
    assert "hint: `reform similar --help` lists its options" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--home", home, "playlists", "--to", str(trained.parent / "lists"), "--radio", "tone", "band"])
    assert 'put a query of several words in quotes: --radio "tone band"' in capsys.readouterr().err
    assert main(["--home", home, "mix", "Tone", "Band"]) == 1                # two seeds, each of two songs
    assert 'several words go in quotes' in capsys.readouterr().err
    assert main(["--home", home, "similar", "Chord", "--relative"]) == 1     # it only shapes -o's file
    assert "--relative is for the M3U file -o writes" in capsys.readouterr().err
    assert main(["--home", home, "train", "--init", "bogus", "--max-epochs", "1"]) == 1
    assert "--init takes 'auto', 'scratch', 'shipped'" in capsys.readouterr().err
    assert main(["--home", home, "export", str(trained.parent)]) == 1     # not "unknown export format"
    assert "this is a folder, not a file" in capsys.readouterr().err


def test_a_query_that_starts_with_a_dash_is_told_to_go_after_two_dashes(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--home", str(tmp_path / "h"), "similar", "-dash-start"])   # argparse: an unknown option
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "hint: a QUERY that starts with '-' goes after `--`: `reform similar -- -dash-start`" in err
    assert main(["--home", str(tmp_path / "h"), "similar", "--", "-dash-start"]) == 1   # parsed: no library
    assert "required" not in capsys.readouterr().err



@pytest.mark.parametrize("word, meant", [("web", "serve"), ("similr", "similar"), ("Status", "status"),
                                         ("xyzzy", None)])
def test_a_word_that_is_no_command_gets_the_command_meant(word, meant, capsys):
    """`reform web` (the web page is `reform serve`) or a slip of the keys named the command meant
    nowhere: the hint only sent the user to `reform --help`."""
    with pytest.raises(SystemExit) as stop:
        main([word])
    assert stop.value.code == 2
    hint = capsys.readouterr().err.splitlines()[-1]
    assert hint == (f"hint: did you mean `reform {meant}`?" if meant else "hint: `reform --help` lists what it takes")


@pytest.mark.parametrize("argv", [["evaluate", "--seed", "-1"], ["mpd", "--port", "70000"], ["train", "--lr", "nan"],
                                  ["train", "--temperature", "inf"]])
def test_impossible_numbers_are_refused_by_the_parser(argv, capsys):
    """evaluate --seed -1 ended in numpy's traceback; mpd --port 70000 reached port 4464 (the
    resolver wraps a port modulo 65536) and said it was connected to 70000; train --lr nan was
    refused by the settings, which named their field (learning_rate), not the option."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2 and capsys.readouterr().err.startswith(f"error: argument {argv[1]}: must be ")


def test_a_way_on_names_the_home_given_with_home(tmp_path, capsys, monkeypatch):
    """Hints such as "run `reform scan` again" left out the --home the user gave: copied as they
    were printed, they acted on the default home ("no model named ...")."""
    home = tmp_path / "my home"
    assert main(["--home", str(home), "status"]) == 1
    err = capsys.readouterr().err   # (it said "or pass --home" to a user who had)
    assert f"`reform --home '{home}' scan FOLDER` to build one, or give another library's home with --home" in err
    monkeypatch.setenv("REFORM_HOME", str(home))          # the environment's home holds anyway
    assert main(["status"]) == 1
    assert "`reform scan FOLDER`" in capsys.readouterr().err


def test_random_bytes_named_mp3_fail_in_plain_words_and_quietly(tmp_path, capfd):
    """libmpg123 printed "Giving up searching valid MPEG header after 65536 bytes of junk" across the
    progress bar; the reason is what `reform errors` lists, in plain words."""
    write(tmp_path / "m" / "song.wav", tone(440, 4))
    (tmp_path / "m" / "random.mp3").write_bytes(np.random.default_rng(0).integers(0, 256, 200_000, np.uint8).tobytes())
    home = str(tmp_path / "h")
    assert main(["--home", home, "scan", str(tmp_path / "m"), "--jobs", "1", "--no-embed"]) == 0
    assert main(["--home", home, "errors"]) == 0
    out, err = capfd.readouterr()
    assert "random.mp3: not a readable audio file (no audio stream with a sample rate and channels)" in out
    assert "mpg123" not in err


def test_a_failed_file_named_by_its_name_and_a_library_of_one_song(tmp_path, capsys):
    write(tmp_path / "m" / "song.wav", tone(440, 4))
    write(tmp_path / "m" / "silence.wav", np.zeros(SR * 4, np.float32))
    home = str(tmp_path / "h")
    assert main(["--home", home, "-q", "scan", str(tmp_path / "m"), "--jobs", "1"]) == 0
    capsys.readouterr()
    assert main(["--home", home, "similar", "silence.wav"]) == 1    # not "no song has this file name"
    err = capsys.readouterr().err
    assert "this file could not be analysed: the audio is silent" in err and f"reform --home {home} errors" in err
    assert main(["--home", home, "similar", "song"]) == 0
    assert "(the library has no other song)" in capsys.readouterr().out    # not "no song passes the filters"


def test_training_progress_estimates_each_phase_from_its_own_epochs(monkeypatch, capsys):
    import io

    from reform import progress

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    now = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: now[0])
    bars = Terminal()
    shown = progress.TrainProgress(stream=bars)
    ends = {"total": 1.0, "main": 1.0, "lr": 1e-3, "windows_per_s": 10.0, "plateaus": 0}

    def epoch(phase: str, n: int, seconds: float, **more) -> None:
        shown({"type": "epoch_start", "phase": phase, "epoch": n, "max_epochs": 10, "windows": 4,
               "lr": 1e-3, "plateaus": 0})
        now[0] += seconds
        shown({"type": "epoch_end", "phase": phase, "epoch": n, **ends, **more})

    epoch("pretrain", 1, 20.0, spread_ratio=3.25, contrast=2.5, aux1=0.5)
    epoch("pretrain", 2, 20.0, spread_ratio=float("inf"))   # no song gave the probe two windows
    epoch("cluster", 1, 60.0)
    epoch("cluster", 2, 60.0)
    shown.close()
    assert "up to about 3 min left in this phase" in bars.getvalue()    # 9 pretraining epochs of 20 s
    assert "up to about 9 min left in this phase" in bars.getvalue()    # 9 clustering epochs of 60 s
    for mixed in ("7 min", "5 min"):   # what the pretraining's pace would have made of the clustering
        assert f"up to about {mixed}" not in bars.getvalue()
    lines = capsys.readouterr().out.splitlines()
    assert "between/within 3.25" in lines[0] and "between/within" not in lines[1] and "inf" not in lines[1]
    assert "contrast 2.5000" in lines[0] and "aux1 0.5000" in lines[0]    # every term of the total


def test_a_file_that_is_no_model_is_one_line(trained, tmp_path, capsys):
    text = tmp_path / "readme.txt"
    text.write_text("not a model\n")
    assert main(["--home", str(trained), "train", "--init", str(text), "--max-epochs", "1"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "not a model file, or a damaged one" in err[0]
    assert err[1].startswith(f"hint: give a model.pt that `reform --home {trained} train` wrote, or 'shipped'")


@pytest.mark.parametrize("verbose", [[], ["-v"]])
def test_a_reader_that_leaves_early_is_no_failure(scanned, verbose):
    """`reform -v status | head -1`: the pipe closed under the output; -v gave a BrokenPipeError
    traceback and exit status 1 where the plain command ends quietly with 0."""
    proc = subprocess.Popen(reform_cmd("--home", str(scanned), *verbose, "status"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()   # the reader is gone before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and err == ""


def test_a_ctrl_c_during_the_import_of_torch_comes_once_it_is_in(monkeypatch):
    """Raised inside torch's import, whose C++ calls back into Python, a Ctrl-C aborted the
    process ("terminate called after throwing ... pybind11::error_already_set", SIGABRT)."""
    import os
    import signal
    import time

    import reform.cli as cli

    imported = []

    def importing(name):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)                    # held: the import goes on to its end
        imported.append(name)
    monkeypatch.setattr(cli.importlib, "import_module", importing)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)   # as a command starts (a test
    try:                                                                # before may have left another)
        with pytest.raises(KeyboardInterrupt):
            cli._import_held("torch")
    finally:
        signal.signal(signal.SIGINT, before)
    assert imported == ["torch"]


def test_words_naming_one_song_held_in_two_formats_name_it(tmp_path, capsys):
    """A FLAC and its MP3 with one artist and title: "2 songs match", and no words could tell
    them apart, where recommendations take them for one song."""
    import mutagen

    from conftest import write_encoded

    music = tmp_path / "music"
    audio = np.stack([tone(440, 8), tone(550, 8)], axis=1)
    for name, codec in (("race.flac", "flac"), ("race.mp3", "libmp3lame")):
        path = write_encoded(music / name, audio, codec)
        f = mutagen.File(path, easy=True)
        if f.tags is None:
            f.add_tags()
        f.tags.update({"artist": "Jörg", "title": "Race One"})
        f.save()
    write(music / "other.wav", tone(330, 8))
    home = str(tmp_path / "home")
    assert main(["--home", home, "-q", "scan", str(music), "--jobs", "1"]) == 0
    capsys.readouterr()
    assert main(["--home", home, "similar", "jorg race", "--json"]) == 0
    assert [r["path"] for r in json.loads(capsys.readouterr().out)] == [str(music / "other.wav")]


@pytest.mark.parametrize("device, held", [("auto", True), ("cpu", False)])
def test_a_scan_that_may_embed_on_a_gpu_imports_torch_with_ctrl_c_held(tmp_path, monkeypatch, device, held):
    """A scan no longer imports torch before it knows it has work (a rescan with nothing to do took
    1.4 s more); where a GPU may embed in its own process, torch still comes in at the start,
    through the import that holds Ctrl-C back (pybind11's SIGABRT otherwise)."""
    from reform import cli, device as devices

    imported = []
    monkeypatch.setattr(devices, "cuda_possible", lambda: True)   # a driver here, as on a GPU machine
    monkeypatch.setattr(cli, "_import_held", imported.append)
    write(tmp_path / "music" / "a.wav", tone(440, 2))
    assert main(["--home", str(tmp_path / "home"), "-q", "scan", str(tmp_path / "music"), "--jobs", "1",
                 "--device", device]) == 0
    assert imported == (["torch"] if held else [])


def test_a_scan_with_nothing_to_do_loads_no_torch(scanned, tmp_path):
    """It imported torch first (1.4 s of a 2 s rescan of 342 songs) and then found nothing to do."""
    home = tmp_path / "home"
    shutil.copytree(scanned, home)
    code = ("import sys\nfrom reform.cli import main\n"
            f"assert main(['--home', {str(home)!r}, '-q', 'scan']) == 0\nprint('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "False" and "nothing to do" in out.stdout
