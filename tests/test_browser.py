"""The web page in a real browser: Playwright driving Debian's Chromium, headless.

The server runs in a thread on a free port over a copy of the trained synthetic
library, to which a few hundred catalogue rows with made-up tags and clustered
embeddings are added (no audio: they fill the table and the map; the five real
songs are the ones played).  Screenshots go to test-artifacts/ and the main one
is copied to docs/screenshot.png for the README when REFORM_UPDATE_SCREENSHOT=1.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
ARTEFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required"]

# artist: (genre, albums): the made-up part of the library shown in the screenshot
ARTISTS = {
    "Glass Harmonics": ("Ambient", ["Prism", "Refraction"]),
    "Low Orbit": ("Electronic", ["Apogee", "Perigee"]),
    "The Brass Quarter": ("Jazz", ["Night Shift"]),
    "Marlow & Reed": ("Folk", ["Paper Boats", "Tidewater"]),
    "Kestrel": ("Rock", ["Updraft"]),
    "Saltwater Choir": ("Choral", ["Hymns for Harbours"]),
    "Neon Ferns": ("Synthpop", ["Photosynthesis", "Chlorophyll"]),
    "Ostinato": ("Minimal", ["Loops I"]),
    "Bellwether": ("Indie", ["Flock"]),
    "Cinder Lake": ("Post-rock", ["Embers"]),
}
REAL_SONGS = ["A Four Forty", "Chord", "White", "Clicks", "Short"]   # conftest.build_music
WORDS = ["Amber", "Harbour", "Signal", "Quiet", "Northern", "Lantern", "Static", "Velvet", "Hollow",
         "Meridian", "Copper", "Drift", "Paper", "Satellite", "Winter", "Orchard", "Glass", "Tide",
         "Ember", "Cascade", "Morning", "Silver", "Echo", "Atlas", "Harvest", "Lumen", "Falling",
         "Ferris", "Parallel", "Sunday"]


def add_showcase_rows(home: Path, per_album: int = 11, seed: int = 7) -> int:
    """Add catalogue rows with tags and clustered embeddings (same model, same size) to ``home``."""
    from reform import Library
    from reform.store import SpectrogramInfo, Tags

    rng = np.random.default_rng(seed)
    with Library(home, create=False) as lib:
        catalogue = lib.home.catalogue
        model = catalogue.get_meta("embedding_model")
        dim = len(next(iter(catalogue.embeddings(model).values())))
        genres = {g: rng.normal(size=dim) * 1.6 for g, _ in ARTISTS.values()}
        rows, vectors = [], []
        for artist, (genre, albums) in ARTISTS.items():
            centre = genres[genre] + rng.normal(size=dim) * 0.6
            for a, album in enumerate(albums):
                for track in range(1, per_album + 1):
                    title = f"{WORDS[rng.integers(len(WORDS))]} {WORDS[rng.integers(len(WORDS))]}"
                    path = str(home.parent / "showcase" / artist / album / f"{track:02d} {title}.ogg")
                    digest = hashlib.sha256(path.encode()).hexdigest()[:40]
                    seconds = float(rng.integers(150, 420))
                    year = 2016 + a + int(rng.integers(0, 4))
                    rows.append((path, SpectrogramInfo(digest, 2, int(seconds * 43), seconds, 44100, "vorbis"),
                                 Tags(artist, album, title, track, year, genre)))
                    vectors.append((digest, (centre + rng.normal(size=dim) * 0.45).astype(np.float32)))
        with catalogue.transaction():
            for path, info, tags in rows:
                catalogue.put_ok(path, 1000, 0, info, tags, lib.home.spectrograms.feature_version)
            catalogue.put_embeddings(model, vectors)
    return len(rows)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    """uvicorn serving the app in a background thread, stopped on exit."""

    def __init__(self, app):
        import uvicorn

        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"the browser tests need Debian's Chromium at {CHROMIUM}: `make test` installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def showcase(trained, tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("browser") / "home"
    shutil.copytree(trained, home)
    add_showcase_rows(home)
    return home


@pytest.fixture
def served(showcase):
    """The showcase library served for one test."""
    from reform.web.app import create_app

    ARTEFACTS.mkdir(exist_ok=True)
    with ServerThread(create_app(showcase)) as server:
        yield server


def open_page(browser, url: str, **options):
    """A page of a new browser context at ``url``; ``page.errors`` collects the page's errors."""
    context = browser.new_context(**{"viewport": {"width": 1440, "height": 900}, **options})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    pg.goto(url)
    pg.errors = errors
    return pg


@pytest.fixture
def page(browser, served):
    pg = open_page(browser, served.url + "/", accept_downloads=True)
    yield pg
    pg.context.close()


