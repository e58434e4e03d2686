"""Training: the plateau schedule, both phases lowering their loss, outputs, resume."""

import dataclasses
import json

import numpy as np
import pytest
import torch

from conftest import tiny_model_config
from reform import Library
from reform.augment import generator
from reform.checkpoint import load, load_bundle
from reform.config import TrainConfig
from reform.dataset import Windows, album_ids, fit_normaliser
from reform.errors import ConfigError, TrainError
from reform.loader import Step, device_scale
from reform.losses import contrastive_loss, debiased_contrastive_loss, vicreg_loss
from reform.model import PretrainAutoencoder
from reform.objectives import PretrainObjective
from reform.train import PlateauSchedule, cluster_schedule, make_optimizer, pretrain_schedule


def _actions(schedule, losses):
    return [schedule.step(x) for x in losses]


def test_plateau_rule_drops_and_stops_in_pretraining():
    s = pretrain_schedule(TrainConfig(plateau_patience=2, plateau_threshold=0.1))
    losses = [10, 8, 7.5, 7.6,   # 7.5 is not 10% below 8: plateau 1 after 2 such epochs
              5, 4.9, 4.8,       # 5 improves; then two epochs without 10% -> plateau 2
              4.7, 4.7]          # plateau 3: stop
    assert _actions(s, losses) == ["continue", "continue", "continue", "drop",
                                   "continue", "continue", "drop",
                                   "continue", "stop"]
    assert s.plateaus == 3


def test_clustering_drops_three_times_then_stops_at_the_next_plateau():
    s = cluster_schedule(TrainConfig(plateau_patience=1, plateau_threshold=0.0))
    assert _actions(s, [5, 5, 5, 5, 5]) == ["continue", "drop", "drop", "drop", "stop"]


def test_non_finite_loss_is_divergence():
    s = PlateauSchedule(patience=3, threshold=0.01, max_drops=2, stop_at=3)
    assert s.step(float("nan")) == "diverged" and s.step(float("inf")) == "diverged"


def _train(home, name, **kwargs):
    cfg = dict(max_epochs=6, batch_size=4, cluster_batch_size=4, plateau_patience=50, seed=1,
               learning_rate=3e-3, cluster_learning_rate=1e-3, threads=1)
    cfg.update(kwargs)
    with Library(home, create=False) as lib:
        return lib.train(name=name, model_cfg=tiny_model_config(), train_cfg=TrainConfig(**cfg))


def test_both_phases_lower_their_loss_and_write_their_files(home):
    result = _train(home, "run")
    folder = result.files.folder
    for name in ("checkpoint.pt", "pretrain.pt", "model.pt", "metrics.jsonl", "curves.png",
                 "architecture-pretrain.png", "architecture-cluster.png", "config.json"):
        assert (folder / name).stat().st_size > 0, name
    lines = [json.loads(x) for x in (folder / "metrics.jsonl").read_text().splitlines()]
    pre = [x for x in lines if x["phase"] == "pretrain"]
    clu = [x for x in lines if x["phase"] == "cluster"]
    assert len(pre) == len(clu) == 6
    assert pre[-1]["total"] < pre[0]["total"] and clu[-1]["total"] < clu[0]["total"]
    assert {"main", "aux1", "aux2", "lr", "windows_per_s", "spread_ratio", "spread_within"} <= set(pre[0])
    assert {"main", "cluster", "total", "spread_between"} <= set(clu[0])
    assert pre[0]["lr"] == 3e-3 and clu[0]["lr"] == 1e-3  # each phase starts from its own rate
    saved = load(folder / "checkpoint.pt")
    assert tuple(saved["model_config"]["widths"]) == (4, 8) and saved["feature_version"].startswith("mel1-")
    assert len(saved["normaliser"]["mean"]) == 128
    bundle = load_bundle(folder / "model.pt")
    assert bundle.kind == "cluster" and bundle.cfg.widths == (4, 8)
    with Library(home) as lib:  # cut short by the epoch cap: kept, not made active (test_home.py)
        assert lib.models.active_name() == "shipped"


RECONSTRUCTION_ONLY = dict(contrast_weight=0.0, gain_db=0.0, eq_db=0.0, pitch_bins=0, stripe_frames=0,
                           stripe_bins=0, cluster_loss="note")


