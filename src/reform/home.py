"""The library home as one thing: its layout on disk, the settings it was analysed with, its
models and which one is active.

Layout of a home::

    catalogue.db                    the catalogue (SQLite, see :class:`reform.store.Catalogue`)
    folders.json                    a copy of the music folders scanned (the catalogue's is the one used)
    plays.jsonl                     a copy of the play history, a line per play (restored into a new catalogue)
    writer.lock                     held by the one process changing the home (reform.lock)
    spectrograms/<feature-version>/ the spectrogram store (see :class:`reform.store.SpectrogramStore`)
    models/<run>/                   one folder per training run (see :class:`RunFiles`)
    models/active                   a copy of the active model's name (the catalogue's is the one used)
    index/<metric>.index            the stored search index of the embeddings (reform.songindex)
    cache/                          what the web page computes once (the map)

The catalogue holds the home's settings under the names of :class:`Keys`.  The audio
and mel settings its spectrograms were made with are stored by the first scan and
checked whenever the home is opened: a home opened with other settings is refused
with the differences spelt out, instead of being analysed again without a word.

A training run becomes the active model by itself only when both its phases ended on
their own schedule; a run cut short by ``--max-epochs`` (or interrupted) stays
available to ``reform use``.  What `reform models` lists comes from small files only
(model cards, ``metrics.jsonl``, ``evaluation.json``), so it needs no torch.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from .card import card_path, file_problem, read_card
from .config import AudioConfig, EmbedConfig, MelConfig, feature_version, from_dict, to_dict
from .errors import BusyError, LibraryError, ModelError, StoreError, TrainError
from .files import write_error, write_text
from .lock import WriterLock
from .store import CATALOGUE_NAME, Catalogue, FileRow, SpectrogramStore
from .text import plural

SPECTROGRAMS, MODELS, CACHE, INDEX = "spectrograms", "models", "cache", "index"
SHIPPED = "shipped"
SHIPPED_MODEL = Path(__file__).parent / "models" / "shipped.pt"
PHASES = ("pretrain", "cluster")
_USE_TAKES = "`reform models` lists them; use 'shipped', or a run's name, folder or model.pt"
_ELSEWHERE = ("`reform models` lists this library's runs; a run trained elsewhere becomes one "
              "when its folder is copied into the library's models folder")


FOLDERS_UNKNOWN = "the catalogue was made again, its music folders unknown"   # Keys.UNFINISHED's value then


class Keys:
    """The names of the home's settings in the catalogue."""

    ROOTS = "roots"                        # JSON list of the music folders scanned
    PASSED_OVER = "passed_over"            # JSON list of folders inside them that scans pass over
    UNNAMED = "unnamed"                    # JSON list of the names not UTF-8 that scans passed over
    SETTINGS = "settings"                  # JSON {"audio": ..., "mel": ...} of the spectrograms
    FEATURE_VERSION = "feature_version"    # what homes made before SETTINGS stored
    EMBEDDING_MODEL = "embedding_model"    # the key of the stored embeddings
    ACTIVE_MODEL = "active_model"          # the active run's name (absent or "": shipped)
    LINKS = "links"                        # JSON {real path: link} of folders scanned through a link
    MOUNTS = "mounts"                      # JSON list of the disks scans found mounted in a music folder
    UNFINISHED = "unfinished"              # set while a catalogue made again lacks songs a scan adds back
    SCANNING = "scanning"                  # set while a scan runs, and after one that did not end


# copies of what a scan cannot find again in the music, read when the catalogue has lost its
# own (rebuilt from an emptied file by `reform check --repair`): the active model's name, beside
# the runs, and the music folders, beside the catalogue (a scan of them brings the songs back)
ACTIVE_FILE = "active"
FOLDERS_FILE = "folders.json"
SHIPPED_EVALUATION = "shipped-evaluation.json"   # in the models folder: `reform evaluate` of the shipped model
PASSED_OVER_FILE = "passed-over.json"   # the folders inside music folders `reform forget` left out
PLAYS_FILE = "plays.jsonl"   # the play history, one JSON line per play, appended as the catalogue's grows


REBUILD_HINT = ("`reform check --repair` builds a new catalogue and adds the songs of the music "
                "folders back from their stored spectrograms, without analysing them again")


def rebuild_marker(catalogue: Path) -> Path:
    """The file beside a catalogue that says a rebuild of it has begun and not ended
    (:func:`reform.check.rebuild_catalogue`)."""
    return catalogue.with_name(catalogue.name + ".rebuilding")


def leftovers(path: Path) -> str | None:
    """What remains of a library home whose catalogue is gone ("12 spectrograms, 2 training runs
    and the list of music folders"), or None where nothing does (no library was ever here)."""
    spectrograms = sum(1 for _ in (path / SPECTROGRAMS).glob("*/*/*.npy"))
    runs = sum(1 for p in (path / MODELS).glob("*/model.pt"))
    parts = [f"{spectrograms} spectrogram" + ("s" if spectrograms != 1 else "")] if spectrograms else []
    parts += [f"{runs} training run" + ("s" if runs != 1 else "")] if runs else []
    parts += ["the list of music folders"] if (path / FOLDERS_FILE).is_file() else []
    parts += ["the play history"] if (path / PLAYS_FILE).is_file() else []
    if not parts:
        return None
    return " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 1 else parts)