def shot(page, name: str) -> Path:
    path = ARTEFACTS / name
    page.screenshot(path=str(path), animations="disabled")
    return path


def rows(page) -> list[str]:
    return page.locator("#tbody .row .col-title span").all_inner_texts()


def wait_map(page) -> int:
    """Wait until the map is drawn; the number of songs drawn."""
    return page.wait_for_function(
        "() => Number(document.querySelector('#map').dataset.points) || false").json_value()


def wait_painted(page, pixels: int) -> None:
    """Wait until at least ``pixels`` pixels of the map canvas are drawn on."""
    page.wait_for_function("""(pixels) => {
        const c = document.querySelector('#map');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
        return n >= pixels;
    }""", arg=pixels)


def test_search_play_recommendations_and_map(page):
    page.wait_for_selector("#tbody .row")
    assert page.inner_text("#lib-count") == "159 songs"
    assert wait_map(page) == 159
    wait_painted(page, 2000)
    shot(page, "page-library.png")

    page.fill("#search", "ton chor")                     # search as you type, words in any field
    page.wait_for_function("() => document.querySelectorAll('#tbody .row').length === 1")
    assert rows(page) == ["Chord"]
    page.click("#tbody .row")
    assert page.inner_text("#now-title") == "Chord"
    assert "Tone Band" in page.inner_text("#now-sub")
    page.wait_for_selector("#similar-list li")
    items = page.locator("#similar-list li")
    assert items.count() == 20
    scores = [float(s) for s in page.locator("#similar-list .score b").all_inner_texts()]
    # cosines, in the walk's order: the nearest song first, the others as the walk ranks them; a
    # line says why where a score rises down the list (it looked like a mistake)
    assert scores[0] == max(scores) and all(-1 <= s <= 1.0001 for s in scores)
    assert any(b > a for a, b in zip(scores, scores[1:]))   # (this list does rise somewhere)
    assert page.is_visible("#similar-note") and "need not fall down the list" in page.inner_text("#similar-note")

    # the audio element loads the file (FLAC, sent as it is, with ranges)
    page.wait_for_function("() => document.querySelector('#player').readyState >= 1")
    assert abs(page.evaluate("document.querySelector('#player').duration") - 16) < 0.5
    assert page.get_attribute("#player", "src").endswith("/audio")

    # the map highlights the song and its recommendations: more is drawn than before
    page.fill("#search", "")
    page.wait_for_function("() => document.querySelectorAll('#tbody .row.current').length === 1")
    page.wait_for_timeout(150)
    assert page.evaluate("reform.similar.length") == 20
    shot(page, "page-playing.png")
    if os.environ.get("REFORM_UPDATE_SCREENSHOT"):  # the README's picture, refreshed on demand
        shutil.copyfile(ARTEFACTS / "page-playing.png", ROOT / "docs" / "screenshot.png")

    # a recommendation plays when clicked, and becomes the song the list is about
    second = page.locator("#similar-list li .t").nth(1).inner_text()
    page.locator("#similar-list li").nth(1).click()
    assert page.inner_text("#now-title") == second
    assert page.errors == []


def test_map_hover_and_click_play_a_song(page):
    wait_map(page)
    page.wait_for_timeout(100)
    # of the five songs with audio, the one whose point lies farthest from all others: the tiny
    # model may draw two songs on top of each other, and the pointer then picks either
    title, x, y = page.evaluate("""(real) => {
        const m = reformMap, r = document.querySelector('#map').getBoundingClientRect();
        let best = null, far = -1;
        for (const s of reform.songs) {
            const i = m.index.get(s.id);
            if (i === undefined || !real.includes(s.title)) continue;
            let near = Infinity;
            for (const t of reform.songs) {
                const j = m.index.get(t.id);
                if (j === undefined || j === i) continue;
                near = Math.min(near, Math.hypot(m.sx[i] - m.sx[j], m.sy[i] - m.sy[j]));
            }
            if (near > far) { far = near; best = [s.title, r.left + m.sx[i], r.top + m.sy[i]]; }
        }
        return best;
    }""", REAL_SONGS)
    page.mouse.move(x, y)
    page.wait_for_selector("#tooltip:not([hidden])")
    assert title in page.inner_text("#tooltip")
    page.mouse.click(x, y)
    page.wait_for_function(f"() => document.querySelector('#now-title').textContent === {title!r}")
    page.wait_for_selector("#similar-list li")
    page.wait_for_function("() => document.querySelector('#player').readyState >= 1")  # Ogg Vorbis
    page.click("#colour-by [data-by=genre]")
    assert "Ambient" in page.inner_text("#legend")
    assert page.errors == []


