"""The web API: listing, search, audio with ranges, recommendations, the map, jobs, access rules."""

from __future__ import annotations

import io
import json
import os
import shutil
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

with warnings.catch_warnings():  # starlette asks for httpx2; httpx is what the project installs
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from reform import Library
from reform.errors import ConfigError, EmbedError
from reform.web import projection, security
from reform.web.app import create_app
from reform.web.media import parse_range, Unavailable

BASE = "http://127.0.0.1:8765"
ROOT = Path(__file__).resolve().parents[1]


def client_for(home, **options) -> TestClient:
    return TestClient(create_app(home, **options), base_url=BASE, raise_server_exceptions=False)


@pytest.fixture(scope="module")
def home(trained, tmp_path_factory) -> Path:
    """A copy of the trained library: the map writes its cache into the home."""
    out = tmp_path_factory.mktemp("web") / "home"
    shutil.copytree(trained, out)
    return out


@pytest.fixture(scope="module")
def client(home) -> TestClient:
    return client_for(home)


@pytest.fixture(scope="module")
def ids(client) -> dict[str, int]:
    return {s["title"]: s["id"] for s in client.get("/api/songs").json()["items"]}


def error_of(response) -> str:
    data = response.json()
    assert set(data) >= {"error", "hint"} and "Traceback" not in response.text
    return data["error"]


# -- the library ------------------------------------------------------------------------------------
def test_status_lists_counts_embeddings_and_model(client):
    st = client.get("/api/status").json()
    assert st["songs"] == 5 and st["failed"] == 0 and st["job"] is None
    assert st["embeddings"]["songs"] == 5 and st["embeddings"]["missing"] == 0
    assert st["model"]["name"] == "tiny" and st["model"]["embeddings_current"] is True
    assert st["model"]["evaluation"] is None
    assert client.get("/api/model").json() == st["model"]     # the same answer read on its own


