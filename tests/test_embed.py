"""Song embeddings: window coverage, aggregation, incremental storage under the model version."""

import shutil

import numpy as np
import pytest

from conftest import noise, stereo, tone, write
from reform import Library
from reform.config import EmbedConfig
from reform.embed import Embedder, SongBatches, aggregate, song_windows, window_starts
from reform.errors import EmbedError, ModelError


def test_windows_cover_the_whole_song():
    assert window_starts(100, 640) == [0]
    assert window_starts(640, 640) == [0]
    assert window_starts(1000, 640, 320) == [0, 320, 360]
    assert window_starts(1280, 640, 320) == [0, 320, 640]


def test_song_windows_take_every_channel(trained):
    with Library(trained) as lib:
        bundle = lib.load_model()
        song = next(s for s in lib.songs() if s.channels == 2)
        spec = lib.home.spectrograms.open(song.hash)
        w = song_windows(spec, bundle.normaliser, 64, 32)
        assert w.shape == (2 * len(window_starts(song.frames, 64, 32)), 1, 128, 64)


def test_aggregate_mean_and_std_unit_length():
    w = np.array([[3.0, 0.0], [1.0, 0.0]], np.float32)
    np.testing.assert_allclose(aggregate(w, "mean"), [1.0, 0.0])
    v = aggregate(w, "meanstd")  # mean (2, 0), std (1, 0) -> (2, 0, 1, 0) / sqrt(5)
    np.testing.assert_allclose(v, np.array([2.0, 0.0, 1.0, 0.0]) / np.sqrt(5), rtol=1e-6)


def test_aggregate_with_map_statistics_weighs_both_parts_alike():
    # windows: a 2-d embedding, then 1 channel's (mean, std) of the feature map
    w = np.array([[3.0, 0.0, 10.0, 0.0], [1.0, 0.0, 10.0, 4.0]], np.float32)
    v = aggregate(w, "meanstd+map", embedding_dim=2)
    embedding = np.array([2.0, 0.0, 1.0, 0.0]) / np.sqrt(5)                    # as "meanstd"
    statistics = np.array([10.0, 2.0, 0.0, 2.0]) / np.sqrt(108)                # means (10, 2), stds (0, 2)
    np.testing.assert_allclose(v, np.concatenate([embedding, statistics]) / np.sqrt(2), rtol=1e-6)
    assert abs(np.linalg.norm(v) - 1) < 1e-6
    with pytest.raises(ValueError, match="embedding's size"):
        aggregate(w, "meanstd+map")


