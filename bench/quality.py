"""Recommendation quality on real music, on soundtracks the model never heard in training.

The realmusic set (shared/realmusic/fetch.sh) is split by soundtrack ("group"):
the model is trained on the TRAIN groups only and evaluated on the TEST groups,
with the protocols of `reform evaluate` (same-song retrieval; label retrieval
with the group as label), against:

* baselines computed on the same songs in the same run: random, song length
  alone, MFCC mean+std, log-mel mean+std, the untrained network, pretraining
  only (= no clustering phase), and the ablation without auxiliary losses;
* peers, each in its own virtual environment (bench/peers/setup.sh): bliss-audio
  (23 features, z-normalised, cosine) and musicnn 0.1.0 (200-d penultimate layer
  averaged over the song, cosine).  Same-song halves are written as WAV files
  for the peers, cut at the same frame as ReFORM's halves.

    bash bench/peers/setup.sh
    python bench/quality.py --realmusic DATA/realmusic.tsv --work DATA/quality
        [--model PATH/model.pt] [--no-aux-model PATH/model.pt] [--no-peers]

Models not given are trained here with the default settings (about 20-40 minutes
each on 2 cores); the work folder keeps them, so a second run only evaluates.
Writes quality.md and quality.json into the work folder and prints the tables.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import read_manifest  # noqa: E402

from reform import Library  # noqa: E402
from reform.config import TrainConfig  # noqa: E402
from reform.evaluate import MethodVectors, standardise  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TRAIN_GROUPS = ("drascula", "extremetuxracer", "singularity", "warzone2100", "wizznic")
TEST_GROUPS = ("hyperrogue", "starfighter", "warmux", "wesnoth", "xmoto")


def build_home(rows: list[dict], groups: tuple[str, ...], links: Path, home: Path) -> Path:
    """A library of the songs of ``groups``, as Group/file links (tags stay those of the files)."""
    for r in rows:
        if r["group"] in groups:
            target = links / r["group"] / os.path.basename(r["path"])
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                os.symlink(r["path"], target)
    with Library(home) as lib:
        lib.scan(links, progress=True)
    return home


def train(home: Path, name: str, **overrides) -> Path:
    folder = home / "models" / name
    if (folder / "model.pt").exists():
        return folder / "model.pt"
    cmd = [sys.executable, "-m", "reform", "--home", str(home), "-q", "train", "--name", name]
    if (folder / "checkpoint.pt").exists():
        cmd.append("--resume")
    for key, value in overrides.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    print("training:", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    return folder / "model.pt"


def write_halves(lib: Library, rows, folder: Path) -> dict[str, tuple[str, str]]:
    """WAV files of each song's two halves, cut where ReFORM cuts them (the middle frame)."""
    import soundfile as sf

    from reform.audio import decode

    out = {}
    folder.mkdir(parents=True, exist_ok=True)
    for row in rows:
        a, b = folder / f"{row.hash}-1.wav", folder / f"{row.hash}-2.wav"
        if not (a.exists() and b.exists()):
            audio, _ = decode(row.path, lib.audio)
            cut = (row.frames // 2) * lib.mel.hop_length
            sf.write(a, audio[:, :cut].T, lib.audio.sample_rate)
            sf.write(b, audio[:, cut:].T, lib.audio.sample_rate)
        out[row.hash] = (str(a), str(b))
    return out


def peer(name: str, script: str, venvs: Path, paths: list[str], work: Path, jobs: int) -> dict[str, np.ndarray]:
    python = venvs / name / "bin" / "python"
    out = work / f"{name}.npz"
    if not out.exists():
        lst = work / f"{name}-paths.txt"
        lst.write_text("\n".join(paths))
        subprocess.run([str(python), str(ROOT / "bench" / "peers" / script), "--paths", str(lst),
                        "--out", str(out), "--jobs", str(jobs)], check=True)
    data = np.load(out)
    return dict(zip(data["paths"], data["features"]))


def peer_method(features: dict[str, np.ndarray], halves: dict, standardised: bool):
    def compute(rows) -> MethodVectors:
        full = np.stack([features[os.path.realpath(r.path)] if os.path.realpath(r.path) in features
                         else features[r.path] for r in rows])
        first = np.stack([features[halves[r.hash][0]] for r in rows])
        second = np.stack([features[halves[r.hash][1]] for r in rows])
        for x in (full, first, second):  # a song the peer could not decode: no information
            x[~np.isfinite(x).all(1)] = 0.0
        if standardised:
            full = standardise(full)
            both = standardise(np.concatenate([first, second]))
            first, second = both[: len(first)], both[len(first):]
        return MethodVectors(full, first, second)
    return compute


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--realmusic", required=True)
    parser.add_argument("--work", required=True, help="folder for the homes, models and peer features")
    parser.add_argument("--model", help="the full model (default: train one on the TRAIN groups)")
    parser.add_argument("--no-aux-model", help="the ablation without auxiliary losses (default: train it)")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--venvs", default=str(ROOT / ".bench-venvs"))
    args = parser.parse_args()
    work = Path(args.work).resolve()
    rows = read_manifest(args.realmusic)
    train_home = build_home(rows, TRAIN_GROUPS, work / "links-train", work / "home-train")
    test_home = build_home(rows, TEST_GROUPS, work / "links-test", work / "home-test")
    model = Path(args.model) if args.model else train(train_home, "default")
    no_aux = Path(args.no_aux_model) if args.no_aux_model else train(train_home, "no-aux", aux_weight=0)

    with Library(test_home) as lib:
        extra = {}
        if not args.no_peers:
            songs = lib.songs()
            halves = write_halves(lib, songs, work / "halves")
            paths = [os.path.realpath(s.path) for s in songs] + [p for pair in halves.values() for p in pair]
            venvs = Path(args.venvs)
            if not (venvs / "bliss").exists() or not (venvs / "musicnn").exists():
                sys.exit(f"the peers' environments are missing in {venvs}: run `bash bench/peers/setup.sh`")
            bliss = peer("bliss", "bliss_features.py", venvs, paths, work, args.jobs)
            musicnn = peer("musicnn", "musicnn_features.py", venvs, paths, work, args.jobs)
            extra = {"peer: bliss (z-normalised, cosine)": peer_method(bliss, halves, True),
                     "peer: musicnn MSD penultimate (cosine)": peer_method(musicnn, halves, False)}
        report = lib.evaluate(labels=None, label_file=args.realmusic, label_column="group", extra=extra,
                              models=[model])
        ablation = lib.evaluate(labels=None, label_file=args.realmusic, label_column="group",
                                models=[no_aux], stages=False, baselines=False)
    report.results.append(ablation.results[0])
    report.results[-1].name = "ablation: no auxiliary losses"
    text = ["## Held-out soundtracks: " + ", ".join(TEST_GROUPS),
            f"Trained on: {', '.join(TRAIN_GROUPS)}.  {report.songs} test songs; label = soundtrack.", "",
            report.markdown(), "", "### precision@10 per soundtrack", "", report.per_label_markdown(), ""]
    text += [f"note: {n}" for n in report.notes]
    (work / "quality.md").write_text("\n".join(text) + "\n")
    (work / "quality.json").write_text(json.dumps(report.to_dict(), indent=2))
    print("\n".join(text))


if __name__ == "__main__":
    main()
