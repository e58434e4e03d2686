"""Scanning on Ray: the same catalogue as a local scan, a worker that dies loses only its file,
a node that cannot write the store stops the scan in one line.

One local Ray instance of 2 CPUs serves the whole module (starting one costs seconds).
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import ray  # the cluster extra: `make setup` installs it

import conftest
from conftest import DyingEmbedder, build_music, reform_cmd, tone, write
from reform import Library
from reform.cluster import INSTALL_HINT, SHARED_HINT, RayPool
from reform.errors import ClusterError
from reform.scan import scan


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
             object_store_memory=100 * 2**20)
    ray.cloudpickle.register_pickle_by_value(conftest)  # DyingEmbedder, to the workers
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def music(tmp_path_factory) -> Path:
    """Five songs, and one of 11 s, the only one of that length: the one a worker dies on."""
    root = build_music(tmp_path_factory.mktemp("ray") / "music")
    write(root / "Fatal" / "11 seconds.wav", tone(880, 11))
    return root


def test_a_scan_on_ray_equals_a_local_scan(tmp_path, music):
    with Library(tmp_path / "local") as local, Library(tmp_path / "ray") as on_ray:
        a = local.scan(music, jobs=1, embed=True)
        b = on_ray.scan(music, embed=True, ray=True)
        assert (b.analysed, b.embedded, b.failed) == (a.analysed, a.embedded, a.failed) == (6, 6, 0)
        assert [(s.path, s.hash, s.frames) for s in on_ray.songs()] == \
            [(s.path, s.hash, s.frames) for s in local.songs()]
        for song in local.songs():
            np.testing.assert_array_equal(on_ray.spectrogram(song.path), local.spectrogram(song.path))
        model, vectors = local.embeddings()
        assert on_ray.embeddings()[0] == model and vectors.keys() == on_ray.embeddings()[1].keys()
        for digest, vector in on_ray.embeddings()[1].items():
            np.testing.assert_allclose(vector, vectors[digest], atol=1e-6)
        assert not list(on_ray.home.spectrograms.root.glob(".probe-*"))  # the probes are removed
    with Library(tmp_path / "ray") as on_ray:   # a store made by the workers' probe is one of audio hashes
        assert not on_ray.home.spectrograms.whole_file_hashes


def test_a_worker_that_dies_mid_file_loses_only_that_file(tmp_path, music):
    """Its worker dies on the file, and so does the fresh one it is given to: the file is
    recorded as failed, the others are scanned, and the next scan completes it."""
    tickets = tmp_path / "tickets"
    tickets.mkdir()
    for name in "ab":
        (tickets / name).touch()
    frames = 1 + 11 * 22050 // 512
    with Library(tmp_path / "home") as lib:
        dying = DyingEmbedder(lib.scan_embedding(), frames, str(tickets))
        first = scan(lib.home, [str(music)], embedding=dying, pool=RayPool(), jobs=1)
        assert not list(tickets.iterdir())                   # it died twice, on that file
        assert (first.analysed, first.failed, first.embedded) == (5, 1, 5)
        assert first.failures[0].entry.path.endswith("11 seconds.wav") and first.failures[0].retry
        assert "died twice" in first.failures[0].reason
        again = lib.scan(embed=True, ray=True, jobs=1)
        assert (again.failed, again.unchanged, again.embedded) == (0, 5, 1)
        assert again.reused == 1                             # its spectrogram was stored before
        assert len(lib.songs()) == 6 and lib.stale_embeddings() == 0
        assert not list(lib.home.spectrograms.root.rglob("*.tmp-*"))


def test_a_node_that_cannot_write_the_store_stops_the_scan_in_one_line(tmp_path, music):
    """Through the command, joining the module's Ray instance by its address."""
    with Library(tmp_path / "home") as lib:
        store = lib.home.spectrograms.root
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_text("not a folder")                      # no process, root or not, can write in it
    address = ray.get_runtime_context().gcs_address
    out = subprocess.run(reform_cmd("--home", str(tmp_path / "home"), "-q", "scan", str(music),
                                    "--ray", address, "--jobs", "1"),
                         capture_output=True, text=True, timeout=300)
    err = [line for line in out.stderr.splitlines() if line.startswith(("error: ", "hint: "))]
    assert out.returncode == 1 and len(err) == 2, out.stderr
    assert err[0].startswith("error: node ") and f"cannot write the spectrogram store {store}" in err[0]
    assert err[1] == f"hint: {SHARED_HINT}"
    with Library(tmp_path / "home") as lib:
        assert lib.songs() == []


def test_without_ray_the_scan_says_how_to_install_it(tmp_path, music, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)         # what `import ray` meets without Ray
    with Library(tmp_path / "home") as lib:
        with pytest.raises(ClusterError) as err:
            lib.scan(music, ray=True)
        assert err.value.hint == INSTALL_HINT and lib.songs() == []


def test_a_folder_given_as_the_address_says_where_folders_go(tmp_path, music):
    out = subprocess.run(reform_cmd("--home", str(tmp_path / "home"), "scan", "--ray", str(music)),
                         capture_output=True, text=True)
    assert out.returncode == 1 and "put the folders first" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "home").exists()


def test_the_workers_of_a_local_instance_run_at_the_scans_priority():
    """Ray would start them 15 steps nicer than the scan, starved on a busy machine."""
    code = ("import os\nfrom reform.cluster import _connect, import_ray\n"
            "ray = import_ray()\n_connect(ray, None, 1)\n"
            "print(ray.get(ray.remote(lambda: os.nice(0)).remote()), os.nice(0))\nray.shutdown()\n")
    env = {k: v for k, v in os.environ.items() if k != "RAY_worker_niceness"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    worker, driver = map(int, out.stdout.split()[-2:])
    assert worker == driver


def test_a_local_instance_is_started_even_where_ray_runs_already():
    """`--ray` joined a cluster started by `ray start --head` and was refused there ("num_cpus
    must not be provided"); an address ReFORM cannot reach names what else to check."""
    from reform.cluster import _connect

    class Ray:   # records what ReFORM asks of Ray, then fails as an unreachable cluster does
        def __init__(self):
            self.asked = []

        def init(self, **options):
            self.asked.append(options)
            raise ConnectionError("Failed to connect")

    ray = Ray()
    with pytest.raises(ClusterError, match="cannot start a local Ray instance"):
        _connect(ray, None, 3)
    assert ray.asked[0]["address"] == "local" and ray.asked[0]["num_cpus"] == 3
    with pytest.raises(ClusterError, match="cannot reach the Ray cluster at head:6379") as err:
        _connect(ray, "head:6379", 3)
    assert ray.asked[1]["address"] == "head:6379" and "num_cpus" not in ray.asked[1]
    assert "RAY_AUTH_MODE=token" in err.value.hint
