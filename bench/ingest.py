"""Ingest speed and memory: ReFORM's scan against librosa and against decoding alone.

Runs three pipelines on the same files, each with the same number of worker
processes (one thread each), and prints seconds of audio per wall second:

  (a) reference  librosa.load(sr=22050, mono=False) + melspectrogram + power_to_db per channel
  (b) decode     decoding alone with ReFORM's decoders: the floor no analysis can beat
  (c) reform     `reform scan --no-embed` into an empty library home (walk, hash, tags, decode,
                 resample, log-mel, float16 store, catalogue), process start-up included

then the peak resident memory of `reform scan`'s whole process tree for 10 and 100
songs and for one hour-long file.

    python bench/ingest.py --realmusic DATA/realmusic.tsv          # real music
    python bench/ingest.py --synthetic 40                          # synthetic songs only
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import link_folder, read_manifest, run_measured, table, warm_page_cache  # noqa: E402

ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                               "NUMBA_NUM_THREADS")}


# -- worker mode: one pipeline over a list of files, in a pool -------------------------------------
def _decode_only(path: str) -> float:
    from reform.audio import BLOCK_SECONDS, _open

    opened = _open(path, BLOCK_SECONDS)  # the backend ReFORM picks, without resampling
    n = sum(block.shape[1] for block in opened.blocks)
    return n / opened.rate


def _reference(path: str) -> float:
    import librosa
    import numpy as np

    y, sr = librosa.load(path, sr=22050, mono=False)
    y = np.atleast_2d(y)
    for channel in y:
        power = librosa.feature.melspectrogram(y=channel, sr=sr, n_fft=2048, hop_length=512, n_mels=128)
        librosa.power_to_db(power, ref=1.0, top_db=80.0)
    return y.shape[1] / sr


def _warm_reference() -> None:
    """Compile librosa's numba kernels before timing: JIT time is not analysis time."""
    import librosa
    import numpy as np

    librosa.power_to_db(librosa.feature.melspectrogram(y=np.zeros(22050, np.float32), sr=22050))


def worker_main(kind: str, list_file: str, jobs: int) -> None:
    from multiprocessing import Pool

    paths = Path(list_file).read_text().splitlines()
    func = {"decode": _decode_only, "reference": _reference}[kind]
    init = _warm_reference if kind == "reference" else None
    with Pool(jobs, initializer=init) as pool:
        pool.map(func, paths[:jobs])  # start-up and warm-up, not timed
        start = time.perf_counter()
        seconds = sum(pool.imap_unordered(func, paths, chunksize=1))
        wall = time.perf_counter() - start
    print(f"{seconds} {wall}")


# -- driver ---------------------------------------------------------------------------------------
def _pipeline(kind: str, paths: list[str], jobs: int, workdir: Path) -> tuple[float, float, int]:
    """Returns (audio seconds, wall seconds, peak RSS bytes)."""
    env = {**os.environ, **ONE_THREAD}
    if kind == "reform":
        folder = link_folder(paths, workdir / f"links-{len(paths)}")
        home = Path(tempfile.mkdtemp(dir=workdir, prefix="home-"))
        wall, peak, _ = run_measured([sys.executable, "-m", "reform", "--home", str(home), "-q",
                                      "scan", str(folder), "--jobs", str(jobs), "--no-embed"], env)
        from reform import Library

        with Library(home, create=False) as lib:
            seconds = sum(s.duration for s in lib.songs())
        return seconds, wall, peak
    list_file = workdir / f"{kind}.txt"
    list_file.write_text("\n".join(paths))
    _, peak, out = run_measured([sys.executable, __file__, "--worker", kind, "--list", str(list_file),
                                 "--jobs", str(jobs)], env)
    seconds, wall = map(float, out.split())
    return seconds, wall, peak


def throughput(name: str, paths: list[str], jobs: int, workdir: Path) -> None:
    warm_page_cache(paths)
    results = {kind: _pipeline(kind, paths, jobs, workdir) for kind in ("decode", "reference", "reform")}
    rate = {k: s / w for k, (s, w, _) in results.items()}
    startup = _startup(jobs, workdir)
    hours = results["reform"][0] / 3600
    print(f"\n### {name}: {len(paths)} files, {hours:.2f} h of audio, {jobs} worker processes\n")
    labels = {"reference": "(a) librosa reference", "decode": "(b) decode only", "reform": "(c) reform scan"}
    rows = [[labels[k], f"{results[k][1]:.1f}", f"{rate[k]:.0f}", f"{results[k][2] / 2**20:.0f}"]
            for k in ("reference", "decode", "reform")]
    print(table(["pipeline", "wall s", "audio s / wall s", "peak RSS MiB"], rows))
    print(f"\n(c)/(a) = {rate['reform'] / rate['reference']:.2f}x faster than the reference "
          f"(target >= 1.5); (c)/(b) = {rate['reform'] / rate['decode']:.0%} of decode-only "
          f"(target >= 60%)")
    print(f"(c) includes starting `reform scan` and its workers ({startup:.1f} s, measured on one "
          f"1-second file), which (a) and (b) start before their timer")


