"""What the peer analysers share: their path list, a pool of spawned workers whose
start-up is kept off the clock, and the .npz and JSON line they write.

Only the standard library and numpy: each peer imports this in its own virtual
environment (bench/peers/setup.sh).
"""
import json
import multiprocessing as mp
import os
import sys
import threading
import time


def read_paths(list_file):
    with open(list_file, encoding="utf-8") as f:
        return [line.rstrip("\r\n") for line in f if line.strip()]


def duration_s(path):
    try:
        import soundfile
        return float(soundfile.info(path).duration)
    except Exception:
        return float("nan")


def ready(barrier, timeout):
    """Called by a worker once it has imported and loaded what it needs."""
    try:
        barrier.wait(timeout=timeout)
    except threading.BrokenBarrierError:
        pass


def analyse_all(name, paths, jobs, initializer, initargs, analyse, timeout, startup_timeout):
    """Run ``analyse(path) -> (value, error, cpu seconds)`` on every path in ``jobs`` spawned
    workers.  ``initializer(barrier, *initargs)`` must end with ``ready(barrier, ...)``: the
    clock starts when every worker is ready.

    Returns (values in path order, None where failed; {index: error}; CPU seconds inside
    the analyses; wall seconds of the analyses; seconds to start the workers).
    """
    values = [None] * len(paths)
    errors = {}
    cpu_s = 0.0
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(jobs + 1)
    s0 = time.perf_counter()
    with ctx.Pool(jobs, initializer=initializer, initargs=(barrier,) + tuple(initargs)) as pool:
        ready(barrier, startup_timeout)
        setup_s = time.perf_counter() - s0
        t0 = time.perf_counter()
        pending = [pool.apply_async(analyse, (p,)) for p in paths]
        for i, result in enumerate(pending):
            try:
                value, err, cpu = result.get(timeout=timeout)
            except mp.TimeoutError:
                value, err, cpu = None, "timeout or worker crash after %.0f s" % timeout, 0.0
            cpu_s += cpu
            if value is None:
                errors[i] = err
                print("%s failed: %s: %s" % (name, paths[i], err), file=sys.stderr)
            else:
                values[i] = value
        wall_s = time.perf_counter() - t0
    return values, errors, cpu_s, wall_s, setup_s


def save(out, paths, features, errors, arrays, summary):
    """Write OUT.npz (paths, features, failed, failed_errors, durations and ``arrays``) and
    print the JSON summary line, completed with counts, audio seconds and speeds."""
    import numpy as np

    durations = np.array([duration_s(p) for p in paths], dtype=np.float64)
    ok = [i for i in range(len(paths)) if i not in errors]
    audio_s = float(np.nansum(durations[ok])) if ok else 0.0
    failed = sorted(errors)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    np.savez(out, paths=np.array(paths, dtype=str), features=features,
             failed=np.array([paths[i] for i in failed], dtype=str),
             failed_errors=np.array([errors[i] for i in failed], dtype=str),
             durations=durations, **arrays)
    wall_s = summary["wall_s"]
    summary = dict(summary, n=len(paths), failed=len(failed), audio_s=round(audio_s, 3),
                   songs_per_s=round(len(ok) / wall_s, 3) if wall_s > 0 else None,
                   x_realtime=round(audio_s / wall_s, 1) if wall_s > 0 else None)
    print(json.dumps(summary), flush=True)