@dataclass(frozen=True)
class Settings:
    """What a home's spectrograms are made with."""

    audio: AudioConfig = AudioConfig()
    mel: MelConfig = MelConfig()

    @property
    def feature_version(self) -> str:
        return feature_version(self.audio, self.mel)

    def to_json(self) -> str:
        return json.dumps({"audio": to_dict(self.audio), "mel": to_dict(self.mel)}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Settings:
        data = json.loads(text)
        return cls(from_dict(AudioConfig, data["audio"]), from_dict(MelConfig, data["mel"]))

    def differences(self, asked: Settings) -> list[str]:
        """Each setting that differs, as "name: stored here, asked"."""
        out = []
        for part in ("audio", "mel"):
            mine, theirs = to_dict(getattr(self, part)), to_dict(getattr(asked, part))
            out += [f"{key} {mine[key]!r} here, {theirs.get(key)!r} asked" for key in mine
                    if mine[key] != theirs.get(key)]
        return out


class Home:
    """A library home folder: its catalogue, spectrograms, writer lock, settings and models.

    Parameters
    ----------
    path : the home folder
    settings : the audio and mel settings to work with; a home analysed with others is
        refused (LibraryError) unless ``reanalyse``
    create : make an empty home if there is none (otherwise StoreError)
    read_only : open the catalogue for reading only (a home one cannot write to)
    reanalyse : accept other stored settings: the next scan analyses every song again
    """

    def __init__(self, path: str | os.PathLike, settings: Settings = Settings(), *,
                 create: bool = True, read_only: bool = False, reanalyse: bool = False):
        self.path = Path(path).expanduser().resolve()
        self.settings = settings
        if self.path.exists() and not self.path.is_dir():
            raise LibraryError("the library home is a file, not a folder", path=self.path,
                               hint="give --home (or $REFORM_HOME) the folder that holds, or will "
                                    "hold, the library")
        if rebuild_marker(self.path / CATALOGUE_NAME).exists():   # a catalogue made here would be replaced
            holder = WriterLock(self.path).holder()
            if holder is not None:
                raise BusyError(f"the library is busy: {holder.describe()} is rebuilding its catalogue",
                                path=self.path, hint="wait until it has finished, then run the command again")
            raise StoreError("a rebuild of this library's catalogue was stopped before it ended", path=self.path,
                             hint="`reform check --repair` finishes it")
        if create and not read_only:
            try:
                self.path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the library home ({exc.strerror})", path=self.path,
                                 hint="choose a folder you can write to with --home") from exc
        elif not (self.path / CATALOGUE_NAME).exists():
            left = leftovers(self.path)
            if left:
                raise StoreError(f"this library's catalogue is missing ({left} remain)", path=self.path,
                                 hint=REBUILD_HINT)
            raise StoreError(f"no library at {self.path}",
                             hint="run `reform scan FOLDER` to build one, or give another library's home with --home")
        self.lock = WriterLock(self.path)
        # a catalogue made anew beside a library's remains holds none of its songs yet
        remains = not read_only and not (self.path / CATALOGUE_NAME).exists() and leftovers(self.path)
        self.catalogue = Catalogue(self.path / CATALOGUE_NAME, create=create, read_only=read_only)
        try:
            if remains:
                self.catalogue.set_meta(Keys.UNFINISHED, "the catalogue was made anew")
                restore_plays(self.catalogue, self.path)
                restore_copies(self.catalogue, self.path)
            if not reanalyse:
                self._check_settings()
        except BaseException:
            self.catalogue.close()
            raise
        self.spectrograms = SpectrogramStore(self.path / SPECTROGRAMS, settings.feature_version)
        self.models = Models(self.path / MODELS, self.catalogue, settings.feature_version)
        self.cache = self.path / CACHE

    def close(self) -> None:
        self.catalogue.close()

    # -- settings -------------------------------------------------------------------------------
    def stored_settings(self) -> Settings | None:
        """The settings the home's spectrograms were made with (None before the first scan)."""
        text = self.catalogue.get_meta(Keys.SETTINGS)
        return Settings.from_json(text) if text else None

    def _check_settings(self) -> None:
        stored = self.stored_settings()
        if stored is not None:
            problems = stored.differences(self.settings)
        else:  # a home made before the settings were stored names their version only
            version = self.catalogue.get_meta(Keys.FEATURE_VERSION)
            problems = [f"feature version {version} here, {self.settings.feature_version} asked"] \
                if version and version != self.settings.feature_version else []
        if problems:
            raise LibraryError(f"this library was analysed with other settings ({'; '.join(problems)})",
                               path=self.path,
                               hint="open it with the settings it was made with, or run `reform scan "
                                    "--reanalyse` to analyse every song again with these")

    def record_settings(self) -> None:
        """Store the settings the spectrograms are being made with (scan does, in its
        transaction)."""
        self.catalogue.set_meta(Keys.SETTINGS, self.settings.to_json())
        self.catalogue.set_meta(Keys.FEATURE_VERSION, self.settings.feature_version)

    # -- music folders and embeddings -------------------------------------------------------------
    def roots(self) -> list[str]:
        """The music folders scanned so far (from the copy beside the catalogue when the
        catalogue has lost them: one rebuilt from an emptied file)."""
        return self._listed(Keys.ROOTS, FOLDERS_FILE)

    def passed_over(self) -> list[str]:
        """The folders inside music folders that scans pass over (`reform forget` of one: a
        folder of audiobooks in the music), kept and copied as the music folders are."""
        return self._listed(Keys.PASSED_OVER, PASSED_OVER_FILE)

    def set_passed_over(self, folders: list[str]) -> None:
        text = json.dumps(sorted(set(folders)))
        self.catalogue.set_meta(Keys.PASSED_OVER, text)
        self.catalogue.after_commit(lambda: write_text(self.path / PASSED_OVER_FILE, text + "\n"))

    def unnamed(self) -> list[str]:
        """The files and folders whose names are not UTF-8 that the scans found (as the file
        system gives them, undecodable bytes as surrogates): no catalogue row can hold them."""
        return self._listed(Keys.UNNAMED)

    def set_unnamed(self, names: list[str]) -> None:
        self.catalogue.set_meta(Keys.UNNAMED, json.dumps(sorted(set(names))))   # ASCII: surrogates escaped

    def _listed(self, key: str, copy: str | None = None) -> list[str]:
        """The JSON list of strings the catalogue keeps under ``key``, read from its ``copy``
        beside the catalogue when the catalogue has lost it; [] if none can be read."""
        text = self.catalogue.get_meta(key)
        if text is None and copy is not None:
            try:
                text = (self.path / copy).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                pass
        try:
            items = json.loads(text or "[]")
        except ValueError:
            return []
        return [x for x in items if isinstance(x, str)] if isinstance(items, list) else []

    def links(self) -> dict[str, str]:
        """The folders outside the library that scans reached through a link inside a music
        folder: real path -> the link (so that a later scan of the real path is a scan of the
        songs the library holds).  A walk by an older version also took a link to elsewhere in the
        library where its name came first, and named that folder's songs by it: the songs take
        their real names at the next scan, and such a link names nothing."""
        try:
            links = json.loads(self.catalogue.get_meta(Keys.LINKS) or "{}")
        except ValueError:
            return {}
        if not isinstance(links, dict):
            return {}
        library = {os.path.realpath(root) for root in self.roots()}
        return {k: v for k, v in links.items()
                if isinstance(v, str) and k not in library and not _inside_one(k, library)}

    def respell_links_within(self) -> int:
        """Give the songs an older walk named through a link to elsewhere in the library their real
        paths (the link's were those of a folder the walk now passes over, so a scan of it found
        them gone, and one of their real folder added them again), and forget those links; a link
        that no longer leads where it was recorded to is forgotten as it stands.  A link inside
        another is renamed first, and a link out of the library recorded inside one is written
        under its new name.  Returns how many rows were renamed."""
        try:
            links = json.loads(self.catalogue.get_meta(Keys.LINKS) or "{}")
        except ValueError:
            return 0
        if not isinstance(links, dict):
            return 0
        roots = sorted(((os.path.realpath(r), r) for r in self.roots()), key=lambda pair: len(pair[0]), reverse=True)
        outside, renames = {}, {}
        for target, link in links.items():
            if not (isinstance(target, str) and isinstance(link, str)):
                continue
            holder = next(((real, root) for real, root in roots if target == real or _inside_one(target, {real})), None)
            if holder is None:
                outside[target] = link
            elif os.path.realpath(link) == target:
                real, root = holder
                renames[link] = os.path.normpath(os.path.join(root, os.path.relpath(target, real)))
        if outside == links:
            return 0
        deepest = sorted(renames, key=len, reverse=True)
        renamed = sum(self.catalogue.rename_under(link, renames[link]) for link in deepest)

        def respelled(path: str) -> str:
            link = next((link for link in deepest if path == link or _inside_one(path, {link})), None)
            return path if link is None else renames[link] + path[len(link):]
        self.catalogue.set_meta(Keys.LINKS, json.dumps({t: respelled(link) for t, link in outside.items()},
                                                       sort_keys=True))
        return renamed

    def add_links(self, links: dict[str, str]) -> None:
        self.catalogue.set_meta(Keys.LINKS, json.dumps(self.links() | links, sort_keys=True))

    def mounts(self) -> list[str]:
        """The folders inside music folders that scans found to be other disks' mount points
        (so that an empty one, its disk not mounted, is not taken for deleted music)."""
        return self._listed(Keys.MOUNTS)

    def add_mounts(self, mounts: list[str]) -> None:
        self.catalogue.set_meta(Keys.MOUNTS, json.dumps(sorted(set(self.mounts()) | set(mounts))))

    def add_roots(self, roots: list[str]) -> None:
        """Remember music folders (or files).  One inside another is not a folder of its own:
        the outer one's scans cover it, and recorded apart, its deleted songs were kept as if
        a disk were away (disks inside music folders are remembered as such: links, mounts)."""
        every = set(self.roots()) | set(roots)
        self._set_roots({r for r in every if not _inside_one(r, every)})

    def forget_roots(self, roots: list[str]) -> None:
        self._set_roots(set(self.roots()) - set(roots))

    def _set_roots(self, roots: set[str]) -> None:
        text = json.dumps(sorted(roots))
        self.catalogue.set_meta(Keys.ROOTS, text)
        self.catalogue.after_commit(lambda: write_text(self.path / FOLDERS_FILE, text + "\n"))

    def copy_problems(self) -> list[str]:
        """The copies kept beside the catalogue of what a scan cannot find again (the music
        folders, the active model's name, the play history) that are missing or differ from it:
        were the catalogue lost, a missing copy would take the library's folders, the user's
        choice of model or what was played with it.  :meth:`write_copies` writes them again."""
        return [f"{path.relative_to(self.path)}: {what} is missing or differs from the catalogue's"
                for path, text, what in self._copies() if text_of(path) != text]

    def write_copies(self) -> None:
        restore_plays(self.catalogue, self.path)   # a play only the copy holds stays in both
        for path, text, _ in self._copies():
            if text_of(path) != text:
                path.parent.mkdir(parents=True, exist_ok=True)
                write_text(path, text + "\n")

    def _copies(self) -> list[tuple[Path, str, str]]:
        copies = []
        plays = self.catalogue.plays()
        if plays:   # (a copy holding plays the catalogue lacks is put back into it: restore_plays)
            copies.append((self.path / PLAYS_FILE, _play_lines(plays).strip(), "the copy of the play history"))
        roots = self.catalogue.get_meta(Keys.ROOTS)
        if roots is not None:
            copies.append((self.path / FOLDERS_FILE, roots, "the copy of the music folders"))
        passed = self.catalogue.get_meta(Keys.PASSED_OVER)
        if passed is not None:
            copies.append((self.path / PASSED_OVER_FILE, passed, "the copy of the folders scans pass over"))
        active = self.catalogue.get_meta(Keys.ACTIVE_MODEL)
        if active is not None:   # "" is the shipped model
            copies.append((self.path / MODELS / ACTIVE_FILE, active or SHIPPED, "the copy of the active model's name"))
        return copies

    def record_play(self, row: FileRow, player: str) -> None:
        """Note a play in the catalogue, and in the copy beside it (plays are nowhere in the music
        a scan could find them again)."""
        when = time.time()
        with self.catalogue.transaction():
            self.catalogue.add_play(row, player, when)
        log = self.path / PLAYS_FILE
        if not log.exists():   # the first play logged here: the history before it goes first
            write_text(log, _play_lines(self.catalogue.plays()))
            return
        try:
            with open(log, "a+b") as f:
                f.seek(0, os.SEEK_END)
                if f.tell():   # a line cut short by a crash ends here, so that the new one stands alone
                    f.seek(-1, os.SEEK_END)
                    cut = f.read(1) != b"\n"
                    f.seek(0, os.SEEK_END)
                    if cut:
                        f.write(b"\n")
                f.write(_play_lines([(row.hash, row.path, when, player)]).encode("utf-8"))
        except OSError as exc:
            raise write_error(exc, log, "the copy of the play history") from exc

    def unfinished(self) -> bool:
        """Whether the catalogue was made again (deleted, or rebuilt from a damaged one) and no
        scan of all the music folders has yet added back the songs it lacks: till then the
        spectrograms it does not name are those songs', and are not garbage."""
        return bool(self.catalogue.get_meta(Keys.UNFINISHED))

    def mark_finished(self) -> None:
        self.catalogue.set_meta(Keys.UNFINISHED, "")

    def mark_folders_unknown(self) -> None:
        self.catalogue.set_meta(Keys.UNFINISHED, FOLDERS_UNKNOWN)

    def folders_unknown(self) -> bool:
        """Whether the catalogue was made again with no music folder known (their copy, folders.json,
        was lost too): then the folders scanned since may not be all of them, and no scan of them
        alone may take the spectrograms it did not find songs for as garbage."""
        return self.catalogue.get_meta(Keys.UNFINISHED) == FOLDERS_UNKNOWN

    def scan_state(self) -> str | None:
        """"running", "interrupted" (a scan stopped by Ctrl-C, killed, or out of power before it
        ended: `reform scan` goes on), or None."""
        if not self.catalogue.get_meta(Keys.SCANNING):
            return None
        try:   # a scan holds the writer lock (a repair's scan too, under the repair's name)
            return "running" if self.lock.holder() is not None else "interrupted"
        except StoreError:   # a home this user cannot write to: no scan of theirs is running
            return "interrupted"

    def mark_scanning(self, running: bool) -> None:
        self.catalogue.set_meta(Keys.SCANNING, "1" if running else "")

    def embedding_model(self) -> str | None:
        """The key of the embeddings the library uses (one model's: kept ones of the models used
        before are never mixed in); where the catalogue lost its note of it (a repair salvaged the
        embeddings but not that row), the active model's if they are stored, else the most held."""
        key = self.catalogue.get_meta(Keys.EMBEDDING_MODEL)
        if key is None:
            stored = self.catalogue.embedding_models()
            try:
                active = embedding_key(self.models.path())
            except ModelError:   # the active run's folder lost: the most held
                active = None
            key = active if active in stored else max(stored, key=stored.get) if stored else None
        return key

    def set_embedding_model(self, key: str) -> None:
        self.catalogue.set_meta(Keys.EMBEDDING_MODEL, key)

    def index_path(self, metric: str) -> Path:
        """The stored search index of the embeddings for one metric."""
        return self.path / INDEX / f"{metric}.index"


