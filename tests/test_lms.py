"""The Music Similarity service for Lyrion's plugin, tested with the requests the plugin sends
(the bodies of ``_getMixData`` and ``_getSimilarData`` in CDrummond/lms-musicsimilarity's
Plugin.pm), and through `reform serve`'s own port."""

import json
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from conftest import ctrl_c_as_in_a_terminal, reform_cmd
from reform import Library
from reform.errors import ConfigError
from reform.recommend import Recommender
from reform.store import FileRow
from reform.web.lms import AllowClients, Service, client_addresses, create_lms_app
from reform.web.state import LibraryState, Snapshot


def url(path: str) -> str:
    """A song as LMS names it (``$track->url``): a percent-encoded file URL."""
    return "file://" + quote(path)


def mix_request(tracks, previous, mpath, **change) -> dict:
    """What the plugin's Don't Stop The Music mixer posts to /api/similar, with its defaults."""
    body = {"count": 5, "format": "text", "filtergenre": 0, "filterxmas": 1, "min": 0, "max": 0,
            "track": tracks, "previous": previous, "shuffle": 1, "norepart": 15, "norepalb": 25,
            "genregroups": [], "nogenrematchadj": 15, "genregroupadj": 7, "maxbpmdiff": 150,
            "filterkey": 1, "filterattrib": 1, "mpath": mpath}
    return body | change


@pytest.fixture(scope="module")
def library(trained):
    with Library(trained, create=False) as lib:
        rows = lib.songs()
    music = os.path.commonpath([r.path for r in rows])
    return trained, {Path(r.path).stem: r.path for r in rows}, music


@pytest.fixture
def client(library):
    home, _, _ = library
    state = LibraryState(home)
    yield TestClient(create_lms_app(state, rng=random.Random(0)), base_url="http://localhost:11000")
    state.close()


