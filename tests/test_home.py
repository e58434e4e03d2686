"""The library home: the settings it was analysed with (checked on open), its models, which run
becomes active by itself, `reform models`, `reform use`."""

import json
import shutil

import pytest
import torch

from conftest import tiny_model_config
from reform import Library
from reform.cli import main
from reform.config import TrainConfig
from reform.errors import ModelError
from reform.card import read_card
from reform.checkpoint import load_bundle
from reform.home import SHIPPED, SHIPPED_MODEL, faults, read_run


def _train(home, name, **kwargs):
    cfg = dict(max_epochs=30, batch_size=4, cluster_batch_size=4, seed=1, learning_rate=3e-3, threads=1,
               plateau_patience=1, plateau_threshold=10.0)  # no epoch counts as better: quick plateaus
    activate = kwargs.pop("activate", False)
    cfg.update(kwargs)
    with Library(home, create=False) as lib:
        return lib.train(name=name, model_cfg=tiny_model_config(), train_cfg=TrainConfig(**cfg),
                         activate=activate)


def test_only_a_run_whose_phases_ended_on_their_schedule_becomes_active(home, capsys):
    _train(home, "short", max_epochs=2)
    with Library(home, create=False) as lib:
        assert lib.models.active_name() == SHIPPED       # cut short: every score would be ~1
        short = read_run(home / "models" / "short")
        assert short.usable and not short.complete and short.epochs == {"pretrain": 2, "cluster": 2}
        assert short.state.startswith("cut short (pretrain and cluster")
    _train(home, "full")
    with Library(home, create=False) as lib:
        assert lib.models.active_name() == "full"
        full = read_run(home / "models" / "full")
        assert full.complete and full.state == "finished" and full.stopped == {"pretrain": True, "cluster": True}
    _train(home, "forced", max_epochs=1, activate=True)
    with Library(home, create=False) as lib:
        assert lib.models.active_name() == "forced"


def test_a_clustering_phase_run_alone_is_judged_by_that_phase(tmp_path):
    """`train --phase cluster` from the shipped model runs no pretraining: that one was called
    cut short, and such a run never became active by itself."""
    from reform.home import Run, cut_short

    def run(cluster_ended: bool) -> Run:
        return Run("fresh", tmp_path, {"pretrain": 0, "cluster": 3}, {"pretrain": False, "cluster": cluster_ended},
                   True, None, None, started_from="shipped")

    assert run(True).complete and run(True).state == "finished, fine-tuned from shipped"
    assert run(False).state == "cut short (cluster stopped before its schedule ended), fine-tuned from shipped"
    assert cut_short({"pretrain": 2, "cluster": 0}, {"pretrain": True, "cluster": False}) == ["cluster"]
    assert cut_short({"pretrain": 2, "cluster": 2}, {"pretrain": False, "cluster": False}) == ["pretrain", "cluster"]