def test_embed_is_incremental_and_versioned(trained, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(trained, home)
    with Library(home) as lib:
        again = lib.embed()
        assert again.embedded == 0 and again.unchanged == 5
        version, vectors = lib.embeddings()
        assert version.startswith(lib.load_model().version) and len(vectors) == 5
        assert version.endswith("-meanstd-h320")
        assert all(abs(np.linalg.norm(v) - 1) < 1e-5 for v in vectors.values())
        write(tmp_path / "more" / "new song.wav", stereo(tone(300, 20), noise(20)))
        lib.scan(tmp_path / "more", jobs=1)
        assert lib.stale_embeddings() == 1
        assert lib.embed().embedded == 1 and lib.stale_embeddings() == 0


@pytest.mark.parametrize("aggregation", ["meanstd", "meanstd+map"])
def test_batched_embedding_equals_one_song_at_a_time(trained, aggregation):
    with Library(trained) as lib:
        bundle = lib.load_model()
        embedder = Embedder(bundle, EmbedConfig(hop=32, aggregation=aggregation), precision="float32")
        specs = [(s.hash, lib.home.spectrograms.open(s.hash)) for s in lib.songs()]
        together = dict(embedder.songs(iter(specs)))
        size = 2 * bundle.cfg.embedding_dim + (4 * bundle.cfg.widths[-1] if aggregation.endswith("+map") else 0)
        for key, spec in specs:
            assert together[key].shape == (size,)
            np.testing.assert_allclose(together[key], embedder.song(spec), atol=1e-5)


def test_batches_across_songs_give_each_song_its_own_embedding_in_order(trained):
    """Windows of several songs share encoder batches (a batch of 5 windows splits songs
    across batches and holds parts of three): every song comes back once all its windows are
    done, in the order added, with the embedding it gets alone."""
    with Library(trained) as lib:
        embedder = Embedder(lib.load_model(), EmbedConfig(hop=32), precision="float32")
        rng = np.random.default_rng(1)
        specs = [(f"song {i}", rng.normal(-40, 10, (channels, frames, 128)).astype(np.float16))
                 for i, (channels, frames) in enumerate([(2, 150), (1, 40), (1, 64), (2, 97), (1, 280)])]
        alone = {key: embedder.song(spec) for key, spec in specs}
        embedder.batch_windows = 5
        batches = SongBatches(embedder)
        returned = []
        for added, (key, spec) in enumerate(specs, 1):
            returned += batches.add(key, spec)
            assert len(batches) == added - len(returned)  # the others wait for a full batch
        assert 0 < len(returned) < len(specs)
        returned += batches.flush()
        assert [key for key, _ in returned] == [key for key, _ in specs] and len(batches) == 0
        for key, vector in returned:
            np.testing.assert_allclose(vector, alone[key], atol=1e-5)
        exact = specs[0][1][:, :160]  # 2 channels x 4 windows: a song that fills two batches
        assert len(song_windows(exact, embedder.bundle.normaliser, embedder.window, embedder.hop)) == 8
        embedder.batch_windows = 4
        np.testing.assert_allclose(embedder.song(exact), dict(embedder.songs(iter([("x", exact)])))["x"])


def test_a_long_song_is_embedded_batch_by_batch_with_the_same_result(trained):
    import tracemalloc

    with Library(trained) as lib:
        bundle = lib.load_model()
        embedder = Embedder(bundle, EmbedConfig(hop=32), precision="float32")
        spec = np.random.default_rng(0).normal(-40, 10, (2, 12_000, 128)).astype(np.float16)

        def peak_of(embed):
            tracemalloc.start()
            vector = embed()
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            return vector, peak

        at_once, at_once_peak = peak_of(lambda: aggregate(embedder.windows(song_windows(
            spec, bundle.normaliser, embedder.window, embedder.hop)), embedder.cfg.aggregation))
        streamed, streamed_peak = peak_of(lambda: embedder.song(spec))
    np.testing.assert_array_equal(streamed, at_once)
    normalised = spec.size * 4                       # float32; normalising holds two such copies
    assert at_once_peak > 2.9 * normalised           # every window at once: twice it, besides it
    assert streamed_peak < 2.05 * normalised


def test_model_on_other_features_is_refused(trained, tmp_path):
    from reform.config import MelConfig

    home = tmp_path / "home"
    shutil.copytree(trained, home)
    with Library(home, mel=MelConfig(n_mels=64), reanalyse=True) as lib, \
            pytest.raises(ModelError, match="other spectrogram"):
        lib.load_model()


def test_no_model_no_embeddings_messages(scanned, tmp_path, monkeypatch):
    import reform.home

    home = tmp_path / "home"
    shutil.copytree(scanned, home)
    monkeypatch.setattr(reform.home, "SHIPPED_MODEL", tmp_path / "none.pt")  # an install without one
    with Library(home) as lib:
        with pytest.raises(ModelError, match="no model is trained"):
            lib.embed()
        with pytest.raises(EmbedError, match="no song has an embedding"):
            lib.embeddings()
        model = lib.status()["model"]                 # status still answers, naming no version
        assert model["name"] == "shipped" and model["version"] is None and model["problem"] is None


def test_scan_embeds_new_songs_in_its_workers(trained, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(trained, home)
    write(tmp_path / "more" / "a.wav", stereo(tone(330, 20), noise(20, seed=3)))
    write(tmp_path / "more" / "b.flac", tone(550, 18))
    with Library(home) as lib:
        summary = lib.scan(tmp_path / "more", jobs=2, embed=True)
        assert summary.embedded == 2 and lib.stale_embeddings() == 0
        version, vectors = lib.embeddings()
        assert summary.embedding_model == version == lib.embedding_status()["expected"]
        embedder = Embedder(lib.load_model())
        for song in lib.songs():
            if song.path.startswith(str(tmp_path / "more")):   # as `reform embed` computes it
                expected = embedder.song(lib.home.spectrograms.open(song.hash))
                np.testing.assert_allclose(vectors[song.hash], expected, atol=2e-3)


def test_scan_never_mixes_its_embeddings_with_another_models(trained, tmp_path, capsys):
    from reform.cli import main

    home = tmp_path / "home"
    shutil.copytree(trained, home)
    write(tmp_path / "more" / "a.wav", tone(330, 20))
    with Library(home) as lib:
        lib.home.catalogue.set_meta("embedding_model", "another-model-meanstd-h320")
        summary = lib.scan(tmp_path / "more", jobs=1, embed=True)
        assert summary.analysed == 1 and summary.embedded == 0 and summary.embedding_model is None
        assert lib.home.catalogue.get_meta("embedding_model") == "another-model-meanstd-h320"
    assert main(["--home", str(home), "-q", "scan"]) == 0
    assert "the embeddings come from another model than the active one" in capsys.readouterr().out


def test_playlists_say_when_their_embeddings_are_another_models(trained, tmp_path, capsys):
    """After `reform use shipped`, `reform playlists` wrote radios from the trained model's
    embeddings without a word, where `similar` and `export` say so."""
    from reform.cli import main

    home = tmp_path / "home"
    shutil.copytree(trained, home)
    assert main(["--home", str(home), "-q", "use", "shipped"]) == 0
    capsys.readouterr()
    assert main(["--home", str(home), "-q", "playlists", "--to", str(tmp_path / "lists"), "--radio", "Chord",
                 "--music-root", "/"]) == 0
    assert "the embeddings come from another model than the active one" in capsys.readouterr().err


def test_going_back_to_a_model_used_before_needs_no_new_embedding(trained, tmp_path, capsys):
    """`reform use shipped` after a trained model had been embedded: every song had to be embedded
    again (4 minutes for 55 songs, hours for a large library), and until then `mix` failed, `similar`
    answered with the other model's vectors and scans embedded nothing."""
    from reform.cli import main

    home = tmp_path / "home"
    shutil.copytree(trained, home)
    assert main(["--home", str(home), "-q", "use", "shipped"]) == 0
    assert "the stored embeddings come from another model" in capsys.readouterr().out
    assert main(["--home", str(home), "-q", "embed"]) == 0
    capsys.readouterr()
    for name in ("tiny", "shipped"):                      # back and forth: at once, each time
        assert main(["--home", str(home), "use", name]) == 0
        assert capsys.readouterr().out == f"active model: {name}\n"
        with Library(home, create=False) as lib:
            assert lib.embedding_status() == {**lib.embedding_status(), "current": True, "missing": 0}
            assert len(lib.home.catalogue.embedding_models()) == 2
    assert main(["--home", str(home), "-q", "similar", "Chord", "-n", "2"]) == 0
    assert "another model" not in capsys.readouterr().err
    from reform.lock import WriterLock

    with WriterLock(home).hold("embed"):   # an embed at work would store the model it began with
        assert main(["--home", str(home), "use", "tiny"]) == 1
    assert "the library is busy: embed" in capsys.readouterr().err


def test_a_run_is_deleted_with_its_kept_embeddings_never_the_active_one(trained, tmp_path, capsys):
    """Runs cut short in trials stayed in `reform models` for good: no command deleted one."""
    from reform.cli import main

    home = tmp_path / "home"
    shutil.copytree(trained, home)
    (home / "models" / "early").mkdir()                   # stopped before its first epoch ended
    (home / "models" / "early" / "config.json").write_text("{}")
    for name, why in (("tiny", "the run 'tiny' is the active model"), ("shipped", "cannot be deleted"),
                      ("nothing", "'nothing' is not a run of this library"), ("../home", "not a run")):
        assert main(["--home", str(home), "models", "--delete", "early", "--delete", name]) == 1
        assert why in capsys.readouterr().err and (home / "models" / "early").is_dir()   # none deleted
    assert main(["--home", str(home), "-q", "use", "shipped"]) == 0
    assert main(["--home", str(home), "-q", "embed"]) == 0
    with Library(home, create=False) as lib:
        assert len(lib.home.catalogue.embedding_models()) == 2   # tiny's kept for `use tiny`
    capsys.readouterr()
    shutil.copytree(home / "models" / "tiny", home / "models" / "twin")   # the same weights, the same key
    assert main(["--home", str(home), "models", "--delete", "twin", "--delete", "twin"]) == 0
    assert capsys.readouterr().out.startswith("deleted 1 run (twin): ")
    with Library(home, create=False) as lib:
        assert len(lib.home.catalogue.embedding_models()) == 2   # tiny's, still a run's
    (home / "models" / "best").symlink_to("tiny")        # a link to a run, deleted with it
    assert main(["--home", str(home), "models", "--delete", "tiny", "--delete", "early", "--delete", "best"]) == 0
    assert capsys.readouterr().out.startswith("deleted 3 runs (tiny, early, best): ")
    assert not (home / "models" / "best").is_symlink()
    assert not (home / "models" / "tiny").exists() and not (home / "models" / "early").exists()
    with Library(home, create=False) as lib:
        assert list(lib.home.catalogue.embedding_models()) == [lib.home.embedding_model()]
        assert lib.embedding_status()["current"] and not lib.runs()


def test_the_embeddings_of_the_last_three_models_are_kept(tmp_path):
    from reform.embed import KEPT_MODELS, keep_recent
    from reform.store import Catalogue

    catalogue = Catalogue(tmp_path / "catalogue.db")
    vector = np.ones(4, np.float32)
    for model in ("a", "b", "c", "d", "b"):              # each embedded in turn, then b again
        with catalogue.transaction():
            catalogue.put_embeddings(model, [("h1", vector)])
            keep_recent(catalogue, model)
    assert KEPT_MODELS == 3 and set(catalogue.embedding_models()) == {"b", "d", "c"}
    assert catalogue.get_meta("embedding_model") == "b"
    with catalogue.transaction():                        # a library of an older version: only its model's
        catalogue.set_meta("embedding_models_recent", "not json")
        catalogue.put_embeddings("e", [("h1", vector)])
        keep_recent(catalogue, "e")
    assert set(catalogue.embedding_models()) == {"e", "b"}
    catalogue.close()


def test_cli_scan_embeds_unless_told_not_to(music, tmp_path, capsys):
    from reform.cli import main

    assert main(["--home", str(tmp_path / "a"), "-q", "scan", str(music), "--jobs", "2"]) == 0
    out = capsys.readouterr().out
    assert "embedded 4 songs with the model shipped with ReFORM" in out
    with Library(tmp_path / "a") as lib:
        assert lib.stale_embeddings() == 0 and lib.embedding_status()["current"]
    assert main(["--home", str(tmp_path / "b"), "-q", "scan", str(music), "--jobs", "1", "--no-embed"]) == 0
    assert "embedded" not in capsys.readouterr().out
    assert main(["--home", str(tmp_path / "b"), "-q", "scan"]) == 0
    assert f"4 songs have no embedding from the active model: run `reform --home {tmp_path / 'b'} embed`" in \
        capsys.readouterr().out


@pytest.mark.parametrize("damage", ["truncated", "nan"])
def test_a_damaged_spectrogram_is_named_never_embedded(trained, tmp_path, capsys, damage):
    from reform.cli import main

    home = tmp_path / "home"
    shutil.copytree(trained, home)
    with Library(home) as lib:
        song = lib.songs()[0]
        path = lib.home.spectrograms.path(song.hash)
        if damage == "truncated":
            with open(path, "r+b") as f:
                f.truncate(3000)
        else:
            spec = np.load(path, mmap_mode="r+")
            spec[:] = np.nan
            spec.flush()
        catalogue = lib.home.catalogue
        catalogue.drop_embeddings(model=catalogue.get_meta("embedding_model"))
    assert main(["--home", str(home), "-q", "embed"]) == 1
    out = capsys.readouterr().out
    assert "embedded 4 songs" in out and "1 song could not be embedded" in out
    assert f"reform --home {home} check --repair" in out
    with Library(home) as lib:
        _, vectors = lib.embeddings()
        assert song.hash not in vectors and len(vectors) == 4
        assert all(np.isfinite(v).all() for v in vectors.values())


def test_a_damaged_embedding_is_embedded_again(trained, tmp_path):
    home = shutil.copytree(trained, tmp_path / "home")
    with Library(home) as lib:
        catalogue, song = lib.home.catalogue, lib.songs()[0]
        model = catalogue.get_meta("embedding_model")
        good = catalogue.embedding_of(model, song.hash)
        with catalogue.transaction():   # a vector cut short, as a damaged catalogue can hold
            catalogue.conn.execute("UPDATE embeddings SET vector = ? WHERE hash = ? AND model = ?",
                                   (good[:3].tobytes(), song.hash, model))
        assert lib.embed().embedded == 1
        np.testing.assert_allclose(catalogue.embedding_of(model, song.hash), good, rtol=1e-5, atol=1e-6)
