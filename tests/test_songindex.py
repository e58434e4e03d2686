"""The home's stored search index: stored and read back, kept in step with the embeddings,
built again for another model, never trusted when damaged, whole after an interrupted write."""

import shutil

import numpy as np
import pytest

from reform import Library
from reform import songindex
from reform.errors import StoreError
from reform.recommend import Recommender
from reform.store import SpectrogramInfo, Tags

DIM = 16


def vectors(n, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 15), DIM))
    return (centres[rng.integers(0, len(centres), n)] + 0.3 * rng.standard_normal((n, DIM))).astype(np.float32)


def add_songs(lib, start, x, model="m1"):
    """Catalogue rows and embeddings for songs start.. (no audio: the index needs neither)."""
    catalogue = lib.home.catalogue
    with catalogue.transaction():
        for i, v in enumerate(x, start):
            info = SpectrogramInfo(f"{i:08x}", 1, 100, 2.0, 22050, "wav")
            catalogue.put_ok(f"/m/{i:06d}.wav", 1, 1, info, Tags(f"artist {i // 10}", None, f"t{i}"), "fv")
        catalogue.put_embeddings(model, [(f"{i:08x}", v) for i, v in enumerate(x, start)])
        lib.home.set_embedding_model(model)


def answers(songs, queries, k=10):
    return [[songs.hash_at(i) for i in row if i >= 0] for row in songs.search(queries, k)[1]]


@pytest.fixture
def lib(tmp_path):
    with Library(tmp_path / "home") as lib:
        add_songs(lib, 0, vectors(300))
        lib.update_index()
        yield lib


def test_stored_index_reads_back_with_the_same_answers(lib):
    path = lib.home.index_path("cosine")
    assert path.exists()
    stored = songindex.read(path)
    rows = lib.songs()
    vecs = lib.home.catalogue.embeddings("m1")
    in_memory = Recommender.of(rows, vecs).songs
    queries = vectors(20, seed=5)
    assert answers(stored, queries) == answers(in_memory, queries)
    assert stored.revision == lib.home.catalogue.embeddings_revision()
    seed = lib.resolve("t7")
    assert [r.row.title for r in lib.similar("t7", n=3)] == \
        [r.row.title for r in Recommender.of(rows, vecs).similar(seed, 3)]


def test_the_python_api_takes_one_query_or_several_each_song_once(lib):
    """``lib.mix("t7")`` read the string as a query per letter; a song named twice
    counted twice; the CLI's --centre had no keyword."""
    one = [r.row.title for r in lib.mix("t7", n=3)]
    assert one == [r.row.title for r in lib.mix(["t7"], n=3)] == [r.row.title for r in lib.similar("t7", n=3)]
    assert [r.row.title for r in lib.mix(["t7", "t7"], n=3)] == one
    assert [r.row.title for r in lib.playlist(["t7", "t7"], length=3)] == [r.row.title for r in lib.playlist("t7", 3)]
    both = [r.row.title for r in lib.mix(["t7", "t9"], n=4, how="centre")]
    assert len(both) == 4 and not {"t7", "t9"} & set(both)


@pytest.fixture
def approximate(monkeypatch):
    """Libraries of more than 1000 songs get the approximate (ivf-pq) index."""
    monkeypatch.setattr("reform.index.EXACT_LIMIT", 1000)


def test_adding_and_removing_songs_updates_the_index_without_a_build(tmp_path, approximate):
    with Library(tmp_path / "home") as lib:
        add_songs(lib, 0, vectors(1500))
        lib.update_index()
        built = songindex.read(lib.home.index_path("cosine"))
        assert built.kind == "ivf-pq" and len(built) == 1500
        new = vectors(40, seed=9)
        add_songs(lib, 1500, new)
        with lib.home.catalogue.transaction():
            lib.home.catalogue.drop_embeddings(hashes=[f"{i:08x}" for i in range(10)])
        lib.update_index()
        songs = songindex.read(lib.home.index_path("cosine"))
        assert len(songs) == 1530 and songs.built_size == 1500   # taken in, not built again
        assert songs.slot(f"{1500:08x}") is not None and songs.slot(f"{3:08x}") is None
        found = answers(songs, new[:5], k=1)
        assert found == [[f"{i:08x}"] for i in range(1500, 1505)]   # a new song finds itself
        assert all(f"{i:08x}" not in row for row in answers(songs, vectors(30, 0)[:10]) for i in range(10))
        assert lib.home.catalogue.changed_since(0) is None   # the log was forgotten once taken in


def test_another_model_builds_the_index_again(lib):
    other = vectors(300, seed=3)
    catalogue = lib.home.catalogue
    with catalogue.transaction():
        catalogue.drop_embeddings(model="m1")
        catalogue.put_embeddings("m2", [(f"{i:08x}", v) for i, v in enumerate(other)])
        lib.home.set_embedding_model("m2")
    songs = songindex.load(lib.home)   # a reader finds it behind and builds it again
    assert songs.model == "m2"
    np.testing.assert_allclose(songs.vector(songs.slot(f"{4:08x}")), other[4] / np.linalg.norm(other[4]),
                               rtol=1e-5)
    assert songindex.read(lib.home.index_path("cosine")).model == "m2"   # and stored it


def flip_a_vector_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF   # among the vectors
    path.write_bytes(bytes(data))


