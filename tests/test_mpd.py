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


def test_keeps_the_queue_ahead_follows_skips_and_stops_on_ctrl_c(mpd_server, trained, tmp_path):
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
    with Library(home, create=False) as lib:  # two songs started, neither played half its length
        assert lib.home.catalogue.most_played(5) == []   # (test_a_skipped_song_is_no_play: one that did)


def test_unreachable_mpd_is_one_error_line(trained, capsys):
    from reform.cli import main

    assert main(["--home", str(trained), "mpd", "--host", "127.0.0.1", "--port", str(_free_port())]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach MPD at 127.0.0.1:") and "hint: start MPD" in err


def _one_client_server(answer):
    """A loopback server that gives its first client to ``answer(connection)``; its address."""
    import threading

    server = socket.create_server(("127.0.0.1", 0))

    def serve():
        connection, _ = server.accept()
        with connection:
            answer(connection)
        server.close()
    threading.Thread(target=serve, daemon=True).start()
    return Address("127.0.0.1", server.getsockname()[1])


def test_a_music_folder_mistyped_is_said_to_be_no_folder(trained, tmp_path, capsys):
    """`--music-dir /tmp/nonexistent` ran on, saying only that no song of the library lay there (a
    service started before its disk is mounted goes on: the folder is learned from the songs)."""
    from reform.cli import main

    assert main(["--home", str(trained), "mpd", "--port", str(_free_port()), "--music-dir",
                 str(tmp_path / "nonexistent")]) == 1   # (no MPD there)
    err = capsys.readouterr().err
    assert err.startswith(f"note: no such folder on this computer: {tmp_path / 'nonexistent'} (--music-dir): the "
                          "player's music folder is learned from the songs it names instead\nerror: cannot reach MPD")


def test_an_mpd_that_does_not_greet_or_refuses_the_password_is_a_player_error():
    """A player error is what the radio retries after a lost connection (a silent MPD still
    starting up ended `reform mpd` with 'error: timed out'); a wrong password names where it is set."""
    silent = _one_client_server(lambda c: c.recv(1) or time.sleep(2))
    with pytest.raises(PlayerError, match="accepted the connection but did not greet") as err:
        Client(silent, timeout=0.3)
    assert "wait until MPD has started" in err.value.hint

    def refuse(connection):
        connection.sendall(b"OK MPD 0.23.5\n")
        connection.recv(100)
        connection.sendall(b"ACK [3@0] {password} incorrect password\n")
        connection.recv(1)
    where = _one_client_server(refuse)
    with pytest.raises(PlayerError, match="incorrect password") as err:
        Client(Address(where.host, where.port, password="wrong"), timeout=5)
    assert "MPD_HOST=password@host" in err.value.hint


def test_address_as_every_mpd_client_reads_it():
    assert address(env={}) == Address("localhost", 6600)
    assert address(env={"MPD_HOST": "secret@music.lan", "MPD_PORT": "6601"}) == \
        Address("music.lan", 6601, "secret")
    assert address(env={"MPD_HOST": "/run/mpd/socket"}).is_socket
    assert address("box", 7000, env={"MPD_HOST": "other", "MPD_PORT": "1"}) == Address("box", 7000)
    # IPv6: bare as mpc takes it, or in brackets as `reform serve --host` and URLs write it
    assert address("::1", env={}) == address("[::1]", env={}) == Address("::1", 6600)
    assert str(Address("::1", 6600)) == "[::1]:6600" and str(Address("box", 7000)) == "box:7000"
    with pytest.raises(PlayerError, match="MPD_PORT"):
        address(env={"MPD_PORT": "six"})
    with pytest.raises(PlayerError, match="MPD_PORT"):   # it reached port 4464
        address(env={"MPD_PORT": "70000"})


class FakeMPD:
    """The part of :class:`reform.mpd.Client` a radio uses: a queue, the song playing, and
    the songs MPD has in its database (an add of any other is refused, as MPD does)."""

    def __init__(self, queue: list[str], known: set[str]):
        self.files, self.known, self.pos, self.first_id, self.state = list(queue), known, 0, 0, "play"
        self.random, self.elapsed = "0", "0.000"

    def status(self) -> dict:
        return {"song": str(self.pos), "state": self.state, "random": self.random, "elapsed": self.elapsed}

    def queue(self) -> list[dict]:
        return [{"file": f, "Id": str(self.first_id + i)} for i, f in enumerate(self.files)]

    def add(self, uri: str) -> None:
        if uri not in self.known:
            raise PlayerError("MPD refused add: No such directory")
        self.files.append(uri)


@pytest.fixture
def radio_home(trained, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(trained, home)
    with Library(home, create=False) as lib:
        music = os.path.commonpath([r.path for r in lib.songs()])
        names = sorted(os.path.relpath(r.path, music) for r in lib.songs())
    return home, music, names


def test_a_start_outside_the_library_and_a_refused_song_keep_the_radio_going(radio_home):
    from reform.mpd import Radio, Session
    from reform.radio import MusicRoot, Rules

    home, music, names = radio_home
    said = []
    with Library(home, create=False) as lib:
        radio = Radio(lib, Rules(artist_gap=0, album_gap=0), ahead=2, root=MusicRoot(music), say=said.append)
        mpd = FakeMPD(["Unscanned/other.flac"], known={names[1], names[2]})   # MPD has read two songs
        session = Session(played=[])
        radio.step(mpd, session)            # no seed yet: nothing queued, and no error
        assert mpd.files == ["Unscanned/other.flac"] and "songs are queued once one of the library plays" in said[-1]
        mpd.files.append(names[1])
        mpd.pos = 1
        for _ in range(4):                  # each refused song is said once and never asked for again
            radio.step(mpd, session)
        assert mpd.files == ["Unscanned/other.flac", names[1], names[2]]
        others = {os.path.join(music, n) for n in names} - {os.path.join(music, n) for n in names[1:3]}
        assert radio.refused == others and sum("MPD would not queue" in line for line in said) == len(others)
        assert said[-1] == "no song passes the radio's rules (no song of the last 50): loosen them, or add music"


def test_a_music_folder_that_holds_no_song_of_the_library_is_learned_instead(radio_home, tmp_path):
    from reform.mpd import Radio
    from reform.radio import MusicRoot, Rules

    home, music, _ = radio_home
    link = tmp_path / "MusicLink"
    link.symlink_to(music)
    with Library(home, create=False) as lib:
        said = []
        assert Radio(lib, Rules(), root=MusicRoot(link), say=said.append).root.local == music   # links resolved
        wrong = Radio(lib, Rules(), root=MusicRoot("/music"), say=said.append)   # MPD in a container
        assert wrong.root.local is None and "no song of the library lies in /music (--music-dir)" in said[-1]


def test_a_song_mpd_names_by_its_own_path_is_found_and_teaches_no_music_folder(radio_home):
    """MPD names a file added over its local socket from outside its music folder by its absolute
    path. Learned from, it made "/" the music folder: every song queued after it was refused,
    and every later song of the library said to be outside it."""
    from reform.mpd import Radio, Session
    from reform.radio import Rules

    home, music, names = radio_home
    said = []
    with Library(home, create=False) as lib:
        radio = Radio(lib, Rules(artist_gap=0, album_gap=0), ahead=1, say=said.append)   # music folder unknown
        session = Session(played=[])
        mpd = FakeMPD(["/elsewhere/x.flac", os.path.join(music, names[0]), names[1]], known=set(names))
        radio.step(mpd, session)                      # a path outside the library: no word of --music-dir
        assert said[-1] == "playing /elsewhere/x.flac (not in the library: not a seed; songs are queued once " \
                           "one of the library plays)"
        mpd.pos = 1
        radio.step(mpd, session)
        assert said[-1].startswith("playing ") and "not in the library" not in said[-1]
        assert radio.root.local is None and session.played[0].path == os.path.join(music, names[0])
        mpd.pos = 2                                   # a song of MPD's own folder: the folder is learned
        radio.step(mpd, session)
        assert radio.root.local == music and len(mpd.files) == 4 and mpd.files[3] in names
        assert not any("would not queue" in line or "not in the library" in line for line in said[1:])


@pytest.fixture
def clocked(radio_home, monkeypatch):
    """A radio keeping no song ahead over a fake MPD queue of three songs of the library, with a
    clock the test moves: (library, radio, session, queue, the songs by name, the clock)."""
    from reform import mpd as mpd_module
    from reform.mpd import Radio, Session
    from reform.radio import MusicRoot, Rules

    home, music, names = radio_home
    now = [1000.0]
    monkeypatch.setattr(mpd_module.time, "monotonic", lambda: now[0])
    with Library(home, create=False) as lib:
        radio = Radio(lib, Rules(artist_gap=0, album_gap=0), ahead=0, root=MusicRoot(music), say=lambda _: None)
        rows = {os.path.relpath(r.path, music): r for r in lib.songs()}
        songs = [rows[n] for n in names[:3]]
        yield lib, radio, Session(played=[]), FakeMPD(names[:3], known=set(names)), songs, now


def test_a_skipped_song_is_no_play(clocked):
    lib, radio, session, client, songs, now = clocked
    radio.step(client, session)
    now[0] += 2.0                                    # skipped after 2 s
    client.pos = 1
    radio.step(client, session)
    now[0] += songs[1].duration * 0.6                # played past its middle, then the next
    client.pos = 2
    radio.step(client, session)
    radio.settle(session)                            # stopped at once: the third is no play either
    assert [h for h, _ in lib.home.catalogue.most_played(5)] == [songs[1].hash]


def test_the_time_a_song_is_paused_is_not_time_played(clocked):
    """Paused at once, left paused, then skipped: the song counted as played, its wall-clock
    time since it started being all that was measured."""
    lib, radio, session, client, songs, now = clocked
    radio.step(client, session)
    now[0] += 0.5
    client.state = "pause"                           # paused at 0.5 s, for as long as the whole song
    radio.step(client, session)
    now[0] += songs[0].duration
    client.pos = 1                                   # then skipped, still paused
    radio.step(client, session)
    now[0] += 1.0
    client.state = "play"                            # the second: paused for a while, then played on
    radio.step(client, session)
    now[0] += songs[1].duration * 0.3
    client.state = "pause"
    radio.step(client, session)
    now[0] += 600.0
    client.state = "play"
    radio.step(client, session)
    now[0] += songs[1].duration * 0.3                # past its middle, pauses left out
    client.pos = 2
    radio.step(client, session)
    assert lib.home.catalogue.most_played(5) == [(songs[1].hash, 1)]


def test_the_song_playing_across_an_mpd_restart_is_one_play(radio_home, monkeypatch):
    """A restarted MPD numbers its queue anew: the song going on was said and counted again."""
    from reform import mpd as mpd_module
    from reform.mpd import Radio, Session
    from reform.radio import MusicRoot, Rules

    home, music, names = radio_home
    now = [1000.0]
    monkeypatch.setattr(mpd_module.time, "monotonic", lambda: now[0])
    said = []
    with Library(home, create=False) as lib:
        radio = Radio(lib, Rules(artist_gap=0, album_gap=0), ahead=0, root=MusicRoot(music), say=said.append)
        rows = {os.path.relpath(r.path, music): r for r in lib.songs()}
        session = Session(played=[])
        client = FakeMPD(names[:2], known=set(names))
        radio.step(client, session)
        now[0] += rows[names[0]].duration * 0.3
        client.first_id, session.reconnected = 100, True      # MPD restarted; `run` reconnected
        radio.step(client, session)
        now[0] += rows[names[0]].duration * 0.3                # together past the song's middle
        client.pos = 1
        radio.step(client, session)
        radio.settle(session)
        assert sum(line.startswith("playing ") for line in said) == 2 and len(session.played) == 2
        assert lib.home.catalogue.most_played(5) == [(rows[names[0]].hash, 1)]


def test_a_file_name_with_a_line_break_is_never_sent_to_mpd(radio_home):
    """A line ends an MPD command: such a name queued the song's next line as a command of its
    own (a file named "x\\nclear\\n.mp3" emptied the queue)."""
    from reform.mpd import Radio, Session, _quote
    from reform.radio import MusicRoot, Rules

    with pytest.raises(ValueError, match="line break"):
        _quote("Album/x\nclear\n.mp3")
    home, music, names = radio_home
    broken = names[2].replace(".", "\nclear\n.", 1)
    with Library(home, create=False) as lib:
        with lib.home.catalogue.transaction():           # a file named so, as the scan stores it
            lib.home.catalogue.conn.execute("UPDATE files SET path = ? WHERE path = ?",
                                            (os.path.join(music, broken), os.path.join(music, names[2])))
        radio = Radio(lib, Rules(artist_gap=0, album_gap=0), ahead=len(names), root=MusicRoot(music),
                      say=lambda _: None)
        mpd = FakeMPD([names[0]], known=set(names) | {broken})
        radio.step(mpd, Session(played=[]))
    assert sorted(mpd.files) == sorted(set(names) - {names[2]})


def test_a_refused_song_is_asked_for_again_once_mpd_reads_new_music(radio_home):
    from reform.mpd import Radio, Session
    from reform.radio import MusicRoot, Rules

    home, music, names = radio_home
    with Library(home, create=False) as lib:
        radio = Radio(lib, Rules(artist_gap=0, album_gap=0), ahead=len(names), root=MusicRoot(music),
                      say=lambda _: None)
        mpd = FakeMPD([names[0]], known={names[0], names[1]})
        session = Session(played=[])
        radio.step(mpd, session)
        assert mpd.files == names[:2] and len(radio.refused) == len(names) - 2
        mpd.known = set(names)                     # `mpc update` read the rest
        radio.heard(["player"])
        radio.step(mpd, session)
        assert len(mpd.files) == 2                 # nothing new: the database did not change
        radio.heard(["database"])
        radio.step(mpd, session)
        assert sorted(mpd.files) == sorted(names)


def test_a_stream_playing_at_the_start_is_not_a_missing_music_folder(radio_home):
    from reform.mpd import Radio, Session
    from reform.radio import Rules

    home, _, _ = radio_home
    said = []
    with Library(home, create=False) as lib:
        radio = Radio(lib, Rules(), say=said.append)
        radio.step(FakeMPD(["http://radio.example/stream.ogg"], known=set()), Session(played=[]))
    assert said == ["playing http://radio.example/stream.ogg (a stream, not a seed; songs are queued once one "
                    "of the library plays)"]


def test_an_mpd_that_asks_a_password_says_where_to_give_it():
    def refuse(connection):
        connection.sendall(b"OK MPD 0.23.5\n")
        connection.recv(100)
        connection.sendall(b'ACK [4@0] {status} you don\'t have permission for "status"\n')
        connection.recv(1)
    client = Client(_one_client_server(refuse), timeout=5)
    with pytest.raises(PlayerError, match="you don't have permission") as err:
        client.status()
    assert err.value.hint == "MPD asks for a password: give it as MPD_HOST=password@host"
    client.close()


def test_a_song_whose_file_is_gone_since_the_scan_is_never_queued(radio_home):
    """MPD skipped it in silence (its database not updated yet), and the radio's best pick was lost."""
    from reform.mpd import Radio, Session
    from reform.radio import MusicRoot, Rules

    home, music, names = radio_home
    with Library(home, create=False) as lib:
        with lib.home.catalogue.transaction():           # the file moved away after the scan
            lib.home.catalogue.conn.execute("UPDATE files SET path = ? WHERE path = ?",
                                            (os.path.join(music, "gone.wav"), os.path.join(music, names[2])))
        radio = Radio(lib, Rules(artist_gap=0, album_gap=0), ahead=len(names), root=MusicRoot(music),
                      say=lambda _: None)
        mpd = FakeMPD([names[0]], known=set(names) | {"gone.wav"})
        radio.step(mpd, Session(played=[]))
    assert sorted(mpd.files) == sorted(set(names) - {names[2]})


def test_nothing_is_queued_while_mpd_plays_at_random(radio_home):
    """Counted by their places in the queue, songs were added each time MPD happened to play the
    last one, and played after any other: the queue grew from 5 to 13 in 40 s."""
    from reform.mpd import Radio, Session
    from reform.radio import MusicRoot, Rules

    home, music, names = radio_home
    said = []
    with Library(home, create=False) as lib:
        radio = Radio(lib, Rules(artist_gap=0, album_gap=0), ahead=2, root=MusicRoot(music), say=said.append)
        mpd, session = FakeMPD([names[0]], known=set(names)), Session(played=[])
        mpd.random = "1"
        radio.step(mpd, session)
        radio.step(mpd, session)
        assert mpd.files == [names[0]]
        assert said[1:] == ["MPD plays its queue at random: nothing is queued until it plays in order again "
                            "(`mpc random off`)"]
        mpd.random = "0"
        radio.step(mpd, session)
        assert len(mpd.files) == 3 and said[2] == "MPD plays its queue in order again"


def test_a_skipped_song_is_no_seed(clocked, monkeypatch):
    """Skipping a song steered the radio towards it: every song that started was the newest seed."""
    from reform import mpd as mpd_module

    lib, radio, session, client, songs, now = clocked
    seeds = []

    def spy(rec, given, *args, **kwargs):
        seeds.append([r.hash for r in given])
        return next_songs(rec, given, *args, **kwargs)

    next_songs = mpd_module.next_songs
    monkeypatch.setattr(mpd_module, "next_songs", spy)
    radio.ahead = 2
    radio.step(client, session)                      # the first plays: two follow it already
    now[0] += 2.0
    client.pos = 1                                   # skipped after 2 s: the second plays, one follows
    radio.step(client, session)
    assert seeds == [[songs[1].hash]] and [r.hash for r in session.played] == [songs[1].hash, songs[0].hash]
    now[0] += songs[1].duration * 0.6
    client.files = client.files[:3]
    client.pos = 2                                   # played on past its middle: a seed
    radio.step(client, session)
    assert seeds[-1] == [songs[2].hash, songs[1].hash]
    client.files = client.files[:3] + client.files[:1]   # the skipped one played again, and played on
    now[0] += songs[2].duration * 0.6
    client.pos = 3
    radio.step(client, session)
    assert seeds[-1] == [songs[0].hash, songs[2].hash, songs[1].hash, songs[0].hash]


def test_a_song_not_scanned_yet_is_not_called_a_wrong_music_folder(radio_home):
    from reform.mpd import Radio, Session
    from reform.radio import Rules

    home, _, names = radio_home
    said = []
    with Library(home, create=False) as lib:
        radio = Radio(lib, Rules(), say=said.append)      # MPD's music folder unknown: over TCP
        radio.step(FakeMPD(["New Artist/01 Fresh.flac"], known=set()), Session(played=[]))
    assert said == ["playing New Artist/01 Fresh.flac (not in the library, not scanned yet? `reform scan` its "
                    "folder; songs are queued once one of the library plays, or give --music-dir)"]


def test_a_song_playing_when_the_radio_starts_counts_from_its_start(clocked):
    """Seen 2 s before its end, it was called skipped (and no seed) when the next began 5 s later."""
    lib, radio, session, client, songs, now = clocked
    client.pos, client.elapsed = 1, f"{songs[1].duration - 2:.3f}"
    radio.step(client, session)
    now[0] += 5.0
    client.pos, client.elapsed = 2, "0.000"
    radio.step(client, session)
    assert not session.skipped and lib.home.catalogue.most_played(5) == [(songs[1].hash, 1)]
