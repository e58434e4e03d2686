"""Evaluation runs over a library home: which songs and labels, which models and baselines, and
the report kept beside the active model (the protocols and baselines are :mod:`reform.evaluate`)."""

from __future__ import annotations

import functools
import math
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import evaluate as ev
from .card import read_card
from .errors import ConfigError, EvaluateError, WriteError
from .evaluate import read_label_file
from .files import write_json
from .home import Home, RunFiles, saved_evaluation
from .progress import Bar
from .store import FileRow, one_per_recording
from .text import agree, listing, norm, one_line, plural, shown, with_article


FEW = 30   # songs asked about, below which a score's 95 % interval is wider than +-0.18


def evaluation_songs(songs: list[FileRow], labels: str | None = "artist", label_file: str | None = None,
                     label_column: str = "group"):
    """The songs an evaluation uses (one per distinct audio of ``songs``), their labels and
    albums, notes on what was left out and why, and where the labels come from."""
    distinct = list(one_per_recording(songs).values())
    rows, kept_as = _distinct_recordings(distinct)
    notes: list[str] = []
    if len(distinct) < len(songs):
        copies = len(songs) - len(distinct)
        notes.append(f"{plural(copies, 'file')} left out as {agree(copies, 'a copy', 'copies')} of the same audio "
                     "as another file")
    if kept_as:   # a FLAC and its MP3 would find each other: a same-song top-1 of chance, a p@10 too high
        notes.append(f"{plural(len(kept_as), 'file')} left out as another file of a recording counted "
                     "(one title, by one artist or an untagged one, as long within a second)")
    if label_file:
        by_path, twice = read_label_file(label_file, label_column)
        known = {os.path.realpath(r.path) for r in songs}
        unknown = [p for p in by_path if p not in known]
        if by_path and len(unknown) == len(by_path):
            raise EvaluateError(f"none of the {plural(len(by_path), 'path')} of the labels file is a song of the "
                                "library", path=label_file, hint="its paths are read as they are, or relative "
                                "to its own folder: give the paths the library scanned (`reform export songs.csv` "
                                "lists them)")
        if unknown:
            notes.append(f"{plural(len(unknown), 'path')} of the labels file "
                         f"{agree(len(unknown), 'is', 'are')} not in the library: ignored ({listing(unknown, 3)})")
        if twice:
            notes.append(f"{plural(twice, 'path')} of the labels file {agree(twice, 'has', 'have')} two different "
                         "labels: the last one is kept")
        def label_of(row: FileRow) -> str | None:
            return by_path.get(os.path.realpath(row.path)) or by_path.get(row.path)

        found = _recording_labels(songs, rows, kept_as, label_of)
        source = f"{os.path.basename(label_file)}:{label_column}"
    elif labels:
        if labels not in ("artist", "album", "genre"):
            raise EvaluateError(f"unknown label {labels!r}; use artist, album, genre or --labels-file")
        found = _recording_labels(songs, rows, kept_as, lambda row: getattr(row, labels))
        source = labels
    else:
        return rows, None, _albums(rows), notes, None
    kept = [(r, lab) for r, lab in found if lab]
    if not any(n >= 2 for n in Counter(lab for _, lab in kept).values()):
        if label_file:   # labels asked for by name: a file that names no group twice is a mistake
            raise EvaluateError(f"no {source} label is shared by two songs of the library: label "
                                "retrieval has nothing to find", hint="check the file's paths and column")
        # a real library's tags are often missing: finding a song's other half needs none
        others = " or ".join(f"--labels {t}" for t in ("album", "genre", "artist")
                             if t != labels and any(getattr(r, t) for r in rows))
        said = f"no {labels} tag is shared by two songs" if kept else f"no song has {with_article(labels)} tag"
        notes.append(f"{said}: only the same-song protocol runs (try {others + ', or ' if others else ''}"
                     "--labels-file)")
        return rows, None, _albums(rows), notes, None
    distinct = {lab for _, lab in kept}
    if len(distinct) == 1:   # every neighbour is relevant: every method would score a perfect p@10
        said = f"every labelled song has the same {source} label ({one_line(next(iter(distinct)))!r})"
        if label_file:
            raise EvaluateError(f"{said}: label retrieval cannot tell one method from another",
                                hint="name a column that splits the songs into groups with --label-column")
        notes.append(f"{said}: only the same-song protocol runs")
        return rows, None, _albums(rows), notes, None
    missing = len(found) - len(kept)
    if missing:
        notes.append(f"{plural(missing, 'song')} {agree(missing, 'has', 'have')} no {source} label: left out")
    return [r for r, _ in kept], [lab for _, lab in kept], _albums([r for r, _ in kept]), notes, source


def _recording_labels(songs: list[FileRow], rows: list[FileRow], kept_as: dict[str, str],
                      label_of: Callable[[FileRow], str | None]) -> list[tuple[FileRow, str | None]]:
    """Each of ``rows`` with its label: its own, else that of another file of its recording among
    ``songs`` (a byte copy, or a file ``kept_as`` maps to it): a labels file or a tag may name any
    copy, not only the one kept."""
    labelled: dict[str, str] = {}
    for r in songs:
        if label := label_of(r):
            labelled.setdefault(kept_as.get(r.hash, r.hash), label)
    return [(r, label_of(r) or labelled.get(r.hash)) for r in rows]


