"""The web page on a real library: serve it, drive it in Chromium, take a screenshot.

Starts `reform serve` on a free port for an embedded library home, opens the page in
Debian's Chromium (headless, through Playwright), searches, plays the first hit,
waits for its similar songs and for the audio to load, prints what it saw and saves
a screenshot.  Any error in the page's console fails the run.

    python bench/web_page.py --home DATA/ship/home --search wesnoth --out docs/screenshot-realmusic.png
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--autoplay-policy=no-user-gesture-required"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(url: str, server: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"`reform serve` exited with code {server.returncode}")
        try:
            urllib.request.urlopen(url + "/api/status", timeout=2)
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("`reform serve` did not answer within a minute")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", required=True, help="a scanned and embedded library home")
    parser.add_argument("--search", default="", help="words to search; the first hit is played")
    parser.add_argument("--out", required=True, help="screenshot (PNG)")
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "reform", "--home", args.home, "serve", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_up(url, server)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.goto(url + "/")
            page.wait_for_selector("#tbody .row")
            points = page.wait_for_function(
                "() => Number(document.querySelector('#map').dataset.points) || false").json_value()
            print(f"library: {page.inner_text('#lib-count')}; map: {points} songs")
            if args.search:
                page.fill("#search", args.search)
                page.wait_for_timeout(500)
            print(f"rows for {args.search!r}: {page.locator('#tbody .row').count()}")
            page.locator("#tbody .row").first.click()
            page.wait_for_selector("#similar-list li")
            page.wait_for_function("() => document.querySelector('#player').readyState >= 1", timeout=20000)
            duration = page.evaluate("document.querySelector('#player').duration")
            print(f"playing: {page.inner_text('#now-title')} ({page.inner_text('#now-sub')}), "
                  f"{duration:.1f} s loaded")
            similar = page.locator("#similar-list li .t").all_inner_texts()
            print(f"similar ({len(similar)}): {', '.join(similar[:8])}, ...")
            page.wait_for_timeout(1000)
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.out, animations="disabled")
            browser.close()
        if errors:
            raise SystemExit(f"errors in the page: {errors}")
        print(f"no errors in the page; screenshot: {args.out}")
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