def test_a_damaged_index_is_found_and_built_again(lib, monkeypatch):
    path = lib.home.index_path("cosine")
    flip_a_vector_byte(path)
    assert songindex.problems(lib.home) == [
        "cosine index: the stored search index is damaged (its vectors are damaged)"]
    assert not path.exists()                      # set aside: never used again
    assert len(songindex.load(lib.home)) == 300 and path.exists()   # built again
    flip_a_vector_byte(path)
    songs = songindex.load(lib.home)              # a small file is checked whole when loaded ...
    assert len(songs.search(vectors(1), 300)[0][0]) == 300    # ... so its first query is answered
    assert songindex.problems(lib.home) == []                 # from an index built again and stored
    flip_a_vector_byte(path)
    monkeypatch.setattr(songindex, "CHECK_WHOLE_BYTES", 0)
    songs = songindex.load(lib.home)              # a large one's vectors are checked as queries read them
    with pytest.raises(StoreError, match="damaged"):
        songs.search(vectors(1), 300)
    assert not path.exists() and len(songindex.load(lib.home)) == 300
    path.write_bytes(b"REFORM-INDEX\n" + bytes(100))
    with pytest.raises(StoreError, match="damaged"):
        songindex.read(path)
    for claimed in (2 ** 62, 2 ** 63 + 5):   # a header length read as asked: MemoryError, OverflowError
        path.write_bytes(songindex.MAGIC + claimed.to_bytes(8, "little") + bytes(100))
        with pytest.raises(StoreError, match="damaged"):
            songindex.read(path)
    assert len(songindex.load(lib.home)) == 300 and songindex.problems(lib.home) == []


def test_reform_check_names_a_damaged_index_and_repairs_it(trained, tmp_path, capsys):
    from reform.cli import main

    home = tmp_path / "home"
    shutil.copytree(trained, home)
    with Library(home) as lib:
        lib.update_index()
        path = lib.home.index_path("cosine")
    path.write_bytes(b"not an index")
    assert main(["--home", str(home), "check"]) == 1
    out = capsys.readouterr().out
    assert "cosine index: the stored search index is damaged" in out
    assert "the copies beside the catalogue: 1 problem\n" in out
    assert main(["--home", str(home), "check", "--repair"]) == 0
    assert "search index: built again" in capsys.readouterr().out
    songindex.read(path)


def test_reform_check_names_a_missing_index_and_the_repair_builds_it(trained, tmp_path, capsys):
    """A deleted index went unsaid by `check`, which says it checked the index, and `check
    --repair` left it missing (harmless: the next query builds it)."""
    from reform.cli import main

    home = tmp_path / "home"
    shutil.copytree(trained, home)
    with Library(home) as lib:
        lib.update_index()
        path = lib.home.index_path("cosine")
    path.unlink()
    assert main(["--home", str(home), "check"]) == 0       # not a problem: nothing would be served wrong
    assert "cosine index: missing; it is built when next used" in capsys.readouterr().out
    assert main(["--home", str(home), "check", "--repair"]) == 0
    assert "search index: built again" in capsys.readouterr().out
    songindex.read(path)


def test_an_interrupted_write_leaves_the_old_index(lib, monkeypatch):
    path = lib.home.index_path("cosine")
    before = path.read_bytes()
    add_songs(lib, 300, vectors(5, seed=7))

    def killed(fd):
        raise KeyboardInterrupt
    monkeypatch.setattr("reform.files.os.fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        lib.update_index()
    assert path.read_bytes() == before and [p.name for p in path.parent.iterdir()] == [path.name]
    monkeypatch.undo()
    assert len(songindex.read(path)) == 300          # the old index, whole
    assert len(songindex.load(lib.home)) == 305      # and a reader brings it up to date


def test_a_vector_of_another_size_taken_in_later_is_left_out_as_a_build_leaves_it(lib, tmp_path):
    """A full build left a damaged vector out, the incremental update stacked it with the
    others, and every query (and the export) broke on it."""
    from reform.cli import main

    add_songs(lib, 300, vectors(2, seed=3))
    lib.home.catalogue.put_embeddings("m1", [(f"{301:08x}", np.ones(4, np.float32))])   # damaged
    songs = songindex.load(lib.home)                      # brought up to date from the stored one
    assert len(songs) == 301 and songs.slot(f"{301:08x}") is None
    assert [r.row.title for r in lib.similar("t300", n=2)]
    assert main(["--home", str(lib.home.path), "export", str(tmp_path / "x.npz")]) == 0
    assert len(np.load(tmp_path / "x.npz")["paths"]) == 301


def test_a_query_that_read_before_a_scan_committed_leaves_the_newer_index_stored(lib, monkeypatch):
    """Its older snapshot built an index of fewer songs and wrote it over the scan's."""
    path = lib.home.index_path("cosine")
    real_read = songindex.read

    def read_after_a_scan(p):
        monkeypatch.setattr(songindex, "read", real_read)
        with Library(lib.home.path, create=False) as other:   # another program's scan commits ...
            add_songs(other, 300, vectors(5, seed=4))
            other.update_index()                              # ... and stores its index
        return real_read(p)
    monkeypatch.setattr(songindex, "read", read_after_a_scan)
    assert len(songindex.load(lib.home)) == 300           # this command answers what it read
    monkeypatch.undo()
    assert songindex.read(path).revision == lib.home.catalogue.embeddings_revision()
    assert len(songindex.read(path)) == 305