@pytest.mark.parametrize("extra", [RECONSTRUCTION_ONLY, {}, {"mix": 0.4, "ema": 0.8, "weight_decay": 0.5}],
                         ids=["reconstruction-only", "defaults-with-soft-neighbours", "mixed-in-averaged-decayed"])
def test_interrupted_training_resumes_to_the_same_result(home, extra):
    whole = _train(home, "whole", **extra)

    def interrupt_at(n):
        calls = {"n": 0}

        def interrupt(event):
            if event["type"] == "batch" and event.get("windows"):
                calls["n"] += 1
                if calls["n"] == n:
                    raise KeyboardInterrupt
        return interrupt

    cfg = TrainConfig(max_epochs=6, batch_size=4, cluster_batch_size=4, plateau_patience=50, seed=1,
                      learning_rate=3e-3, cluster_learning_rate=1e-3, threads=1, **extra)
    with Library(home) as lib:
        with pytest.raises(KeyboardInterrupt):   # in the middle of the last pretraining epoch
            lib.train(name="cut", model_cfg=tiny_model_config(), train_cfg=cfg, callback=interrupt_at(11))
        with pytest.raises(KeyboardInterrupt):   # then in the middle of the clustering phase
            lib.train(name="cut", resume=True, callback=interrupt_at(12))
        assert not (home / "models" / "cut" / "model.pt").exists()
        assert load(home / "models" / "cut" / "checkpoint.pt")["state"]["phase"] == "cluster"
        killed = home / "models" / "cut" / f".checkpoint.pt.tmp-{2 ** 22 + 3}-1"  # a kill -9 mid-write
        killed.write_bytes(b"half a checkpoint")
        lib.train(name="cut", resume=True)
        assert not killed.exists()
    a = torch.load(whole.files.model, weights_only=True)["state_dict"]
    b = torch.load(home / "models" / "cut" / "model.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    m1 = (whole.files.folder / "metrics.jsonl").read_text().splitlines()
    m2 = (home / "models" / "cut" / "metrics.jsonl").read_text().splitlines()
    strip = lambda s: {k: v for k, v in json.loads(s).items() if k not in ("seconds", "windows_per_s")}  # noqa: E731
    assert [strip(x) for x in m1] == [strip(x) for x in m2]


def test_the_same_seed_gives_the_same_model(home):
    a = _train(home, "a", max_epochs=2)
    b = _train(home, "b", max_epochs=2)
    sa = torch.load(a.files.model, weights_only=True)["state_dict"]
    sb = torch.load(b.files.model, weights_only=True)["state_dict"]
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_diverging_rate_stops_with_a_clear_error(home):
    with pytest.raises(TrainError, match="diverged"):
        _train(home, "boom", learning_rate=1e12, max_epochs=3)
    lines = (home / "models" / "boom" / "metrics.jsonl").read_text().splitlines()
    last = json.loads(lines[-1], parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert last["event"] == "diverged" and last["total"] is None      # NaN written as null
    assert (home / "models" / "boom" / "curves.png").stat().st_size > 0


def test_resume_before_the_first_epoch_ended_says_what_to_do(home):
    def interrupt(event):
        if event["type"] == "batch":
            raise KeyboardInterrupt  # killed in the first epoch: no checkpoint yet

    _train(home, "finished", max_epochs=1)
    with Library(home) as lib:
        with pytest.raises(KeyboardInterrupt):
            lib.train(name="early", model_cfg=tiny_model_config(), callback=interrupt,
                      train_cfg=TrainConfig(max_epochs=2, batch_size=4, threads=1))
        for name in ("early", None):            # named, or the newest run (not the finished one)
            with pytest.raises(TrainError, match="run early stopped before its first epoch ended") as err:
                lib.train(name=name, resume=True)
            assert "reform train --name early" in err.value.hint
        with pytest.raises(TrainError, match="a run named finished has trained already") as err:
            lib.train(name="finished", model_cfg=tiny_model_config(),     # its model is kept
                      train_cfg=TrainConfig(max_epochs=1, batch_size=4, threads=1))
        assert "--resume --name finished" in err.value.hint
        lib.train(name="early", model_cfg=tiny_model_config(), phase="pretrain",   # no epoch to lose
                  train_cfg=TrainConfig(max_epochs=1, batch_size=4, threads=1))
        with pytest.raises(TrainError, match="there is no run named 'nosuch' to resume"):
            lib.train(name="nosuch", resume=True)
        assert not (home / "models" / "nosuch").exists()


def test_fine_tuning_starts_from_its_model_and_keeps_its_architecture(home):
    start = _train(home, "start", max_epochs=2)
    with Library(home, create=False) as lib:
        init = lib.load_model(start.files.model)
        with pytest.raises(ConfigError, match="keeps the architecture of the model it starts from"):
            lib.train(name="other", init=init, model_cfg=dataclasses.replace(init.cfg, widths=(4, 4)))
        assert not (home / "models" / "other").exists()          # refused before any work
        cfg = TrainConfig(max_epochs=1, batch_size=4, learning_rate=1e-7, threads=1)
        tuned = lib.train(name="tuned", phase="pretrain", init=init, train_cfg=cfg)   # no model settings
        bundle = load_bundle(tuned.files.pretrain)
        assert bundle.info["started_from"] == init.version and init.info["started_from"] is None   # what it tuned
        lib.train(name="tuned", phase="pretrain", resume=True, max_epochs=2)
        assert load_bundle(tuned.files.pretrain).info["started_from"] == init.version   # kept by a resume
    assert bundle.cfg == init.cfg
    np.testing.assert_array_equal(bundle.normaliser.mean, init.normaliser.mean)   # its inputs, scaled alike
    before, after = init.model.encoder.state_dict(), bundle.model.encoder.state_dict()
    kernels = [k for k in before if k.endswith("weight") and before[k].ndim == 4]
    assert kernels and all(torch.allclose(before[k], after[k], atol=1e-5) for k in kernels)


def test_a_small_library_starts_from_the_shipped_model(home, tmp_path, music, monkeypatch):
    from reform import api
    from reform.config import MelConfig

    with Library(home, create=False) as lib:
        songs = len(lib.training_songs())
        monkeypatch.setattr(api, "FINE_TUNE_BELOW", songs + 1)
        assert lib.default_start().version == lib.load_model("shipped").version
        monkeypatch.setattr(api, "FINE_TUNE_BELOW", songs)
        assert lib.default_start() is None
    monkeypatch.setattr(api, "FINE_TUNE_BELOW", 100)
    with Library(tmp_path / "other", mel=MelConfig(n_mels=64)) as lib:   # spectrograms it cannot read
        lib.scan(music, jobs=1)
        assert lib.training_songs() and lib.default_start() is None


def test_cluster_phase_needs_a_pretrained_model(home):
    with pytest.raises(TrainError, match="pretrained") as caught:
        with Library(home) as lib:
            lib.train(name="lonely", phase="cluster", model_cfg=tiny_model_config(),
                      train_cfg=TrainConfig(max_epochs=1))
    # the way on names the run: without it, the pretraining went into a new run the next step never used
    assert caught.value.hint.startswith("run `reform train --phase pretrain --name lonely` first")


def test_too_few_songs(tmp_path):
    with Library(tmp_path / "empty") as lib, pytest.raises(TrainError, match="at least 2"):
        lib.train()


def test_a_run_stopped_by_its_cap_goes_on_when_resumed_with_a_higher_cap(home):
    cfg = TrainConfig(max_epochs=2, batch_size=4, cluster_batch_size=4, plateau_patience=50, seed=1,
                      threads=1)
    with Library(home, create=False) as lib:
        first = lib.train(name="capped", phase="pretrain", model_cfg=tiny_model_config(), train_cfg=cfg)
        assert first.stop_reasons["pretrain"] == "reached the cap of 2 epochs"
        again = lib.train(name="capped", phase="pretrain", resume=True, max_epochs=4)
    epochs = [h["epoch"] for h in again.history if h.get("epoch") and h["phase"] == "pretrain"]
    assert epochs == [1, 2, 3, 4] and again.stop_reasons["pretrain"] == "reached the cap of 4 epochs"


def test_a_resume_with_a_higher_cap_says_the_pretraining_had_ended_before_it(home):
    """Resumed with --max-epochs 3 in its clustering phase, a run printed "pretrain: reached the
    cap of 2 epochs" beside "cluster: reached the cap of 3 epochs", as if it had stopped short."""
    cfg = TrainConfig(max_epochs=2, batch_size=4, cluster_batch_size=4, plateau_patience=50, seed=1,
                      threads=1)
    with Library(home, create=False) as lib:
        first = lib.train(name="grown", model_cfg=tiny_model_config(), train_cfg=cfg)
        assert first.earlier == frozenset()
        again = lib.train(name="grown", resume=True, max_epochs=3)
    assert again.earlier == {"pretrain"}
    assert again.stop_reasons == {"pretrain": "reached the cap of 2 epochs", "cluster": "reached the cap of 3 epochs"}
    assert [h["epoch"] for h in again.history if h.get("epoch") and h["phase"] == "cluster"] == [1, 2, 3]


def test_a_run_resumed_with_a_cap_it_has_passed_is_left_as_it_is(home):
    """Resumed with --max-epochs 1 after 2 clustering epochs, it said it "reached the cap of 1
    epoch" and wrote its model and settings again with that cap."""
    cfg = TrainConfig(max_epochs=2, batch_size=4, cluster_batch_size=4, plateau_patience=50, seed=1,
                      threads=1)
    with Library(home, create=False) as lib:
        done = lib.train(name="past", model_cfg=tiny_model_config(), train_cfg=cfg)
        written = done.files.model.read_bytes()
        with pytest.raises(TrainError, match="has trained 2 clustering epochs already, more than --max-epochs 1: "
                                             "nothing to do") as caught:
            lib.train(name="past", resume=True, max_epochs=1)
        with pytest.raises(TrainError, match="as many as --max-epochs 2: nothing to do"):
            lib.train(name="past", resume=True)   # the run's own cap, which it reached
    assert caught.value.hint == "a higher --max-epochs goes on with it"
    assert done.files.model.read_bytes() == written


def test_a_run_whose_schedule_ended_is_left_as_it_is_when_resumed(home):
    """A clustering phase stopped by its plateaus has nothing left to train, whatever the cap; a
    resume wrote its model again and reported the same stop."""
    cfg = TrainConfig(max_epochs=20, batch_size=4, cluster_batch_size=4, plateau_patience=1,
                      plateau_threshold=0.99, seed=1, threads=1)
    with Library(home, create=False) as lib:
        done = lib.train(name="ended", model_cfg=tiny_model_config(), train_cfg=cfg)
        assert done.stop_reasons["cluster"].startswith("stopped at plateau")
        written = done.files.model.read_bytes()
        with pytest.raises(TrainError, match=r"the run ended has finished \(stopped at plateau \d\): nothing "
                                             "to do") as caught:
            lib.train(name="ended", resume=True, max_epochs=30)
        ended = done.history[-1]["epoch"]   # its own epochs as the cap: the schedule's end is said, not the cap
        with pytest.raises(TrainError, match="has finished"):
            lib.train(name="ended", resume=True, max_epochs=ended)
    assert "--name NEW" in caught.value.hint
    assert done.files.model.read_bytes() == written


def test_a_resumed_run_takes_the_machine_settings_it_is_given_and_keeps_the_rest(home):
    from reform.train import read_checkpoint_plan

    first = _train(home, "moved", max_epochs=1, precision="bfloat16", threads=1)
    with Library(home, create=False) as lib:
        again = lib.train(name="moved", resume=True, max_epochs=2, threads=2, precision="float32")
    _, cfg, _ = read_checkpoint_plan(again.files.checkpoint)
    assert (cfg.max_epochs, cfg.threads, cfg.precision) == (2, 2, "float32")   # about the machine: applied
    assert cfg.learning_rate == 3e-3 and cfg.seed == 1                        # what it learns: its own
    assert first.files.folder == again.files.folder


def test_a_resumed_run_trains_on_the_songs_it_began_with(home, scanned, tmp_path):
    """The checkpoint's bank holds a row per song the run began with: a song scanned before
    `--resume` made its index run past the bank (IndexError), a song forgotten shifted every
    song onto another's row.  A resumed run now trains on its own songs, and one whose songs
    left the library says so."""
    from conftest import tone, write

    first = _train(home, "kept", max_epochs=1)
    assert load(first.files.checkpoint)["state"]["phase"] == "cluster"
    write(tmp_path / "more" / "new.wav", tone(880, 16))
    with Library(home, create=False) as lib:
        lib.scan(tmp_path / "more", jobs=1)
        assert len(lib.training_songs()) == 6
        again = lib.train(name="kept", resume=True, max_epochs=2)
        windows = [h["windows"] for h in again.history if h.get("epoch") and h["phase"] == "cluster"]
        assert windows == [5 * 4, 5 * 4]                       # the five songs it began with, both epochs
        assert load(again.files.checkpoint)["songs"] == load(first.files.checkpoint)["songs"]
        lib.forget(scanned.parent / "music")
        with pytest.raises(TrainError, match="5 songs the run kept trains on have left the library") as refused:
            lib.train(name="kept", resume=True, max_epochs=3)
    assert "--name kept-2" in refused.value.hint


def test_resuming_the_pretraining_of_a_run_that_clusters_is_refused(home):
    _train(home, "further", max_epochs=1)
    with Library(home, create=False) as lib:
        with pytest.raises(TrainError, match="has finished pretraining and is in its clustering phase") as caught:
            lib.train(name="further", phase="pretrain", resume=True, max_epochs=3)
    assert caught.value.hint == "`reform train --resume --name further` goes on with the clustering phase"


def test_a_clustering_phase_started_on_its_own_keeps_the_pretraining_epochs(home):
    cfg = TrainConfig(max_epochs=2, batch_size=4, cluster_batch_size=4, plateau_patience=50, seed=1,
                      threads=1)
    with Library(home, create=False) as lib:
        lib.train(name="split", phase="pretrain", model_cfg=tiny_model_config(), train_cfg=cfg)
        result = lib.train(name="split", phase="cluster", model_cfg=tiny_model_config(),
                           train_cfg=dataclasses.replace(cfg, max_epochs=1))
    assert [(h["phase"], h["epoch"]) for h in result.history if h.get("epoch")] == [
        ("pretrain", 1), ("pretrain", 2), ("cluster", 1)]
    info = load_bundle(result.files.model).info
    assert info["epochs"] == {"pretrain": 2, "cluster": 1}
    logged = [json.loads(line)["phase"] for line in result.files.metrics.read_text().splitlines()]
    assert logged == ["pretrain", "pretrain", "cluster"]


def test_a_projection_head_trains_the_contrast_and_stays_out_of_the_clustering_model(home):
    cfg = TrainConfig(max_epochs=2, batch_size=4, cluster_batch_size=4, plateau_patience=50, seed=1,
                      threads=1)
    model_cfg = dataclasses.replace(tiny_model_config(), projection_dim=6)
    with Library(home, create=False) as lib:
        result = lib.train(name="head", model_cfg=model_cfg, train_cfg=cfg)
    pre = load_bundle(result.files.pretrain).model
    assert pre.projection is not None and pre.projection[-1].out_features == 6
    assert not any("projection" in name for name in load_bundle(result.files.model).model.state_dict())
    logged = [json.loads(line) for line in result.files.metrics.read_text().splitlines()]
    assert all(line["contrast"] > 0 for line in logged if line["phase"] == "pretrain")


def _two_view_term(home, cfg: TrainConfig) -> tuple[float, tuple[torch.Tensor, torch.Tensor], torch.Tensor,
                                                     np.ndarray]:
    """The pretraining objective's logged two-view term on its first batch of the test library,
    with the two views' embeddings of the same inputs, the rows' songs, and every song's album id."""
    model_cfg = tiny_model_config()
    with Library(home, create=False, read_only=True) as lib:
        store, songs = lib.home.spectrograms, lib.training_songs()
        windows = Windows(store, songs, fit_normaliser(store, songs, seed=1), model_cfg.window_frames)
    torch.manual_seed(1)
    model = PretrainAutoencoder(model_cfg).eval()      # batch norm from running statistics: repeatable
    albums = album_ids(songs)
    objective = PretrainObjective(cfg, model_cfg.n_layers - 1, windows.normaliser, albums=albums)
    assert objective.views == 2
    step = Step.of(windows.load(windows.pretrain_plan(1, 1, cfg.batch_size, objective.views)[0]),
                   device_scale(windows.normaliser, torch.device("cpu")))
    with torch.no_grad():
        logged = objective(model, step)[1]["contrast"].item()
        gen = generator(step.seed)                      # the same inputs the objective made
        first = objective.inputs(step.x, step.mask, gen)[0]
        second = objective.inputs(step.x2, step.mask2, gen)[0]
        return logged, model(first, second).views, step.songs, albums


def test_a_contrast_prior_makes_the_pretraining_contrast_the_debiased_one(home):
    logged = {}
    for prior in (0.0, 0.3):
        cfg = TrainConfig(batch_size=4, contrast_prior=prior, precision="float32", seed=1)
        logged[prior], views, songs, _ = _two_view_term(home, cfg)
        both, pairs = torch.cat(views), songs.repeat(2)
        expected = (debiased_contrastive_loss(both, pairs, cfg.temperature, prior) if prior
                    else contrastive_loss(both, pairs, cfg.temperature))
        assert logged[prior] == pytest.approx(expected.item(), rel=1e-5)
    assert logged[0.3] != pytest.approx(logged[0.0], rel=1e-3)


def test_the_album_share_reaches_the_pretraining_contrast_from_the_album_tags(home):
    logged = {}
    for share in (0.0, 0.4):
        cfg = TrainConfig(batch_size=5, album_share=share, precision="float32", seed=1)
        logged[share], views, songs, albums = _two_view_term(home, cfg)
        assert len(set(albums.tolist())) == 2          # Sines and Hiss
        pairs = songs.repeat(2)
        expected = contrastive_loss(torch.cat(views), pairs, cfg.temperature, torch.from_numpy(albums)[pairs], share)
        assert logged[share] == pytest.approx(expected.item(), rel=1e-5)
    assert logged[0.4] != pytest.approx(logged[0.0], rel=1e-3)


def test_vicreg_takes_the_place_of_the_song_contrast(home):
    cfg = TrainConfig(batch_size=5, contrast_loss="vicreg", precision="float32", seed=1)
    logged, views, _, _ = _two_view_term(home, cfg)
    assert logged == pytest.approx(vicreg_loss(*views).item(), rel=1e-5)


def test_weight_decay_shrinks_the_weights_and_spares_biases_and_batch_norm():
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    assert type(make_optimizer(model, 1e-3)) is torch.optim.Adam          # the note's optimizer
    optimizer = make_optimizer(model, lr=0.1, weight_decay=0.5)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    (model(torch.randn(4, 3)).sum() * 0.0).backward()                       # zero gradients: decay alone
    optimizer.step()
    after = dict(model.named_parameters())
    torch.testing.assert_close(after["0.weight"], before["0.weight"] * (1 - 0.1 * 0.5))
    for name in ("0.bias", "1.weight", "1.bias"):
        torch.testing.assert_close(after[name], before[name], rtol=0, atol=0)


@pytest.mark.parametrize("settings, said", [
    ({"learning_rate": float("nan")}, "learning_rate must be a finite number"),   # a torch traceback
    ({"temperature": float("inf"), "eq_db": float("nan")}, "temperature, eq_db must be a finite number"),
    ({"cluster_learning_rate": 0.0}, "the learning rate must be positive"),       # learnt nothing, silently
    ({"seed": -5}, "the seed cannot be negative"),                                  # a numpy traceback
    ({"aux_weight": -1.0}, "a loss weight cannot be negative"),                     # a negative total loss
    ({"plateau_threshold": -1.0}, "plateau threshold cannot be negative"),          # no plateau, ever
])
def test_training_settings_that_cannot_work_are_refused(settings, said):
    from reform.config import TrainConfig
    from reform.errors import ConfigError

    with pytest.raises(ConfigError, match=said):
        TrainConfig(**settings)
    assert TrainConfig(cluster_learning_rate=None).cluster_learning_rate is None   # None: the pretraining's rate


def test_the_spread_within_songs_leaves_out_songs_shorter_than_a_window():
    """Such a song gives one window again and again, so its spread of 0 made the logged ratio
    of between to within songs huge on libraries of short songs."""
    from reform.model import PretrainAutoencoder
    from reform.train import embedding_spread

    cfg = tiny_model_config()
    model = PretrainAutoencoder(cfg)
    rng = np.random.default_rng(0)
    short = np.repeat(rng.normal(size=(1, 1, cfg.n_mels, cfg.window_frames)), 4, axis=0)
    long = rng.normal(size=(4, 1, cfg.n_mels, cfg.window_frames))
    both = embedding_spread(model, (np.concatenate([short, long]).astype(np.float32), None, np.repeat([0, 1], 4)))
    alone = embedding_spread(model, (long.astype(np.float32), None, np.zeros(4, int)))
    assert both["spread_within"] == pytest.approx(alone["spread_within"], rel=1e-4) and alone["spread_within"] > 0