def lines(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [x for x in response.text.split("\n") if x]


def test_dont_stop_the_music_mix(client, library):
    _, songs, music = library
    seed = songs["01 A Four Forty"]
    answer = lines(client.post("/api/similar", json=mix_request([url(seed)], [url(seed)], music),
                               headers={"Content-Type": "application/json;charset=utf-8"}))
    assert 1 <= len(answer) <= 4 and len(set(answer)) == len(answer)
    assert set(answer) <= set(songs.values())       # paths, as the original service answers: LMS
    assert seed not in answer                        # makes its own URLs of them
    # the queue so far (newest first) is never played again; what is left comes
    queue = [songs[s] for s in ("02 Chord", "01 White", "02 Clicks", "01 A Four Forty")]
    answer = lines(client.post("/api/similar", json=mix_request([url(seed)], [url(p) for p in queue], music)))
    assert answer == [songs["03 Short"]]


def test_paths_of_lms_in_a_container_and_the_filters(client, library):
    _, songs, music = library
    in_lms = {name: "/music/" + os.path.relpath(p, music) for name, p in songs.items()}
    body = mix_request([url(in_lms["01 White"])], [], "/music", count=50, shuffle=0, norepart=0,
                       norepalb=0)
    answer = lines(client.post("/api/similar", json=body))
    assert set(answer) == set(in_lms.values()) - {in_lms["01 White"]}  # LMS's paths back, all four
    body["min"] = 10  # "03 Short" lasts 6 s
    answer = lines(client.post("/api/similar", json=body))
    assert in_lms["03 Short"] not in answer and len(answer) == 3
    body |= {"min": 0, "norepart": 15, "count": 1}  # the seed's artist waits: another artist first
    first = lines(client.post("/api/similar", json=body))[0]
    assert "/Noise Crew/" not in first
    plain = client.post("/api/similar", json=body | {"format": "json", "track": [in_lms["01 White"]]})
    assert plain.json()[0].startswith("/music/")  # paths in, paths out; JSON unless "text"


def test_similar_tracks_menus(client, library):
    _, songs, music = library
    seed = songs["01 White"]
    body = {"count": 100, "format": "text-url", "min": 0, "max": 0, "track": [url(seed)],
            "filterartist": 0, "genregroups": [], "nogenrematchadj": 15, "genregroupadj": 7,
            "maxbpmdiff": 150, "filterkey": 1, "filterattrib": 1, "mpath": music}
    answer = lines(client.post("/api/dump", json=body))
    assert sorted(answer) == sorted(set(songs.values()) - {seed})
    by_artist = lines(client.post("/api/dump", json=body | {"filterartist": 1}))
    assert sorted(by_artist) == sorted(songs[s] for s in ("02 Clicks", "03 Short"))
    text = lines(client.post("/api/dump", json=body | {"format": "text", "count": 2}))
    assert len(text) == 2 and all(re.fullmatch(r"/.+\t-?\d\.\d{6}", t) for t in text)
    listed = client.post("/api/dump", json=body | {"format": "json"}).json()
    distances = [d["sim"] for d in listed]   # in the walk's order: a client sorting by them keeps it
    assert [d["file"] for d in listed] == answer and distances == sorted(distances)
    assert client.post("/api/dump", json=body | {"track": [url("/elsewhere/x.flac")]}).status_code == 404


def test_features_and_get_requests(client, library):
    _, songs, music = library
    features = client.get("/api/features")
    assert features.status_code == 200 and features.text == ""  # no Essentia, no bliss: no attribute mixes
    answer = client.get("/api/similar", params={"track": songs["02 Chord"], "count": 2, "format": "text",
                                                "mpath": music, "shuffle": 0})
    assert len(lines(answer)) == 2 and all(a.startswith("/") for a in lines(answer))


def _static(rows, vectors):
    """A library state over hand-made rows and vectors (the real Snapshot and Recommender)."""
    snap = Snapshot(1, rows, "m", vectors)

    class State:
        def snapshot(self):
            return snap

        def recommender(self, s):
            return s.recommender()
    return State()


def _row(music: Path, i, title, genre, artist="A"):   # lengths 2 s apart: never files of one recording
    """A song of the folder ``music``, its file there (empty: only a gone one is passed over)."""
    path = music / artist / f"{title}.flac"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    return FileRow(i, str(path), 1, 1, f"h{i}", "ok", None, 200.0 + 2 * i, 44100, 2, 100, "flac",
                   "fv", artist, f"{artist} album {i}", title, None, None, genre, 0.0)


def test_christmas_and_genre_groups(tmp_path):
    import datetime

    rows = [_row(tmp_path, 1, "seed", "Rock"), _row(tmp_path, 2, "carol", "Christmas", "B"),
            _row(tmp_path, 3, "metal", "Metal", "C"), _row(tmp_path, 4, "jazz", "Jazz", "D"),
            _row(tmp_path, 5, "untagged", None, "E")]
    angle = {"h1": 0.0, "h2": 0.1, "h3": 0.2, "h4": 0.3, "h5": 0.4}
    vectors = {h: np.array([np.cos(a), np.sin(a)], np.float32) for h, a in angle.items()}
    app = TestClient(create_lms_app(_static(rows, vectors)), base_url="http://localhost:11000")
    body = mix_request([rows[0].path], [], str(tmp_path), count=10, shuffle=0, norepart=0, norepalb=0,
                       format="json")
    titles = [Path(p).stem for p in app.post("/api/similar", json=body).json()]
    december = datetime.date.today().month == 12
    assert titles == (["carol"] if december else []) + ["metal", "jazz", "untagged"]
    grouped = body | {"filtergenre": 1, "genregroups": [["Rock", "Metal"], ["Jazz", "Blues"]]}
    titles = [Path(p).stem for p in app.post("/api/similar", json=grouped).json()]
    assert "jazz" not in titles and {"metal", "untagged"} <= set(titles)  # untagged: cannot be judged
    # what no plugin sends is read as its default, never a server error: numbers past a float's
    # range, genres that are not names
    odd = grouped | {"genregroups": [[1, {"a": 1}], ["Rock", "Metal"]], "min": 1e400, "count": -1e400}
    titles = [Path(p).stem for p in app.post("/api/similar", content=json.dumps(odd).replace("Infinity", "1e400"),
                                             headers={"Content-Type": "application/json"}).json()]
    assert titles and "jazz" not in titles


def test_songs_whose_files_are_gone_are_never_answered_and_dump_keeps_the_lengths(tmp_path):
    """A file moved away after the scan was the mix's first song (LMS then left it out, and the
    mix came back one short) and the Similar tracks menus' too; those menus ignored the plugin's
    shortest and longest lengths."""
    rows = [_row(tmp_path, i, f"song {i}", None, f"artist {i}") for i in range(1, 5)]
    vectors = {r.hash: np.array([np.cos(0.1 * i), np.sin(0.1 * i)], np.float32) for i, r in enumerate(rows)}
    app = TestClient(create_lms_app(_static(rows, vectors)), base_url="http://localhost:11000")
    os.remove(rows[1].path)                                       # the nearest to the seed
    mix = mix_request([rows[0].path], [], str(tmp_path), count=10, shuffle=0, norepart=0, norepalb=0,
                      format="json")
    assert app.post("/api/similar", json=mix).json() == [rows[2].path, rows[3].path]
    dump = {"count": 100, "format": "text-url", "track": [rows[0].path], "mpath": str(tmp_path)}
    assert lines(app.post("/api/dump", json=dump)) == [rows[2].path, rows[3].path]
    assert lines(app.post("/api/dump", json=dump | {"count": 1})) == [rows[2].path]
    # 200 s long and 2 s apart: song 3 lasts 206 s, song 4 208
    assert lines(app.post("/api/dump", json=dump | {"max": 207})) == [rows[2].path]
    assert lines(app.post("/api/dump", json=dump | {"min": 207, "max": 0})) == [rows[3].path]


def test_only_the_lyrion_server_may_ask(library):
    home, _, _ = library
    state = LibraryState(home)
    try:
        app = AllowClients(create_lms_app(state), ("10.1.2.3",))
        refused = TestClient(app, base_url="http://localhost:11000").get("/api/features")
        assert refused.status_code == 403   # TestClient's requests come from "testclient"
    finally:
        state.close()
    # a request carries its client's address, never a name: names are resolved when the service starts
    assert client_addresses(("10.1.2.3", "::1", "10.1.2.3")) == ("10.1.2.3", "::1")
    assert "127.0.0.1" in client_addresses(("localhost",))
    with pytest.raises(ConfigError, match="no such address or host name"):
        client_addresses(("no-such-host.invalid",))


def test_reform_serve_answers_the_plugin_on_its_own_port(library, tmp_path):
    home, songs, music = library
    proc = subprocess.Popen(reform_cmd("--home", str(home), "serve", "--port", "0", "--lms-port", "0",
                                       "--lms-allow", "127.0.0.1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=ctrl_c_as_in_a_terminal)
    try:
        page = lms = None
        deadline = time.monotonic() + 60
        while (page is None or lms is None) and time.monotonic() < deadline:
            line = proc.stdout.readline()
            page = page or re.search(r"open (http://127\.0\.0\.1:\d+)/", line)
            lms = lms or re.search(r"set its host to (127\.0\.0\.1):(\d+)", line)
        assert page and lms, proc.stderr.read() if proc.poll() is not None else "no address printed"
        base = f"http://127.0.0.1:{lms.group(2)}"
        body = mix_request([url(songs["02 Chord"])], [], music, shuffle=0, count=2)
        answer = httpx.post(f"{base}/api/similar", content=json.dumps(body),
                            headers={"Content-Type": "application/json;charset=utf-8"}, timeout=30)
        assert answer.status_code == 200 and len(answer.text.split("\n")) == 2
        # --lms-allow judges the connection's own address: a header any local program can write is
        # no way past it, nor a way to be refused
        forwarded = httpx.get(f"{base}/api/features", headers={"X-Forwarded-For": "10.9.9.9"}, timeout=30)
        assert forwarded.status_code == 200, forwarded.text
        assert httpx.get(f"{page.group(1)}/api/status", timeout=30).json()["songs"] == 5  # the page, as before
        assert httpx.get(f"{base}/api/status", timeout=30).status_code == 404  # the plugin's port: its API only
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=20)


def test_similar_tracks_come_from_the_expanded_query():
    # a lone song is nearest the seed; three songs close to each other lie a little further
    angles = [0.0, 0.30, -0.32, -0.34, -0.36]
    rows = [FileRow(i, f"/m/{i}.flac", 1, 1, f"h{i}", "ok", None, 200.0, 44100, 2, 100, "flac", "fv",
                    f"artist {i}", f"album {i}", f"song {i}", None, None, None, 0.0) for i in range(len(angles))]
    vectors = {r.hash: np.array([np.cos(a), np.sin(a)], np.float32) for r, a in zip(rows, angles)}

    def first(expand):
        return Service._by_similarity(Recommender.of(rows, vectors, expand=expand), rows[0])[0][0].id

    assert first(0) == 1 and first(3) == 2
