"""VersionCoordinator: one writer per branch that turns worker fragments into one commit.

Workers (Ray tasks) encode their rows and store the chunks themselves with
`plane.write_fragment`; what they send the coordinator is the small, picklable `plane.Fragment`
that describes them. The coordinator holds the pending fragments, and `commit` applies them to
its branch in a deterministic order (sorted by fragment id, or an explicit order) and records
one commit. The ref move is the dataset's ordinary conditional write (``put_if_absent`` of the
next ref record, FORMAT.md): a process outside Ray writing the same branch races it like any
other writer, and the loser rebases (or gets a `CommitConflictError`), so refs never break.

The class is plain Python (usable embedded, without Ray); `start_coordinator` wraps it in a
Ray actor with ``max_concurrency=1`` so that calls are serialized. Nothing in this module
imports ``ray`` at import time.

Exactly-once bookkeeping (persisted in the dataset's own store, beside the format's objects;
gc and the format never touch the ``coordinator/`` prefix; ``<enc>`` is the branch name
encoded as one key segment, as ref names are in format 3, so ``main/intents`` cannot read
``main``'s records):

``coordinator/<enc>/applied/<fragment_id>``
    Plain JSON ``{"fragment_id", "commit", "rows", "time"}``, one object per fragment, written
    after the commit that added its rows landed. A coordinator loads the set when it starts and
    refuses those ids from then on (``submit`` returns False), so a re-run of a half-finished
    job, or a retried task, never adds rows twice. One object per fragment (rather than a list
    in the commit message) keeps commit messages as the user wrote them, needs no history walk
    to load, and is written with independent puts (no read-modify-write race).

``coordinator/<enc>/intents/<uuid>``
    Plain JSON ``{"fragments": {id: rows}, "probe": <row id>, "message", "time"}`` written just
    before the ref move and deleted once the markers exist. It closes the crash window between
    "the commit landed" and "the markers are written": on start (and after a failed commit) a
    leftover intent is resolved by looking for its probe -- the stable row id of the first row
    that commit added (row ids are random 62-bit values kept across rebases) -- among the
    branch head's rows. Found: the fragments are marked applied (``"commit": null``, the id is
    not known); not found: the commit never landed and the intent is dropped. Limitation: if
    those rows were already deleted again when the intent is resolved, they count as not
    applied.

Pending fragments live in the coordinator's memory only: if it dies, resubmit what is not in
`applied_ids()`. Run one coordinator per branch; two coordinators on one branch keep refs
consistent but do not share their applied sets until restarted. Fragment ids are used in store
keys: letters, digits, ``.``, ``_`` and ``-`` (zero-pad numbers so that the default sorted
order is the numeric one).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import plane
from plane import ChecksumError, Dataset, Fragment, ObjectNotFoundError, SchemaError
from plane.core import chunk_key, coordinator_prefix, read_dataset_info
from plane.format import TensorMeta
from plane.ingest import create_like
from plane.storage import Store

if TYPE_CHECKING:
    from ray.actor import ActorClass, ActorHandle

__all__ = [
    "VersionCoordinator",
    "coordinator_actor_class",
    "start_coordinator",
    "get_coordinator",
    "write_and_submit",
]

_FRAGMENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}\Z")
_INTENT_ID = re.compile(r"[0-9a-f]{32}\Z")
_REMOTE_CLASS: Any = None


def _check_fragment_id(fragment_id: object) -> str:
    if not isinstance(fragment_id, str) or not _FRAGMENT_ID.match(fragment_id):
        raise ValueError(f"invalid fragment id {fragment_id!r}: use 1-200 letters, digits, '.', "
                         "'_' or '-', starting with a letter or digit")
    return fragment_id


class VersionCoordinator:
    """Collects fragments for one branch of the dataset at `url` and commits them in order.

    Not thread-safe: as a Ray actor it runs with ``max_concurrency=1``.
    """

    def __init__(self, url: str, branch: str = "main",
                 storage_options: Mapping[str, Any] | None = None,
                 verify_chunks: bool = True) -> None:
        self._url = str(url)
        self._branch = branch
        self._store: Store = plane.open_store(self._url, storage_options)
        self._verify_chunks = verify_chunks
        self._ds = self._open()  # the branch exists (so its name is valid) before its prefix
        self._prefix = coordinator_prefix(
            branch, int(read_dataset_info(self._store).get("format_version", 1)))
        self._pending: dict[str, Fragment] = {}
        self._applied: set[str] = set()
        self._load_applied()

    # ---- opening and bookkeeping ---------------------------------------------------------
    def _open(self) -> Dataset:
        ds = plane.open(self._store, version=self._branch)
        if ds.current_branch != self._branch or ds.read_only:
            raise ValueError(f"{self._branch!r} is not a writable branch of {self._store.url}; "
                             "a coordinator commits to a branch (not a tag or commit)")
        return ds

    def _load_applied(self) -> None:
        marker_prefix = self._prefix + "applied/"
        for key in self._store.list(marker_prefix):
            rest = key[len(marker_prefix):]
            if _FRAGMENT_ID.match(rest):
                self._applied.add(rest)
        intents = self._prefix + "intents/"
        for key in sorted(self._store.list(intents)):
            if _INTENT_ID.match(key[len(intents):]):  # not another branch's nested records
                self._resolve_intent(key)

    def _resolve_intent(self, key: str) -> bool:
        """Settle an intent left by a commit that may or may not have landed (see module doc);
        return True if its fragments turned out to be committed."""
        try:
            raw = self._store.get(key)
        except ObjectNotFoundError:
            return False
        try:
            intent = json.loads(raw)
            fragments: dict[str, int] = {str(k): int(v) for k, v in intent["fragments"].items()}
            probe = int(intent["probe"])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ChecksumError(f"{self._store.url}/{key} is not a coordinator intent ({e!r}); "
                                "it was left as it is: remove it if no coordinator wrote it"
                                ) from None
        landed = bool((self._ds.row_ids == probe).any())
        if landed:
            self._record_applied(fragments, None)
        self._store.delete(key)
        return landed

    def _record_applied(self, fragments: Mapping[str, int], commit_id: str | None) -> None:
        self._applied.update(fragments)
        for fid in fragments:
            self._pending.pop(fid, None)
        now = time.time()
        self._store.put_many({
            f"{self._prefix}applied/{fid}": json.dumps(
                {"fragment_id": fid, "commit": commit_id, "rows": rows, "time": now}).encode()
            for fid, rows in fragments.items()})

    # ---- the API -------------------------------------------------------------------------
    def schema(self) -> dict[str, dict[str, Any]]:
        """``{tensor: meta dict}``; workers rebuild metas with `TensorMeta.from_dict`."""
        return {name: t.meta.to_dict() for name, t in self._ds.tensors.items()}

    def known(self, fragment_id: str) -> bool:
        """True if `fragment_id` is pending or already applied (a worker can skip it)."""
        return fragment_id in self._pending or fragment_id in self._applied

    def submit(self, fragment: Fragment) -> bool:
        """Record a fragment for the next commit. Idempotent by fragment id: a fragment id that
        is pending or already applied is a no-op that returns False (the first one wins)."""
        if not isinstance(fragment, Fragment):
            raise TypeError(f"submit takes a plane.Fragment, got {type(fragment).__name__}")
        fid = _check_fragment_id(fragment.fragment_id)
        if self.known(fid):
            return False
        if self._verify_chunks:
            self._check_chunks(fragment)
        self._pending[fid] = fragment
        return True

    def discard(self, fragment_ids: Sequence[str]) -> list[str]:
        """Drop pending fragments (e.g. a bad one named by a commit error); returns the ids
        that were pending. Their chunks stay unreferenced until gc."""
        return [fid for fid in fragment_ids if self._pending.pop(fid, None) is not None]

    def commit(self, message: str, order: Sequence[str] | None = None,
               new_tensors: Mapping[str, Mapping[str, Any]] | None = None) -> str | None:
        """Apply every pending fragment (sorted by id, or in `order`, which must name each
        pending id once) and commit once with `message`; return the commit id, or None when
        nothing was pending and the branch had no uncommitted changes. `new_tensors`
        (``{name: meta dict}``) are created first, in the same commit (an ingest that brings
        new columns).

        All or nothing: if a fragment does not fit the schema, or the ref move fails, nothing
        is applied, the branch is unchanged and the fragments stay pending.
        """
        ids = self._commit_order(order)
        frags = [self._pending[i] for i in ids]
        try:
            for name, d in (new_tensors or {}).items():
                if name not in self._ds.tensors:
                    create_like(self._ds, TensorMeta.from_dict(dict(d)))
            self._check_schema(frags)
        except BaseException:
            self._ds = self._open()
            raise
        rows = {f.fragment_id: f.rows for f in frags}
        live = [f for f in frags if f.rows]
        intent_key: str | None = None
        try:
            if live:
                added = plane.apply_fragments(self._ds, live)
                probe = int(self._ds.row_ids[len(self._ds) - added])
                intent_key = f"{self._prefix}intents/{uuid.uuid4().hex}"
                self._store.put(intent_key, json.dumps(
                    {"fragments": rows, "probe": probe, "message": message,
                     "time": time.time()}).encode())
            commit_id = self._ds.commit(message) if live or self._ds.has_changes else None
        except BaseException:
            self._ds = self._open()  # drop the half-applied in-memory state
            if intent_key is not None:
                try:
                    self._resolve_intent(intent_key)
                except Exception:  # left in the store; resolved when a coordinator starts
                    pass
            raise
        self._record_applied(rows, commit_id)
        if intent_key is not None:
            self._store.delete(intent_key)
        return commit_id

    def applied_ids(self) -> list[str]:
        """Fragment ids committed through a coordinator of this branch (persisted)."""
        return sorted(self._applied)

    def pending_ids(self) -> list[str]:
        return sorted(self._pending)

    def status(self) -> dict[str, Any]:
        """Pending fragments and rows, the branch, its head commit in the store, and the commit
        this coordinator last based its work on."""
        return {
            "url": self._store.url,
            "branch": self._branch,
            "pending": len(self._pending),
            "pending_rows": sum(f.rows for f in self._pending.values()),
            "applied": len(self._applied),
            "head_commit": self._ds.versions.resolve(self._branch)[1],
            "base_commit": self._ds.commit_id,
        }

    # ---- checks --------------------------------------------------------------------------
    def _commit_order(self, order: Sequence[str] | None) -> list[str]:
        if order is None:
            return sorted(self._pending)
        ids = list(order)
        dup = sorted({i for i in ids if ids.count(i) > 1})
        unknown = [i for i in ids if i not in self._pending]
        missing = sorted(set(self._pending) - set(ids))
        if dup or unknown or missing:
            raise ValueError(f"order must name every pending fragment once: duplicated {dup}, "
                             f"not pending {unknown}, missing {missing}")
        return ids

    def _check_chunks(self, f: Fragment) -> None:
        keys = sorted({chunk_key(k) for ents in f.entries.values() for _, ks, _ in ents
                       for k in ks})
        if not keys:
            return
        with ThreadPoolExecutor(min(16, len(keys))) as pool:
            present = list(pool.map(self._store.exists, keys))
        absent = [k for k, ok in zip(keys, present) if not ok]
        if absent:
            raise ObjectNotFoundError(
                f"fragment {f.fragment_id!r} names {len(absent)} chunk(s) missing from "
                f"{self._store.url} (e.g. {absent[0]}); write it with plane.write_fragment to "
                "the coordinator's dataset store")

    def _check_schema(self, frags: Sequence[Fragment]) -> None:
        """Raise a SchemaError naming the first fragment that does not fit, before anything
        changes (the dataset's own check would report some mismatches as a conflict between
        concurrent writers)."""
        metas = {name: t.meta for name, t in self._ds.tensors.items()}
        where = f"branch {self._branch!r} of {self._store.url}"
        for f in frags:
            def bad(why: str, f: Fragment = f) -> SchemaError:
                return SchemaError(
                    f"fragment {f.fragment_id!r} does not fit {where}: {why}; nothing was "
                    "applied and it is still pending. Rewrite it with the metas from "
                    f"coordinator.schema(), or drop it with coordinator.discard("
                    f"[{f.fragment_id!r}])")

            if set(f.metas) != set(metas):
                raise bad(f"it has tensors {sorted(f.metas)}, the dataset {sorted(metas)}")
            for name, cur in metas.items():
                ents = f.entries.get(name)
                if ents is None or sum(r for r, _, _ in ents) != f.rows:
                    raise bad(f"tensor {name!r} does not cover its {f.rows} rows")
                try:
                    fm = TensorMeta.from_dict(f.metas[name])
                except (TypeError, ValueError) as e:
                    raise bad(f"tensor {name!r} has an unreadable meta ({e})") from None
                for field in ("htype", "sample_compression", "shape", "max_shape"):
                    a, b = getattr(cur, field), getattr(fm, field)
                    if a != b:
                        raise bad(f"tensor {name!r} has {field} {b!r}, the dataset {a!r}")
                learned: dict[str, Any] = {}
                for field in ("dtype", "ndim"):
                    a, b = getattr(cur, field), getattr(fm, field)
                    if a is None:
                        learned[field] = b
                    elif b is not None and a != b:
                        raise bad(f"tensor {name!r} has {field} {b!r}, the dataset {a!r}")
                cn, fn = cur.class_names, fm.class_names
                if cn[:len(fn)] != fn and fn[:len(cn)] != cn:
                    raise bad(f"tensor {name!r} has class names {list(fn)}, the dataset "
                              f"{list(cn)}")
                learned["class_names"] = cn if len(cn) >= len(fn) else fn
                metas[name] = cur.evolve(**learned)


# ---- Ray ------------------------------------------------------------------------------------
def coordinator_actor_class() -> ActorClass[VersionCoordinator]:
    """``ray.remote(VersionCoordinator)``, created on first use (imports ray)."""
    global _REMOTE_CLASS
    if _REMOTE_CLASS is None:
        import ray

        _REMOTE_CLASS = ray.remote(VersionCoordinator)
    return _REMOTE_CLASS  # type: ignore[no-any-return]


def start_coordinator(url: str, branch: str = "main",
                      storage_options: Mapping[str, Any] | None = None, *,
                      name: str | None = None, namespace: str | None = None,
                      detached: bool = False, get_if_exists: bool = False,
                      verify_chunks: bool = True) -> ActorHandle[Any]:
    """Start a coordinator actor (serialized calls, no CPU reserved) and wait until it has
    opened the dataset, so a bad url/branch raises here. `name`/`namespace` make it findable
    with `get_coordinator`; `detached` keeps it alive after the driver exits (needs a name)."""
    import ray

    opts: dict[str, Any] = {"max_concurrency": 1, "num_cpus": 0}
    if name is not None:
        opts["name"] = name
        if get_if_exists:
            opts["get_if_exists"] = True
    if namespace is not None:
        opts["namespace"] = namespace
    if detached:
        if name is None:
            raise ValueError("a detached coordinator needs a name (to find it again)")
        opts["lifetime"] = "detached"
    actor_class: Any = coordinator_actor_class()
    handle: ActorHandle[Any] = actor_class.options(**opts).remote(
        str(url), branch, dict(storage_options) if storage_options else None, verify_chunks)
    ray.get(handle.status.remote())
    return handle


def get_coordinator(name: str, namespace: str | None = None
                    ) -> ActorHandle[Any]:
    """The named coordinator actor (raises ValueError if there is none)."""
    import ray

    return ray.get_actor(name, namespace=namespace)


def write_and_submit(coordinator: ActorHandle[Any] | str, url: str,
                     storage_options: Mapping[str, Any] | None, fragment_id: str,
                     columns: Mapping[str, Any]) -> bool:
    """For a Ray task: write `columns` as fragment `fragment_id` to the dataset store at `url`
    with the coordinator's schema, and submit it. Returns False (writing nothing) if the
    coordinator already knows the id, e.g. when Ray retries the task or a job is re-run.
    `coordinator` is a handle or the name of a coordinator actor."""
    import ray

    if isinstance(coordinator, str):
        coordinator = get_coordinator(coordinator)
    _check_fragment_id(fragment_id)
    if ray.get(coordinator.known.remote(fragment_id)):
        return False
    schema = ray.get(coordinator.schema.remote())
    metas = {name: TensorMeta.from_dict(d) for name, d in schema.items()}
    store = plane.open_store(url, storage_options)
    fragment = plane.write_fragment(store, fragment_id, metas, dict(columns))
    return bool(ray.get(coordinator.submit.remote(fragment)))
