"""Where each object lives in a dataset's store, and how JSON objects are read and verified."""

from __future__ import annotations

import json
import time
from typing import Any

from plane._errors import (
    ChecksumError,
    DatasetNotFoundError,
    FormatVersionError,
    ObjectNotFoundError,
    PlaneError,
)
from plane.format._hash import digest_hex, seal, unseal
from plane.storage import Store

__all__ = [
    "FORMAT_VERSION",
    "DATASET_KEY",
    "DATASET_PREFIXES",
    "chunk_key",
    "put_cas_json",
    "get_cas_json",
    "read_dataset_info",
    "write_dataset_info",
    "RefStore",
]

FORMAT_VERSION = 2
DATASET_KEY = "dataset.json"


def chunk_key(hexdigest: str) -> str:
    return f"chunks/{hexdigest}"


def is_chunk_key(key: str) -> bool:
    """Chunks are content-addressed, hence immutable: the only objects safe to cache."""
    return key.startswith("chunks/")


#: every prefix tensorplane writes under beside `DATASET_KEY` (FORMAT.md): all a dataset owns
DATASET_PREFIXES = ("refs/", "commits/", "states/", "parts/", "chunks/", "indexes/", "views/",
                    "coordinator/", "quarantine/")


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def put_cas_json(store: Store, kind: str, obj: Any) -> str:
    """Write a JSON object under its content address `kind/<xxh3>.json`; return the key."""
    data = _dumps(obj)
    key = f"{kind}/{digest_hex(data)}.json"
    store.put(key, data)
    return key


def get_cas_json(store: Store, key: str) -> Any:
    """Read a content-addressed JSON object and verify its bytes against its key."""
    data = store.get(key)
    want = key.rsplit("/", 1)[-1].removesuffix(".json")
    if digest_hex(data) != want:
        raise ChecksumError(f"{store.url}/{key} is corrupt: its bytes do not match the checksum "
                            "in its name")
    return json.loads(data)


def write_dataset_info(store: Store, info: dict[str, Any]) -> bool:
    return store.put_if_absent(DATASET_KEY, seal(_dumps(info)))


def read_dataset_info(store: Store) -> dict[str, Any]:
    try:
        raw = store.get(DATASET_KEY)
    except ObjectNotFoundError:
        raise DatasetNotFoundError(
            f"no tensorplane dataset at {store.url} ({DATASET_KEY} is missing); "
            "create one with plane.create(url)"
        ) from None
    try:
        info: dict[str, Any] = json.loads(unseal(raw, f"{store.url}/{DATASET_KEY}"))
    except (ValueError, ChecksumError) as e:
        raise DatasetNotFoundError(f"{store.url}/{DATASET_KEY} is not a tensorplane dataset "
                                   f"header: {e}") from None
    if info.get("format") != "tensorplane":
        raise DatasetNotFoundError(f"{store.url} is not a tensorplane dataset")
    v = int(info.get("format_version", 0))
    if v > FORMAT_VERSION:
        raise FormatVersionError(
            f"{store.url} was written with format version {v}; this tensorplane reads up to "
            f"version {FORMAT_VERSION}. Upgrade: pip install -U tensorplane"
        )
    return info


class RefStore:
    """Branch refs as sequence-numbered immutable objects: `refs/heads/<b>/<seq:020d>`.

    A record is ``{"commit": <id or null>, "state": <state key>}``: the branch's last commit
    and its working state (equal to the commit's state when nothing is uncommitted). Moving a
    ref writes the next sequence number with put_if_absent, so two writers can never both
    succeed from the same base; the loser re-reads the head and retries. Tags are single
    immutable objects `refs/tags/<name>` created with put_if_absent.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def _prefix(branch: str) -> str:
        return f"refs/heads/{branch}/"

    def _read(self, key: str) -> dict[str, Any]:
        rec: dict[str, Any] = json.loads(unseal(self.store.get(key), f"{self.store.url}/{key}"))
        return rec

    def _seqs(self, branch: str) -> list[int]:
        prefix = self._prefix(branch)
        names = (k[len(prefix):] for k in self.store.list(prefix))
        return sorted(int(n) for n in names if n.isdigit())  # "a/b/..." is not branch "a"

    def head(self, branch: str) -> tuple[int, dict[str, Any]] | None:
        """(seq, record) of the newest ref of `branch`, or None if there is no such branch."""
        seqs = self._seqs(branch)
        if not seqs:
            return None
        rec = self._read(f"{self._prefix(branch)}{seqs[-1]:020d}")
        if rec.get("deleted"):
            return None
        return seqs[-1], rec

    def advance(self, branch: str, seq: int, record: dict[str, Any]) -> bool:
        """Create ref number `seq` (must be head + 1); False if someone else got there first."""
        body = dict(record, seq=seq, time=time.time())
        return self.store.put_if_absent(f"{self._prefix(branch)}{seq:020d}", seal(_dumps(body)))

    def branches(self) -> list[str]:
        names = {k[len("refs/heads/"):].rsplit("/", 1)[0] for k in self.store.list("refs/heads/")}
        return sorted(b for b in names if self.head(b) is not None)

    def delete_branch(self, branch: str) -> None:
        """Tombstone the branch (atomically, as a ref move), then remove its records."""
        while True:
            head = self.head(branch)
            if head is None:
                raise PlaneError(f"no branch {branch!r} in {self.store.url}")
            if self.advance(branch, head[0] + 1, {"deleted": True}):
                break
        for seq in self._seqs(branch):
            self.store.delete(f"{self._prefix(branch)}{seq:020d}")

    def prune(self, branch: str, keep: int = 8) -> int:
        """Delete all but the newest `keep` records of a branch (history lives in commits)."""
        seqs = self._seqs(branch)[:-keep] if keep else self._seqs(branch)
        for seq in seqs:
            self.store.delete(f"{self._prefix(branch)}{seq:020d}")
        return len(seqs)

    # ---- tags -----------------------------------------------------------------------------
    def put_tag(self, name: str, commit_id: str, message: str = "") -> bool:
        body = {"commit": commit_id, "message": message, "time": time.time()}
        return self.store.put_if_absent(f"refs/tags/{name}", seal(_dumps(body)))

    def get_tag(self, name: str) -> dict[str, Any] | None:
        try:
            return self._read(f"refs/tags/{name}")
        except ObjectNotFoundError:
            return None

    def tags(self) -> dict[str, dict[str, Any]]:
        out = {}
        for k in self.store.list("refs/tags/"):
            out[k[len("refs/tags/"):]] = self._read(k)
        return out

    def delete_tag(self, name: str) -> None:
        if self.get_tag(name) is None:
            raise PlaneError(f"no tag {name!r} in {self.store.url}")
        self.store.delete(f"refs/tags/{name}")


def check_ref_name(name: str, what: str = "branch") -> str:
    if (not isinstance(name, str) or not name or name.startswith(("/", ".", "-"))
            or name.endswith("/") or ".." in name or "//" in name
            or any(c in name for c in " \t\n:*?[]\\~^@")):
        raise PlaneError(f"invalid {what} name {name!r}: use letters, digits, '-', '_', '.' "
                         "and '/' (not at the start or end)")
    return name