def _startup(jobs: int, workdir: Path) -> float:
    """Wall time of `reform scan` on a single one-second file: process and worker start-up."""
    import numpy as np
    import soundfile as sf

    folder = workdir / "startup"
    folder.mkdir(exist_ok=True)
    sf.write(folder / "one second.wav", np.random.default_rng(0).normal(0, 0.1, 44100), 44100)
    home = Path(tempfile.mkdtemp(dir=workdir, prefix="home-"))
    wall, _, _ = run_measured([sys.executable, "-m", "reform", "--home", str(home), "-q", "scan", str(folder),
                               "--jobs", str(jobs), "--no-embed"], {**os.environ, **ONE_THREAD})
    return wall


def memory(paths: list[str], jobs: int, workdir: Path) -> None:
    import numpy as np
    import soundfile as sf

    rows = []
    for n in (10, 100):
        if len(paths) >= n:
            seconds, wall, peak = _pipeline("reform", paths[:n], jobs, workdir)
            rows.append([f"{n} songs ({seconds / 3600:.2f} h)", f"{peak / 2**20:.0f}"])
    hour = workdir / "hour" / "one hour.wav"
    hour.parent.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    with sf.SoundFile(hour, "w", 44100, 2, "PCM_16") as f:
        for _ in range(60):
            t = np.arange(44100 * 60) / 44100
            minute = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 1000) * t)[:, None] + \
                0.05 * rng.standard_normal((44100 * 60, 2))
            f.write(minute.astype(np.float32))
    seconds, wall, peak = _pipeline("reform", [str(hour)], 1, workdir)
    rows.append([f"one {seconds / 60:.0f}-minute stereo WAV, 44.1 kHz ({hour.stat().st_size / 2**20:.0f} MiB)",
                 f"{peak / 2**20:.0f}"])
    print("\n### Peak memory of `reform scan` (whole process tree)\n")
    print(table(["input", "peak RSS MiB"], rows))


def synthetic(folder: Path, n: int) -> list[str]:
    """n songs of 2-4 minutes at 44.1 kHz in WAV, FLAC, Ogg Vorbis and MP3, mono and stereo."""
    import numpy as np
    import soundfile as sf

    from reform import demo

    folder.mkdir(parents=True, exist_ok=True)
    styles = list(demo.ARTISTS.values())
    formats = [(".wav", "WAV"), (".flac", "FLAC"), (".ogg", "OGG"), (".mp3", "MP3")]
    paths = []
    for i in range(n):
        ext, fmt = formats[i % len(formats)]
        path = folder / f"synthetic {i:03d}{ext}"
        paths.append(str(path))
        if path.exists():
            continue
        rng = np.random.default_rng(i)
        album, style, channels, _ = styles[i % len(styles)]
        audio = demo.make_song(style, rng, rng.uniform(120, 240) / 2, channels)
        audio = np.repeat(audio, 2, axis=0)  # 22050 -> 44100 Hz by sample repetition: cheap to make
        # in blocks: libsndfile's Vorbis encoder crashes when handed minutes of audio at once;
        # under a temporary name, so that an interrupted run leaves no truncated file behind
        tmp = path.with_name(f".tmp{ext}")
        with sf.SoundFile(tmp, "w", 44100, audio.shape[1], format=fmt) as out:
            for start in range(0, len(audio), 1 << 16):
                out.write(audio[start:start + (1 << 16)])
        tmp.replace(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--realmusic", help="realmusic.tsv written by shared/realmusic/fetch.sh")
    parser.add_argument("--synthetic", type=int, default=0, help="also run on N synthetic songs")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N real songs")
    parser.add_argument("--jobs", type=int, default=os.cpu_count())
    parser.add_argument("--no-memory", action="store_true")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--list", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker_main(args.worker, args.list, args.jobs)
        return
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="reform-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores; work folder {workdir}")
    real = []
    if args.realmusic:
        real = [r["path"] for r in read_manifest(args.realmusic)]
        real = real[: args.limit] if args.limit else real
        throughput("realmusic", real, args.jobs, workdir)
    if args.synthetic:
        paths = synthetic(workdir / "synthetic", args.synthetic)
        throughput("synthetic", paths, args.jobs, workdir)
    if not args.no_memory and real:
        memory(real, args.jobs, workdir)


if __name__ == "__main__":
    main()