def test_status_names_a_damaged_active_model(trained, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(trained, home)
    model = home / "models" / "tiny" / "model.pt"
    model.write_bytes(model.read_bytes()[:5000])
    client = client_for(home)
    m = client.get("/api/status").json()["model"]
    assert m["name"] is None and m["error"].startswith("active model tiny: the model file is damaged")
    assert client.get("/api/model").json() == m
    assert "reform use shipped" in m["hint"]
    (home / "models" / "tiny" / "model.pt").unlink()          # lost: which run it was is still said
    m = client.get("/api/status").json()["model"]
    assert m["name"] is None and m["active"] == "tiny" and "has lost its model file" in m["error"]
    assert "reform train --resume --name tiny" in m["hint"]


def test_songs_search_filter_sort_and_pages(client):
    data = client.get("/api/songs").json()
    assert data["total"] == 5 and len(data["items"]) == 5
    song = data["items"][0]
    assert set(song) == {"id", "title", "artist", "album", "track", "year", "genre", "duration",
                         "file", "folder", "embedded"}        # no path: songs are addressed by id
    assert [s["artist"] for s in data["items"]] == ["Noise Crew"] * 3 + ["Tone Band"] * 2
    def titles(**query) -> list[str]:
        return [s["title"] for s in client.get("/api/songs", params=query).json()["items"]]

    assert titles(q="tone chord") == ["Chord"]
    assert titles(q="CHÖRD") == ["Chord"]                    # case and accents ignored
    assert titles(q="hiss 02") == ["Clicks"]                 # the file name counts too
    assert titles(artist="tone band") == ["A Four Forty", "Chord"]
    assert titles(sort="title", desc=True) == ["White", "Short", "Clicks", "Chord", "A Four Forty"]
    assert titles(sort="duration")[0] == "Short"
    assert titles(sort="title", offset=1, limit=2) == ["Chord", "Clicks"]
    assert client.get("/api/songs", params={"q": "nothing like this"}).json()["total"] == 0
    assert client.get("/api/songs", params={"q": "🎵"}).json()["total"] == 0   # not every song, as before
    assert titles(q="%", artist="tone band") == []


def test_song_detail_and_failures(client, ids):
    song = client.get(f"/api/songs/{ids['Chord']}").json()
    assert song["path"].endswith("02 Chord.flac") and song["channels"] == 2
    assert song["playback"] == "file" and song["copies"] == []
    assert client.get("/api/failures").json() == []


def test_failures_then_damaged_songs(tmp_path):
    """The page listed only the refused files; a damaged song analysed without its undecodable
    parts is listed after them, as `reform errors` lists it."""
    from conftest import noise, stereo, tone, write

    from reform import Library

    music = tmp_path / "music"
    data = bytearray(write(tmp_path / "clean.flac", stereo(tone(440, 20), noise(20))).read_bytes())
    data[len(data) // 2: len(data) // 2 + 400] = bytes(range(200)) * 2
    music.mkdir()
    (music / "hurt.flac").write_bytes(bytes(data))
    (music / "text.mp3").write_text("not audio\n" * 20)
    shutil.copy(music / "hurt.flac", os.path.join(os.fsencode(music), b"caf\xe9.flac"))   # a name not UTF-8
    with Library(tmp_path / "home") as lib:
        lib.scan(music, jobs=1)
    listed = client_for(tmp_path / "home").get("/api/failures").json()
    assert [(Path(f["path"]).name, f["analysed"]) for f in listed] == \
        [("text.mp3", False), ("hurt.flac", True), ("caf\\xe9.flac", False)]   # as `reform errors` lists them
    assert listed[1]["reason"].startswith("damaged: ")
    assert listed[2]["id"] is None and "not UTF-8" in listed[2]["reason"]


@pytest.mark.parametrize("url", [
    "/api/songs/abc", "/api/songs?limit=0", "/api/songs?offset=-1", "/api/songs?sort=size",
    "/api/songs?q=" + "x" * 501, "/api/songs/1/similar?n=0", "/api/songs/1/similar?n=x",
    "/api/songs/1/similar?max_per_artist=0", "/api/mix", "/api/mix?seed=one", "/api/playlist?seed=1&length=0",
    "/api/export.m3u", "/api/songs/1/audio?format=mp3", "/api/jobs/x1"])
def test_malformed_input_is_422_in_words(client, url):
    r = client.get(url)
    assert r.status_code == 422
    assert error_of(r).startswith("invalid request: ") and r.json()["problems"]


@pytest.mark.parametrize("url", ["/api/songs/999", "/api/songs/999/audio", "/api/songs/-1/similar",
                                 "/api/mix?seed=999", "/api/export.m3u?id=999", "/api/jobs/5",
                                 "/api/nothing", "/nothing"])
def test_unknown_ids_and_addresses_are_404(client, url):
    r = client.get(url)
    assert r.status_code == 404
    error_of(r)


def test_an_unexpected_failure_is_a_500_without_details(home, monkeypatch):
    from reform.web.state import LibraryState

    def broken(self):
        raise RuntimeError("secret detail")

    monkeypatch.setattr(LibraryState, "status", broken)
    r = client_for(home).get("/api/status")
    assert r.status_code == 500
    assert "RuntimeError" in error_of(r) and "secret detail" not in r.text


def test_reads_cannot_change_anything(client):
    r = client.get("/api/jobs/scan")                 # not read as the job id "scan": it takes POST
    assert r.status_code == 405 and r.headers["allow"] == "POST" and "POST" in error_of(r)
    assert client.post("/api/songs").status_code == 405
    # every refused method in the same words, not Starlette's bare "Method Not Allowed"
    wrong = client.delete("/api/status")
    assert wrong.status_code == 405 and error_of(wrong) == "DELETE is not allowed here (it takes GET)"
    wrong = client.delete("/")
    assert error_of(wrong) == "DELETE is not allowed here (it takes GET, HEAD)"
    assert wrong.headers["allow"] == "GET, HEAD"   # sorted: Starlette's order follows a set's
    assert client.get("/api/jobs").json() == [] and client.get("/api/status").json()["job"] is None
    # link checkers and uptime monitors ask with HEAD
    for url in ("/", "/api/docs", "/static/app.js", "/api/status"):
        head = client.head(url)
        assert head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0, url


# -- audio --------------------------------------------------------------------------------------------
def test_audio_is_the_file_with_ranges(client, ids):
    path = Path(client.get(f"/api/songs/{ids['Chord']}").json()["path"])
    data = path.read_bytes()
    url = f"/api/songs/{ids['Chord']}/audio"
    whole = client.get(url)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["content-type"] == "audio/flac" and whole.headers["accept-ranges"] == "bytes"
    part = client.get(url, headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == data[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(data)}"
    assert client.get(url, headers={"Range": "bytes=-10"}).content == data[-10:]
    assert client.get(url, headers={"Range": f"bytes={len(data) - 5}-"}).content == data[-5:]
    assert client.get(url, headers={"Range": "bytes=5-2"}).status_code == 200      # ignored
    assert client.get(url, headers={"Range": "bytes=0-1,5-9"}).status_code == 200  # ignored
    outside = client.get(url, headers={"Range": f"bytes={len(data)}-"})
    assert outside.status_code == 416 and outside.headers["content-range"] == f"bytes */{len(data)}"
    head = client.head(url)                          # what a player asks first: the length, no bytes
    assert head.status_code == 200 and head.content == b"" and head.headers["content-length"] == str(len(data))
    assert head.headers["content-type"] == "audio/flac"


def test_parse_range():
    assert parse_range(None, 100) is None and parse_range("bytes=0-", 100) == (0, 99)
    assert parse_range("bytes=90-200", 100) == (90, 99) and parse_range("bytes=-300", 100) == (0, 99)
    assert parse_range("items=0-5", 100) is None and parse_range("bytes=a-b", 100) is None
    with pytest.raises(Unavailable):
        parse_range("bytes=-0", 100)
    huge = "9" * 5000                                       # int() refuses more than 4300 digits
    assert parse_range(f"bytes=0-{huge}", 100) == (0, 99) and parse_range(f"bytes=-{huge}", 100) == (0, 99)
    with pytest.raises(Unavailable) as err:
        parse_range(f"bytes={huge}-", 100)
    assert err.value.status == 416


def test_a_range_with_a_five_thousand_digit_number_is_answered(client, ids):
    url = f"/api/songs/{ids['Chord']}/audio"
    assert client.get(url, headers={"Range": "bytes=" + "9" * 5000 + "-"}).status_code == 416
    assert client.get(url, headers={"Range": "bytes=0-" + "9" * 5000}).status_code == 206


def test_audio_decoded_to_wav_with_exact_length_and_ranges(client, ids):
    url = f"/api/songs/{ids['White']}/audio?format=wav"            # Ogg Vorbis, stereo, 16 s
    whole = client.get(url)
    assert whole.status_code == 200 and whole.headers["content-type"] == "audio/wav"
    assert int(whole.headers["content-length"]) == len(whole.content)
    audio, rate = sf.read(io.BytesIO(whole.content), dtype="float32")
    assert rate == 22050 and audio.shape == (16 * 22050, 2)
    assert np.abs(audio).max() > 0.05                              # real sound, not padding
    part = client.get(url, headers={"Range": "bytes=40000-40999"})
    assert part.status_code == 206 and part.content == whole.content[40000:41000]
    head = client.get(url, headers={"Range": "bytes=0-43"})
    assert head.content == whole.content[:44] and head.content[:4] == b"RIFF"
    asked = client.head(url)
    assert asked.headers["content-length"] == whole.headers["content-length"] and asked.content == b""


def _own_song(home: Path, tmp_path: Path, title: str = "Chord") -> tuple[Library, int, Path]:
    """Point a song's catalogue row at a private copy of its file (the shared one stays untouched)."""
    lib = Library(home, create=False)
    row = next(r for r in lib.songs() if r.title == title)
    copy = tmp_path / "music" / Path(row.path).name
    copy.parent.mkdir(parents=True)
    shutil.copy2(row.path, copy)
    st = copy.stat()
    with lib.home.catalogue.transaction():
        lib.home.catalogue.move(row.path, str(copy), st.st_size, st.st_mtime_ns, row.tags)
    return lib, row.id, copy


def test_no_request_reads_a_file_outside_the_catalogue(tmp_path, trained):
    home = tmp_path / "home"
    shutil.copytree(trained, home)
    lib, song_id, copy = _own_song(home, tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:the secret\n" * 100)
    c = client_for(home)
    assert c.get(f"/api/songs/{song_id}/audio").status_code == 200
    for url in ["/api/songs/..%2F..%2F..%2F..%2Fetc%2Fpasswd/audio",
                "/api/songs/1%2F..%2F..%2Fsecret.txt/audio", "/api/songs/%2e%2e/audio",
                "/static/..%2F..%2Fapi.py", "/static/%2e%2e%2fapp.py", "/static/..%5capp.py",
                f"/static/{secret}", "/api/songs/1/audio/..%2F..%2F..%2Fsecret.txt"]:
        r = c.get(url)
        assert r.status_code in (404, 422), url
        assert "root:" not in r.text and "the secret" not in r.text
    r = c.get(f"/api/songs/{song_id}/audio", params={"path": str(secret)})   # refused, never read
    assert r.status_code == 422 and "unknown query parameter path" in error_of(r) and "the secret" not in r.text
    # a song that is a link to its file (elsewhere) plays: the file it leads to holds its audio
    scanned = copy.stat()
    elsewhere = tmp_path / "elsewhere" / copy.name
    elsewhere.parent.mkdir()
    copy.rename(elsewhere)
    copy.symlink_to(elsewhere)
    assert c.get(f"/api/songs/{song_id}/audio", params={"format": "file"}).content == elsewhere.read_bytes()
    # the file is replaced by a symbolic link out of the library: refused until scanned again
    copy.unlink()
    copy.symlink_to(secret)
    for fmt in ("auto", "file", "wav"):
        r = c.get(f"/api/songs/{song_id}/audio", params={"format": fmt})
        assert r.status_code == 409 and "changed since it was scanned" in error_of(r)
        assert "the secret" not in r.text
    # even by a link to a file given the song's size and time (anyone who may write here can)
    twin = tmp_path / "key.pem"
    twin.write_bytes(b"-----BEGIN PRIVATE KEY-----\n".ljust(scanned.st_size, b"A"))
    os.utime(twin, ns=(scanned.st_mtime_ns, scanned.st_mtime_ns))
    copy.unlink()
    copy.symlink_to(twin)
    for fmt in ("auto", "file", "wav"):
        r = c.get(f"/api/songs/{song_id}/audio", params={"format": fmt}, headers={"Range": "bytes=0-40"})
        assert r.status_code == 409 and "is not the one that was scanned" in error_of(r), fmt
        assert "PRIVATE KEY" not in r.text and "`touch` it" in r.json()["hint"]
    copy.unlink()
    r = c.get(f"/api/songs/{song_id}/audio")
    assert r.status_code == 404 and "no longer where it was scanned" in error_of(r)
    copy.parent.rename(tmp_path / "unmounted")          # its folder away: not a reason to scan again
    r = c.get(f"/api/songs/{song_id}/audio")
    assert r.status_code == 404 and "the file's folder is not there (a disk not mounted" in error_of(r)
    assert "once it is back the song plays" in r.json()["hint"]
    lib.close()


def test_a_song_replaced_by_a_fifo_never_blocks_a_request(tmp_path, trained):
    import os

    home = tmp_path / "home"
    shutil.copytree(trained, home)
    lib, song_id, copy = _own_song(home, tmp_path)
    copy.unlink()
    os.mkfifo(copy)                       # opening it for reading would wait for a writer
    c = client_for(home)
    started = time.monotonic()
    for fmt in ("file", "wav"):
        r = c.get(f"/api/songs/{song_id}/audio", params={"format": fmt})
        assert r.status_code == 409 and "changed since it was scanned" in error_of(r)
    assert time.monotonic() - started < 5
    lib.close()


# -- recommendations ---------------------------------------------------------------------------------
def test_similar_songs_with_scores_and_filters(client, ids):
    data = client.get(f"/api/songs/{ids['White']}/similar").json()
    assert [s["title"] for s in data["seeds"]] == ["White"]
    items = data["items"]
    assert len(items) == 4 and ids["White"] not in [s["id"] for s in items]
    scores = [s["score"] for s in items]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1.0001 for s in scores)
    other = client.get(f"/api/songs/{ids['White']}/similar",
                       params={"exclude_same_artist": True, "n": 3}).json()["items"]
    assert {s["artist"] for s in other} == {"Tone Band"}


def test_scores_reach_the_page_to_enough_decimals_to_round_as_the_command_line(home):
    """The API rounded scores to 4 decimals and the page to 3: 0.54454 showed as 0.544 on the page
    and 0.545 in `reform similar`."""
    from reform.recommend import Recommendation
    from reform.web.routes import _scored

    with Library(home, create=False) as lib:
        row = lib.songs()[0]
    item = _scored([Recommendation(row, 0.54454, 0.8123449)])[0]
    assert f"{item['score']:.3f}" == f"{0.54454:.3f}" == "0.545" and item["flow"] == 0.8123449


def test_mix_playlist_and_m3u_export(client, ids):
    seeds = [ids["White"], ids["Chord"]]
    mix = client.get("/api/mix", params={"seed": seeds, "n": 2}).json()
    assert len(mix["items"]) == 2 and not set(seeds) & {s["id"] for s in mix["items"]}
    twice = client.get("/api/mix", params={"seed": seeds + seeds[:1], "n": 2}).json()
    assert [s["id"] for s in twice["seeds"]] == seeds and twice["items"] == mix["items"]
    answer = client.get("/api/playlist", params={"seed": seeds, "length": 3}).json()
    playlist = answer["items"]
    assert len(playlist) == 3 and all("flow" in s for s in playlist) and answer["notes"] == []
    # a shorter list than asked for says why, as the command line does (the page shows the notes)
    short = client.get("/api/playlist", params={"seed": seeds, "length": 50}).json()
    assert short["notes"] == [f"{len(short['items'])} of the 50 songs asked for: the library has no more"]
    alone = client.get("/api/mix", params={"seed": seeds, "n": 50, "max_per_artist": 1}).json()
    assert alone["notes"] == [f"{len(alone['items'])} of the 50 songs asked for: the filters leave no more"]
    # a filter that leaves every song in: the library is what is short (it blamed the filters)
    every = client.get("/api/mix", params={"seed": seeds, "n": 50, "max_per_artist": 50}).json()
    assert every["notes"] == [f"{len(every['items'])} of the 50 songs asked for: the library has no more"]
    r = client.get("/api/playlist", params={"seed": seeds, "n": 3})   # its length is `length`
    assert r.status_code == 422 and "unknown query parameter n (this route takes: " in error_of(r)
    assert "length" in error_of(r)
    order = [playlist[2]["id"], playlist[0]["id"]]
    r = client.get("/api/export.m3u", params={"id": order, "name": "my mix/../x"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("audio/x-mpegurl")
    assert r.headers["content-disposition"] == \
        'attachment; filename="my-mix-..-x.m3u8"; filename*=UTF-8\'\'my%20mix-..-x.m3u8'
    again = client.get("/api/export.m3u", params={"id": order, "name": "mix.M3U8"})   # its extension once
    assert again.headers["content-disposition"] == 'attachment; filename="mix.m3u8"; filename*=UTF-8\'\'mix.m3u8'
    accents = client.get("/api/export.m3u", params={"id": order, "name": "Mes chansons préférées"})
    assert accents.headers["content-disposition"] == (      # the name as given to browsers; to others, less its accents
        'attachment; filename="Mes-chansons-preferees.m3u8"; '
        "filename*=UTF-8''Mes%20chansons%20pr%C3%A9f%C3%A9r%C3%A9es.m3u8")
    lines = r.text.splitlines()
    assert lines[0] == "#EXTM3U" and len(lines) == 5
    paths = [client.get(f"/api/songs/{i}").json()["path"] for i in order]
    assert lines[2::2] == paths


def test_a_song_with_a_nan_embedding_never_breaks_the_page(trained, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(trained, home)
    with Library(home) as lib:
        clicks = next(r for r in lib.songs() if r.title == "Clicks")
        vector = next(iter(lib.embeddings()[1].values()))
        lib.home.catalogue.conn.execute("UPDATE embeddings SET vector = ? WHERE hash = ?",
                                        (np.full_like(vector, np.nan).tobytes(), clicks.hash))
    c = client_for(home)
    songs = {s["title"]: s for s in c.get("/api/songs").json()["items"]}
    assert not songs["Clicks"]["embedded"]
    for url in (f"/api/songs/{songs['Chord']['id']}/similar", f"/api/mix?seed={songs['Chord']['id']}",
                f"/api/playlist?seed={songs['White']['id']}", "/api/map"):
        r = c.get(url)
        assert r.status_code == 200, url
    assert clicks.id not in c.get("/api/map").json()["ids"]
    assert "Clicks" not in [s["title"] for s in c.get(f"/api/songs/{songs['Chord']['id']}/similar").json()["items"]]


def test_m3u_lines_cannot_be_injected(trained, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(trained, home)
    with Library(home) as lib:
        rows = {r.title: r for r in lib.songs()}
        with lib.home.catalogue.transaction():
            lib.home.catalogue.move(rows["Chord"].path, "/music/evil\n#EXTINF:1,injected\n/etc/passwd.flac",
                                    1, 1, rows["Chord"].tags)
    c = client_for(home)
    r = c.get("/api/export.m3u", params={"id": [rows["Chord"].id, rows["White"].id]})
    assert r.status_code == 200 and r.headers["x-reform-skipped"] == str(rows["Chord"].id)
    assert "injected" not in r.text and "/etc/passwd" not in r.text and rows["White"].path in r.text
    assert "x-reform-skipped" not in c.get("/api/export.m3u", params={"id": [rows["White"].id]}).headers


def test_map_is_a_cached_pca_of_the_embeddings(home, client, monkeypatch):
    data = client.get("/api/map").json()
    assert sorted(data["ids"]) == sorted(s["id"] for s in client.get("/api/songs").json()["items"])
    assert len(data["x"]) == len(data["y"]) == 5 and data["method"] == "pca"
    assert 0.5 < sum(data["explained"]) <= 1.0 + 1e-6
    cache = projection.cache_path(home / "cache", data["model"])
    assert json.loads(cache.read_text())["fitted_on"] == 5
    monkeypatch.setattr(projection, "fit_pca", lambda x: pytest.fail("the cached fit is not used"))
    again = client_for(home).get("/api/map").json()       # a new server: the cache on disk
    assert again["x"] == data["x"] and again["y"] == data["y"]


def test_map_keeps_its_axes_for_a_few_new_songs_and_refits_after_growth(tmp_path):
    rng = np.random.default_rng(0)
    vectors = {f"h{i}": rng.normal(size=16).astype(np.float32) for i in range(100)}
    first = projection.library_map(tmp_path, "m1", vectors)
    vectors |= {f"n{i}": rng.normal(size=16).astype(np.float32) for i in range(20)}
    second = projection.library_map(tmp_path, "m1", vectors)
    assert len(second["points"]) == 120
    assert all(second["points"][h] == first["points"][h] for h in first["points"])   # nothing moved
    vectors |= {f"m{i}": rng.normal(size=16).astype(np.float32) for i in range(20)}
    projection.library_map(tmp_path, "m1", vectors)
    assert json.loads(projection.cache_path(tmp_path, "m1").read_text())["fitted_on"] == 140
    assert projection.cache_path(tmp_path, "../../etc/x").parent == tmp_path


def test_map_view_keeps_one_outlier_from_squeezing_the_others(client):
    rng = np.random.default_rng(3)
    x, y = list(rng.normal(0, 0.1, 8)) + [9.0], list(rng.normal(0, 0.1, 8)) + [0.05]  # a 2-s file
    box = projection.view_box(x, y)
    inside = [v for v in x if box["x"][0] <= v <= box["x"][1]]
    assert len(inside) == 8 and box["x"][1] - box["x"][0] < 1.5    # the eight fill the map
    even = list(np.linspace(-1, 1, 9))
    assert projection.view_box(even, even)["x"] == [-1.0, 1.0]     # no outlier: everything shown
    lopsided = [-0.506, -0.3, -0.2, -0.13, -0.1, 0.2, 0.5, 0.746]     # no side of the box left empty
    assert projection.view_box(lopsided, lopsided)["x"] == [-0.506, 0.746]
    assert projection.view_box([0.3, 0.3], [0.3, 0.3])["x"] == [-0.7, 1.3]    # songs at one place
    data = client.get("/api/map").json()
    assert set(data["view"]) == {"x", "y"} and data["view"]["x"][0] < data["view"]["x"][1]


def test_pca_axes_are_deterministic():
    x = np.random.default_rng(1).normal(size=(50, 8)).astype(np.float32)
    mean, axes, explained = projection.fit_pca(x)
    mean2, axes2, _ = projection.fit_pca(x[::-1].copy())
    assert np.allclose(axes, axes2, atol=1e-5) and explained[0] >= explained[1]
    assert np.allclose(np.linalg.norm(axes, axis=1), 1, atol=1e-5)


def test_a_library_without_embeddings_says_to_run_embed(scanned, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(scanned, home)
    c = client_for(home)
    st = c.get("/api/status").json()
    assert st["embeddings"]["songs"] == 0
    assert st["model"]["name"] == "shipped" and st["model"]["embeddings_current"] is False
    assert c.get("/api/songs").json()["total"] == 5
    for url in ["/api/songs/1/similar", "/api/map", "/api/playlist?seed=1"]:
        r = c.get(url)
        assert r.status_code == 409 and "reform embed" in r.json()["hint"]


def test_a_home_given_by_option_is_named_in_every_command_the_page_and_api_suggest(scanned, tmp_path):
    """`reform serve --home H`: a hint's `reform embed`, copied into a terminal, acted on the
    default home.  The API's hints, the jobs' and the model's name H, and the status tells the
    page how to write a command."""
    home = tmp_path / "my music home"
    shutil.copytree(scanned, home)
    named = f"reform --home '{home}'"

    def refused(home_, options, job):
        raise EmbedError("no model to embed with", hint="train one with `reform train`")

    c = client_for(home, named=True, runners={"embed": refused})
    assert c.get("/api/status").json()["command"] == named
    r = c.get("/api/songs/1/similar")
    assert r.status_code == 409 and f"`{named} embed`" in r.json()["hint"]
    failed = _wait(c, c.post("/api/jobs/embed").json()["id"])
    assert failed["hint"] == f"train one with `{named} train`"
    plain = client_for(home)                          # found by default: as it is
    assert plain.get("/api/status").json()["command"] == "reform"
    assert "`reform embed`" in plain.get("/api/songs/1/similar").json()["hint"]


def test_an_empty_library_says_to_scan_first(tmp_path):
    Library(tmp_path / "home").close()
    c = client_for(tmp_path / "home")
    assert c.get("/api/status").json()["songs"] == 0
    r = c.get("/api/map")
    assert r.status_code == 409 and "no song yet" in error_of(r)
    assert "reform scan FOLDER" in r.json()["hint"] and "reform embed" not in r.json()["hint"]


def test_a_song_waiting_for_its_embedding_is_listed_not_recommended(trained, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(trained, home)
    with Library(home) as lib:
        row = next(r for r in lib.songs() if r.title == "White")
        lib.home.catalogue.conn.execute("DELETE FROM embeddings WHERE hash = ?", (row.hash,))
    c = client_for(home)
    embeddings = c.get("/api/status").json()["embeddings"]
    assert (embeddings["songs"], embeddings["missing"]) == (4, 1)
    song = next(s for s in c.get("/api/songs").json()["items"] if s["id"] == row.id)
    assert song["embedded"] is False
    r = c.get(f"/api/songs/{row.id}/similar")
    assert r.status_code == 409 and "reform embed" in r.json()["hint"]
    assert error_of(r) == f"{row.label} has no embedding yet"   # named, not "song 26"
    assert row.id not in c.get("/api/map").json()["ids"]
    chord = next(s["id"] for s in c.get("/api/songs").json()["items"] if s["title"] == "Chord")
    answer = c.get(f"/api/songs/{chord}/similar?n=3").json()   # the 3 other songs with an embedding
    assert row.id not in [s["id"] for s in answer["items"]]
    assert answer["notes"] == ["1 song has no embedding yet and is left out; run `reform embed`"]


def test_recommendations_say_when_the_embeddings_are_another_models(trained, tmp_path, client, ids):
    """After `reform use` of another model the API went on answering from the old embeddings,
    where the command line notes it beside every answer."""
    assert client.get(f"/api/songs/{ids['Chord']}/similar?n=4").json()["notes"] == []
    home = tmp_path / "home"
    shutil.copytree(trained, home)
    with Library(home) as lib:
        lib.use("shipped")
    c = client_for(home)
    for url in (f"/api/songs/{ids['Chord']}/similar?n=4", f"/api/mix?seed={ids['Chord']}&n=4",
                f"/api/playlist?seed={ids['Chord']}&length=4"):
        answer = c.get(url).json()
        assert answer["items"] and answer["notes"] == [
            "the embeddings come from another model than the active one; run `reform embed` to bring them up to date"]


# -- jobs ------------------------------------------------------------------------------------------------
def _wait(c: TestClient, job_id: int, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = c.get(f"/api/jobs/{job_id}").json()
        if job["state"] != "running" or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def test_jobs_run_one_at_a_time_and_report_progress_and_failures(home):
    gate = threading.Event()

    def slow(home_, options, job):
        job.phase, job.done, job.total, job.unit = "working", 3, 10, "songs"
        gate.wait(20)
        return "all done"

    def refused(home_, options, job):
        raise EmbedError("no model to embed with", hint="train one")

    def crashing(home_, options, job):
        raise ValueError("a bug")

    c = client_for(home, runners={"scan": slow, "embed": refused, "train": crashing})
    started = c.post("/api/jobs/scan")
    assert started.status_code == 202 and started.json()["state"] == "running"
    busy = c.post("/api/jobs/embed")
    assert busy.status_code == 409 and "a scan is running" in error_of(busy)
    assert busy.json()["hint"] == "its progress is shown on the page and at /api/jobs"
    job = c.get("/api/status").json()["job"]
    assert (job["kind"], job["phase"], job["done"], job["total"]) == ("scan", "working", 3, 10)
    gate.set()
    done = _wait(c, started.json()["id"])
    assert done["state"] == "done" and done["summary"] == "all done" and done["finished"]
    failed = _wait(c, c.post("/api/jobs/embed").json()["id"])
    assert failed["state"] == "failed" and failed["error"] == "no model to embed with"
    assert failed["hint"] == "train one"
    crashed = _wait(c, c.post("/api/jobs/train", json={"max_epochs": 2}).json()["id"])
    assert crashed["state"] == "failed" and "internal error (ValueError" in crashed["error"]
    assert crashed["options"] == {"max_epochs": 2}
    assert [j["kind"] for j in c.get("/api/jobs").json()] == ["train", "embed", "scan"]


def test_stopping_the_server_stops_the_running_job_at_its_next_step(home):
    """torch must not be torn down under a running thread (the process aborted): the job stops
    as Ctrl-C stops the command, keeping what it finished."""
    from reform.web.jobs import Jobs

    def endless(home_, options, job):
        while True:
            job.advance(1)
            time.sleep(0.01)

    jobs = Jobs(home, runners={"scan": endless})
    jobs.start("scan", {})
    job = jobs.stop(timeout=20)
    assert job.state == "stopped" and job.error == "stopped with the server" and job.done > 0
    assert not jobs.threads[job.id].is_alive() and jobs.stop() is None
    jobs = Jobs(home)                                    # the real training stops at its first step
    jobs.start("train", {"max_epochs": 1, "name": "cut"})
    job = jobs.stop(timeout=120)
    assert job.state == "stopped" and job.error == "stopped with the server"
    assert job.hint == "no epoch had finished: start it again"      # nothing to resume yet


def test_a_running_job_is_stopped_from_the_page(home):
    """A training started from the page by mistake ran for hours: nothing but stopping the
    server stopped it.  The page stops a job at its next step, keeping what it finished."""
    def endless(home_, options, job):
        while True:
            job.advance(1)
            time.sleep(0.01)

    c = client_for(home, runners={"scan": endless})
    started = c.post("/api/jobs/scan").json()
    stopping = c.post(f"/api/jobs/{started['id']}/stop")
    assert stopping.status_code == 202 and stopping.json()["phase"] == "stopping after its current step"
    assert stopping.json()["stopping"] is True
    job = _wait(c, started["id"])
    assert job["state"] == "stopped" and job["error"] == "stopped from the page" and job["done"] > 0
    again = c.post(f"/api/jobs/{started['id']}/stop")
    assert again.status_code == 409 and "has ended already" in error_of(again)
    assert c.post("/api/jobs/99/stop").status_code == 404
    assert c.post("/api/jobs/scan").status_code == 202             # the next job may start


def test_a_real_scan_stopped_from_the_page_ends_stopped_not_finished(home, tmp_path):
    """The scan keeps what it did and returns when stopped, so a scan stopped from the page ended
    as "scan finished".  Stopped, it ends as the other jobs do, saying what it kept."""
    from conftest import tone, write

    from reform.web.jobs import Jobs

    disk = tmp_path / "more"
    for i in range(10):
        write(disk / f"{i:02d} Tone.wav", tone(200 + 40 * i, 8))
    with Library(home) as lib, lib.home.catalogue.transaction():
        lib.home.add_roots([str(disk)])                     # known, not scanned yet: the page's scan finds them
    jobs = Jobs(home)
    job = jobs.start("scan", {})
    jobs.cancel(job)
    jobs.threads[job.id].join(120)
    assert job.state == "stopped" and job.error == "stopped from the page", job
    assert job.hint.endswith("analysed and kept; the next scan goes on") and not job.summary


def test_a_training_named_as_a_run_that_trained_is_refused_at_once(home):
    """The job was started (202) and failed at once with "a run named tiny has trained already"."""
    c = client_for(home)
    with Library(home, create=False) as lib:
        taken = lib.runs()[0].name
    r = c.post("/api/jobs/train", json={"name": taken})
    assert r.status_code == 409 and f"a run named {taken} has trained already" in error_of(r)
    assert "--resume --name" in r.json()["hint"] and c.get("/api/jobs").json() == []


@pytest.mark.parametrize("body", [{"max_epochs": 0}, {"max_epochs": "many"}, {"max_epochs": True},
                                  {"max_epochs": "3"}, {"max_epochs": 2.5}, {"name": "../evil"},
                                  {"name": "a/b"}, {"name": ""}, {"name": 7}])
def test_train_options_are_checked(client, body):
    r = client.post("/api/jobs/train", json=body)
    assert r.status_code == 422
    error_of(r)


def test_embed_and_scan_jobs_from_the_page(trained, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(trained, home)
    with Library(home) as lib:
        catalogue = lib.home.catalogue
        catalogue.drop_embeddings(model=catalogue.get_meta("embedding_model"))
        music = Path(lib.home.roots()[0])   # the session's music, which the other tests' libraries scan too
    added = [music / "tune.xm", music / "broken.wav"]
    try:
        _embed_and_scan_jobs(home, added)
    finally:   # (left there, a later test's repair of a copy of the library found six files)
        for path in added:
            path.unlink(missing_ok=True)


def _embed_and_scan_jobs(home: Path, added: list[Path]) -> None:
    added[0].write_bytes(b"module")     # a format the scan does not read
    c = client_for(home)
    assert c.get("/api/status").json()["embeddings"]["songs"] == 0
    job = _wait(c, c.post("/api/jobs/embed").json()["id"])
    assert job["state"] == "done" and job["done"] == job["total"] == 5, job
    assert c.get("/api/status").json()["embeddings"]["songs"] == 5   # the snapshot follows
    assert len(c.get("/api/map").json()["ids"]) == 5
    job = _wait(c, c.post("/api/jobs/scan").json()["id"])
    assert job["state"] == "done" and "unchanged 5" in job["summary"], job
    assert job["summary"].endswith("skipped 1 in formats not read: .xm (1)"), job
    # a file that fails is skipped by the next scan while it does not change, which the CLI says and the page left out
    added[1].write_bytes(b"RIFF" + b"\0" * 100)
    assert "failed 1" in _wait(c, c.post("/api/jobs/scan").json()["id"])["summary"]
    again = _wait(c, c.post("/api/jobs/scan").json()["id"])["summary"]
    assert "failed 0" in again and "skipped 1 that failed before and did not change" in again, again


def test_a_train_job_on_a_small_library_starts_from_the_shipped_model(home):
    c = client_for(home)
    r = c.post("/api/jobs/train", json={"max_epochs": 1, "epochs": 3})   # a misspelt option
    assert r.status_code == 422 and "epochs" in r.text and c.get("/api/jobs").json() == []
    job = _wait(c, c.post("/api/jobs/train", json={"max_epochs": 1, "name": "page"}).json()["id"], timeout=300)
    assert job["state"] == "done", job
    assert job["log"][0] == "fine-tuning the shipped model, as on every library of fewer than 60 songs"
    assert job["summary"].startswith("model page trained (pretrain: reached the cap of 1 epoch;"), job
    with Library(home, create=False) as lib:
        assert [r.state for r in lib.runs() if r.name == "page"] == [
            "cut short (pretrain and cluster stopped before its schedule ended), fine-tuned from shipped"]


# -- access rules ------------------------------------------------------------------------------------------
def test_only_requests_addressed_to_this_computer_are_answered(client):
    for host in ("127.0.0.1:8765", "localhost:8765", "[::1]:8765", "LOCALHOST:8765"):
        assert client.get("/api/status", headers={"Host": host}).status_code == 200, host
    for host in ("evil.example", "evil.example:8765", "127.0.0.1.evil.example",
                 "localhost", "127.0.0.1:9999", "127.0.0.1:80"):        # this computer, another port
        r = client.get("/api/status", headers={"Host": host})
        assert r.status_code == 403, host
    for host in ("127.0.0.1:8765@evil.example", "127.0.0.1:8765/x", "127.0.0.1:8765 evil", "[::1",
                 "127.0.0.1:99999999", ""):
        r = client.get("/api/status", headers={"Host": host})
        assert r.status_code == 400 and "name:port" in error_of(r), host
    assert client.get("/", headers={"Host": "evil.example"}).headers["content-type"].startswith("text/html")


def test_changes_only_from_this_page(client):
    r = client.post("/api/jobs/train", json={"name": "x y"}, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "this page itself" in error_of(r)
    r = client.post("/api/jobs/train", json={"name": "x y"}, headers={"Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 403
    r = client.post("/api/jobs/train", json={"name": "x y"}, headers={"Origin": BASE})
    assert r.status_code == 422                          # same origin: reaches the validation
    assert client.get("/api/songs", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.get("/", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 200


def test_token_is_required_for_every_request_when_set(home):
    token = "a-long-test-token"
    c = client_for(home, token=token, loopback_only=False)
    assert c.get("/api/status", headers={"Host": "music.example:8765"}).status_code == 401
    assert "access token" in error_of(c.get("/api/songs/1/audio"))
    assert c.get("/").status_code == 401 and "token" in c.get("/").text
    assert c.get("/static/app.js").status_code == 401
    assert c.get("/api/status", headers={"Authorization": "Bearer wrong-token"}).status_code == 401
    ok = c.get("/api/status", headers={"Authorization": f"Bearer {token}",
                                       "Host": "music.example:8765"})
    assert ok.status_code == 200
    assert c.get(f"/api/status?token={token}").status_code == 200
    first = c.get(f"/?token={token}&x=1", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/?x=1"
    cookie = first.headers["set-cookie"]
    # the cookie is this port's (the test client's server is on 8765): browsers send a
    # cookie to every port of a host, and another server there must neither get nor replace it
    assert f"reform_token_8765={token}" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    c.cookies.clear()   # (the client kept the cookie it was sent)
    c.cookies.set("reform_token_8766", token)
    assert c.get("/").status_code == 401
    c.cookies.clear()
    c.cookies.set("reform_token_8765", token)
    assert c.get("/").status_code == 200 and c.get("/api/songs/1/audio").status_code == 200
    c.cookies.clear()
    sneaky = c.get(f"//evil.example/?token={token}", follow_redirects=False)
    assert not sneaky.headers.get("location", "/").startswith("//")


def test_several_host_headers_are_refused():
    import asyncio

    answered = []

    async def app(scope, receive, send):
        answered.append(scope)

    async def call(headers, body=b"", method="GET"):
        sent = []
        scope = {"type": "http", "method": method, "path": "/api/status", "headers": headers,
                 "query_string": b"", "server": ("127.0.0.1", 8765)}

        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message):
            sent.append(message)
        await security.Guard(app, token=None, loopback_only=True)(scope, receive, send)
        return sent[0]["status"] if sent else 200

    two = [(b"host", b"127.0.0.1:8765"), (b"host", b"evil.example")]
    assert asyncio.run(call(two)) == 400 and asyncio.run(call(two[::-1])) == 400
    assert asyncio.run(call(two[:1])) == 200 and len(answered) == 1


def test_request_bodies_are_limited(client):
    big = b'{"max_epochs": 1, "name": "' + b"x" * 100_000 + b'"}'
    r = client.post("/api/jobs/train", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "larger than 65536 bytes" in error_of(r)

    def chunks():                                     # no Content-Length: counted as it arrives
        for _ in range(100):
            yield b"x" * 10_000
    r = client.post("/api/jobs/train", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert client.post("/api/jobs/train", json={"name": "a/b"}).status_code == 422   # small: passes


def test_jobs_are_refused_while_a_command_changes_the_library(home):
    from reform.lock import WriterLock

    c = client_for(home)
    with WriterLock(home).hold("train"):
        r = c.post("/api/jobs/scan")
        assert r.status_code == 409 and "busy: train (PID" in error_of(r)
        assert r.json()["hint"] == "wait until it has finished, then try again"


def test_page_files_and_security_headers(client):
    page = client.get("/")
    assert page.status_code == 200 and "<title>ReFORM</title>" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    for name in ("app.js", "style.css", "icon.svg", "api.js"):
        assert client.get(f"/static/{name}").status_code == 200, name
    assert "http://" not in client.get("/static/app.js").text and "https://" not in page.text  # no CDN
    assert client.get("/api/docs").status_code == 200
    schema = client.get("/api/openapi.json").json()
    assert {"/api/songs", "/api/songs/{song_id}/audio", "/api/songs/{song_id}/similar", "/api/mix",
            "/api/playlist", "/api/map", "/api/export.m3u", "/api/jobs/scan"} <= set(schema["paths"])
    assert set(schema["paths"]["/api/jobs/scan"]) == {"post"}
    assert client.get("/docs").status_code == 404                 # FastAPI's page needs a CDN


def test_websockets_are_refused(client):
    from starlette.websockets import WebSocketDisconnect

    with pytest.raises(WebSocketDisconnect):
        with client.websocket_connect("/api/status"):
            pass


def test_host_names():
    assert security.parse_host("[::1]:8765") == ("::1", 8765)
    assert security.parse_host("localhost") == ("localhost", None)
    assert security.parse_host("127.0.0.1:80") == ("127.0.0.1", 80)
    assert security.parse_host("127.0.0.1:80@evil.example") is None
    assert security.parse_host("a b") is None and security.parse_host("") is None
    assert security.is_loopback("::1") and security.is_loopback("[::1]")
    assert not security.is_loopback("0.0.0.0")


# -- reform serve -------------------------------------------------------------------------------------------
def test_serve_prints_the_address_and_needs_a_token_off_this_computer(home, monkeypatch, capsys):
    import uvicorn

    import reform.web.app
    from reform.web import server

    made = []
    original = reform.web.app.create_app

    def create_app(home, **options):
        made.append(options)
        return original(home, **options)

    monkeypatch.setattr(reform.web.app, "create_app", create_app)
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)   # returns at once
    assert server.serve(str(home), host="127.0.0.1", port=0) == 0
    out = capsys.readouterr().out
    assert "open http://127.0.0.1:" in out and "token" not in out
    assert made[-1] == {"token": None, "loopback_only": True, "named": False}
    assert server.serve(str(home), host="0.0.0.0", port=0) == 0
    out = capsys.readouterr().out
    token = made[-1]["token"]
    assert token and len(token) >= 24 and made[-1]["loopback_only"] is False
    assert f"/?token={token}" in out and "keep the token secret" in out
    with pytest.raises(ConfigError, match="token"):
        server.serve(str(home), host="0.0.0.0", port=0, token="bad token")


def test_serve_refuses_a_port_in_use(home):
    from reform.web import server

    sock = server.bind("127.0.0.1", 0)
    try:
        with pytest.raises(ConfigError, match="in use") as info:
            server.serve(str(home), port=sock.getsockname()[1])
        assert "--port" in info.value.hint
    finally:
        sock.close()


def test_serve_goes_on_without_lyrion_when_its_default_port_is_taken(home, monkeypatch, capsys):
    """A second `reform serve` (another home) finds the Lyrion port taken by the first: with the
    default port it serves its page and says Lyrion is off; with a port chosen, it refuses."""
    import uvicorn

    from reform.web import server

    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)   # returns at once
    taken = server.bind("127.0.0.1", 0)
    try:
        lms_port = taken.getsockname()[1]
        assert server.serve(str(home), port=0, lms_port=lms_port, lms_optional=True) == 0
        out, err = capsys.readouterr()
        assert "open http://127.0.0.1:" in out and "Lyrion's Music Similarity plugin" not in out
        assert "Lyrion support is off on this server" in err and "--lms-port" in err
        with pytest.raises(ConfigError, match="in use") as info:
            server.serve(str(home), port=0, lms_port=lms_port)
        assert "--lms-port" in info.value.hint
    finally:
        taken.close()


def test_cli_serve_takes_lyrion_as_optional_only_on_its_default_port(home, monkeypatch, capsys):
    import uvicorn

    from reform import cli
    from reform.web import server

    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)
    taken = server.bind("127.0.0.1", 0)
    try:
        monkeypatch.setattr(cli, "LMS_PORT", taken.getsockname()[1])   # as a first `reform serve` holds it
        assert cli.main(["--home", str(home), "serve", "--port", "0"]) == 0
        assert "Lyrion support is off on this server" in capsys.readouterr().err
        assert cli.main(["--home", str(home), "serve", "--port", "0", "--lms-port", str(cli.LMS_PORT)]) == 1
        assert "in use" in capsys.readouterr().err
    finally:
        taken.close()


def test_cli_serve_without_a_library_is_one_error_line(tmp_path, capsys):
    from reform.cli import main

    assert main(["--home", str(tmp_path / "none"), "serve", "--port", "0", "--no-lms"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: no library at") and "Traceback" not in err


# -- fast with 10,000 songs ---------------------------------------------------------------------------------
def build_big_library(home: Path, n: int = 10_000, dim: int = 64, seed: int = 3) -> None:
    """A catalogue of ``n`` songs with tags and clustered random embeddings, straight through
    the store (no audio: listing, search, the map and recommendations need none)."""
    from reform.store import SpectrogramInfo, Tags

    rng = np.random.default_rng(seed)
    model = "m10k-meanstd-h320"
    centres = rng.normal(size=(40, dim))
    with Library(home) as lib:
        catalogue = lib.home.catalogue
        fv = lib.home.spectrograms.feature_version
        vectors = []
        with catalogue.transaction():
            for i in range(n):
                digest = f"{i:040x}"
                artist = f"Artist {i % 400}"
                info = SpectrogramInfo(digest, 2, 8000, 180.0 + i % 120, 44100, "vorbis")
                tags = Tags(artist, f"Album {i % 900}", f"Song {i} {'blue' if i % 7 == 0 else 'red'}",
                            1 + i % 12, 1990 + i % 30, f"Genre {i % 15}")
                catalogue.put_ok(f"{home.parent}/music/{artist}/{i}.ogg", 1000, 0, info, tags, fv)
                vectors.append((digest, (centres[i % 40] + rng.normal(size=dim) * 0.3).astype(np.float32)))
            catalogue.put_embeddings(model, vectors)
            catalogue.set_meta("embedding_model", model)


def test_ten_thousand_songs_answer_quickly(tmp_path):
    """List, search, sort, the map and similar songs over 10k catalogue rows."""
    n = 10_000
    build_big_library(tmp_path / "home", n)
    c = client_for(tmp_path / "home")
    timings = {}

    def timed(name, url):
        started = time.perf_counter()
        r = c.get(url)
        timings[name] = round(time.perf_counter() - started, 3)
        assert r.status_code == 200, r.text[:200]
        return r.json()

    assert timed("list all (first: builds the snapshot)", "/api/songs")["total"] == n
    assert timed("list all (again)", "/api/songs")["total"] == n
    assert timed("search 'blue song 7'", "/api/songs?q=blue+song+7")["total"] > 0
    assert timed("sort by title, descending, page", "/api/songs?sort=title&desc=true&limit=100")["total"] == n
    assert timed("filter by artist", "/api/songs?artist=Artist+7")["total"] == 25
    assert len(timed("map (first: PCA and cache)", "/api/map")["ids"]) == n
    assert len(timed("map (again)", "/api/map")["ids"]) == n
    assert len(timed("similar (first: builds the index)", "/api/songs/1/similar")["items"]) == 10
    assert len(timed("similar (again)", "/api/songs/2/similar")["items"]) == 10
    assert len(timed("playlist of 30", "/api/playlist?seed=1&seed=3&length=30")["items"]) == 30
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    (ROOT / "test-artifacts" / "web-10k-timings.json").write_text(json.dumps(timings, indent=2))
    slow = {k: v for k, v in timings.items() if v > 3.0}
    assert not slow, f"too slow with 10k songs: {slow}"


def test_a_snapshot_holds_rows_and_vectors_of_one_moment(trained, tmp_path, monkeypatch):
    """The songs and their vectors were read one after the other, so a scan committing between
    the two paired rows of before with vectors of after (here: a song's vector gone)."""
    import sqlite3

    from reform.api import Library as Api
    from reform.web.state import LibraryState

    home = shutil.copytree(trained, tmp_path / "home")
    state = LibraryState(home)
    read_songs = Api.songs

    def songs_then_a_scan_commits(self):
        rows = read_songs(self)
        with sqlite3.connect(home / "catalogue.db") as writer:   # another process's scan
            writer.execute("DELETE FROM embeddings WHERE hash = ?", (rows[0].hash,))
        return rows

    monkeypatch.setattr(Api, "songs", songs_then_a_scan_commits)
    snap = state.snapshot()
    assert {r.hash for r in snap.rows} <= set(snap.vectors)   # every row's vector, as of the same moment


def test_an_embed_job_counts_its_songs_in_words(tmp_path):
    """The page said "embedding 1 songs"."""
    from conftest import tone, write
    from reform.web.jobs import Job, run_embed

    write(tmp_path / "m" / "one.wav", tone(440, 12))
    with Library(tmp_path / "home") as lib:
        lib.scan(tmp_path / "m", jobs=1)
    job = Job(1, "embed", {})
    summary = run_embed(tmp_path / "home", {}, job)
    assert job.phase == "embedding 1 song" and summary.startswith("embedded 1 song with model ")
    assert summary.endswith("(0 were already)")


def test_a_song_longer_than_a_wav_holds_is_sent_as_a_valid_wav_of_its_start(tmp_path):
    """RIFF's sizes are 32-bit: a 7-hour stereo song at 48 kHz (4.8 GB of samples) raised
    OverflowError while its header was written."""
    import os
    import struct

    from conftest import tone, write
    from reform.store import FileRow
    from reform.web.media import HEADER_BYTES, wav_body

    path = tmp_path / "long mix.wav"
    write(path, tone(440, 1))
    st = os.stat(path)
    row = FileRow(1, str(path), st.st_size, st.st_mtime_ns, "h", "ok", None, 7 * 3600.0, 48000, 2, 100, "pcm",
                  "fv", None, None, "long mix", None, None, None, 0.0)
    body = wav_body(row, f"bytes=0-{HEADER_BYTES - 1}")
    header = b"".join(body.chunks)
    riff, data = struct.unpack_from("<I", header, 4)[0], struct.unpack_from("<I", header, 40)[0]
    assert riff == 36 + data and riff < 2**32 and data % 4 == 0 and data > 2**32 - 64
    assert body.headers["Content-Range"] == f"bytes 0-{HEADER_BYTES - 1}/{HEADER_BYTES + data}"


@pytest.mark.parametrize("opened", [True, False])
def test_serve_open_says_so_when_no_browser_opens(monkeypatch, capsys, opened):
    """`reform serve --open` on a machine with no browser said nothing: the page never came."""
    import types
    import webbrowser

    from reform.web.server import _open_when_started

    asked = []
    monkeypatch.setattr(webbrowser, "open", lambda url: asked.append(url) or opened)
    _open_when_started(types.SimpleNamespace(started=True), "http://127.0.0.1:8000/#token=x", wait=1.0)
    assert asked == ["http://127.0.0.1:8000/#token=x"]
    said = capsys.readouterr().out
    assert said == ("" if opened else
                    "no web browser could be opened here: open http://127.0.0.1:8000/#token=x in one\n")


def test_cli_serve_names_the_home_only_where_a_command_would_not_find_it(home, monkeypatch):
    """Given by --home, the page's commands must name the home; found by $REFORM_HOME, which a
    command copied into the same shell finds too, they need not."""
    from reform import cli
    from reform.web import server

    seen = []
    monkeypatch.setattr(server, "serve", lambda home_, **options: seen.append(options["named"]) or 0)
    monkeypatch.delenv("REFORM_HOME", raising=False)
    assert cli.main(["--home", str(home), "serve"]) == 0
    monkeypatch.setenv("REFORM_HOME", str(home))
    assert cli.main(["serve"]) == 0
    assert cli.main(["--home", str(home), "serve"]) == 0
    assert seen == [True, False, False]


def test_the_page_searches_an_untagged_songs_folders_as_the_api_does():
    """The page filters its table itself: it is sent the folder of a song that names neither artist
    nor album, whose names the API's search looks in too (reform.text.search_words)."""
    from reform.store import FileRow
    from reform.web.state import song_dict

    def row(artist, album):
        return FileRow(1, "/games/drascula/audio/track18.ogg", 1, 1, "h", "ok", None, 60.0, 44100, 2, 100, "vorbis",
                       "fv", artist, album, None, None, None, None, 0.0)

    assert song_dict(row(None, None), True)["folder"] == "drascula/audio"   # the two above it, as search_words
    assert song_dict(row("Band", None), True)["folder"] is None and song_dict(row(None, "LP"), True)["folder"] is None