def test_a_model_written_again_does_not_take_the_active_ones_place(home, capsys):
    """`reform check` sends the user to `train --resume` for a run's damaged model.pt; that run,
    having ended on its schedule, then became the active model in place of the one chosen."""
    _train(home, "full")
    assert main(["--home", str(home), "-q", "use", "shipped"]) == 0
    model = home / "models" / "full" / "model.pt"
    with open(model, "r+b") as f:
        f.truncate(model.stat().st_size // 2)
    capsys.readouterr()
    assert main(["--home", str(home), "-q", "train", "--resume", "--name", "full"]) == 0
    assert f"not made active: the active model stays shipped; `reform --home {home} use full` makes it active" \
        in capsys.readouterr().out
    with Library(home, create=False) as lib:
        assert lib.models.active_name() == SHIPPED and read_run(home / "models" / "full").complete


def test_a_run_whose_model_was_never_written_becomes_active_when_resumed(home, monkeypatch, capsys):
    """The last write of a run that ended on its schedule failed (a full disk): the resume the
    error asks for writes its model, and the run becomes active as it would have (a review found
    it taken for a model written again, and left inactive)."""
    from reform import checkpoint
    from reform.errors import WriteError

    real = checkpoint.save_bundle

    def full_disk(path, *args, **kwargs):
        if path.name == "model.pt":
            raise WriteError("cannot write the file (No space left on device)", path=path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_bundle", full_disk)
    with pytest.raises(WriteError):
        _train(home, "full")
    monkeypatch.setattr(checkpoint, "save_bundle", real)
    assert main(["--home", str(home), "-q", "train", "--resume", "--name", "full"]) == 0
    with Library(home, create=False) as lib:
        assert lib.models.active_name() == "full"


def test_models_and_use(home, capsys):
    _train(home, "short", max_epochs=2)
    (home / "models" / "short" / "evaluation.json").write_text(json.dumps(
        {"labels": "genre", "methods": {"random": {"p10": 0.1, "same_song_top1": 0.2},
                     "ReFORM (both phases)": {"p10": 0.512, "same_song_top1": 0.345}}}))
    (home / "models" / "broken").mkdir()
    (home / "models" / "broken" / "metrics.jsonl").write_text('{"phase": "pretrain", "epoch": 1}\nnot json\n')
    assert main(["--home", str(home), "models"]) == 0
    out = capsys.readouterr().out
    shipped = read_card(SHIPPED_MODEL)["info"]["epochs"]            # the shipped model, active
    assert "* shipped" in out and f"{shipped['pretrain']}+{shipped['cluster']}" in out
    assert "  short" in out and "2+2" in out and "0.512  0.345  genre           cut short" in out
    assert "broken" in out and "pretraining in progress or interrupted (epoch 1)" in out
    assert main(["models", "--home", str(home), "--json"]) == 0        # global options after the command
    listed = json.loads(capsys.readouterr().out)
    assert listed["active"] == SHIPPED and [r["name"] for r in listed["runs"]] == ["short", "broken"]
    assert listed["training_now"] is None
    from reform.lock import WriterLock

    with WriterLock(home).hold("train"):   # "in progress or interrupted": which, said (`use` said to resume it)
        assert main(["--home", str(home), "models"]) == 0
        assert "a training runs now (train (PID " in capsys.readouterr().out
        assert main(["--home", str(home), "models", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["training_now"].startswith("train (PID ")
    (home / "models" / "early").mkdir()                              # Ctrl-C before its first epoch ended
    (home / "models" / "early" / "config.json").write_text("{}")
    assert read_run(home / "models" / "early").state == \
        "first epoch in progress, or stopped before it ended (`reform train --name early` starts it again)"

    assert main(["--home", str(home), "use", "short"]) == 0
    assert "active model: short" in capsys.readouterr().out
    with Library(home, create=False) as lib:
        assert lib.model_path() == home / "models" / "short" / "model.pt"
    for given in (home / "models" / "short" / "model.pt", home / "models" / "short"):   # its file, or folder
        assert main(["--home", str(home), "use", str(given)]) == 0
        assert "active model: short" in capsys.readouterr().out
    elsewhere = shutil.copytree(home / "models" / "short", home.parent / "elsewhere")
    assert main(["--home", str(home), "use", str(elsewhere / "model.pt")]) == 1
    err = capsys.readouterr().err
    assert "is not a run of this library" in err and "copied into the library's models folder" in err
    assert main(["--home", str(home), "use", "shipped"]) == 0
    with Library(home, create=False) as lib:
        assert lib.models.active_name() == SHIPPED
        with pytest.raises(ModelError, match="no model of both phases") as err:
            lib.use("broken")
        damaged = home / "models" / "damaged"                   # was made active without a word
        shutil.copytree(home / "models" / "short", damaged)
        (damaged / "model.pt").write_bytes((damaged / "model.pt").read_bytes()[:1000])
        with pytest.raises(ModelError, match="the run 'damaged' cannot be used: the model file is damaged"):
            lib.use("damaged")
        assert lib.models.active_name() == SHIPPED
        assert "start it again with `reform train --name broken`" in err.value.hint   # no checkpoint to resume
    assert main(["--home", str(home), "use", "nothing"]) == 1
    err = capsys.readouterr().err
    assert "no model named 'nothing'" in err and f"hint: `reform --home {home} models` lists them" in err
    assert "path of a model.pt" not in err          # which `use` takes only from this library
    assert main(["--home", str(home), "use", ""]) == 1
    assert "no model named ''" in capsys.readouterr().err
    missing = str(home.parent / "nowhere" / "model.pt")       # a path typed: said to be missing as a file
    assert main(["--home", str(home), "train", "--init", missing, "--max-epochs", "1"]) == 1
    assert f"error: {missing}: no such model file" in capsys.readouterr().err
    assert main(["--home", str(home), "train", "--init", str(home / "models" / "short" / "checkpoint.pt"),
                 "--max-epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert "a run's training checkpoint, not a model" in err and "model.pt" in err
    assert main(["--home", str(home), "train", "--init", str(home / "models" / "broken"), "--max-epochs", "1"]) == 1
    assert "--name /" not in capsys.readouterr().err   # a folder given by its path is not a run's name


def test_a_link_recorded_to_elsewhere_in_the_library_names_nothing(tmp_path):
    """An older walk recorded ``music/A/fav -> music/B`` where it took the link first: the songs
    take their real names at the next scan, and the link names no folder (a scan of ``music/B``
    was respelled as the link's); a link out of the library keeps naming its folder."""
    from reform.home import Home

    music, disk = tmp_path / "music", tmp_path / "disk"
    (music / "B").mkdir(parents=True)
    disk.mkdir()
    home = Home(tmp_path / "home")
    with home.catalogue.transaction():
        home.add_roots([str(music)])
        home.add_links({str(music / "B"): str(music / "A" / "fav"), str(disk): str(music / "ext")})
    assert home.links() == {str(disk): str(music / "ext")}
    home.close()


def test_songs_named_through_nested_links_take_their_real_names_inner_link_first(tmp_path):
    """An older walk's names through a link inside another link: renamed outer first, the inner
    link's songs were left under a name through a link (a scan of their folder removed them), and
    a disk linked from inside kept a record under the outer link's name (its scan added copies)."""
    from reform.home import Home
    from reform.store import SpectrogramInfo, Tags

    music, disk = tmp_path / "music", tmp_path / "disk"
    for folder in (music / "A" / "AFav", music / "A" / "B", music / "A" / "C" / "X", disk / "E"):
        folder.mkdir(parents=True)
    (music / "A" / "AFav" / "l1").symlink_to("../B")
    (music / "A" / "B" / "sub").symlink_to("../C/X")
    (music / "A" / "B" / "ext").symlink_to(disk / "E")
    old = music / "A" / "AFav" / "l1"
    home = Home(tmp_path / "home")
    with home.catalogue.transaction():
        home.add_roots([str(music)])
        for i, path in enumerate((old / "01 b.flac", old / "sub" / "01 x.flac", old / "ext" / "01 e.flac")):
            home.catalogue.put_ok(str(path), 1, 1, SpectrogramInfo(f"h{i}", 2, 100, 100.0, 44100, "flac"),
                                  Tags("A", "l1", path.stem), "fv")
        home.catalogue.set_meta("links", json.dumps({str(music / "A" / "B"): str(old),
                                                     str(music / "A" / "C" / "X"): str(old / "sub"),
                                                     str(disk / "E"): str(old / "ext")}))
        assert home.respell_links_within() == 3
    assert sorted((r.path, r.mtime_ns) for r in home.catalogue.files()) == sorted(
        (str(music / "A" / p), -1) for p in ("B/01 b.flac", "C/X/01 x.flac", "B/ext/01 e.flac"))
    assert home.links() == {str(disk / "E"): str(music / "A" / "B" / "ext")}
    with home.catalogue.transaction():
        assert home.respell_links_within() == 0          # once
    home.close()


def test_the_settings_a_home_was_analysed_with_are_checked_on_open(scanned, tmp_path):
    from reform.config import MelConfig, ModelConfig
    from reform.errors import ConfigError, LibraryError, StoreError
    from reform.home import Home, Keys, Settings

    home = tmp_path / "home"
    shutil.copytree(scanned, home)
    opened = Home(home, create=False)
    assert opened.stored_settings() == Settings()           # the scan stored what it used
    assert opened.roots() == [str(scanned.parent / "music")]
    opened.close()
    with pytest.raises(LibraryError, match="other settings") as err:  # never analysed again silently
        Library(home, mel=MelConfig(n_mels=64))
    assert "n_mels 128 here, 64 asked" in str(err.value) and "--reanalyse" in err.value.hint
    with Library(home, create=False) as lib:                  # an older home names a version only
        with lib.home.catalogue.transaction():
            lib.home.catalogue.set_meta(Keys.SETTINGS, "")
            lib.home.catalogue.set_meta(Keys.FEATURE_VERSION, "mel0-old")
    with pytest.raises(LibraryError, match="feature version mel0-old here"):
        Library(home)
    with Library(home, reanalyse=True) as lib:                # `reform scan --reanalyse`: the
        assert lib.scan(jobs=1).analysed == 0                 # rows say they are current
        assert lib.home.stored_settings() == Settings()
    with Library(home, mel=MelConfig(n_mels=64), reanalyse=True) as lib:
        assert lib.scan(jobs=1, embed=False).analysed == 5    # really other settings: all again
        assert lib.spectrogram(lib.songs()[0].path).shape[1] == 64
    with pytest.raises(LibraryError, match="n_mels 64 here, 128 asked"):
        Library(home)
    with Library(home, mel=MelConfig(n_mels=64)) as lib:      # the two n_mels must agree
        with pytest.raises(ConfigError, match="asks for 32 mel bands") as err:
            lib.train(model_cfg=ModelConfig(n_mels=32, widths=(4, 8), embedding_dim=8))
        assert "follows the library" in err.value.hint
    with pytest.raises(StoreError, match="no library"):
        Home(tmp_path / "nothing", create=False)


def test_cli_scan_reanalyse(scanned, tmp_path, capsys):
    from reform.home import Keys

    home = tmp_path / "home"
    shutil.copytree(scanned, home)
    with Library(home) as lib, lib.home.catalogue.transaction():
        lib.home.catalogue.set_meta(Keys.SETTINGS, "")
        lib.home.catalogue.set_meta(Keys.FEATURE_VERSION, "mel0-old")
    assert main(["--home", str(home), "status"]) == 1
    assert f"hint: open it with the settings it was made with, or run `reform --home {home} scan --reanalyse`" in \
        capsys.readouterr().err
    assert main(["--home", str(home), "-q", "scan", "--reanalyse", "--no-embed", "--jobs", "1"]) == 0
    capsys.readouterr()
    assert main(["--home", str(home), "status"]) == 0


def test_a_run_cannot_take_the_shipped_model_s_name(home, capsys):
    assert main(["--home", str(home), "train", "--name", "shipped", "--max-epochs", "1"]) != 0
    err = capsys.readouterr().err
    assert "ships with ReFORM" in err and "hint: give the run another --name" in err
    assert not (home / "models" / "shipped").exists()
    for name in ("../evil", "a/b", ".."):   # a run is one folder in the models folder, never elsewhere
        assert main(["--home", str(home), "train", "--name", name, "--max-epochs", "1"]) == 1
        assert "a run's name is one folder name" in capsys.readouterr().err
    assert not (home / "evil").exists() and not (home / "models" / "a").exists()
    # written into the commands the output suggests: `reform use my run` failed, and a leading dot
    # hid the run from `reform models`
    for name in ("my run", "jazz & blues", ".hidden", " ", "x" * 65):
        assert main(["--home", str(home), "train", "--name", name, "--max-epochs", "1"]) == 1
        assert "a new run's name is letters, digits" in capsys.readouterr().err
        assert not (home / "models" / name).exists()


def test_a_missing_or_stale_model_card_is_written_again_when_the_model_is_loaded(trained, tmp_path):
    """The card says which model made the embeddings; a run killed between writing the model and
    its card, or a card copied from another run, left `status` and `embed` disagreeing."""
    home = tmp_path / "home"
    shutil.copytree(trained, home)
    card = home / "models" / "tiny" / "model.json"
    right = json.loads(card.read_text())
    card.write_text(json.dumps({**right, "version": "0" * 12}))
    with Library(home, create=False) as lib:
        assert not lib.embedding_status()["current"]     # a card naming other weights is only found by loading
        lib.load_model()
        assert lib.embedding_status()["current"] and json.loads(card.read_text()) == right
    card.unlink()
    with Library(home, create=False) as lib:   # a lost card: the status loads the model, which writes it
        assert lib.embedding_status()["current"] and json.loads(card.read_text()) == right
        assert lib.status()["model"]["version"] == right["version"]


def test_an_active_run_that_lost_its_model_file_stays_active_and_says_how_to_get_it_back(trained, tmp_path,
                                                                                         capsys):
    """With its model.pt deleted, or its folder renamed, the run the user chose gave way to the
    shipped model without a word: `reform embed` would then have replaced all its embeddings."""
    home = shutil.copytree(trained, tmp_path / "home")
    model = home / "models" / "tiny" / "model.pt"
    weights = load_bundle(model).model.state_dict()
    model.unlink()
    with Library(home, create=False) as lib:
        assert lib.models.active_name() == "tiny"
        assert lib.embedding_status()["current"]      # the stored embeddings are still the run's own
        assert lib.status()["model"]["problem"] == "the run 'tiny' has lost its model file"
        assert "`reform train --resume --name tiny` writes it again" in lib.status()["model"]["hint"]
    assert "model file lost: `reform train --resume --name tiny`" in read_run(home / "models" / "tiny").state
    for command in (["embed"], ["check"]):
        assert main(["--home", str(home), "-q", *command]) == 1, command
        captured = capsys.readouterr()
        assert "lost its model file" in captured.out + captured.err
        assert f"`reform --home {home} train --resume --name tiny` writes it again" in captured.out + captured.err
    assert main(["--home", str(home), "-q", "similar", "Chord"]) == 0    # queries use the stored embeddings
    assert "another model" not in capsys.readouterr().err
    assert main(["--home", str(home), "-q", "train", "--resume", "--name", "tiny"]) == 0
    assert "active model: tiny (every song has its embedding already)" in capsys.readouterr().out   # not "embed"
    restored = load_bundle(model).model.state_dict()     # the same weights, from the run's last checkpoint
    assert all(torch.equal(restored[k], weights[k]) for k in weights)
    (home / "models" / "tiny").rename(home / "models" / "tiny-old")   # the run's whole folder: the same
    with Library(home, create=False) as lib:
        assert lib.models.active_name() == "tiny" and lib.embedding_status()["current"] is None
        assert "is no longer in the library's models folder (renamed or deleted?)" in lib.status()["model"]["problem"]
    assert main(["--home", str(home), "-q", "embed"]) == 1
    assert f"`reform --home {home} use NAME` makes another run the active model" in capsys.readouterr().err
    assert main(["--home", str(home), "status"]) == 0
    assert "another model than the active one" not in capsys.readouterr().out   # no call to embed with it
    assert main(["--home", str(home), "models"]) == 0
    assert "* tiny" in capsys.readouterr().out
    assert main(["--home", str(home), "-q", "use", "tiny-old"]) == 0
    with Library(home, create=False) as lib:
        assert lib.embedding_status()["current"]                          # the same model, found again
    # its checkpoint gone too, or a run stopped before its first epoch: no --resume to suggest
    for name in ("model.pt", "checkpoint.pt"):
        (home / "models" / "tiny-old" / name).unlink()
    with Library(home, create=False) as lib:
        assert lib.status()["model"]["hint"].startswith("its checkpoint is gone too: train the run again")
    assert read_run(home / "models" / "tiny-old").state == \
        "model file lost, and its checkpoint too: train the run again"
    (home / "models" / "early").mkdir()
    (home / "models" / "early" / "config.json").write_text("{}")
    with Library(home, create=False) as lib, pytest.raises(ModelError) as caught:
        lib.models.path("early")
    assert caught.value.hint == ("it has no checkpoint to go on from (stopped before its first epoch ended?): "
                                 "start it again with `reform train --name early`")


def test_a_run_that_lost_its_checkpoint_points_to_a_way_on(trained, tmp_path, capsys):
    """--resume said the run never finished an epoch and to train it again without --resume,
    which was refused as "trained already": each message pointed at the other."""
    home = shutil.copytree(trained, tmp_path / "home")
    (home / "models" / "tiny" / "checkpoint.pt").unlink()
    assert main(["--home", str(home), "-q", "train", "--resume", "--name", "tiny"]) == 1
    err = capsys.readouterr().err
    assert "the run tiny has lost its checkpoint (checkpoint.pt), so its training cannot go on" in err
    way = err.split("hint: ")[1].strip().strip("`")
    assert way == (f"start a new run from it: `reform --home {home} train --name tiny-2 --init "
                   f"{home / 'models' / 'tiny' / 'model.pt'}")
    argv = way.split("`")[1].split()[1:]     # the command as the hint gives it, with its --home
    assert main(["-q", *argv, "--max-epochs", "1"]) == 0
    assert (home / "models" / "tiny-2" / "model.pt").exists()
    # a run stopped before its first epoch ended: started again, with the options it had, which
    # the hint now says where to find (it named the command alone, without its --max-epochs)
    for kept in ("checkpoint.pt", "model.pt", "pretrain.pt"):
        (home / "models" / "tiny" / kept).unlink(missing_ok=True)
    assert main(["--home", str(home), "-q", "train", "--resume", "--name", "tiny"]) == 1
    err = capsys.readouterr().err
    assert "stopped before its first epoch ended" in err and "the options it was started with (its config.json " \
        "holds them)" in err


def test_a_full_disk_while_training_names_the_command_that_goes_on(home, monkeypatch, capsys):
    """"Free some disk space, then run the command again" was refused as "trained already"."""
    import errno

    from reform import checkpoint
    from reform.files import write_error

    real, saves = checkpoint.save_atomic, []

    def fills_up(obj, path):
        saves.append(path)
        if len(saves) == 2:   # the second epoch's checkpoint finds the disk full
            raise write_error(OSError(errno.ENOSPC, "No space left on device"), path)
        return real(obj, path)

    monkeypatch.setattr(checkpoint, "save_atomic", fills_up)
    argv = ["--home", str(home), "-q", "train", "--name", "full", "--max-epochs", "3", "--batch-size", "4",
            "--widths", "4,8", "--embedding-dim", "8", "--init", "scratch"]
    assert main(argv) == 1
    assert (f"hint: free some disk space, then `reform --home {home} train --resume --name full`: what was "
            "finished is kept") in capsys.readouterr().err
    monkeypatch.setattr(checkpoint, "save_atomic", real)
    assert main(["--home", str(home), "-q", "train", "--resume", "--name", "full", "--max-epochs", "2",
                 "--lr", "0.5", "--threads", "1"]) == 0   # an option a resumed run does not take is said
    err = capsys.readouterr().err
    assert "note: --lr is not applied: a resumed run keeps the settings it started with" in err
    assert "--threads" not in err                  # about the machine: a resumed run takes it


def test_a_run_whose_log_is_lost_still_shows_its_epochs(trained, tmp_path):
    home = shutil.copytree(trained, tmp_path / "home")
    before = read_run(home / "models" / "tiny").epochs
    (home / "models" / "tiny" / "metrics.jsonl").unlink()
    assert read_run(home / "models" / "tiny").epochs == before != {"pretrain": 0, "cluster": 0}


def test_a_scan_stops_on_an_active_run_that_is_lost(trained, tmp_path, capsys):
    """It ended with exit 0 and "3 songs have no embedding: run `reform embed`", which then failed."""
    from conftest import tone, write

    home = shutil.copytree(trained, tmp_path / "home")
    shutil.rmtree(home / "models" / "tiny")
    write(tmp_path / "more" / "new.wav", tone(880, 3))
    assert main(["--home", str(home), "-q", "scan", str(tmp_path / "more"), "--jobs", "1"]) == 1
    assert "is no longer in the library's models folder" in capsys.readouterr().err
    assert main(["--home", str(home), "-q", "scan", str(tmp_path / "more"), "--jobs", "1", "--no-embed"]) == 0


def test_an_evaluation_of_weights_since_replaced_is_not_shown(trained, tmp_path, capsys):
    """`reform models` showed a p@10 measured on the weights a resumed run had replaced."""
    home = shutil.copytree(trained, tmp_path / "home")
    assert main(["--home", str(home), "-q", "evaluate", "--no-baselines", "--labels", "album"]) == 0
    run = read_run(home / "models" / "tiny")
    assert run.evaluation is not None
    saved = json.loads((home / "models" / "tiny" / "evaluation.json").read_text())
    assert saved["model_version"] == read_card(home / "models" / "tiny" / "model.pt")["version"]
    saved["model_version"] = "an-older-one"
    (home / "models" / "tiny" / "evaluation.json").write_text(json.dumps(saved))
    assert read_run(home / "models" / "tiny").evaluation is None
    capsys.readouterr()


def _epochs(phase, *rows):
    return [{"phase": phase, "epoch": i + 1, "main": main, "spread_between": between, "event": ""}
            for i, (main, between) in enumerate(rows)]


def test_a_phase_that_ends_collapsed_or_rebuilding_nothing_is_a_fault():
    healthy = _epochs("pretrain", (0.8, 120.0), (0.5, 140.0)) + _epochs("cluster", (0.52, 2.0), (0.5, 0.6))
    assert faults(healthy) == {}
    # the note's rate of 0.1 (README): songs at one point at the end, whatever came before
    collapsed = _epochs("pretrain", (1.6, 1.8e10), (0.9, 1.4e7)) + _epochs("cluster", (1.4, 5.5), (1.4, 6.8e-13))
    assert faults(collapsed) == {"cluster": "every song's embedding ended at one point (the model collapsed)"}
    assert faults(_epochs("pretrain", (3.7, 2e14), (1.03, 1.4e7))) == {}    # a poor model, not a failed one
    away = _epochs("pretrain", (0.9, 10.0), (2.6e6, 1.5e5))
    assert faults(away) == {"pretrain": "its decoder's loss ended at 2.6e+06, where every band's average level "
                                        "would cost about 1"}
    assert faults(_epochs("pretrain", (1.5, None), (0.5, None))) == {}   # judged by the last epoch only


def test_a_failed_run_is_said_and_not_complete(trained, tmp_path):
    home = shutil.copytree(trained, tmp_path / "home")
    log = home / "models" / "tiny" / "metrics.jsonl"
    history = [json.loads(line) for line in log.read_text().splitlines()]
    assert read_run(log.parent).faults == {}
    last = max(i for i, h in enumerate(history) if h.get("phase") == "cluster")
    history[last]["spread_between"] = 0.0
    log.write_text("".join(json.dumps(h) + "\n" for h in history))
    run = read_run(log.parent)
    assert not run.complete and run.state.startswith("failed: cluster: every song's embedding ended at one point")


def test_the_copies_beside_the_catalogue_are_written_once_it_has_committed(home):
    """The list of music folders was written inside the transaction that changed it: a COMMIT
    that failed (a full disk) left the copy ahead of the catalogue, and a catalogue lost later
    came back with folders it had never had."""
    import sqlite3

    from reform.errors import ReformError

    with Library(home, create=False) as lib:
        catalogue, copy = lib.home.catalogue, home / "folders.json"
        before, roots = copy.read_text(), lib.home.roots()
        real = catalogue.conn

        class FullDisk:
            def __getattr__(self, name):
                return getattr(real, name)

            def execute(self, sql, *args):
                if sql == "COMMIT":
                    raise sqlite3.OperationalError("database or disk is full")
                return real.execute(sql, *args)
        catalogue.conn = FullDisk()
        with pytest.raises(ReformError, match="full"):
            with catalogue.transaction():
                lib.home.forget_roots(roots)
        catalogue.conn = real
        assert copy.read_text() == before and lib.home.roots() == roots
        with catalogue.transaction():
            lib.home.forget_roots(roots)
            assert copy.read_text() == before             # not yet: the COMMIT comes first
        assert json.loads(copy.read_text()) == [] and lib.home.roots() == []