def _distinct_recordings(rows: list[FileRow]) -> tuple[list[FileRow], dict[str, str]]:
    """``rows`` with one file per recording (:func:`reform.recommend.tagged_as_one`), the one the
    lists show, and the content hash of each file left out mapped to that of the file kept."""
    from .recommend import SAME_RECORDING_SECONDS, shown_file, tagged_as_one

    reach = math.ceil(SAME_RECORDING_SECONDS)
    groups: list[list[FileRow]] = []                   # the files of each recording, as first met
    by_title: dict[tuple[str, int], list[int]] = {}    # the groups by title and whole second
    for row in rows:
        title, second = norm(row.title), int(row.duration or 0)
        near = [g for s in range(second - reach, second + reach + 1) for g in by_title.get((title, s), ())]
        same = next((g for g in near if tagged_as_one(row, groups[g][0])), None) if title else None
        if same is None:
            if title:
                by_title.setdefault((title, second), []).append(len(groups))
            groups.append([row])
        else:
            groups[same].append(row)
    kept, kept_as = [], {}
    for files in groups:
        shown = shown_file(files)
        kept.append(shown)
        kept_as.update({r.hash: shown.hash for r in files if r is not shown})
    return kept, kept_as


def _albums(rows: list[FileRow]) -> list[str]:
    """Each song's album for the album filter, as the recommendations' filter takes it: another
    artist's "Greatest Hits" in another folder is another album ("" for none)."""
    from .recommend import album_groups

    return ["" if group is None else f"album {group}" for group in album_groups(rows)]


