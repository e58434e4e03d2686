"""The home's stored search index: built once, kept in step with the embeddings, loaded by
every query instead of being built again.

One file per metric (``index/<metric>.index``, named by :mod:`reform.home`), written under
a temporary name, fsynced and renamed, so a kill leaves the previous index whole::

    MAGIC, the header's length (8 bytes, little-endian), the header (JSON), then the
    sections the header lists at their offsets: vectors (N, D) float32, hashes (N,) bytes
    (b"" for a removed song's slot), order (N,) int64 (the slots sorted by hash),
    live (N,) bool, structure (the FAISS bytes; absent for the exact kind), blocks
    (the CRC-32 of every BLOCK_ROWS vectors)

The header says what the index was made from (the catalogue's identity, the embeddings'
model key and the revision of their change log, the metric) and each section's offset,
size and CRC-32.  Reading checks the sizes and every checksum but the vectors'; those are
checked block by block the first time a query reads them (a query reads a few hundred, a
whole check of a million songs' vectors would take longer than the query).  A damaged
file is never trusted: reading it fails and the index is built again; the vectors of a file
up to CHECK_WHOLE_BYTES (a library of about 100,000 songs) are all checked when it is loaded,
and in a larger one the query that meets a damaged block fails and removes the file, and the
next command builds it again.  An index whose revision is behind the catalogue's takes in
just the songs whose embeddings changed since (the catalogue logs them, see
:mod:`reform.store`), so adding or removing songs costs their vectors, not a new build;
another model (or aggregation, part of its key), another catalogue, a log that no longer
reaches back, or a library grown past the exact/approximate switch builds it again.
Vectors are memory-mapped: a query reads the few it scores, not the whole file.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import EmbedError, StoreError, WriteError
from .files import replacing
from .index import Index, build_index, choose_kind, prepare, structure_bytes, structure_from_bytes, updatable

MAGIC = b"REFORM-INDEX\n"
FORMAT = 2
SECTIONS = ("vectors", "hashes", "order", "live", "structure", "blocks")
ALIGN = 64
BLOCK_ROWS = 64        # vectors per checksum: 64 KiB of 256-d vectors
CHECK_WHOLE_BYTES = 64 << 20   # an index file up to this size has every block checked when loaded (40 ms
                               # here): a damaged one is built again at once, not after a failed query
REBUILD_SHARE = 0.25   # an approximate index is built again once this share of its slots is removed
REBUILD_GROWTH = 4.0   # ... or once the library is this many times larger or smaller than at its build


@dataclass
class SongIndex:
    """The embedded songs of a library, slot by slot, and the search index over their vectors."""

    hashes: np.ndarray       # (N,) bytes: the song (content hash) in each slot, b"" when removed
    order: np.ndarray        # (N,) int64: the slots sorted by hash
    index: Index
    model: str               # the embeddings' key (model version and aggregation)
    revision: int = 0        # the catalogue's embeddings revision the index has taken in
    catalogue: str = ""      # the catalogue's identity
    built_size: int = 0      # how many songs the FAISS structure was trained for

    @classmethod
    def build(cls, hashes: list[str], vectors: np.ndarray, metric: str = "cosine", kind: str = "auto",
              model: str = "", revision: int = 0, catalogue: str = "") -> SongIndex:
        """An index over raw song vectors (N, D) keyed by their content hashes."""
        names = np.array([h.encode() for h in hashes], dtype=f"S{max((len(h) for h in hashes), default=1)}")
        return cls(names, np.argsort(names, kind="stable"), build_index(vectors, metric, kind), model,
                   revision, catalogue, len(hashes))

    def __len__(self) -> int:
        return len(self.index)

    @property
    def metric(self) -> str:
        return self.index.metric

    @property
    def kind(self) -> str:
        return self.index.kind

    def slot(self, digest: str) -> int | None:
        """The slot of a song (None if it has no embedding here)."""
        key = digest.encode()
        at = int(np.searchsorted(self.hashes, key, sorter=self.order))
        if at < len(self.order) and self.hashes[self.order[at]] == key and key:
            return int(self.order[at])
        return None

    def hash_at(self, slot: int) -> str:
        return self.hashes[slot].decode()

    def vector(self, slot: int) -> np.ndarray:
        """The prepared vector of a slot (unit length for cosine): (D,)."""
        return self.index.rows(np.array([slot]))[0]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.index.search(queries, k)

    def as_kind(self, kind: str) -> SongIndex:
        """This index searched another way: "exact" uses the vectors alone; another FAISS kind
        is built over them (in memory)."""
        kind = choose_kind(len(self), kind)
        if kind == self.kind:
            return self
        live = self.index.live
        index = Index(self.index.vectors, self.metric, "exact", None, live, self.index.check)
        if kind != "exact":
            keep = np.flatnonzero(live) if live is not None else np.arange(len(self.hashes))
            vectors = self.index.rows(keep)
            return SongIndex.build([self.hash_at(i) for i in keep], vectors, self.metric, kind,
                                   self.model, self.revision, self.catalogue)
        return SongIndex(self.hashes, self.order, index, self.model, self.revision, self.catalogue,
                         self.built_size)

    # -- changes -----------------------------------------------------------------------------
    def apply(self, changes: dict[str, np.ndarray | None]) -> None:
        """Take in changed songs: a hash with a vector is (re)placed, one with None removed, as
        is one whose vector has another size or is not finite (damage, which `reform check`
        names: a full build leaves it out too, see Catalogue.embedding_matrix)."""
        dim = self.index.vectors.shape[1]
        changes = {h: v if v is not None and v.shape == (dim,) and np.isfinite(v).all() else None
                   for h, v in changes.items()}
        old = [s for s in (self.slot(h) for h in changes) if s is not None]
        if old:
            self.index.remove(np.array(old, np.int64))
            self.hashes = self.hashes.copy()
            self.hashes[old] = b""
        new = [(h, v) for h, v in changes.items() if v is not None]
        if new:
            self.index.append(prepare(np.stack([v for _, v in new]), self.metric))
            width = max(self.hashes.dtype.itemsize, *(len(h) for h, _ in new))
            self.hashes = np.concatenate([self.hashes.astype(f"S{width}"),
                                          np.array([h.encode() for h, _ in new], f"S{width}")])
        self.order = np.argsort(self.hashes, kind="stable")

    def worn(self) -> bool:
        """Whether the changes taken in call for a new build (many removed slots, or a library
        that grew or shrank far from the size the structure was trained for)."""
        slots, live = len(self.hashes), len(self)
        if self.index.structure is None:
            return False
        return (slots - live > REBUILD_SHARE * slots
                or not self.built_size / REBUILD_GROWTH <= live <= self.built_size * REBUILD_GROWTH)

    def compacted(self) -> SongIndex:
        """The exact kind without its removed slots (an approximate kind is returned as it is)."""
        if self.index.structure is not None or self.index.live is None:
            return self
        keep = np.flatnonzero(self.index.live)
        hashes = self.hashes[keep]
        return SongIndex(hashes, np.argsort(hashes, kind="stable"),
                         Index(self.index.rows(keep), self.metric, "exact"),
                         self.model, self.revision, self.catalogue, self.built_size)


# -- the file --------------------------------------------------------------------------------------
def _bytes(array: np.ndarray) -> memoryview:
    """The array's bytes, flat: a library left with no song gives (0, D) vectors, whose 2-D view
    memoryview cannot cast."""
    return memoryview(np.ascontiguousarray(array).reshape(-1)).cast("B")


def write(path: Path, songs: SongIndex) -> None:
    """Store an index crash-safely (temporary file, fsync, rename); WriteError if the disk refuses."""
    songs = songs.compacted()
    index = songs.index
    live = index.live if index.live is not None else np.ones(len(songs.hashes), bool)
    parts = {"hashes": songs.hashes,
             "order": songs.order.astype(np.int64), "live": live.astype(bool),
             "structure": structure_bytes(index.structure) if index.structure is not None
             else np.zeros(0, np.uint8)}
    parts["vectors"] = np.ascontiguousarray(index.rows(), np.float32)   # never re-seal damaged vectors
    rows = _bytes(parts["vectors"])
    size = BLOCK_ROWS * parts["vectors"].shape[1] * 4
    parts["blocks"] = np.array([zlib.crc32(rows[at:at + size]) for at in range(0, len(rows), size)], np.uint32)
    header = {"format": FORMAT, "kind": index.kind, "metric": index.metric, "model": songs.model,
              "revision": songs.revision, "catalogue": songs.catalogue, "built_size": songs.built_size,
              "count": len(songs.hashes), "dim": int(parts["vectors"].shape[1]),
              "hash_bytes": songs.hashes.dtype.itemsize, "sections": {}}
    offset = 0
    for name in SECTIONS:
        data = _bytes(parts[name])
        header["sections"][name] = [offset, len(data), zlib.crc32(data)]
        offset += -(-len(data) // ALIGN) * ALIGN
    text = json.dumps(header).encode()
    start = -(-(len(MAGIC) + 8 + len(text)) // ALIGN) * ALIGN
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as f:
        f.write(MAGIC + len(text).to_bytes(8, "little") + text)
        for name in SECTIONS:
            at, size, _ = header["sections"][name]
            f.seek(start + at)
            f.write(_bytes(parts[name]))
        f.truncate(start + offset)


def read(path: Path) -> SongIndex:
    """A stored index, every section checked; StoreError when it is missing or damaged."""
    try:
        with open(path, "rb") as f:
            head = f.read(len(MAGIC) + 8)
            if head[:len(MAGIC)] != MAGIC:
                raise ValueError("not a ReFORM index")
            length = int.from_bytes(head[len(MAGIC):], "little")
            if length > os.fstat(f.fileno()).st_size:   # a damaged length: never read as asked
                raise ValueError(f"its header claims {length} bytes")
            header = json.loads(f.read(length))
            if header.get("format") != FORMAT:
                raise ValueError(f"format {header.get('format')}, this ReFORM reads {FORMAT}")
            start = -(-f.tell() // ALIGN) * ALIGN
        n, d, width = header["count"], header["dim"], header["hash_bytes"]
        shapes = {"vectors": (np.float32, (n, d)), "hashes": (f"S{width}", (n,)), "order": (np.int64, (n,)),
                  "live": (bool, (n,)), "blocks": (np.uint32, (-(-n // BLOCK_ROWS),))}
        data = np.memmap(path, np.uint8, "r")
        parts, raws = {}, {}
        for name in SECTIONS:
            at, size, crc = header["sections"][name]
            raws[name] = raw = data[start + at:start + at + size]
            if len(raw) != size or name != "vectors" and zlib.crc32(raw) != crc:
                raise ValueError(f"its {name} are damaged")
            if name in shapes:
                dtype, shape = shapes[name]
                parts[name] = raw.view(dtype).reshape(shape)
        structure = structure_from_bytes(data[start + header["sections"]["structure"][0]:][
            :header["sections"]["structure"][1]]) if header["kind"] != "exact" else None
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, OverflowError, MemoryError) as exc:
        raise StoreError(f"the stored search index is damaged or unreadable ({exc})", path=path,
                         hint="it is built again by the next command that needs it") from exc
    live = parts["live"]
    index = Index(parts["vectors"], header["metric"], header["kind"], structure,
                  None if live.all() else np.array(live),
                  Blocks(path, raws["vectors"], parts["blocks"], d * 4 * BLOCK_ROWS))
    return SongIndex(parts["hashes"], parts["order"], index, header["model"], header["revision"],
                     header["catalogue"], header["built_size"])


class Blocks:
    """Checks stored vectors block by block, each block the first time it is read; a damaged
    one removes the index file (the next command builds it again) and raises StoreError."""

    def __init__(self, path: Path, raw: np.ndarray, crcs: np.ndarray, block_bytes: int):
        self.path, self.raw, self.crcs, self.block_bytes = path, raw, crcs, block_bytes
        self.inode = os.stat(path).st_ino
        self.done = np.zeros(len(crcs), bool)

    def __call__(self, slots: np.ndarray | None) -> None:
        blocks = np.arange(len(self.crcs)) if slots is None else np.unique(np.asarray(slots) // BLOCK_ROWS)
        for b in blocks[~self.done[blocks]]:
            if zlib.crc32(self.raw[b * self.block_bytes:(b + 1) * self.block_bytes]) != self.crcs[b]:
                try:
                    if os.stat(self.path).st_ino == self.inode:   # not a newer index written since
                        self.path.unlink()
                except OSError:
                    pass
                raise StoreError("the stored search index is damaged (its vectors are damaged)",
                                 path=self.path, hint="run the command again: it builds the index again")
            self.done[b] = True


# -- the home's index ------------------------------------------------------------------------------
def load(home, metric: str = "cosine", kind: str = "auto", *, store: bool = True) -> SongIndex:
    """The search index of a home's embeddings, from its stored file when that is sound and
    current; otherwise brought up to date (or built) and, with ``store`` in a home that can
    be written, stored for the next command.  ``kind`` "auto" keeps the stored kind while it
    fits the library's size; another kind searches the stored vectors that way.

    EmbedError when no song has an embedding.
    """
    catalogue = home.catalogue
    with catalogue.reading():
        model = home.embedding_model()
        identity, revision = catalogue.identity(), catalogue.embeddings_revision()
        path = home.index_path(metric)
        try:
            stored = read(path)
            if path.stat().st_size <= CHECK_WHOLE_BYTES:
                stored.index.rows()   # every block of vectors
        except (StoreError, OSError):
            stored = None
        songs = stored if stored is not None and stored.model == model and stored.catalogue == identity \
            and stored.metric == metric and stored.revision <= revision else None
        # a file newer than what this command read (a scan committed in between) is never
        # replaced by an older index: the next command takes it as it is
        newer = stored is not None and stored.catalogue == identity and stored.revision > revision
        changed = songs is None
        if songs is not None and songs.revision < revision:
            songs, changed = _caught_up(songs, catalogue, revision), True
        if songs is not None and songs.kind != choose_kind(len(songs), "auto"):
            songs = None   # the library crossed the exact/approximate switch
        if songs is None:
            if not model:
                raise EmbedError("no song has an embedding yet", hint="run `reform embed`")
            hashes, vectors = catalogue.embedding_matrix(model)
            if not hashes:
                raise EmbedError("no song has an embedding yet", hint="run `reform embed`")
            songs = SongIndex.build(hashes, vectors, metric, "auto", model, revision, identity)
    if changed and store and not newer and os.access(home.path, os.W_OK):
        try:
            write(path, songs)
        except (WriteError, OSError):
            pass   # a full disk: this command answers from memory, the next one tries again
    return songs if kind == "auto" else songs.as_kind(kind)


def _caught_up(songs: SongIndex, catalogue, revision: int) -> SongIndex | None:
    """The index with the songs changed since its revision taken in (None: build it again)."""
    changed = catalogue.changed_since(songs.revision)
    if changed is None or (songs.index.structure is not None and not updatable(songs.kind)):
        return None
    songs.apply({h: catalogue.embedding_of(songs.model, h) for h in sorted(changed)})
    songs.revision = revision
    return None if songs.worn() else songs


def stored_metrics(home) -> list[str]:
    """The metrics the home has a stored index for."""
    return sorted(p.stem for p in home.index_path("cosine").parent.glob("*.index"))


def update(home) -> list[str]:
    """Bring every stored index up to date after the embeddings changed (scan, embed, repair
    call this, holding the writer lock), building the cosine one if there is none; then
    forget the change log they all took in.  Returns the metrics updated."""
    if not home.embedding_model():
        return []
    metrics = stored_metrics(home) or ["cosine"]
    revisions = []
    for metric in metrics:
        try:
            revisions.append(load(home, metric).revision)
        except EmbedError:
            return []
    with home.catalogue.transaction():
        home.catalogue.forget_changes(min(revisions))
    return metrics


def problems(home) -> list[str]:
    """What is wrong with the stored indexes: damaged (never used), missing, or behind the
    embeddings (built or brought up to date by the next command that queries)."""
    found = []
    catalogue = home.catalogue
    if home.embedding_model() and not stored_metrics(home):   # deleted: harmless, but `check` said it was checked
        found.append("cosine index: missing; it is built when next used")
    for metric in stored_metrics(home):
        try:
            songs = read(home.index_path(metric))
            songs.index.rows()   # every block of vectors
        except StoreError as exc:
            found.append(f"{metric} index: {exc.message}")
            continue
        if songs.catalogue != catalogue.identity() or songs.model != home.embedding_model():
            found.append(f"{metric} index: made for other embeddings; it is built again when next used")
        elif songs.revision != catalogue.embeddings_revision():
            found.append(f"{metric} index: behind the embeddings; it is brought up to date when next used")
    return found
