"""Direct feeds: a training worker reads its share of a split's rows itself, without Ray Data's streaming split.

A split whose rows already exist — materialised in Ray's object store (cut from video once) or written as
prepared Parquet shards — needs no Ray Data execution to reach the training workers: with
``streaming_split`` every epoch of every stage starts a streaming executor, a ``SplitCoordinator`` actor and
its iterator threads, which on a small machine take CPU from the workers they feed
(``bench/train_throughput.py``: 2 DDP workers against 1 worker with 2 threads, and
``bench/data_pipeline.py``'s Parquet source against a plain pyarrow read). A :class:`DirectFeed` names the
split's pieces (object refs of Arrow blocks, or Parquet files) and their row counts; each worker takes
:meth:`DirectFeed.shard` and reads its pieces with ``ray.get`` (zero-copy from the object store) or pyarrow, one
piece ahead on a reader thread.

Equal shares, as ``streaming_split(equal=True)``: each epoch the pieces are put in an order drawn from the
epoch's seed (the same on every worker), their rows laid end to end, and worker ``r`` of ``W`` takes rows
``[r·q, (r+1)·q)`` with ``q = N // W`` (up to ``W − 1`` rows of an epoch are left out, a different few each
epoch), so every worker runs the same number of steps and DDP's all-reduces pair up. Row order within a
worker's share is the training loop's shuffle buffer's business (:func:`sportpose.training.stage.shard_batches`).
``data.feed: ray_data`` keeps Ray Data's streaming split; lazily computed splits (``data.stream``, Human3.6M
windows) always use it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray
from ray.data.block import BlockAccessor
from ray.data.dataset import MaterializedDataset

# Datasets read_samples made -> (the shards, their tensor columns): only that Dataset object, so a transformed
# copy of it (a map, a limit) is fed by Ray Data as any other.
_PARQUET_SOURCES: WeakKeyDictionary = WeakKeyDictionary()


@dataclass(frozen=True)
class Piece:
    """A block of rows: an object ref of an Arrow table, or a Parquet file's path."""

    source: Any  # ray.ObjectRef | str
    rows: int


@dataclass(frozen=True)
class DirectFeed:
    """A split's rows as pieces every worker can read (picklable: refs and paths); see the module doc."""

    pieces: tuple[Piece, ...]
    columns: dict[str, tuple[tuple[int, ...], np.dtype]] | None = None  # Parquet: the binary tensor columns

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.pieces)

    def shard(self, rank: int, world: int) -> "FeedShard":
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} outside a world of {world}")
        return FeedShard(self, rank, world)


def register_parquet(ds: ray.data.Dataset, files: list[str],
                     columns: dict[str, tuple[tuple[int, ...], np.dtype]]) -> ray.data.Dataset:
    """Mark ``ds`` (the Dataset of :func:`sportpose.data.prepare.read_samples`) as those files' rows."""
    _PARQUET_SOURCES[ds] = (list(files), columns)
    return ds


def direct_feed(ds: Any) -> DirectFeed | None:
    """The dataset's rows as a :class:`DirectFeed` when they already exist (materialised, or prepared Parquet);
    None when only Ray Data can produce them (a lazy pipeline)."""
    try:
        parquet = _PARQUET_SOURCES.get(ds)
    except TypeError:  # not weak-referenceable: not a Dataset of ours
        parquet = None
    if parquet is not None:
        files, columns = parquet
        return DirectFeed(tuple(Piece(f, pq.ParquetFile(f).metadata.num_rows) for f in files), columns)
    if isinstance(ds, MaterializedDataset):
        pieces = tuple(Piece(entry.ref, entry.metadata.num_rows) for bundle in ds.iter_internal_ref_bundles()
                       for entry in bundle.blocks if entry.metadata.num_rows)
        return DirectFeed(pieces)
    return None


def _read(feed: DirectFeed, piece: Piece, start: int, stop: int) -> dict[str, np.ndarray]:
    """Rows ``[start, stop)`` of a piece as numpy columns (tensor columns with their row shapes)."""
    if isinstance(piece.source, str):
        table = pq.read_table(piece.source, use_threads=False).slice(start, stop - start)
        return decode_tensors(table, feed.columns or {})
    rows = BlockAccessor.for_block(ray.get(piece.source)).slice(start, stop)  # Arrow or pandas, no copy
    return BlockAccessor.for_block(rows).to_batch_format("numpy")