def test_mix_playlist_reorder_and_export(page, tmp_path):
    page.wait_for_selector("#tbody .row")
    page.fill("#search", "glass harmonics prism")
    page.wait_for_function("() => document.querySelectorAll('#tbody .row').length === 11")
    page.locator("#tbody .row").nth(0).hover()
    page.locator("#tbody .row [data-add]").nth(0).click()
    page.locator("#tbody .row").nth(3).hover()
    page.locator("#tbody .row [data-add]").nth(3).click()
    assert page.inner_text("#mix-count") == "2"
    page.click("[data-tab=mix]")
    assert page.locator("#seeds .chip").count() == 2
    page.select_option("#mix-length", "10")
    page.click("#mix-make")
    page.wait_for_selector("#playlist li")
    def ids() -> list[int]:
        return [int(i) for i in page.eval_on_selector_all("#playlist li", "els => els.map(e => e.dataset.id)")]

    before = ids()
    assert len(before) == 10
    page.locator("#playlist li").nth(0).hover()
    page.locator("#playlist li").nth(0).locator("[data-move='1']").click()   # move the first down
    after = ids()
    assert after == [before[1], before[0], *before[2:]]
    # a song's ↝ (its similarity to the song it followed) is gone where another song now comes before it
    flows = page.locator("#playlist li .flow").all_inner_texts()
    assert flows[:3] == ["", "", ""] and all(f.startswith("↝ ") for f in flows[3:])
    page.locator("#playlist li").nth(2).hover()
    page.locator("#playlist li").nth(2).locator("[data-move=x]").click()     # remove the third
    after = ids()
    assert len(after) == 9
    page.fill("#search", "")
    page.wait_for_timeout(150)
    shot(page, "page-mix.png")

    with page.expect_download() as info:
        page.click("#playlist-export")
    out = tmp_path / "mix.m3u8"
    info.value.save_as(out)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#EXTM3U" and len(lines) == 1 + 2 * (2 + 9)
    titles = page.locator("#playlist li .t").all_inner_texts()
    seeds = page.locator("#seeds .chip").all_inner_texts()     # the mix's songs first, as the CLI's -o
    assert [line.split(" - ", 1)[1] for line in lines[1::2]][2:] == titles
    assert all(any(line.split(" - ", 1)[1] in chip for chip in seeds) for line in lines[1:5:2])
    assert page.errors == []


def test_library_status_and_a_job_with_live_progress(browser, trained, tmp_path):
    """A library whose embeddings are gone: the page says what to do, and Embed songs
    runs the job from the page, shows its progress, and brings the map back."""
    from reform import Library
    from reform.web.app import create_app

    home = tmp_path / "home"
    shutil.copytree(trained, home)
    with Library(home) as lib:
        catalogue = lib.home.catalogue
        catalogue.drop_embeddings(model=catalogue.get_meta("embedding_model"))
    with ServerThread(create_app(home)) as server:
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        pg = context.new_page()
        pg.goto(server.url + "/")
        pg.wait_for_selector("#notice:not([hidden])")
        assert "reform embed" in pg.inner_text("#notice")
        assert "embed" in pg.inner_text("#map-empty")
        pg.click("[data-tab=status]")
        assert "tiny" in pg.inner_text("#model-card")
        pg.wait_for_function("() => document.querySelector('#failures-card').textContent.includes('Every file')")
        assert pg.inner_text("#failures-card").rstrip().endswith("Every file was analysed.")   # (and no stray 0)
        pg.click("[data-job=embed]")
        pg.wait_for_function("() => document.querySelector('#job').textContent.includes('embed finished')",
                             timeout=60_000)
        assert "embedded 5 songs" in pg.inner_text("#job")
        pg.wait_for_selector("#notice", state="hidden")
        assert wait_map(pg) == 5
        shot(pg, "page-status.png")
        context.close()


def test_token_in_the_address_becomes_a_cookie(browser, showcase):
    from reform.web.app import create_app

    with ServerThread(create_app(showcase, token="s3cret-token-for-tests")) as server:
        context = browser.new_context()
        pg = context.new_page()
        refused = pg.goto(server.url + "/")
        assert refused.status == 401
        pg.goto(server.url + "/?token=s3cret-token-for-tests")
        assert pg.url == server.url + "/"                   # the token left the address bar
        pg.wait_for_selector("#tbody .row")
        pg.fill("#search", "chord")
        pg.click("#tbody .row")
        pg.wait_for_function("() => document.querySelector('#player').readyState >= 1")  # audio by cookie
        context.close()