@dataclass
class RunFiles:
    """The files of one training run inside the library home's models folder: their one naming."""

    folder: Path

    @property
    def checkpoint(self) -> Path:
        return self.folder / "checkpoint.pt"

    @property
    def pretrain(self) -> Path:
        return self.folder / "pretrain.pt"

    @property
    def model(self) -> Path:
        return self.folder / "model.pt"

    @property
    def metrics(self) -> Path:
        return self.folder / "metrics.jsonl"

    def problems(self) -> dict[Path, str]:
        """The run's model files that are damaged (their archives' checksums read through, no
        torch), each with the way out: a model is written again from a sound checkpoint; a
        damaged checkpoint ends the run, and a new one can start from its model."""
        # each file read through once (a checkpoint holds tens of MB)
        problems = {path: file_problem(path) for path in (self.checkpoint, self.pretrain, self.model)
                    if path.exists()}
        found = {}
        for path, problem in problems.items():
            if problem is None:
                continue
            name = self.folder.name
            if path == self.pretrain and problems.get(self.model, "lost") is None:
                # a run past its pretraining never writes it again (a resume goes on with the clustering)
                way = "the run's model.pt does not need it: delete it (only a pretraining writes one)"
            elif path != self.checkpoint:
                way = (f"`reform train --resume --name {name}` writes it again from the run's checkpoint"
                       if self.checkpoint in problems and problems[self.checkpoint] is None
                       else "train the run again")
            else:
                from .checkpoint import load_hint   # (torch, only for a damaged checkpoint)
                way = load_hint(path)
            found[path] = f"run {name}: {path.name}: {problem}; {way}"
        return found

    @property
    def curves(self) -> Path:
        return self.folder / "curves.png"

    @property
    def config(self) -> Path:
        return self.folder / "config.json"

    @property
    def evaluation(self) -> Path:
        return self.folder / "evaluation.json"

    def architecture(self, phase: str) -> Path:
        return self.folder / f"architecture-{phase}.png"