def evaluate(home: Home, *, labels: str | None = "artist", label_file: str | None = None,
             label_column: str = "group", exclude_same_album: bool = False,
             models: list[str | os.PathLike] | None = None, stages: bool = True,
             baselines: bool = True, seed: int = 0, extra: dict | None = None,
             device: str = "auto", expand: int | None = None, walk: int | None = None,
             on_method: Callable[[str, int, int], None] | None = None, progress: bool = False):
    """Run the retrieval protocols (see :mod:`reform.evaluate`) for baselines and models.

    ``models`` are model specs (see :meth:`reform.home.Models.path`), by default the active model.
    With ``stages`` the same network untrained and, for a training run, its
    pretraining-only stage (no clustering phase) are evaluated too.  ``extra`` maps a
    method name to a function that returns its MethodVectors for the evaluated
    catalogue rows, in their order (used by bench/quality.py for the peers).  ``device``
    runs the models (see :mod:`reform.device`); the models' songs are ranked as
    recommendations rank them (:func:`reform.recommend.ranking`): by the walk over each query's
    nearest songs with ``walk`` links each, or each query averaged with its ``expand`` nearest
    songs first (the baselines keep their own measure);
    ``on_method(name, i, n)`` is called as the i-th of n methods starts; with ``progress`` a bar
    counts the songs of each method that computes vectors (a model's take a minute on 300 songs).
    """
    from .checkpoint import Bundle, load_bundle
    from .embed import Embedder
    from .model import ClusterAutoencoder
    from .recommend import EXPAND_POWER, WALK_POOL
    from .recommend import ranking as ranked_by
    from .space import similarity, walks

    rows, label_list, albums, notes, source = evaluation_songs(home.catalogue.files(status="ok"),
                                                               labels, label_file, label_column)
    # each spectrogram opened once (its header alone); a missing or damaged one is left out and
    # named, as `reform embed` leaves it out, not the end of the evaluation
    opened = home.spectrograms.openable(r.hash for r in rows)
    lost = [r for r in rows if r.hash not in opened]
    if lost:
        notes.append(f"{plural(len(lost), 'song')} left out: {agree(len(lost), 'its', 'their')} spectrogram is "
                     f"missing or damaged ({listing([shown(r.path) for r in lost], 3)}; `reform check "
                     "--repair` analyses them again)")
    # ties must not follow the folders: a random order, drawn over every song as before any is left out
    order = [i for i in np.random.default_rng(seed).permutation(len(rows)) if rows[i].hash in opened]
    rows = [rows[i] for i in order]
    albums = [albums[i] for i in order]
    label_list = None if label_list is None else [label_list[i] for i in order]
    if len(rows) < 2:
        raise EvaluateError(f"the evaluation needs at least 2 songs, {len(rows)} {agree(len(rows), 'is', 'are')} "
                            "usable",
                            hint="scan more music, or check the labels")
    specs = [opened[r.hash] for r in rows]
    # each method's vectors, from the step its progress bar takes after each song
    methods: list[tuple[str, Callable[[Callable], ev.MethodVectors]]] = []
    if baselines:
        methods.append(("random", lambda step: ev.random_vectors(len(rows), seed=seed)))
        if label_list is not None:   # (it has no same-song figures: a row of nothing without labels)
            methods.append(("song length only", lambda step: ev.song_length_vectors(specs, step=step)))
            notes.append("song length only has no same-song figures: a song's two halves are equally long, so its "
                         "length would find the other half every time")
        methods += [
            ("MFCC mean+std (20)", lambda step: ev.featurize(specs, ev.mfcc_stats, standardised=True, step=step)),
            ("log-mel mean+std", lambda step: ev.featurize(specs, ev.logmel_stats, standardised=True, step=step)),
        ]
    bundles: list[tuple[str, Bundle]] = []
    paths = [home.models.path(m) for m in (models or [None])]
    for path in paths:
        bundle = home.models.load(path)
        label = "ReFORM" if len(paths) == 1 else f"ReFORM {home.models.short_name(path)}"
        if stages:
            import torch

            torch.manual_seed(seed)
            untrained = ClusterAutoencoder(bundle.cfg)
            bundles.append((f"{label}: untrained network", Bundle(
                untrained, bundle.cfg, bundle.normaliser, bundle.feature_version, "cluster",
                "untrained", {})))
            if path == RunFiles(path.parent).model and RunFiles(path.parent).pretrain.exists():
                bundles.append((f"{label}: pretraining only (no clustering phase)",
                                load_bundle(RunFiles(path.parent).pretrain)))
        phases = "both phases" if bundle.kind == "cluster" else "pretraining only"
        bundles.append((f"{label} ({phases})", bundle))
    try:
        neighbours, links = ranked_by("cosine", expand, walk)
    except ConfigError as exc:
        raise EvaluateError(exc.message, hint=exc.hint) from None
    ranking, how = "cosine", ""   # (the plain cosine, which the protocols compute themselves)
    if links:
        ranking = functools.partial(walks, neighbours=links, pool=WALK_POOL)
        how = (f"by a walk over each query's nearest songs, up to {plural(links, 'link')} per song (--expand 2: the "
               "expanded query instead; --expand 0: the plain cosine)")
    elif neighbours:
        ranking = functools.partial(similarity, average="queries", neighbours=neighbours, alpha=EXPAND_POWER)
        how = f"each query averaged with its {plural(neighbours, 'nearest song')} first (--expand 0: the plain cosine)"
    if how and bundles:
        notes.append(f"the models rank as recommendations do: {how}")
    for name, bundle in bundles:
        methods.append((name, lambda step, b=bundle: ev.featurize(specs, Embedder(b, device=device).song,
                                                                  standardised=False, metric=ranking, step=step)))
    results = []
    total = len(methods) + len(extra or {})
    for name, compute in methods:
        if on_method:
            on_method(name, len(results) + 1, total)
        with Bar(progress and name != "random", "songs", "song") as bar:   # (random vectors count no song)
            bar.start(len(specs))
            vectors = compute(bar.step)
        results.append(ev.score(name, vectors, label_list, albums, exclude_same_album))
    for name, compute_rows in (extra or {}).items():
        if on_method:
            on_method(name, len(results) + 1, total)
        results.append(ev.score(name, compute_rows(rows), label_list, albums, exclude_same_album))
    if label_list is not None:
        skipped = results[0].labels.skipped_single if results[0].labels else []
        if skipped:
            notes.append(f"labels with a single song are not queried (they still compete as "
                         f"distractors): {', '.join(skipped)}")
    asked = min([len(rows)] + ([results[0].labels.queries] if results[0].labels else []))
    if asked < FEW:
        notes.append(f"only {plural(asked, 'song')} asked about: these figures cannot tell the methods "
                     f"apart (even a share measured on {FEW} songs is uncertain by about +-0.18, 95 %)")
    return ev.EvaluationReport(results, len(rows), source, notes)


@dataclass(frozen=True)
class Saved:
    """Where an evaluation was kept beside its model, or None and why not; true when kept."""

    path: Path | None
    why: str = ""

    def __bool__(self) -> bool:
        return self.path is not None


def save(home: Home, report: ev.EvaluationReport) -> Saved:
    """Keep an evaluation of the active model beside it as evaluation.json (the shipped model's in
    the home's models folder: its own folder belongs to the installation).  One without labels
    leaves one with them in place: `reform models` and the page show the p@10 it would take away."""
    path = home.models.path()
    target = home.models.evaluation_file(path)
    if target is None:
        return Saved(None, "the active model is no model of this home")
    version = read_card(path).get("version")
    kept = saved_evaluation(target, version)
    if report.label_source is None and kept and kept.get("labels"):
        return Saved(None, f"the evaluation kept for the model measured p@10 by {kept['labels']}, and this one "
                           "by no label")
    try:   # with the version it measured: a resumed run replaces the weights, not this file
        target.parent.mkdir(exist_ok=True)   # (a home that never trained has no models folder yet)
        write_json(target, report.to_dict() | {"model_version": version})
    except (OSError, WriteError):
        return Saved(None, "the model's folder cannot be written")
    return Saved(target)