def test_ten_thousand_songs_stay_fast_in_the_page(browser, tmp_path):
    """Loading, typing, sorting and scrolling over 10k songs (the table draws only what shows)."""
    import json

    from test_web import build_big_library

    from reform.web.app import create_app

    build_big_library(tmp_path / "home")
    timings = {}
    with ServerThread(create_app(tmp_path / "home")) as server:
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        pg = context.new_page()
        started = time.perf_counter()
        pg.goto(server.url + "/")
        pg.wait_for_selector("#tbody .row")
        timings["first rows"] = time.perf_counter() - started
        assert pg.inner_text("#lib-count") == "10,000 songs"
        assert pg.locator("#tbody .row").count() < 80
        assert wait_map(pg) == 10_000
        timings["map drawn"] = time.perf_counter() - started

        started = time.perf_counter()
        pg.fill("#search", "blue song 7")
        pg.wait_for_function("() => document.querySelector('#lib-count').textContent.includes(' of ')")
        timings["search as you type"] = time.perf_counter() - started
        server_total = pg.evaluate("fetch('/api/songs?q=blue+song+7&limit=1').then(r => r.json())"
                                   ".then(d => d.total)")
        assert pg.evaluate("reform.view.length") == server_total > 0   # same search as the API
        started = time.perf_counter()
        pg.fill("#search", "")
        pg.click(".thead [data-sort=title]")
        pg.wait_for_selector(".thead [data-sort=title].sorted")
        timings["clear and sort by title"] = time.perf_counter() - started

        pg.eval_on_selector("#tbody", "el => { el.scrollTop = el.scrollHeight; }")
        pg.wait_for_timeout(100)
        last = pg.evaluate("reform.view[reform.view.length - 1].title")
        assert last in pg.locator("#tbody .row .col-title span").all_inner_texts()

        pg.locator("#tbody .row").last.click()              # made-up rows have no audio file
        pg.wait_for_selector("#similar-list li")
        pg.wait_for_selector("#player-msg:not([hidden])")
        assert "the file's folder is not there" in pg.inner_text("#player-msg")   # made up: no folder
        shot(pg, "page-10k.png")
        context.close()
    (ARTEFACTS / "page-10k-timings.json").write_text(json.dumps(
        {k: round(v, 3) for k, v in timings.items()}, indent=2))
    assert timings["first rows"] < 10 and timings["search as you type"] < 2
    assert timings["clear and sort by title"] < 3


# -- a phone, a reload, a rescan, the keyboard ------------------------------------------------------------
def song_id(page, title: str) -> int:
    return page.evaluate("(t) => reform.songs.find((s) => s.title === t).id", title)


def width(page, selector: str) -> float:
    return page.eval_on_selector(selector, "el => el.getBoundingClientRect().width")


def add_seeds(page, query: str, rows_at: list[int]) -> None:
    """Search ``query`` and add the rows at ``rows_at`` to the mix with their + button."""
    page.fill("#search", query)
    page.wait_for_function("(q) => reform.query === q", arg=query)
    for i in rows_at:
        page.locator("#tbody .row").nth(i).hover()
        page.locator("#tbody .row [data-add]").nth(i).click()


def library_changed(page) -> None:
    """Tell the page to check the library now, as it does when its tab is shown again."""
    page.evaluate("document.dispatchEvent(new Event('visibilitychange'))")


def test_a_phone_screen_shows_one_column_without_sideways_scrolling(browser, served):
    pg = open_page(browser, served.url + "/", viewport={"width": 375, "height": 740}, is_mobile=True,
                   has_touch=True)
    pg.wait_for_selector("#tbody .row")
    pg.locator("#tbody .row").nth(3).click()
    pg.wait_for_selector("#similar-list li")
    assert pg.evaluate("document.documentElement.scrollWidth") <= 375
    assert width(pg, "#tbody .row .col-title") > 120 and width(pg, ".thead .col-artist") > 60
    assert width(pg, "#similar-list li .t") > 120 and width(pg, "#now-title") > 150
    assert width(pg, "#search") > 250
    shot(pg, "page-phone.png")
    pg.context.close()


def test_play_all_goes_past_a_song_that_cannot_play(page):
    page.wait_for_selector("#tbody .row")
    missing = page.evaluate("reform.songs.find((s) => s.artist === 'Kestrel').id")   # no audio file
    page.evaluate("(ids) => sessionStorage.setItem('reform.mix', JSON.stringify("
                  "{seeds: [], playlist: ids.map((id) => ({id, score: 0.5, flow: 0.5}))}))",
                  [missing, song_id(page, "Chord")])
    page.reload()
    page.click("[data-tab=mix]")
    page.wait_for_selector("#playlist li")
    page.click("#playlist-play")
    page.wait_for_selector("#player-msg:not([hidden])")
    assert "the file's folder is not there" in page.inner_text("#player-msg")   # made up: no folder
    page.wait_for_function("() => document.querySelector('#now-title').textContent === 'Chord'")
    page.wait_for_function("() => document.querySelector('#player').readyState >= 1")
    assert page.evaluate("reform.queue") == 1 and page.is_hidden("#player-msg")