@dataclass(frozen=True)
class Run:
    """One training run, as `reform models` lists it."""

    name: str
    folder: Path
    epochs: dict[str, int]                 # epochs done per phase
    stopped: dict[str, bool]               # the phase ended on its schedule (not cut short)
    usable: bool                           # it has a model of both phases (model.pt)
    evaluation: dict[str, float] | None    # the evaluation saved beside it, if any
    finished_at: str | None
    started_from: str | None = None        # the model it fine-tuned: "shipped" or a version
    lost: bool = False                     # its model was written (its card is there), then deleted
    resumable: bool = True                 # it has a checkpoint to go on from
    pretrained: bool = False               # its pretraining ended (pretrain.pt), as `--phase pretrain` stops
    faults: dict[str, str] = field(default_factory=dict)   # phases that learnt nothing usable (faults())

    @property
    def complete(self) -> bool:
        """Its phases ran until their schedule stopped them, and learnt: good to become active by
        itself.  A phase it never ran (the pretraining of a clustering phase started from the
        shipped model) is not one cut short."""
        return self.usable and not cut_short(self.epochs, self.stopped) and not self.faults

    @property
    def state(self) -> str:
        """In words: how far the run got."""
        tuned = f", fine-tuned from {self.started_from}" if self.started_from else ""
        if self.usable and self.faults:
            return "failed: " + "; ".join(f"{p}: {why}" for p, why in self.faults.items()) + tuned
        if self.complete:
            return "finished" + tuned
        if self.usable:
            return f"cut short ({' and '.join(cut_short(self.epochs, self.stopped))} stopped before its schedule " \
                   "ended)" + tuned
        if self.lost:
            return (f"model file lost: `reform train --resume --name {self.name}` writes it again" if self.resumable
                    else "model file lost, and its checkpoint too: train the run again")
        if self.epochs.get("cluster"):
            return f"clustering in progress or interrupted (epoch {self.epochs['cluster']})"
        if self.pretrained:
            return (f"pretrained ({plural(self.epochs.get('pretrain', 0), 'epoch')}): `reform train --phase cluster "
                    f"--name {self.name}` adds the clustering phase")
        if self.epochs.get("pretrain"):
            return f"pretraining in progress or interrupted (epoch {self.epochs['pretrain']})"
        return (f"first epoch in progress, or stopped before it ended (`reform train --name {self.name}` starts "
                "it again)")


