"""The main job: `reform demo` builds the demo library, scans it, embeds it with the model
shipped inside the package, and recommends; a second run does no work again."""

import json

from reform.cli import main


def test_demo_recommends_with_the_shipped_model(tmp_path, capsys, monkeypatch):
    home = str(tmp_path / "my data" / "reform")
    assert main(["--home", home, "-q", "demo", "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert f"--home '{home}' similar 'Groove No. 1'" in out      # a command that can be pasted
    assert "analysed 20 songs" in out
    assert "embedding with the model shipped with ReFORM" in out
    assert out.count("songs like") == 2 and "a playlist flowing from" in out

    # the demo's artists sound alike within and unlike across: the shipped model must hear it
    assert main(["--home", home, "similar", "Chorale No. 1", "--json", "-n", "3"]) == 0
    top = json.loads(capsys.readouterr().out)
    assert [r["artist"] for r in top].count("Sine Quartet") >= 2

    monkeypatch.delenv("REFORM_HOME", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "my data"))  # the same home, as the default one
    assert main(["-q", "demo", "--jobs", "1"]) == 0
    again = capsys.readouterr().out
    assert "nothing to do: 20 songs unchanged" in again and "0 songs embedded, 20 already were" in again
    try_line = next(line for line in again.splitlines() if line.startswith("try: "))
    assert "similar 'Groove No. 1'" in try_line and "--home" not in try_line