def test_a_reload_keeps_the_mix_and_the_song_open_and_back_goes_to_the_song_before(page):
    page.wait_for_selector("#tbody .row")
    add_seeds(page, "glass harmonics prism", [0, 3])
    page.click("[data-tab=mix]")
    page.select_option("#mix-length", "10")
    page.click("#mix-make")
    page.wait_for_selector("#playlist li")
    playlist = page.eval_on_selector_all("#playlist li .t", "els => els.map((e) => e.textContent)")
    page.fill("#search", "chord")
    page.click("#tbody .row")
    assert page.evaluate("location.hash") == f"#song={song_id(page, 'Chord')}"

    page.reload()
    page.wait_for_function("() => document.querySelector('#now-title').textContent === 'Chord'")
    assert page.inner_text("#mix-count") == "2"
    assert page.eval_on_selector_all("#playlist li .t", "els => els.map((e) => e.textContent)") == playlist

    # a song of the saved mix that is no longer in the library is dropped, and the page says so
    page.evaluate("() => { const m = JSON.parse(sessionStorage.getItem('reform.mix')); m.seeds.push(999999); "
                  "sessionStorage.setItem('reform.mix', JSON.stringify(m)); }")
    page.reload()
    page.wait_for_selector("#toasts .toast")
    assert "1 song of the mix is no longer in the library" in page.inner_text("#toasts")
    assert page.inner_text("#mix-count") == "2"

    page.fill("#search", "white")
    page.click("#tbody .row")
    assert page.inner_text("#now-title") == "White"
    page.go_back()
    page.wait_for_function("() => document.querySelector('#now-title').textContent === 'Chord'")
    page.go_forward()
    page.wait_for_function("() => document.querySelector('#now-title').textContent === 'White'")
    assert page.errors == []


def test_a_rescan_takes_removed_songs_out_of_the_page_and_clears_a_fixed_error(browser, trained, tmp_path):
    from reform import Library
    from reform.web.app import create_app

    home = tmp_path / "home"
    shutil.copytree(trained, home)
    with Library(home) as lib:
        paths = {r.title: Path(r.path) for r in lib.songs()}
    with ServerThread(create_app(home)) as server:
        pg = open_page(browser, server.url + "/")
        pg.wait_for_selector("#tbody .row")

        # a file moved away cannot play; once a scan saw it back, the error goes and it plays
        clicks = paths["Clicks"]
        clicks.rename(clicks.with_name("away"))
        pg.fill("#search", "clicks")
        pg.click("#tbody .row")
        pg.wait_for_selector("#player-msg:not([hidden])")
        clicks.with_name("away").rename(clicks)
        with Library(home) as lib:                                # a scan that changed the catalogue
            lib.home.catalogue.set_meta("test-touch", "1")
        library_changed(pg)
        pg.wait_for_selector("#player-msg", state="hidden")
        pg.wait_for_function("() => document.querySelector('#player').readyState >= 1")

        # songs removed by a scan leave the mix and the player, which say so
        add_seeds(pg, "white", [0])
        pg.fill("#search", "chord")
        pg.click("#tbody .row")
        pg.wait_for_selector("#similar-list li")
        pg.click("#now-add")                          # the song playing is in the mix too: ✓ beside it
        assert pg.inner_text("#mix-count") == "2" and pg.inner_text("#now-add") == "✓"
        with Library(home) as lib:
            lib.home.catalogue.remove([str(paths["White"]), str(paths["Chord"])])
        library_changed(pg)
        pg.wait_for_function("() => document.querySelector('#toasts').textContent.includes('White was removed')")
        assert pg.is_hidden("#mix-count") and pg.evaluate("reform.seeds") == []
        assert "removed from the library" in pg.inner_text("#now-sub")
        assert pg.inner_text("#now-add") == "+"      # it left the mix: no ✓ beside it
        assert "Chord was removed from the library" in pg.inner_text("#similar-empty")
        assert pg.locator("#similar-list li").count() == 0
        pg.click("#prev")                             # not stuck: back to the song played before it
        pg.wait_for_function("() => document.querySelector('#now-title').textContent === 'Clicks'")
        pg.context.close()


def test_an_empty_library_says_to_scan_first(browser, tmp_path):
    from reform import Library
    from reform.web.app import create_app

    Library(tmp_path / "home").close()
    with ServerThread(create_app(tmp_path / "home")) as server:
        pg = open_page(browser, server.url + "/")
        pg.wait_for_selector("#notice:not([hidden])")
        pg.wait_for_selector("#map-empty:not([hidden])")
        for where in ["#notice", "#map-empty", "#lib-empty"]:
            assert "reform scan FOLDER" in pg.inner_text(where) and "reform embed" not in pg.inner_text(where)
        pg.context.close()


