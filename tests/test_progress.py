"""Progress of long work where there is no terminal: lines in a log, not a bar."""

from reform import progress


def test_long_work_says_how_far_it_got_in_a_log(monkeypatch, capsys):
    """A scan of hours run from cron said nothing until it ended: no terminal, no bar."""
    now = [100.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: now[0])
    with progress.Bar(True, "scanning", "song") as bar:   # (pytest's captured stderr is no terminal)
        bar.start(10)
        bar.step(1)
        now[0] += 30.0
        bar.step(1)                                       # within a minute of the start: nothing said
        assert capsys.readouterr().err == ""
        now[0] += 50.0
        bar.step(2)
        assert capsys.readouterr().err == "scanning: 4 of 10 songs (40 %), 80 s in, about 2 min left\n"
        now[0] += 10.0
        bar.step(1)                                       # a minute since the last line: nothing yet
        now[0] += 600.0
        bar.step(5)                                       # the end: the summary says the rest
    assert capsys.readouterr().err == ""
    with progress.Bar(False, "scanning", "song") as quiet:   # -q: nothing at all
        quiet.start(10)
        now[0] += 600.0
        quiet.step(1)
    assert capsys.readouterr().err == ""