COLLAPSED = 1e-8   # songs' mean squared distance from their centre at or below this: one point
RAN_AWAY = 100.0   # a main loss this high on inputs scaled to unit variance per band: garbage out


def faults(history: list[dict]) -> dict[str, str]:
    """For each phase whose last epoch shows it learnt nothing usable: what, in words.

    A schedule ends a run on plateaus whether or not the model is any good, and the note's
    learning rate of 0.1 can end the clustering phase with every song at one point (README,
    the learning-rate table) or with a loss that ran away without becoming infinite (which
    would stop the run as diverged).  Such a run is said, and not made active by itself.
    """
    found = {}
    for phase in PHASES:
        epochs = [h for h in history if h.get("phase") == phase and h.get("epoch")]
        if not epochs:
            continue
        last = epochs[-1]   # healthy runs measured 0.6 to 150; the note's rate of 0.1 ended at 1e-12
        if last.get("spread_between") is not None and last["spread_between"] <= COLLAPSED:
            found[phase] = "every song's embedding ended at one point (the model collapsed)"
        elif (last.get("main") or 0.0) >= RAN_AWAY:
            found[phase] = (f"its decoder's loss ended at {last['main']:.3g}, where every band's average level "
                            "would cost about 1")
    return found


def stopped_by_schedule(history: list[dict]) -> dict[str, bool]:
    """For each phase: did its schedule end it (an epoch with the "stop" event)?"""
    return {p: any(h.get("phase") == p and h.get("event") == "stop" for h in history) for p in PHASES}


def epochs_of(history: list[dict]) -> dict[str, int]:
    """The epochs each phase ran."""
    return {p: sum(1 for h in history if h.get("phase") == p and h.get("epoch")) for p in PHASES}


def cut_short(epochs: dict[str, int], stopped: dict[str, bool]) -> list[str]:
    """The phases a run ran that its schedule did not end (`--max-epochs`, an interruption): the
    clustering phase always counts, a pretraining never run (a clustering phase started from the
    shipped model) does not."""
    return [p for p in PHASES if not stopped.get(p) and (epochs.get(p) or p == "cluster")]