def test_the_page_names_a_home_given_by_option_and_a_music_folder_that_is_away(browser, trained, tmp_path):
    """Its commands named no home, so copied they acted on the default one; and a music folder
    away (a disk not mounted) went unsaid."""
    from reform import Library
    from reform.web.app import create_app

    Library(tmp_path / "empty").close()
    with ServerThread(create_app(tmp_path / "empty", named=True)) as server:
        pg = open_page(browser, server.url + "/")
        pg.wait_for_selector("#notice:not([hidden])")
        for where in ["#notice", "#lib-empty"]:
            assert f"reform --home {tmp_path / 'empty'} scan FOLDER" in pg.inner_text(where)
        pg.context.close()
    home = tmp_path / "home"
    shutil.copytree(trained, home)
    with Library(home) as lib, lib.home.catalogue.transaction():
        lib.home.add_roots([str(tmp_path / "disk")])      # a second music folder, on a disk not mounted
    with ServerThread(create_app(home)) as server:
        pg = open_page(browser, server.url + "/")
        pg.wait_for_selector("#notice:not([hidden])")
        assert f"Music folder {tmp_path / 'disk'} is not there" in pg.inner_text("#notice")
        pg.context.close()


def test_a_one_song_library_says_there_is_no_other_song(browser, trained, tmp_path):
    from reform import Library
    from reform.web.app import create_app

    home = tmp_path / "home"
    shutil.copytree(trained, home)
    with Library(home) as lib:
        lib.home.catalogue.remove([r.path for r in lib.songs() if r.title != "Chord"])
    with ServerThread(create_app(home)) as server:
        pg = open_page(browser, server.url + "/")
        pg.wait_for_selector("#tbody .row")
        pg.click("#tbody .row")
        pg.wait_for_function("() => document.querySelector('#similar-empty').textContent.includes('no other')")
        assert pg.inner_text("#similar-empty") == "The library has no other song to recommend."
        pg.click("#now-add")
        pg.click("[data-tab=mix]")
        pg.click("#mix-make")
        pg.wait_for_selector("#playlist-empty:not([hidden])")
        assert pg.inner_text("#playlist-empty") == "The library has no other song to recommend."
        assert pg.errors == []
        pg.context.close()


def test_a_query_of_signs_finds_what_the_api_finds(page):
    page.wait_for_selector("#tbody .row")
    # the page folds what the server's normaliser folds
    from reform.text import norm

    folded = "Ødegård Ætherisk Straße Łódź Þór ÐÆŒ"
    assert page.evaluate("(t) => reformNorm(t)", folded) == norm(folded) == "odegard aetherisk strasse lodz thor daeoe"
    for query in ["&", "🔥", "-", "!!"]:
        page.fill("#search", query)
        page.wait_for_function("(q) => reform.query === q", arg=query)
        api_total = page.evaluate("(q) => fetch('/api/songs?limit=1&q=' + encodeURIComponent(q))"
                                  ".then((r) => r.json()).then((d) => d.total)", query)
        assert page.evaluate("reform.view.length") == api_total, query
    page.fill("#search", "&")
    page.wait_for_function("() => reform.view.length === 22")   # Marlow & Reed's two albums
    assert set(page.locator("#tbody .row .col-artist").all_inner_texts()) == {"Marlow & Reed"}


def test_a_button_the_tab_key_reaches_can_be_seen(page):
    """Tab from the table stopped on each row's "+", drawn with opacity 0 and no focus ring: 24
    invisible stops before the list of similar songs.  The table's "+" buttons are out of the tab
    order (its key + adds the row under the cursor), and a list's "+" shows when focused."""
    page.wait_for_selector("#tbody .row")
    assert page.eval_on_selector_all("#tbody [data-add]", "els => els.length > 0 && els.every(e => e.tabIndex === -1)")
    page.fill("#search", "chord")
    page.click("#tbody .row")
    page.wait_for_selector("#similar-list li")
    first = page.locator("#similar-list li .t").nth(0)       # a title cut with "…" shows whole on hover
    assert first.get_attribute("title") == first.inner_text()
    page.locator("#similar-list li").nth(0).focus()
    page.keyboard.press("Tab")                                 # to the item's "+"
    assert page.evaluate("() => document.activeElement.dataset.add !== undefined")
    assert page.evaluate("() => getComputedStyle(document.activeElement).opacity") == "1"