class FeedShard:
    """One worker's share of a :class:`DirectFeed`; iterated once per epoch."""

    def __init__(self, feed: DirectFeed, rank: int, world: int):
        self.feed, self.rank, self.world = feed, rank, world

    def count(self) -> int:
        return self.feed.rows // self.world

    def spans(self, seed: int | None) -> list[tuple[Piece, int, int]]:
        """This worker's (piece, start, stop) row ranges for an epoch: the pieces in ``seed``'s order (None:
        as stored), cut at ``[rank·q, (rank+1)·q)``."""
        pieces = list(self.feed.pieces)
        if seed is not None:
            pieces = [pieces[i] for i in np.random.default_rng(seed).permutation(len(pieces))]
        share = self.count()
        lo, hi = self.rank * share, (self.rank + 1) * share
        spans, offset = [], 0
        for piece in pieces:
            start, stop = max(lo, offset), min(hi, offset + piece.rows)
            if start < stop:
                spans.append((piece, start - offset, stop - offset))
            offset += piece.rows
        return spans

    def _pieces(self, seed: int | None) -> Iterator[dict[str, np.ndarray]]:
        """The spans' rows, read one piece ahead on a thread (pyarrow and ``ray.get`` leave the GIL)."""
        spans = self.spans(seed)
        ahead: queue.Queue = queue.Queue(maxsize=1)
        stop = threading.Event()

        def put(item: Any) -> bool:
            """Hand ``item`` over unless the consumer has gone (an epoch left early); False then."""
            while not stop.is_set():
                try:
                    ahead.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    pass
            return False

        def reader() -> None:
            try:
                for piece, start, end in spans:
                    if not put(_read(self.feed, piece, start, end)):
                        return
                put(None)
            except BaseException as e:  # handed to the consumer, raised there
                put(e)

        thread = threading.Thread(target=reader, name="feed-reader", daemon=True)
        thread.start()
        try:
            while (item := ahead.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()

    def iter_batches(self, batch_size: int, batch_format: str = "numpy", drop_last: bool = False,
                     seed: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        """Batches of ``batch_size`` rows (numpy columns, views where a batch lies within one piece)."""
        if batch_format != "numpy":
            raise ValueError(f"a direct feed yields numpy batches, not {batch_format!r}")
        parts: list[dict[str, np.ndarray]] = []
        held = 0
        for part in self._pieces(seed):
            n = len(next(iter(part.values())))
            at = 0
            while at < n:
                take = min(batch_size - held, n - at)
                parts.append({k: v[at : at + take] for k, v in part.items()})
                held, at = held + take, at + take
                if held == batch_size:
                    yield _join(parts)
                    parts, held = [], 0
        if parts and not drop_last:
            yield _join(parts)


def _join(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def decode_tensors(table: pa.Table, columns: dict[str, tuple[tuple[int, ...], np.dtype]]) -> dict[str, np.ndarray]:
    """Numpy columns of an Arrow table whose tensor ``columns`` are binary values (one row's bytes each: the
    shards of :func:`sportpose.data.prepare.write_samples`), tensors as (B, *shape) views of the Arrow buffers."""
    out = {}
    for name in table.column_names:
        column = table.column(name)
        if name not in columns:
            out[name] = column.to_numpy(zero_copy_only=False)
            continue
        shape, dtype = columns[name]
        parts = []
        for chunk in column.chunks:
            if len(chunk) == 0:
                continue
            offsets = np.frombuffer(chunk.buffers()[1], np.int64)[chunk.offset : chunk.offset + len(chunk) + 1]
            parts.append(np.frombuffer(chunk.buffers()[2], dtype, count=len(chunk) * int(np.prod(shape)),
                                       offset=int(offsets[0])).reshape(len(chunk), *shape))
        out[name] = parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.zeros((0, *shape), dtype)
    return out


__all__ = ["DirectFeed", "FeedShard", "Piece", "decode_tensors", "direct_feed", "register_parquet"]