def ended(history: list[dict]) -> bool:
    """Whether every phase a run ran (its logged epochs, ``history``) was ended by its schedule."""
    return not cut_short(epochs_of(history), stopped_by_schedule(history))


def read_history(folder: Path) -> list[dict]:
    """A run's logged epochs (``metrics.jsonl``), up to the first damaged line; none if missing."""
    history = []
    try:
        for line in RunFiles(folder).metrics.read_text().splitlines():
            history.append(json.loads(line))
    except (OSError, ValueError):
        pass
    return history


def read_run(folder: Path, shipped_version: str | None = None) -> Run:
    """A run's listing from its folder (missing or damaged files count as not there); a run
    fine-tuned from ``shipped_version`` (the shipped model's) is said to be from "shipped"."""
    history, files = read_history(folder), RunFiles(folder)
    epochs = epochs_of(history)
    model = files.model
    try:
        card = read_card(model) if model.exists() else {}
    except ModelError:
        card = {}
    info, version = card.get("info", {}), card.get("version")
    started = info.get("started_from")
    if started and started == shipped_version:
        started = SHIPPED
    if not history and isinstance(info.get("epochs"), dict):   # the log lost: the card counted them too
        epochs = {p: int(info["epochs"].get(p) or 0) for p in PHASES}
    return Run(folder.name, folder, epochs, stopped_by_schedule(history), model.exists(),
               _evaluation(files.evaluation, version), info.get("finished_at"), started,
               lost=not model.exists() and card_path(model).exists(), resumable=files.checkpoint.exists(),
               pretrained=files.pretrain.exists(), faults=faults(history))


def _play_lines(plays: list[tuple[str, str, float, str]]) -> str:
    return "".join(json.dumps({"hash": h, "path": p, "played_at": t, "player": who}, ensure_ascii=False) + "\n"
                   for h, p, t, who in plays)