def test_the_keyboard_plays_similar_songs_and_the_playlist(page):
    page.wait_for_selector("#tbody .row")
    page.fill("#search", "chord")
    page.click("#tbody .row")
    page.wait_for_selector("#similar-list li")
    second = page.locator("#similar-list li").nth(1)
    assert second.get_attribute("tabindex") == "0"
    title = second.locator(".t").inner_text()
    second.focus()
    page.keyboard.press("Enter")
    page.wait_for_function("(t) => document.querySelector('#now-title').textContent === t", arg=title)

    page.fill("#search", "chord")
    page.click("#tbody .row")
    page.wait_for_function("() => !document.querySelector('#player').paused")
    page.locator("#tbody").focus()
    page.keyboard.press("k")                                   # play / pause outside text fields
    page.wait_for_function("() => document.querySelector('#player').paused")
    page.keyboard.press(" ")
    page.wait_for_function("() => !document.querySelector('#player').paused")

    page.click("#now-add")
    page.click("[data-tab=mix]")
    page.click("#mix-make")
    page.wait_for_selector("#playlist li")
    third = page.locator("#playlist li").nth(2)
    title = third.locator(".t").inner_text()
    third.focus()
    page.keyboard.press("Enter")
    page.wait_for_function("(t) => document.querySelector('#now-title').textContent === t", arg=title)
    assert page.evaluate("reform.queue") == 2


def now_playing(page, title: str) -> None:
    page.wait_for_function("(t) => document.querySelector('#now-title').textContent === t", arg=title)


def at_start(page) -> None:
    """The song playing paused at its first second, as if Previous were pressed at once."""
    page.wait_for_function("() => document.querySelector('#player').readyState >= 1")
    page.evaluate("() => { const p = document.querySelector('#player'); p.pause(); p.currentTime = 0; }")


def test_previous_and_next_go_through_the_similar_songs_and_the_playlist(page):
    """The page had no Previous or Next: a song ended, or was not wanted, and the listener went
    back to the lists; media keys did nothing."""
    page.wait_for_selector("#tbody .row")
    assert page.is_disabled("#prev") and page.is_disabled("#next")
    page.fill("#search", "chord")
    page.click("#tbody .row")
    page.wait_for_selector("#similar-list li")
    first = page.evaluate("reform.similar.find((s) => s.id !== reform.current).title")
    page.click("#next")                                      # the most similar song
    now_playing(page, first)
    page.wait_for_function("(t) => reform.similar.length && document.querySelector('#similar-title b')"
                           ".textContent === t", arg=first)
    second = page.evaluate("(c) => reform.similar.find((s) => s.id !== reform.current && s.id !== c).title",
                           song_id(page, "Chord"))
    page.focus("#other-artists")                              # (a checkbox takes no letters)
    page.keyboard.press("n")                                 # the key too, passing over Chord, heard already
    now_playing(page, second)
    at_start(page)
    page.click("#prev")
    now_playing(page, first)
    at_start(page)
    page.keyboard.press("p")
    now_playing(page, "Chord")
    page.wait_for_function("() => document.querySelector('#player').readyState >= 1")
    page.evaluate("() => { const p = document.querySelector('#player'); p.pause(); p.currentTime = 5; }")
    page.click("#prev")                                      # after its first seconds: its start
    page.wait_for_function("() => document.querySelector('#player').currentTime < 1")
    assert page.inner_text("#now-title") == "Chord"

    page.click("#now-add")                                   # the playlist, while it plays
    page.click("[data-tab=mix]")
    page.click("#mix-make")
    page.wait_for_selector("#playlist li")
    titles = page.eval_on_selector_all("#playlist li .t", "els => els.map((e) => e.textContent)")
    page.click("#playlist-play")
    now_playing(page, titles[0])
    page.click("#next")
    now_playing(page, titles[1])
    assert page.evaluate("reform.queue") == 1
    at_start(page)
    page.click("#prev")
    now_playing(page, titles[0])
    assert page.evaluate("reform.queue") == 0
    page.keyboard.press("n")
    now_playing(page, titles[1])
    page.reload()                                            # the playlist plays on from there
    now_playing(page, titles[1])
    page.wait_for_function("() => reform.queue === 1")
    page.click("[data-tab=mix]")
    remove = "(i) => document.querySelectorAll('#playlist li [data-move=x]')[i].click()"
    page.evaluate(remove, 0)                                 # a song before it taken out: Next still the next
    assert page.evaluate("reform.queue") == 0
    page.evaluate(remove, 0)                                 # the song playing taken out: on from its place
    page.click("#next")
    now_playing(page, titles[2])
    assert page.evaluate("reform.queue") == 0
    assert [e for e in page.errors if "Failed to load resource" not in e] == []   # (made-up songs have no audio)


