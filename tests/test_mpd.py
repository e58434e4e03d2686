"""`reform mpd` against a real Music Player Daemon (Debian's `mpd`, installed by `make test`):
started on a loopback port with the test library as its music folder and a null output."""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ctrl_c_as_in_a_terminal, reform_cmd
from reform import Library
from reform.errors import PlayerError
from reform.mpd import Address, Client, address

MPD = "/usr/bin/mpd"
FIRST = "Tone Band/Sines/01 A Four Forty.wav"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(condition, seconds: float = 20.0, what: str = "MPD"):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def mpd_server(trained, tmp_path):
    """A running MPD whose music folder is the test library's; yields its address."""
    if not os.path.exists(MPD):
        pytest.fail(f"the MPD tests need Debian's mpd at {MPD}: `make test` installs it")
    with Library(trained, create=False) as lib:  # the songs of two artists: their common folder
        music = Path(os.path.commonpath([r.path for r in lib.songs()]))
    port = _free_port()
    state = tmp_path / "mpd"
    (state / "playlists").mkdir(parents=True)
    conf = state / "mpd.conf"
    conf.write_text(f'music_directory "{music}"\nplaylist_directory "{state / "playlists"}"\n'
                    f'db_file "{state / "db"}"\nstate_file "{state / "state"}"\n'
                    f'pid_file "{state / "pid"}"\nbind_to_address "127.0.0.1"\nport "{port}"\n'
                    'zeroconf_enabled "no"\naudio_output {\n type "null"\n name "null"\n}\n')
    proc = subprocess.Popen([MPD, "--no-daemon", "--stderr", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    where = Address("127.0.0.1", port)

    def connect():
        try:
            return Client(where)
        except PlayerError:
            return None
    try:
        client = _wait(connect, what="MPD to listen")
        client.command("update")
        _wait(lambda: "updating_db" not in client.status() and len(client.command("listall")) > 5,
              what="MPD to read its music folder")
        client.close()
        yield where, music
    finally:
        proc.terminate()
        proc.wait(10)


def test_keeps_the_queue_ahead_follows_skips_records_plays_and_stops_on_ctrl_c(mpd_server, trained, tmp_path):
    where, music = mpd_server
    home = tmp_path / "home"
    shutil.copytree(trained, home)
    mpd = Client(where)
    mpd.add(FIRST)
    mpd.command("play", "0")
    env = {**os.environ, "MPD_HOST": where.host, "MPD_PORT": str(where.port)}  # found as MPD clients do
    radio = subprocess.Popen(reform_cmd("mpd", "--home", str(home), "--ahead", "2"),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                             start_new_session=True, preexec_fn=ctrl_c_as_in_a_terminal)
    try:
        queue = _wait(lambda: q if len(q := mpd.queue()) >= 3 else None, what="two songs queued")
        files = [s["file"] for s in queue]
        assert files[0] == FIRST and len(set(files)) == 3
        assert all((music / f).is_file() for f in files)  # MPD's names, relative to its music folder
        mpd.command("next")  # the radio follows: one more song, still nothing twice
        queue = _wait(lambda: q if len(q := mpd.queue()) >= 4 else None, what="a third song queued")
        assert len({s["file"] for s in queue}) == 4
        time.sleep(0.3)
        assert len(mpd.queue()) == 4  # two ahead of the second song: no more
    finally:
        os.killpg(radio.pid, signal.SIGINT)
        out, err = radio.communicate(timeout=20)
        mpd.close()
    assert radio.returncode == 0, err
    assert "Traceback" not in err and out.strip().endswith("stopped")
    assert "connected to MPD" in out and out.count("queued ") == 3
    with Library(home, create=False) as lib:  # both songs that started playing are in the play log
        played = [lib.home.catalogue.file(path=str(music / f)).hash for f in files[:2]]
        assert [h for h, _ in lib.home.catalogue.most_played(5)] == played[::-1]


def test_unreachable_mpd_is_one_error_line(trained, capsys):
    from reform.cli import main

    assert main(["--home", str(trained), "mpd", "--host", "127.0.0.1", "--port", str(_free_port())]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach MPD at 127.0.0.1:") and "hint: start MPD" in err


def test_address_as_every_mpd_client_reads_it():
    assert address(env={}) == Address("localhost", 6600)
    assert address(env={"MPD_HOST": "secret@music.lan", "MPD_PORT": "6601"}) == \
        Address("music.lan", 6601, "secret")
    assert address(env={"MPD_HOST": "/run/mpd/socket"}).is_socket
    assert address("box", 7000, env={"MPD_HOST": "other", "MPD_PORT": "1"}) == Address("box", 7000)
    with pytest.raises(PlayerError, match="MPD_PORT"):
        address(env={"MPD_PORT": "six"})