def restore_plays(catalogue: Catalogue, home: Path) -> int:
    """Put every play of the copy beside the catalogue that the catalogue lacks back into it:
    how many.  Not only into a catalogue made again with none: one whose rebuild stopped before
    its plays were salvaged, then recorded a play, held 1 of 4, and writing the copies from it
    cut the copy to that one.  A damaged line (a crash in the middle of writing it) is passed over."""
    copied = []
    try:
        lines = (home / PLAYS_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        try:
            d = json.loads(line)
            copied.append((str(d["hash"]), str(d["path"]), float(d["played_at"]), str(d["player"])))
        except (ValueError, KeyError, TypeError):
            continue
    if not copied:
        return 0
    with catalogue.transaction():   # read within it: two processes opening a home made anew add them once
        have = {tuple(play) for play in catalogue.plays()}
        missing = [play for play in dict.fromkeys(copied) if play not in have]
        catalogue.add_plays(missing)
    return len(missing)


def restore_copies(catalogue: Catalogue, home: Path) -> None:
    """Put the music folders, the folders scans pass over and the active model's name back into
    a catalogue made again without them, from their copies beside it.  Read from the copies
    alone, they were lost with the next lost copy (a deleted ``models/active`` made the
    shipped model the active one, and `reform embed` then replaced the user's embeddings),
    and `reform check`, which compares the copies with the catalogue, saw nothing amiss."""
    kept = {}
    for key, copy in ((Keys.ROOTS, FOLDERS_FILE), (Keys.PASSED_OVER, PASSED_OVER_FILE)):
        try:
            items = json.loads(text_of(home / copy) or "")
        except ValueError:
            continue
        if isinstance(items, list) and all(isinstance(x, str) for x in items):
            kept[key] = json.dumps(sorted(set(items)))
    active = text_of(home / MODELS / ACTIVE_FILE)
    if active and _one_folder(active):
        kept[Keys.ACTIVE_MODEL] = "" if active == SHIPPED else active
    with catalogue.transaction():
        for key, text in kept.items():
            if catalogue.get_meta(key) is None:
                catalogue.set_meta(key, text)


def embedding_key(model: Path) -> str | None:
    """The key of the embeddings a model file makes, read from its card (no weights loaded); None
    where its card is lost or damaged."""
    try:
        return EmbedConfig().key(read_card(model)["version"])
    except (ModelError, KeyError, TypeError):
        return None


def _inside_one(path: str, folders: set[str]) -> bool:
    """Whether a folder above ``path`` (absolute) is one of ``folders``: each looked up by name,
    not each folder compared with each other (117,000 comparisons for 342 files scanned one by one)."""
    parent = os.path.dirname(path)
    while parent != path:
        if parent in folders:
            return True
        path, parent = parent, os.path.dirname(parent)
    return False


def text_of(path: Path) -> str | None:
    """A small text file beside the catalogue, stripped; None where it cannot be read."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _shipped_version() -> str | None:
    """The shipped model's version, from its card (no torch)."""
    try:
        return read_card(SHIPPED_MODEL).get("version")
    except ModelError:
        return None


# A new run's name: it is written into the commands the output suggests (`reform use my run`
# failed; "jazz & blues" would have run a command named blues), and a leading dot hides the folder.
RUN_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


def _one_folder(name: str) -> bool:
    """Whether ``name`` names one folder inside another (a run's name), not a path."""
    return name not in ("", ".", "..") and "/" not in name and os.sep not in name


def _last_written(run: Path) -> float:
    """When a training run last saved anything: its checkpoint, else its settings."""
    files = [RunFiles(run).checkpoint, RunFiles(run).config]
    return max((f.stat().st_mtime for f in files if f.exists()), default=0.0)


def saved_evaluation(path: Path, version: str | None = None) -> dict | None:
    """The evaluation saved at ``path`` beside a model (`reform evaluate`), or None where there is
    none, it cannot be read, or it measured another version of the model than ``version`` (the
    weights a resumed run has since replaced)."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or version and saved.get("model_version") not in (None, version):
        return None
    return saved


def _evaluation(path: Path, version: str | None = None) -> dict | None:
    """The model's own row of a saved evaluation (p@10 and same-song top-1, when measured), with
    the labels its p@10 was measured by: runs evaluated by other labels are not comparable."""
    saved = saved_evaluation(path, version)
    try:
        methods = saved.get("methods", {}) if saved else {}
    except AttributeError:
        return None
    own = [row for name, row in methods.items()
           if name.startswith("ReFORM") and name.endswith(("(both phases)", "(pretraining only)"))]
    return {**own[0], "labels": saved.get("labels")} if own else None


class Models:
    """The models a home can use: the shipped one, its training runs, and the active one.

    Parameters
    ----------
    folder : the home's models folder
    catalogue : the home's catalogue (the active model is one of its settings)
    """

    def __init__(self, folder: Path, catalogue: Catalogue, feature_version: str):
        self.folder = Path(folder)
        self.catalogue = catalogue
        self.feature_version = feature_version

    def run_folder(self, name: str | None = None, *, resume: bool = False) -> Path:
        """The folder of a training run: the named one, else the newest (resume) or a new one."""
        if name == SHIPPED:   # the name always means the model inside the package
            raise TrainError(f"{SHIPPED!r} names the model that ships with ReFORM",
                             hint="give the run another --name")
        if name:
            if not _one_folder(name):
                raise TrainError(f"a run's name is one folder name, and {name!r} is not",
                                 hint="give --name a name without '/', such as jazz-2026")
            if resume and not (self.folder / name).is_dir():
                raise TrainError(f"there is no run named {name!r} to resume",
                                 hint="`reform models` lists the runs; without --resume, --name starts a new one")
            if not resume and not re.match(RUN_NAME, name) and not (self.folder / name).exists():
                raise TrainError(f"a new run's name is letters, digits, '_', '.' and '-', starting with a letter "
                                 f"or digit, 64 at most, and {name!r} is not",
                                 hint="such as jazz-2026: the name is written into the commands ReFORM suggests")
            return self.folder / name
        if resume:
            runs = [p.parent for p in self.folder.glob("*/config.json")]
            runs += [p.parent for p in self.folder.glob("*/checkpoint.pt") if p.parent not in runs]
            if not runs:
                raise TrainError("there is no training run to resume", hint="start one with `reform train`")
            return max(runs, key=_last_written)
        return self.folder / time.strftime("run-%Y%m%d-%H%M%S")

    def load(self, which: str | os.PathLike | None = None):
        """Load a model bundle (see :meth:`path`) and check that it was trained on spectrograms
        like this home's (torch is imported here)."""
        from .checkpoint import load_bundle

        path = self.path(which)
        bundle = load_bundle(path)
        if bundle.feature_version != self.feature_version:
            raise ModelError(f"the model was trained on other spectrogram settings "
                             f"({bundle.feature_version}, this library has {self.feature_version})",
                             path=path, hint="train a model on this library with `reform train`")
        return bundle

    def runs(self) -> list[Run]:
        """Every training run, oldest first."""
        if not self.folder.is_dir():
            return []
        shipped = _shipped_version()   # read once, not once per run
        found = [read_run(p, shipped) for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
        return sorted(found, key=lambda r: (r.finished_at or "~", r.name))

    def delete(self, name: str) -> int:
        """Delete a training run's folder (a trial, a run cut short, one that failed); returns the
        bytes freed.  The caller holds the writer lock, so that no training writes it."""
        folder = self.deletable(name)
        if folder.is_symlink():   # a run kept elsewhere: the link goes, what it leads to stays
            folder.unlink()
            return 0
        freed = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
        shutil.rmtree(folder)
        return freed

    def deletable(self, name: str) -> Path:
        """The folder of the run ``name``, if it may be deleted: never the active model (the
        library's embeddings and `reform use` name it) nor the shipped one (ModelError)."""
        if name == SHIPPED:
            raise ModelError(f"{SHIPPED!r} is the model that ships with ReFORM: it cannot be deleted")
        folder = self.folder / name
        if not _one_folder(name) or not (folder.is_dir() or folder.is_symlink()):   # (a link to a run deleted)
            raise ModelError(f"{name!r} is not a run of this library", hint="`reform models` lists them")
        active = self.folder / self.active_name()
        if name == active.name or active.is_dir() and folder.is_dir() and os.path.samefile(folder, active):   # Run1
            raise ModelError(f"the run {name!r} is the active model",
                             hint="make another one active first: `reform use shipped`, or `reform use RUN`")
        return self.folder / name

    def active_name(self) -> str:
        """The active run's name, or "shipped".

        A run stays active when its model file, or its whole folder, is gone (deleted, renamed):
        loading it then says so (:meth:`path`), where falling back to the shipped model would
        have had the next `reform embed` replace every embedding of the model the user chose
        without a word.  `reform use` chooses another.
        """
        name = self.catalogue.get_meta(Keys.ACTIVE_MODEL)
        if name is None:
            try:
                name = (self.folder / ACTIVE_FILE).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError):
                name = None
        return name if name and _one_folder(name) else SHIPPED

    def path(self, which: str | os.PathLike | None = None) -> Path:
        """A model file: None is the active one; "shipped"; a run's name; a run folder or a
        model file."""
        active = which is None
        if active:
            which = self.active_name()
        if which == SHIPPED:
            if not SHIPPED_MODEL.exists():
                raise ModelError("no model is trained yet and this installation ships none",
                                 hint="run `reform train` to train one on your library")
            return SHIPPED_MODEL
        run = RunFiles(self.folder / str(which)).model
        if run.exists():
            return run
        path = Path(which)
        if path.is_dir() and RunFiles(path).model.exists():
            return RunFiles(path).model
        if path.is_file():
            return path
        if _one_folder(str(which)) and (self.folder / str(which)).is_dir():
            resumable = RunFiles(self.folder / str(which)).checkpoint.exists()
            if card_path(run).exists():   # its card is there: the model was written, then lost
                raise ModelError(f"the run {which!r} has lost its model file", path=run,
                                 hint=(f"`reform train --resume --name {which}` writes it again from the run's "
                                       "last checkpoint" if resumable else "its checkpoint is gone too: train "
                                       "the run again") + "; `reform use shipped` goes back to the shipped model")
            raise ModelError(f"the run {which!r} has no model of both phases yet",
                             hint=f"finish it with `reform train --resume --name {which}`" if resumable else
                             f"it has no checkpoint to go on from (stopped before its first epoch ended?): start it "
                             f"again with `reform train --name {which}`")
        if active:   # chosen with `reform use`, then its folder was renamed or deleted
            raise ModelError(f"the active model, run {which!r}, is no longer in the library's models folder "
                             "(renamed or deleted?)", path=self.folder / str(which),
                             hint="`reform use NAME` makes another run the active model (`reform models` lists "
                                  "them); `reform use shipped` goes back to the shipped model")
        if not _one_folder(str(which)):   # a path typed: say it is not there, not that no run has the name
            raise ModelError("no such model file", path=which, hint="check the path; `reform models` lists the "
                             "runs of this library")
        raise ModelError(f"no model named {which!r}", hint="`reform models` lists them; use "
                         "'shipped', a run's name, or the path of a model.pt file")

    def evaluation_file(self, path: Path) -> Path | None:
        """Where `reform evaluate` keeps its figures for the model file ``path``: beside a run's
        model, and in this models folder for the shipped model (whose own folder belongs to the
        installation: its figures were never kept, and `reform models` kept sending the user to
        `reform evaluate` for them); None for a model file of neither."""
        if Path(path) == SHIPPED_MODEL:
            return self.folder / SHIPPED_EVALUATION
        return RunFiles(path.parent).evaluation if self.short_name(path) != str(path) else None

    def shipped_evaluation(self) -> dict | None:
        """The shipped model's row of the evaluation kept for it in this home, as a run's (:class:`Run`)."""
        return _evaluation(self.folder / SHIPPED_EVALUATION, _shipped_version())

    def short_name(self, path: Path) -> str:
        """How a model file is called in a table: "shipped", its run's name, or its path."""
        if path == SHIPPED_MODEL:
            return SHIPPED
        if path == RunFiles(path.parent).model and path.parent.parent == self.folder:
            return path.parent.name
        return str(path)

    def name_of(self, path: Path) -> str:
        """How a model file is called in messages: the shipped model, "run NAME", or its path."""
        name = self.short_name(path)
        if name == SHIPPED:
            return "the model shipped with ReFORM"
        if name != str(path):
            return name if name.startswith("run-") else f"run {name}"   # not "run run-20261128-..."
        return name

    def activate(self, which: str) -> str:
        """Make "shipped" or a run with a model of both phases the active model; returns its name."""
        if not which:
            raise ModelError("no model named ''", hint=_USE_TAKES)
        if which != SHIPPED:
            which = self._run_name(which)
            if not RunFiles(self.folder / which).model.exists():
                try:
                    self.path(which)
                except ModelError as exc:   # the right error, with the hint of what `use` takes
                    hint = exc.hint if exc.hint and "reform train" in exc.hint else _USE_TAKES
                    raise ModelError(exc.message, path=exc.path, hint=hint) from None
                raise ModelError(f"{which!r} is not a run of this library", hint=_ELSEWHERE)
            model = RunFiles(self.folder / which).model
            damage = file_problem(model)   # made active, `embed` would fail on it with torch's words
            if damage:
                raise ModelError(f"the run {which!r} cannot be used: {damage}", path=model,
                                 hint="`reform check` says what else is damaged; `reform train --resume --name "
                                      f"{which}` writes the model again from the run's checkpoint")
        self.catalogue.set_meta(Keys.ACTIVE_MODEL, "" if which == SHIPPED else which)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.catalogue.after_commit(lambda: write_text(self.folder / ACTIVE_FILE, which + "\n"))
        return which

    def _run_name(self, which: str) -> str:
        """A run's name, given its name, its folder or its model.pt file."""
        if _one_folder(which):
            return which
        path = Path(which).resolve()
        if path == RunFiles(path.parent).model:
            path = path.parent
        if path.parent != self.folder.resolve():
            raise ModelError(f"{which} is not a run of this library", hint=_ELSEWHERE)
        return path.name