def test_a_long_artist_name_ends_with_an_ellipsis_in_the_legend(page):
    wait_map(page)
    page.evaluate("for (const s of reform.songs) s.artist = 'A very long artist name '.repeat(12)")
    page.click("#colour-by [data-by=album]")
    page.click("#colour-by [data-by=artist]")
    name = page.locator("#legend .name").first
    assert name.evaluate("el => getComputedStyle(el).textOverflow") == "ellipsis"
    assert name.evaluate("el => el.scrollWidth > el.clientWidth && el.getBoundingClientRect().width <= 180")


def test_a_song_clicked_while_the_server_is_down_says_that_it_does_not_answer(browser, showcase):
    from reform.web.app import create_app

    with ServerThread(create_app(showcase)) as server:
        pg = open_page(browser, server.url + "/")
        pg.wait_for_selector("#tbody .row")
    pg.locator("#tbody .row").first.click()
    pg.wait_for_selector("#player-msg:not([hidden])")
    assert "the ReFORM server does not answer" in pg.inner_text("#player-msg")
    for _ in range(3):                                      # said again and again: one toast (three stacked)
        pg.evaluate("() => document.querySelector('[data-job=scan]').click()")
    pg.wait_for_selector("#toasts .toast")
    texts = pg.locator("#toasts .toast").all_inner_texts()
    assert len(texts) == len(set(texts)) >= 1
    pg.context.close()


def test_a_job_is_stopped_from_the_page_and_a_training_asks_first(browser, showcase):
    """A click on Train model started hours of training with no way to stop it but stopping the
    server; the page now asks first, and Stop ends a running job at its next step."""
    import time

    from reform.web.app import create_app

    def endless(home_, options, job):
        while True:
            job.advance(1)
            time.sleep(0.01)

    with ServerThread(create_app(showcase, runners={"scan": endless, "train": endless})) as server:
        pg = open_page(browser, server.url + "/")
        pg.click("[data-tab=status]")
        asked = []
        pg.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
        pg.click("[data-job=train]")                       # asked, and declined: nothing starts
        assert asked and "Train a model on this library?" in asked[0]
        pg.click("[data-job=scan]")
        pg.click("#job-stop")
        pg.wait_for_function("() => document.querySelector('#job').textContent.includes('stopped from the page')",
                             timeout=30_000)
        assert "scan stopped" in pg.inner_text("#job")     # (it said "failed", in red)
        assert not pg.is_disabled("[data-job=train]")      # the next job may start
        pg.context.close()


def test_a_song_whose_folder_was_away_plays_once_it_is_back(browser, trained, tmp_path):
    """With the music folder away the player advised a rescan (wrong while a disk is not mounted),
    and with the folder back it stayed in its error until the song was clicked again."""
    from conftest import tone, write

    from reform import Library
    from reform.web.app import create_app

    home = tmp_path / "home"
    shutil.copytree(trained, home)
    disk = tmp_path / "disk"
    write(disk / "Away Band" / "Far" / "01 Far Tone.wav", tone(330, 8))
    with Library(home) as lib:
        lib.scan(disk, jobs=1)
    with ServerThread(create_app(home)) as server:
        pg = open_page(browser, server.url + "/")
        pg.wait_for_selector("#tbody .row")
        disk.rename(tmp_path / "unmounted")
        pg.fill("#search", "far tone")
        pg.click("#tbody .row")
        pg.wait_for_selector("#player-msg:not([hidden])")
        assert "the file's folder is not there (a disk not mounted" in pg.inner_text("#player-msg")
        (tmp_path / "unmounted").rename(disk)
        pg.wait_for_selector("#player-msg", state="hidden", timeout=20_000)   # the next status poll
        pg.wait_for_function("() => document.querySelector('#player').readyState >= 1")
        pg.context.close()


def test_the_status_tab_counts_another_models_embeddings_as_waiting(browser, trained, tmp_path):
    """After `reform use shipped` the tab said "5 embedded, 0 waiting for embedding" beside a
    banner saying every embedding is another model's, and sent the user to `reform evaluate`
    for a table it cannot fill for the shipped model."""
    from reform import Library
    from reform.web.app import create_app

    home = tmp_path / "home"
    shutil.copytree(trained, home)
    with Library(home) as lib:
        lib.use("shipped")
    with ServerThread(create_app(home)) as server:
        pg = open_page(browser, server.url + "/")
        pg.click("[data-tab=status]")
        pg.wait_for_selector("#stats .stat")
        stats = pg.inner_text("#stats")
        assert "embedded by another model" in stats and "5\nwaiting for embedding" in stats
        assert "No evaluation of this model on this library yet" in pg.inner_text("#model-card")
        assert pg.errors == []
        pg.context.close()
