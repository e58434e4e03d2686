"""Scanning: incremental work, bad input recorded and skipped, interrupts that lose nothing."""

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import DyingEmbedder, ctrl_c_as_in_a_terminal, noise, reform_cmd, run_unprivileged, stereo, tone, write
from reform import Library
from reform.cli import main
from reform.config import AudioConfig, MelConfig, feature_version
from reform.library import Entry
from reform.scan import DIED_ALONE, analyse_entry, scan
from reform.audio import stream
from reform.store import SpectrogramStore


@pytest.fixture
def lib(tmp_path):
    with Library(tmp_path / "home") as library:
        yield library


def test_scan_stores_every_channel(lib, music):
    summary = lib.scan(music, jobs=1)
    assert (summary.analysed, summary.failed) == (4, 0)
    songs = {Path(s.path).name: s for s in lib.songs()}
    assert songs["02 Chord.flac"].channels == 2 and songs["01 A Four Forty.wav"].channels == 1
    spec = lib.spectrogram(songs["02 Chord.flac"].path)
    assert spec.shape == (2, 128, 1 + 16 * 22050 // 512) and spec.dtype == np.float32
    assert not np.allclose(spec[0], spec[1])  # the two channels differ, and are both kept
    tone_spec = lib.spectrogram(songs["01 A Four Forty.wav"].path)
    assert tone_spec.shape[0] == 1
    assert songs["02 Chord.flac"].artist == "Tone Band" and songs["02 Chord.flac"].album == "Sines"


def test_a_query_file_is_analysed_exactly_as_a_scanned_song(lib, music):
    """The query path had its own decode and log-mel, clipped in float32 before the store's
    float16: 14,337 values of a stereo song differed from its scan."""
    from reform.scan import analyse

    lib.scan(music, jobs=1)
    for song in lib.songs():
        spec, info = analyse(song.path, lib.audio, lib.mel)
        assert info.channels == song.channels
        np.testing.assert_array_equal(spec, lib.home.spectrograms.open(song.hash))


def test_parallel_scan_equals_serial(tmp_path, music):
    threads = torch.get_num_threads()
    with Library(tmp_path / "a") as a, Library(tmp_path / "b") as b:
        a.scan(music, jobs=1)      # in this process, one torch thread as in every worker ...
        assert torch.get_num_threads() == threads   # ... and the caller's count given back
        b.scan(music, jobs=2)
        for sa, sb in zip(a.songs(), b.songs()):
            assert sa.hash == sb.hash
            np.testing.assert_array_equal(a.spectrogram(sa.path), b.spectrogram(sb.path))


def test_second_scan_does_no_audio_work(lib, music):
    lib.scan(music, jobs=1)
    again = lib.scan(jobs=1)  # the known folders
    assert (again.analysed, again.reused, again.unchanged) == (0, 0, 4)


def test_changed_file_is_reanalysed(lib, music):
    lib.scan(music, jobs=1)
    path = music / "Tone Band" / "Sines" / "01 A Four Forty.wav"
    old = lib.song(path).hash
    write(path, tone(880, 16))
    write(music / "Tone Band" / "Sines" / "03 New.wav", tone(220, 4))
    summary = lib.scan(music, jobs=1)
    assert (summary.analysed, summary.changed, summary.unchanged) == (2, 1, 3)   # a new song and a changed one
    assert lib.song(path).hash != old
    assert not lib.home.spectrograms.exists(old)  # the old spectrogram's storage is reclaimed


def test_removed_file_leaves_catalogue_and_storage(lib, music):
    lib.scan(music, jobs=1)
    path = music / "Noise Crew" / "Hiss" / "01 White.ogg"
    digest = lib.song(path).hash
    path.unlink()
    summary = lib.scan(music, jobs=1)
    assert summary.removed == 1 and summary.freed_bytes > 0
    assert len(lib.songs()) == 3 and not lib.home.spectrograms.exists(digest)


def test_moved_file_is_recognised_not_reanalysed(lib, music):
    lib.scan(music, jobs=1)
    old = music / "Noise Crew" / "Hiss" / "01 White.ogg"
    row = lib.song(old)
    new = music / "Renamed" / "Elsewhere" / "White Noise.ogg"
    new.parent.mkdir(parents=True)
    shutil.move(old, new)
    summary = lib.scan(music, jobs=1)
    assert (summary.analysed, summary.moved, summary.removed) == (0, 1, 0)
    moved = lib.song(new)
    assert moved.id == row.id and moved.hash == row.hash and moved.artist == "Renamed"


def test_byte_identical_duplicates_are_noted(lib, music, capsys):
    lib.scan(music, jobs=1)
    src = music / "Tone Band" / "Sines" / "02 Chord.flac"
    shutil.copy(src, music / "Tone Band" / "Sines" / "02 Chord (copy).flac")
    summary = lib.scan(music, jobs=1)
    assert (summary.analysed, summary.reused, summary.duplicates) == (0, 1, 1)
    assert lib.status()["duplicates"] == 1
    assert main(["--home", str(lib.home.path), "status"]) == 0     # 5 files, 4 recordings to embed
    out = capsys.readouterr().out
    assert "songs:        5 " in out and "none of 4 distinct recordings" in out
    shutil.copy(src, music / "Tone Band" / "Sines" / "02 Chord (another).flac")
    assert main(["--home", str(lib.home.path), "scan", str(music), "--no-embed"]) == 0   # the parts add up
    assert "reused 1 (copies of known audio 1)," in capsys.readouterr().out


def test_copies_in_one_parallel_scan_are_decoded_once(lib, tmp_path):
    """Copies have one size, so the longest-first order started them side by side and two
    workers decoded the same audio; files of one length with other bytes still run."""
    folder = tmp_path / "copies"
    write(folder / "a.wav", stereo(tone(330, 12), noise(12, seed=1)))
    for name in ("b.wav", "c.wav"):
        shutil.copy(folder / "a.wav", folder / name)
    write(folder / "d.wav", stereo(tone(440, 12), noise(12, seed=2)))    # a.wav's size, other audio
    summary = lib.scan(folder, jobs=2)
    assert (summary.analysed, summary.reused, summary.duplicates) == (2, 2, 2)
    assert len({row.hash for row in lib.songs()}) == 2


def test_the_scan_holds_back_only_files_whose_bytes_agree(tmp_path):
    from reform.scan import _Copies

    files = {name: tmp_path / name for name in ("a", "b", "c", "d")}
    files["a"].write_bytes(b"x" * 200_000)
    files["b"].write_bytes(b"x" * 200_000)           # a's copy
    files["c"].write_bytes(b"y" * 200_000)           # a's size, other bytes
    files["d"].write_bytes(b"x" * 10)                # a size of its own: never read
    entries = [Entry(str(p), p.stat().st_size, 0, str(tmp_path)) for p in files.values()]
    copies = _Copies(entries)
    a, c, d = copies.take(), copies.take(), copies.take()
    assert [Path(t[0].path).name for t in (a, c, d)] == ["a", "c", "d"]     # b waits for a
    assert copies.take() is None
    copies.done(a[1])
    b = copies.take()
    assert Path(b[0].path).name == "b" and copies.take() is None


def test_a_retagged_song_is_not_decoded_again(lib, music):
    """A tagger rewrites the file: its new tags are read, its audio is not decoded again, and a
    copy under other tags (the same recording in a compilation) is the same recording."""
    import mutagen

    lib.scan(music, jobs=1)
    song = music / "Tone Band" / "Sines" / "02 Chord.flac"
    copy = music / "Various" / "Hits" / "07 Chord.flac"
    copy.parent.mkdir(parents=True)
    shutil.copy(song, copy)
    for path, title in ((song, "Chord, remastered title"), (copy, "Chord (compilation)")):
        tags = mutagen.File(path)
        tags["title"] = [title]
        tags.save()
    summary = lib.scan(music, jobs=1)
    assert (summary.analysed, summary.reused, summary.retagged, summary.duplicates) == (0, 2, 1, 1)
    titles = {Path(row.path).name: row.title for row in lib.songs()}
    assert titles["02 Chord.flac"] == "Chord, remastered title" and titles["07 Chord.flac"] == "Chord (compilation)"


def test_bad_inputs_are_recorded_and_the_scan_goes_on(lib, tmp_path):
    root = tmp_path / "bad"
    write(root / "good.wav", tone(440, 3))
    (root / "empty.wav").write_bytes(b"")
    full = write(tmp_path / "full.flac", stereo(tone(440, 10), noise(10)))
    (root / "truncated.flac").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    (root / "random.ogg").write_bytes(np.random.default_rng(1).integers(0, 256, 40000, dtype=np.uint8).tobytes())
    (root / "text.mp3").write_text("not an mp3 at all\n" * 50)
    write(root / "silence.wav", np.zeros(22050 * 3, np.float32))
    write(root / "blip.wav", tone(440, 0.3))
    write(root / "shorter than a window.wav", tone(330, 5))    # 215 frames < 640: kept
    write(root / "Ünïcödé folder" / "sóng with spaces.flac", tone(550, 3))
    os.symlink(root, root / "loop")
    summary = lib.scan(root, jobs=2)
    reasons = {Path(f.path).name: f.reason for f in lib.failures()}
    assert "empty" in reasons["empty.wav"]
    assert "truncated" in reasons["truncated.flac"] or "part-way" in reasons["truncated.flac"]
    assert "not a readable audio file" in reasons["random.ogg"]
    assert "not a readable audio file" in reasons["text.mp3"]
    assert "Errno" not in reasons["text.mp3"] and str(root) not in reasons["text.mp3"]   # said once, plainly
    assert "silent" in reasons["silence.wav"]
    assert "too short" in reasons["blip.wav"]
    assert "loop" in reasons["loop"]
    assert all("\n" not in r for r in reasons.values())
    ok = {Path(s.path).name for s in lib.songs()}
    assert ok == {"good.wav", "shorter than a window.wav", "sóng with spaces.flac"}
    assert summary.failed == len(reasons) == 7
    short = lib.spectrogram(root / "shorter than a window.wav")
    assert short.shape[2] == 1 + 5 * 22050 // 512 < 640
    # failures are not retried while the file is unchanged, and are retried once it changes
    again = lib.scan(root, jobs=1)
    assert (again.failed_before, again.failed, again.analysed) == (7, 0, 0)
    write(root / "silence.wav", tone(200, 3))
    assert lib.scan(root, jobs=1).analysed == 1
    forced = lib.scan(root, jobs=1, retry_failed=True)  # `scan --retry-failed`: all tried again
    assert (forced.failed_before, forced.failed, forced.analysed) == (1, 5, 0)  # the loop and broken


def test_the_songs_of_a_folder_that_cannot_be_listed_are_kept():
    """A folder whose permissions changed for a while lost its songs and their spectrograms,
    decoded again once it could be read: kept, as an unmounted disk's are."""
    from reform.library import Problem, plan
    from reform.store import FileRow

    def row(path):
        return FileRow(1, path, 1, 1, "h", "ok", None, 1.0, 22050, 1, 10, "x", "v1",
                       None, None, None, None, None, None, 0.0)

    known = {p: row(p) for p in ("/m/locked/a.ogg", "/m/locked/deep/b.ogg", "/m/open/c.ogg", "/m/lockedness.ogg")}
    p = plan([Entry("/m/open/c.ogg", 1, 1, "/m")], [Problem("/m/locked", "permission denied")], known, ["/m"], "v1")
    assert [r.path for r in p.removed] == ["/m/lockedness.ogg"]   # gone; the locked folder's songs stay


def test_removed_counts_songs_only(lib, tmp_path):
    root = tmp_path / "m"
    write(root / "song.wav", tone(440, 5.0))
    (root / "broken.mp3").write_bytes(b"not audio at all" * 100)
    assert lib.scan(root, jobs=1).failed == 1
    (root / "broken.mp3").unlink()   # a failure leaves, no song did
    assert lib.scan(root, jobs=1).removed == 0
    (root / "song.wav").unlink()
    write(root / "other.wav", tone(330, 5.0))
    assert lib.scan(root, jobs=1).removed == 1


def test_a_folder_inside_a_music_folder_is_not_one_of_its_own(lib, tmp_path):
    """Scanned once by itself, a subfolder was remembered beside its parent, and once deleted its
    songs were kept as if a disk were away, where in another home they left at once."""
    root = tmp_path / "m"
    write(root / "sub" / "a.wav", tone(440, 5.0))
    write(root / "b.wav", tone(330, 5.0))
    lib.scan(root / "sub", jobs=1)
    lib.scan(root, jobs=1)                          # the outer folder takes the inner one's place
    lib.scan(root / "sub", jobs=1)
    lib.scan(root / "b.wav", jobs=1)
    assert lib.home.roots() == [str(root)]
    shutil.rmtree(root / "sub")
    summary = lib.scan(jobs=1)
    assert summary.removed == 1 and not summary.vanished


def test_unreadable_file_is_recorded(tmp_path):
    root, home = tmp_path / "music", tmp_path / "home"
    write(root / "fine.wav", tone(440, 3))
    locked = write(root / "locked.wav", tone(440, 3))
    os.chmod(locked, 0)
    result = run_unprivileged(reform_cmd("--home", str(home), "-q", "scan", str(root), "--jobs", "1"))
    assert result.returncode == 0, result.stderr
    errors = run_unprivileged(reform_cmd("--home", str(home), "errors", "--json"))
    failures = json.loads(errors.stdout)
    assert [Path(f["path"]).name for f in failures] == ["locked.wav"]
    assert "permission denied" in failures[0]["reason"]
    os.chmod(locked, 0o644)  # the cause went away, the file did not change: tried again
    result = run_unprivileged(reform_cmd("--home", str(home), "-q", "scan", "--jobs", "1"))
    assert "failed 0" in result.stdout and "library: 2 songs" in result.stdout, result.stdout


def test_a_song_that_cannot_be_read_again_for_a_passing_cause_keeps_its_analysis(tmp_path, monkeypatch, capsys):
    """A song analysed before and touched (a tagger, a copy in progress) whose reading failed
    for a cause that passes was recorded as failed: the scan's end then dropped its embedding and
    spectrogram, and `check --repair` lost a song that way."""
    import reform.scan as scan_module

    root, home = tmp_path / "music", tmp_path / "home"
    write(root / "kept.wav", tone(440, 3))
    write(root / "other.wav", tone(660, 3))
    assert main(["--home", str(home), "-q", "scan", str(root), "--jobs", "1"]) == 0
    with Library(home, create=False) as lib:
        before = {Path(r.path).name: r for r in lib.songs()}
    os.utime(root / "kept.wav", ns=(time.time_ns(), time.time_ns()))
    write(root / "new.wav", tone(880, 3))
    real = scan_module._analyse

    def unreadable(entry, *args):
        if Path(entry.path).name in ("kept.wav", "new.wav"):
            raise PermissionError(13, "Permission denied")
        return real(entry, *args)
    monkeypatch.setattr(scan_module, "_analyse", unreadable)
    capsys.readouterr()
    assert main(["--home", str(home), "scan", "--jobs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "1 song could not be read again and keeps its earlier analysis (the next scan tries again): " in printed
    assert "kept.wav (permission denied: the file cannot be read)" in printed and "failed 1" in printed
    with Library(home, create=False) as lib:
        songs = {Path(r.path).name: r for r in lib.songs()}
        assert songs["kept.wav"] == before["kept.wav"] and lib.recommender().has(before["kept.wav"].hash)
        assert lib.spectrogram(str(root / "kept.wav")).shape[-1] > 0
        assert [Path(r.path).name for r in lib.failures()] == ["new.wav"]   # a new file fails as before
    monkeypatch.setattr(scan_module, "_analyse", real)
    with Library(home, create=False) as lib:
        summary = lib.scan(jobs=1)
    assert summary.reused == 1 and summary.analysed == 1 and not summary.kept and summary.failed == 0


def test_file_changing_during_scan_is_not_stored(tmp_path):
    """The worker compares the file's stat from the walk with what it finds when it reads it."""
    path = write(tmp_path / "m" / "a.wav", tone(440, 3))
    st = path.stat()
    stale = Entry(str(path), st.st_size, st.st_mtime_ns - 10**9, str(tmp_path / "m"))
    store = SpectrogramStore(tmp_path / "spec", feature_version(AudioConfig(), MelConfig()))
    result = analyse_entry(stale, store, AudioConfig(), MelConfig())
    assert "changed while it was being scanned" in result.reason
    assert list(store.digests()) == []


SONGS = 24


def _slow_library(root: Path, n: int) -> None:
    for i in range(n):
        write(root / f"song {i:02d}.flac", stereo(noise(20, seed=i), tone(200 + 10 * i, 20)))


def _check_consistent(home: Path) -> int:
    conn = sqlite3.connect(home / "catalogue.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with Library(home, create=False) as lib:
        for song in lib.songs():
            spec = lib.spectrogram(song.path)  # complete and readable
            assert spec.shape == (song.channels, 128, song.frames) and np.isfinite(spec).all()
        return len(lib.songs())


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
def test_interrupted_scan_keeps_a_consistent_catalogue_and_resumes(tmp_path, sig):
    """SIGTERM (a service manager, `kill`) stops a scan as Ctrl-C does, with its own exit code;
    it had ended the process without the "interrupted" line."""
    root, home = tmp_path / "music", tmp_path / "home"
    _slow_library(root, SONGS)
    proc = subprocess.Popen(reform_cmd("--home", str(home), "-q", "scan", str(root), "--jobs", "2"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                            preexec_fn=ctrl_c_as_in_a_terminal)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            # read-only: connecting would otherwise create an empty catalogue, which the
            # scan rightly refuses to take for a new library
            done = sqlite3.connect(f"file:{home / 'catalogue.db'}?mode=ro", uri=True).execute(
                "SELECT COUNT(*) FROM files WHERE status = 'ok'").fetchone()[0]
        except sqlite3.Error:
            done = 0
        if done >= 3:
            break
        time.sleep(0.02)
    if sig == signal.SIGKILL:
        os.killpg(proc.pid, signal.SIGKILL)   # the whole process tree, as a crash would
    else:
        proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    if sig != signal.SIGKILL:
        assert proc.returncode == 128 + sig and b"interrupted" in out
    saved = _check_consistent(home)
    assert 3 <= saved < SONGS
    resumed = subprocess.run(reform_cmd("--home", str(home), "-q", "scan", str(root), "--jobs", "2", "--no-embed"),
                             capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0
    assert "going on with the scan that was interrupted" in resumed.stdout   # it went on without a word
    assert f"unchanged {saved}, " in resumed.stdout
    assert _check_consistent(home) == SONGS


def test_ctrl_c_while_the_workers_start_prints_no_traceback(tmp_path):
    """Ctrl-C reaches the whole process group: the forkserver importing torch, and a worker
    asked for just before the scan cleaned up, had each printed a page of traceback."""
    root = tmp_path / "music"
    _slow_library(root, 12)   # still scanning at 2.5 s (4 songs were done by then on a quiet machine)
    for delay in (0.5, 1.5, 2.5):   # before, while and after the workers start here
        home = tmp_path / f"home{delay}"
        proc = subprocess.Popen(reform_cmd("--home", str(home), "-q", "scan", str(root), "--jobs", "2"),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True, preexec_fn=ctrl_c_as_in_a_terminal)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        # 130, or killed by the SIGINT itself: an interrupt in some windows (start-up, shutdown)
        # ends the process so, without a word, in the code before this test too
        assert proc.returncode in (0, 130, -signal.SIGINT) and "Traceback" not in err, (delay, err)


def test_missing_folder_is_an_error(lib, tmp_path):
    from reform.errors import LibraryError

    with pytest.raises(LibraryError, match="no such"):
        lib.scan(tmp_path / "nope")


def test_a_pipe_named_like_a_song_is_not_a_regular_file(tmp_path):
    """A FIFO (or a link to a device) was reported as 'the file is empty'; it is never opened."""
    music = tmp_path / "music"
    write(music / "song.wav", tone(440, 2))
    os.mkfifo(music / "pipe.flac")
    with Library(tmp_path / "home") as lib:
        summary = lib.scan(music, jobs=1)
        assert summary.analysed == 1
        assert [(os.path.basename(f.path), f.reason) for f in lib.failures()] == \
            [("pipe.flac", "not a regular file (a pipe, socket or device)")]


def test_a_name_that_is_not_utf8_is_passed_over_and_named(tmp_path):
    music = tmp_path / "music"
    write(music / "song.wav", tone(440, 2))
    shutil.copy(music / "song.wav", os.path.join(os.fsencode(music), b"caf\xe9 latin1.wav"))
    home = tmp_path / "home"
    for _ in range(2):   # the second scan must not stumble on it either
        out = subprocess.run(reform_cmd("--home", home, "scan", music, "--no-embed"),
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "passed over 1 name that is not UTF-8 (rename to UTF-8" in out.stdout
        assert "caf\\xe9 latin1.wav" in out.stdout
    with Library(home, create=False) as lib:
        assert [os.path.basename(r.path) for r in lib.home.catalogue.files()] == ["song.wav"]
    # said by `reform status` and `reform errors` too, not only by the scan that finds it
    status = subprocess.run(reform_cmd("--home", home, "status"), capture_output=True, text=True, timeout=60)
    assert f"passed over:  1 name not UTF-8 (see `reform --home {home} errors`)" in status.stdout
    errors = subprocess.run(reform_cmd("--home", home, "errors"), capture_output=True, text=True, timeout=60)
    assert errors.returncode == 0 and "no failures" not in errors.stdout
    assert errors.stdout.splitlines()[-1] == os.path.join(str(music), "caf\\xe9 latin1.wav")
    errors = subprocess.run(reform_cmd("--home", home, "errors", "--json"), capture_output=True, text=True,
                            timeout=60)
    assert [e["path"] for e in json.loads(errors.stdout)] == [os.path.join(str(music), "caf\\xe9 latin1.wav")]
    os.unlink(os.path.join(os.fsencode(music), b"caf\xe9 latin1.wav"))   # renamed, or gone: no longer said
    assert subprocess.run(reform_cmd("--home", home, "-q", "scan", "--no-embed"), timeout=120).returncode == 0
    errors = subprocess.run(reform_cmd("--home", home, "errors"), capture_output=True, text=True, timeout=60)
    assert errors.stdout == "no failures\n"
    shutil.copy(music / "song.wav", os.path.join(os.fsencode(music), b"caf\xe9 latin1.wav"))
    named = subprocess.run(reform_cmd("--home", home, "scan", os.path.join(os.fsencode(music), b"caf\xe9 latin1.wav")),
                           capture_output=True, text=True, timeout=60)
    assert named.returncode == 1 and "not UTF-8" in named.stderr and "caf\\xe9" in named.stderr


def test_a_folder_left_without_audio_keeps_its_songs_until_told_to_forget_them(tmp_path):
    """An unmounted disk leaves an empty folder, or none: its songs (and their hours of
    analysis) stay until `--forget-missing`; the library then holds no song, and an index of
    no song must be written and read like any other."""
    music, other = tmp_path / "music", tmp_path / "other"
    write(music / "one.wav", tone(440, 3))
    write(other / "two.wav", tone(660, 3))
    with Library(tmp_path / "home") as lib:
        assert lib.scan(music, other, jobs=1, embed=True).embedded == 2
        (music / "one.wav").unlink()
        summary = lib.scan(jobs=1, embed=True)
        assert summary.vanished == {str(music): 1} and summary.removed == 0 and len(lib.songs()) == 2
        music.rmdir()                          # gone altogether: the other folder is still scanned
        write(other / "three.wav", noise(3))
        summary = lib.scan(jobs=1, embed=True)
        assert summary.vanished == {str(music): 1} and summary.analysed == 1 and len(lib.songs()) == 3
        (other / "two.wav").unlink()           # a song deleted where others remain is removed
        assert lib.scan(jobs=1, embed=True).removed == 1
        (other / "three.wav").unlink()
        # unnamed, the folders without audio keep their songs (a `scan --forget-missing` from cron
        # while a disk was away emptied the library); named, they are forgotten
        summary = lib.scan(jobs=1, embed=True, forget_missing=True)
        assert summary.vanished == {str(music): 1, str(other): 1} and summary.removed == 0
        summary = lib.scan(music, other, jobs=1, embed=True, forget_missing=True)
        assert summary.vanished == {} and summary.removed == 2 and lib.songs() == []
        write(other / "four.wav", tone(660, 3))
        write(other / "five.wav", noise(3))
        assert lib.scan(jobs=1, embed=True).embedded == 2
        seed = lib.resolve(str(other / "four.wav"))
        assert [r.row.title for r in lib.recommender().similar(seed, 5)] == ["five"]
        assert lib.home.roots() == [str(other)]   # the folder gone with its songs is forgotten
    # a moved folder: the old place, gone, is forgotten with its songs when asked, by name too
    moved = tmp_path / "moved"
    other.rename(moved)
    assert main(["--home", str(tmp_path / "home"), "-q", "scan", str(moved), "--jobs", "1"]) == 0
    assert main(["--home", str(tmp_path / "home"), "-q", "scan", "--forget-missing", str(other), "--jobs", "1"]) == 0
    with Library(tmp_path / "home") as lib:
        assert lib.home.roots() == [str(moved)] and {Path(s.path).parent for s in lib.songs()} == {moved}


def test_a_disk_linked_into_the_music_folder_keeps_its_songs_while_it_is_not_mounted(tmp_path):
    """music/ext -> /media/disk: with the disk unmounted the link dangled, and the next scan
    removed its songs and deleted their spectrograms without a word."""
    music, disk = tmp_path / "music", tmp_path / "disk"
    write(music / "here.wav", tone(440, 3))
    write(disk / "Album" / "there.wav", tone(660, 3))
    write(disk / "Album" / "also.wav", noise(3))
    (music / "ext").symlink_to(disk)
    with Library(tmp_path / "home") as lib:
        assert lib.scan(music, jobs=1).analysed == 3
        disk.rename(tmp_path / "unmounted")
        summary = lib.scan(jobs=1)
        assert summary.vanished == {str(music / "ext"): 2} and summary.removed == 0
        assert len(lib.songs()) == 3 and all(lib.home.spectrograms.exists(s.hash) for s in lib.songs())
        (tmp_path / "unmounted").rename(disk)                  # mounted again: nothing to do
        summary = lib.scan(jobs=1)
        assert (summary.analysed, summary.reused, summary.unchanged, summary.vanished) == (0, 0, 3, {})
        (disk / "Album" / "also.wav").unlink()                 # a song deleted on the disk is removed
        assert lib.scan(jobs=1).removed == 1
        disk.rename(tmp_path / "unmounted")
        summary = lib.scan(jobs=1, forget_missing=True)        # unless told, the disk's songs stay
        assert summary.removed == 0 and summary.vanished == {str(music / "ext"): 1}
        summary = lib.scan(music, jobs=1, forget_missing=True)   # told: the music folder named
        assert summary.removed == 1 and [s.title for s in lib.songs()] == ["here"]


def test_the_songs_of_a_gone_disk_inside_the_music_folder_can_be_forgotten_alone(tmp_path):
    """The scan's advice, `reform scan --forget-missing FOLDER` for the gone disk, answered
    'no such file or folder', which left only forgetting every missing folder at once."""
    music, disk = tmp_path / "music", tmp_path / "disk"
    write(music / "here.wav", tone(440, 3))
    write(disk / "there.wav", tone(660, 3))
    (music / "ext").symlink_to(disk)
    with Library(tmp_path / "home") as lib:
        lib.scan(music, jobs=1)
        disk.rename(tmp_path / "gone")
        assert lib.scan(jobs=1).vanished == {str(music / "ext"): 1}
        summary = lib.scan(music / "ext", jobs=1, forget_missing=True)
        assert summary.removed == 1 and [s.title for s in lib.songs()] == ["here"]
        assert lib.home.roots() == [str(music)]


def test_a_disk_mounted_in_the_music_folder_keeps_its_songs_while_it_is_not(tmp_path, monkeypatch):
    """An unmounted disk leaves its empty mount point inside the music folder."""
    import reform.library as library_module

    music = tmp_path / "music"
    write(music / "here.wav", tone(440, 3))
    write(music / "also.wav", noise(3))
    write(music / "disk" / "there.wav", tone(660, 3))
    identity = library_module._identity

    def mounted(path):   # music/disk on a device of its own, as a mount point is
        dev, ino = identity(path)
        return (dev + 1, ino) if path == str(music / "disk") else (dev, ino)

    with Library(tmp_path / "home") as lib:
        monkeypatch.setattr(library_module, "_identity", mounted)
        assert lib.scan(music, jobs=1).analysed == 3
        assert lib.home.mounts() == [str(music / "disk")]
        monkeypatch.setattr(library_module, "_identity", identity)
        (music / "disk" / "there.wav").unlink()                   # unmounted: an empty folder is left
        summary = lib.scan(jobs=1)
        assert summary.vanished == {str(music / "disk"): 1} and len(lib.songs()) == 3
        (music / "here.wav").unlink()                             # a song beside it goes as before
        assert lib.scan(jobs=1).removed == 1


# -- nothing lost, whatever happens to the home ---------------------------------------------------------
def test_hours_of_silence_are_rejected_without_decoding_them(lib, tmp_path, monkeypatch):
    import reform.scan as scan_module

    monkeypatch.setattr(scan_module, "SILENT_LEAD_SECONDS", 10)
    decoded = []

    def counting(path, cfg):
        info, blocks = stream(path, cfg, block_seconds=5)
        return info, (decoded.append(b.shape[1]) or b for b in blocks)

    monkeypatch.setattr(scan_module, "stream", counting)
    write(tmp_path / "quiet" / "silence.wav", np.zeros(22050 * 60, np.float32))
    summary = lib.scan(tmp_path / "quiet", jobs=1)
    assert summary.failed == 1 and "silent (no sample above -80 dBFS in its first 0.166667 minutes)" \
        in summary.failures[0].reason
    assert sum(decoded) <= 15 * 22050                      # 15 of the 60 seconds, then it stopped


def test_a_song_written_but_not_recorded_is_embedded_by_the_next_scan(trained, tmp_path):
    """A crash between storing a spectrogram and recording the song: the next scan reuses
    the spectrogram, and embeds the song rather than leaving it without an embedding."""
    home = tmp_path / "home"
    shutil.copytree(trained, home)
    with Library(home) as lib:
        song = lib.songs()[0]
        with lib.home.catalogue.transaction() as conn:    # the state such a crash leaves
            conn.execute("DELETE FROM files WHERE path = ?", (song.path,))
            conn.execute("DELETE FROM embeddings WHERE hash = ?", (song.hash,))
        assert lib.home.spectrograms.exists(song.hash)
        summary = lib.scan(jobs=1, embed=True)
        assert (summary.reused, summary.analysed, summary.embedded) == (1, 0, 1)
        assert lib.stale_embeddings() == 0


def test_a_deleted_spectrogram_is_analysed_again_by_the_next_scan(lib, music):
    lib.scan(music, jobs=1)
    song = lib.songs()[0]
    lib.home.spectrograms.path(song.hash).unlink()
    summary = lib.scan(jobs=1)
    assert (summary.analysed, summary.unchanged) == (1, 3)
    assert lib.spectrogram(song.path).shape == (song.channels, 128, song.frames)


def test_a_damaged_spectrogram_is_analysed_again_rather_than_reused(lib, music, tmp_path):
    lib.scan(music, jobs=1)
    song = lib.song(music / "Tone Band" / "Sines" / "01 A Four Forty.wav")
    with open(lib.home.spectrograms.path(song.hash), "r+b") as f:
        f.truncate(1000)
    shutil.copy(song.path, music / "copy.wav")                 # the same audio under a new path
    summary = lib.scan(jobs=1)
    assert (summary.analysed, summary.reused) == (1, 0)
    assert lib.spectrogram(music / "copy.wav").shape == (1, 128, song.frames)


@pytest.mark.parametrize("deaths, failed", [(1, 0), (2, 1)])
def test_a_worker_that_dies_stops_neither_the_scan_nor_the_next_one(tmp_path, music, deaths, failed):
    """A crash in a native decoder kills the worker, which breaks the whole pool and names no
    file.  Every file then in flight is tried again alone: one that kills its worker even so is
    recorded as failed (and tried again by the next scan); the others are analysed."""
    write(music / "Fatal" / "11 seconds.wav", tone(880, 11))
    tickets = tmp_path / "tickets"
    tickets.mkdir()
    for n in range(deaths):
        (tickets / str(n)).touch()
    with Library(tmp_path / "home") as lib:
        dying = DyingEmbedder(lib.scan_embedding(), 1 + 11 * 22050 // 512, str(tickets))
        first = scan(lib.home, [str(music)], embedding=dying, jobs=2)
        assert not list(tickets.iterdir())   # it died as often as it was told to
        done = first.analysed + first.reused   # reused: a spectrogram stored before its worker died
        assert (done, first.failed, first.embedded) == (5 - failed, failed, 5 - failed)
        assert [(Path(f.entry.path).name, f.reason, f.retry) for f in first.failures] == \
            [("11 seconds.wav", DIED_ALONE, True)] * failed
        again = lib.scan(embed=True, jobs=2)
        assert (again.failed, again.analysed + again.reused, again.unchanged) == (0, failed, 5 - failed)
        assert len(lib.songs()) == 5 and lib.stale_embeddings() == 0
        assert not list(lib.home.spectrograms.root.rglob("*.tmp-*"))


def test_a_full_disk_stops_the_scan_in_one_line_and_loses_nothing(tmp_path, music):
    import resource

    home = tmp_path / "home"

    def small_disk():                                   # every file may grow to 100 KB only
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    out = subprocess.run(reform_cmd("--home", str(home), "-q", "scan", str(music), "--jobs", "2",
                                    "--no-embed"), capture_output=True, text=True, timeout=120,
                         preexec_fn=small_disk)
    err = out.stderr.splitlines()
    assert out.returncode == 1 and len(err) == 2, out.stderr
    assert err[0].startswith("error: ") and "cannot write" in err[0] and "File too large" in err[0]
    assert err[1].startswith("hint: free some disk space")
    assert not list(home.rglob("*.tmp-*"))
    conn = sqlite3.connect(home / "catalogue.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM files WHERE status = 'failed'").fetchone()[0] == 0
    conn.close()
    with Library(home) as lib:                          # space freed: the scan carries on
        summary = lib.scan(jobs=1)
        assert summary.analysed + summary.unchanged == 4 and summary.failed == 0


# -- embedding in the scan's own process, many songs per batch -------------------------------------
def _more_music(folder: Path) -> Path:
    write(folder / "a.wav", stereo(tone(330, 20), noise(20, seed=3)))
    write(folder / "b.flac", tone(550, 18))
    write(folder / "c.ogg", noise(12, seed=4))
    shutil.copy(folder / "a.wav", folder / "a copy.wav")  # one embedding for both
    return folder


def test_embedding_across_songs_in_this_process_equals_embedding_in_the_workers(trained, tmp_path):
    more = _more_music(tmp_path / "more")
    vectors, summaries = {}, {}
    for across in (False, True):
        home = tmp_path / f"home-{across}"
        shutil.copytree(trained, home)
        with Library(home) as lib:
            summaries[across] = lib.scan(more, jobs=2, embed=True, across_songs=across)
            assert lib.stale_embeddings() == 0
            vectors[across] = lib.embeddings()[1]
    assert summaries[True].embedded == summaries[False].embedded == 4
    # the copy is analysed too, or reused when its twin's spectrogram is stored first (a race
    # between the two workers that neither result depends on)
    assert summaries[True].analysed + summaries[True].reused == 4 and summaries[True].duplicates == 1
    assert vectors[True].keys() == vectors[False].keys()
    for key, vector in vectors[False].items():
        np.testing.assert_allclose(vectors[True][key], vector, atol=2e-3)  # bfloat16, other batches


def test_songs_waiting_for_their_batch_at_ctrl_c_are_embedded_by_the_next_scan(trained, tmp_path,
                                                                                monkeypatch):
    import reform.embed

    home = tmp_path / "home"
    shutil.copytree(trained, home)
    more = _more_music(tmp_path / "more")
    added = []

    def add_then_ctrl_c(self, key, spec):
        added.append(key)
        if len(added) == 2:
            raise KeyboardInterrupt
        return original(self, key, spec)

    original = reform.embed.SongBatches.add
    monkeypatch.setattr(reform.embed, "BATCH_WINDOWS", 10_000)  # the first song waits for more
    monkeypatch.setattr(reform.embed.SongBatches, "add", add_then_ctrl_c)
    with Library(home) as lib:
        before = len(lib.songs())
        summary = lib.scan(more, jobs=1, embed=True, across_songs=True)
        assert summary.interrupted and len(lib.songs()) == before  # nothing recorded half-done
        monkeypatch.undo()
        again = lib.scan(more, jobs=1, embed=True, across_songs=True)
        assert again.reused == 3 and again.analysed == 1   # a, its copy and b were stored
        assert again.embedded == 4 and lib.stale_embeddings() == 0


def test_a_damaged_active_model_stops_the_scan_instead_of_failing_the_songs(trained, tmp_path, capsys):
    """The model, not the song, is what cannot be used: no song is recorded as failed (a later
    scan would skip it as a song that failed and did not change)."""
    from reform.errors import ModelError

    home = tmp_path / "home"
    shutil.copytree(trained, home)
    model = home / "models" / "tiny" / "model.pt"
    model.write_bytes(model.read_bytes()[:5000])
    for jobs in (1, 2):
        new = tmp_path / f"new{jobs}"
        for i in range(3):                                        # songs the library has not heard
            write(new / f"{i}.wav", tone(500 + 10 * i + jobs, 16))
        with Library(home, create=False) as lib:
            with pytest.raises(ModelError, match="not a model file") as err:
                lib.scan(new, jobs=jobs, embed=True)
            assert "reform use shipped" in err.value.hint and lib.failures() == []
    assert main(["--home", str(home), "check"]) == 1
    out = capsys.readouterr().out
    assert "run tiny: model.pt: the model file is damaged" in out
    assert "the copies beside the catalogue: 1 problem" in out
    assert main(["--home", str(home), "check", "--repair"]) == 1      # a repair would embed with it
    assert "not a model file" in capsys.readouterr().err


def test_an_overwritten_weight_of_the_active_model_is_found_before_it_embeds(trained, tmp_path, capsys):
    """torch loads a model whose weights were overwritten in place without a word (the archive's
    checksums go unread): a scan embedded new songs with it, and `check` found nothing."""
    import zipfile

    from reform.errors import ModelError

    home = tmp_path / "home"
    shutil.copytree(trained, home)
    model = home / "models" / "tiny" / "model.pt"
    with zipfile.ZipFile(model) as archive:
        part = max(archive.infolist(), key=lambda i: i.file_size)      # the largest weight
    data = bytearray(model.read_bytes())
    at = part.header_offset + 30 + len(part.filename.encode()) + len(part.extra) + part.file_size // 2
    data[at:at + 16] = bytes(16)
    model.write_bytes(bytes(data))
    write(tmp_path / "new" / "song.wav", tone(523, 16))
    with Library(home, create=False) as lib:
        with pytest.raises(ModelError, match="does not match its checksum") as err:
            lib.scan(tmp_path / "new", jobs=1, embed=True)
        assert "reform use shipped" in err.value.hint and lib.failures() == []
    assert main(["--home", str(home), "check"]) == 1
    assert "does not match its checksum" in capsys.readouterr().out
    assert main(["--home", str(home), "embed"]) == 1
    assert "does not match its checksum" in capsys.readouterr().err


def test_untagged_songs_take_their_names_from_the_music_folder_whichever_folder_is_scanned(tmp_path):
    """Artist and album of untagged files came from the folders below the one typed: a rescan of
    ~/Music/Artist/Album after a change took both away, and songs scanned that way first never got
    them from a later scan of ~/Music (they were unchanged, so not read again)."""
    music = tmp_path / "music"
    album = music / "Bjork" / "Debut"
    for i, f in enumerate(("01 Human Behaviour.wav", "02 Crying.wav")):
        write(album / f, tone(330 + 110 * i, 2.0))

    def names(home):
        with Library(home, create=False) as lib:
            return {(r.artist, r.album) for r in lib.songs()}

    first = tmp_path / "album-first"
    assert main(["--home", str(first), "-q", "scan", str(album), "--no-embed"]) == 0
    assert names(first) == {(None, None)}
    assert main(["--home", str(first), "-q", "scan", str(music), "--no-embed"]) == 0
    assert names(first) == {("Bjork", "Debut")}
    whole = tmp_path / "whole-first"
    assert main(["--home", str(whole), "-q", "scan", str(music), "--no-embed"]) == 0
    for f in album.iterdir():
        os.utime(f, ns=(f.stat().st_atime_ns, f.stat().st_mtime_ns + 10**9))   # changed: read again
    assert main(["--home", str(whole), "-q", "scan", str(album), "--no-embed"]) == 0
    assert names(whole) == {("Bjork", "Debut")}


def test_a_refused_forget_names_ten_music_folders_and_counts_the_rest(tmp_path, capsys):
    """A library of loose files follows each file: the refusal's hint listed all 342 of them."""
    files = [tmp_path / "music" / f"{i:02d}.wav" for i in range(12)]
    for i, f in enumerate(files):
        write(f, tone(200 + 20 * i, 0.5))
    home = str(tmp_path / "home")
    assert main(["--home", home, "-q", "scan", *map(str, files), "--no-embed"]) == 0
    assert main(["--home", home, "forget", str(tmp_path / "elsewhere")]) == 1
    err = capsys.readouterr().err
    assert "; ".join(map(str, sorted(files)[:10])) + "; and 2 more (`reform --home" in err
    assert str(sorted(files)[10]) not in err


def test_a_folder_that_is_still_there_can_be_forgotten(tmp_path, capsys):
    """`scan --forget-missing` acts on folders that are gone, so a folder added by mistake could
    not leave the library: `reform forget` drops it and its songs, and touches no file."""
    first, second = tmp_path / "music", tmp_path / "other"
    write(first / "a.wav", tone(440, 5.0))
    write(second / "b.wav", tone(330, 5.0))
    write(second / "sub" / "c.wav", noise(5.0))
    home = str(tmp_path / "home")
    assert main(["--home", home, "-q", "scan", str(first), str(second), "--no-embed"]) == 0
    assert main(["--home", home, "-q", "scan", "--forget-missing", str(second), "--no-embed"]) == 0
    assert f"`reform --home {home} forget {second}` drops it from the library" in capsys.readouterr().err
    third = tmp_path / "third"                   # new to the library: scanned, and no "its songs stay"
    write(third / "d.wav", tone(550, 5.0))
    assert main(["--home", home, "-q", "scan", "--forget-missing", str(third), "--no-embed"]) == 0
    assert "still there" not in capsys.readouterr().err
    assert main(["--home", home, "-q", "forget", str(third)]) == 0
    assert main(["--home", home, "forget", str(second / "b.wav")]) == 1        # a file: said as one
    assert "forget takes folders, and this is a file of a music folder" in capsys.readouterr().err
    assert main(["--home", home, "forget", str(tmp_path / "elsewhere")]) == 1   # in no followed folder
    assert f"the library follows: {first}; {second}" in capsys.readouterr().err
    assert main(["--home", home, "forget", str(second / "typo")]) == 1   # in one, not there: not "no music folder"
    assert f"error: no such folder: {second / 'typo'}" in capsys.readouterr().err
    assert main(["--home", home, "forget", str(second)]) == 0
    out = capsys.readouterr().out
    assert f"no longer a music folder of the library: {second}" in out and "2 files left the library" in out
    with Library(home, create=False) as lib:
        assert lib.home.roots() == [str(first)] and [Path(s.path).name for s in lib.songs()] == ["a.wav"]
        assert len(list(lib.home.spectrograms.root.rglob("*.npy"))) == 1   # theirs freed
    assert (second / "b.wav").exists() and (second / "sub" / "c.wav").exists()
    assert main(["--home", home, "-q", "scan", "--no-embed"]) == 0            # not scanned again
    with Library(home, create=False) as lib:
        assert len(lib.songs()) == 1


def test_a_folder_inside_a_music_folder_can_be_passed_over_and_taken_back(tmp_path, capsys):
    """`reform forget ~/Music/Audiobooks` was refused (only a followed folder could be forgotten),
    so audiobooks in the music folder stayed among the songs.  Passed over, it stays out of every
    scan of the music folder, under a link's name too, and through a catalogue made again; a
    scan of it by name takes it back."""
    music = tmp_path / "music"
    write(music / "a.wav", tone(440, 5.0))
    write(music / "Audiobooks" / "chapter 1.wav", noise(5.0))
    write(music / "Audiobooks" / "Part 2" / "chapter 2.wav", noise(5.0, seed=3))
    home = str(tmp_path / "home")
    assert main(["--home", home, "-q", "scan", str(music), "--no-embed"]) == 0
    assert main(["--home", home, "forget", str(music / "Audiobooks")]) == 0
    out = capsys.readouterr().out
    assert f"scans pass over {music / 'Audiobooks'} from now on" in out and "2 files left the library" in out
    # the command it gives takes the folder back as it is (a scan without the folder does not)
    assert f"(`reform --home {home} scan {music / 'Audiobooks'}` takes it back)" in out
    (music / "books").symlink_to(music / "Audiobooks")   # the same folder under another name
    assert main(["--home", home, "-q", "scan", "--no-embed"]) == 0
    with Library(home, create=False) as lib:
        assert [Path(s.path).name for s in lib.songs()] == ["a.wav"] and lib.home.roots() == [str(music)]
        assert len(list(lib.home.spectrograms.root.rglob("*.npy"))) == 1
    (tmp_path / "home" / "catalogue.db").unlink()        # made again from what is left beside it
    assert main(["--home", home, "-q", "check", "--repair"]) == 0
    with Library(home, create=False) as lib:
        assert [Path(s.path).name for s in lib.songs()] == ["a.wav"]
    assert main(["--home", home, "-q", "scan", str(music / "Audiobooks" / "Part 2"), "--no-embed"]) == 0
    with Library(home, create=False) as lib:   # the folder is back, and what was scanned of it
        assert sorted(Path(s.path).name for s in lib.songs()) == ["a.wav", "chapter 2.wav"]
        assert lib.home.passed_over() == [] and lib.home.roots() == [str(music)]
    assert main(["--home", home, "-q", "scan", "--no-embed"]) == 0
    with Library(home, create=False) as lib:
        assert sorted(Path(s.path).name for s in lib.songs()) == ["a.wav", "chapter 1.wav", "chapter 2.wav"]


def test_a_song_analysed_by_a_killed_scan_is_not_called_a_copy(lib, music, capsys, monkeypatch):
    """A scan killed after a song's spectrogram was stored and before the song was recorded left
    that spectrogram, which the next scan reused: its summary called it a copy of known audio,
    while `status` counted no duplicate."""
    from reform import scan

    def killed(*args):
        raise KeyboardInterrupt   # the first song analysed, then the scan stops before recording it

    monkeypatch.setattr(scan, "_record", killed)
    assert lib.scan(music, jobs=1).interrupted and lib.songs() == []
    monkeypatch.undo()
    assert main(["--home", str(lib.home.path), "scan", "--no-embed"]) == 0
    out = capsys.readouterr().out
    assert "reused 1 (analysed before an interruption 1)," \
        in out and lib.status()["duplicates"] == 0
    # in a new library, a copy found in the same scan as its original is a copy
    shutil.copy(music / "Tone Band" / "Sines" / "02 Chord.flac", music / "Chord again.flac")
    assert main(["--home", str(lib.home.path) + "-new", "scan", str(music), "--no-embed", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "reused 1 (copies of known audio 1)," in out


def test_status_tells_a_scan_that_did_not_end(lib, music, capsys):
    def interrupt(n):
        raise KeyboardInterrupt   # Ctrl-C after the first song

    assert lib.scan(music, jobs=1, on_step=interrupt).interrupted
    assert lib.home.scan_state() == "interrupted"
    assert main(["--home", str(lib.home.path), "status"]) == 0
    assert ("scan:         the last one was interrupted before it ended: "
            f"`reform --home {lib.home.path} scan` goes on") in capsys.readouterr().out
    with lib.home.lock.hold("scan"):
        assert lib.home.scan_state() == "running"
    assert not lib.scan(jobs=1).interrupted and lib.home.scan_state() is None


def test_a_worker_ends_with_the_scan_however_the_scan_ends():
    """kill -9 of a scan left its pool's workers (and the forkserver they keep) waiting on
    their queue for good, some 300 MB each."""
    import sys

    scan = subprocess.Popen(["sleep", "60"])
    worker = subprocess.Popen([sys.executable, "-c", f"import time; from reform.scan import _end_with; "
                               f"_end_with({scan.pid}); time.sleep(60)"])
    try:
        time.sleep(1.0)
        assert worker.poll() is None                     # the scan lives: so does the worker
        scan.kill()
        scan.wait()
        assert worker.wait(timeout=10) == 1              # and ends with it
    finally:
        for proc in (scan, worker):
            proc.kill()
