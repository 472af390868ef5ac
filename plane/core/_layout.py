"""Where each object lives in a dataset's store, and how JSON objects are read and verified."""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from typing import Any

from plane._errors import (
    ChecksumError,
    DatasetNotFoundError,
    FormatVersionError,
    ObjectNotFoundError,
    RefNameError,
    VersionNotFoundError,
)
from plane.format._hash import digest_hex, seal, unseal
from plane.storage import Store

__all__ = [
    "FORMAT_VERSION",
    "DATASET_KEY",
    "DATASET_PREFIXES",
    "chunk_key",
    "is_chunk_key",
    "commit_key",
    "commit_id_of",
    "view_key",
    "view_name_of",
    "index_data_key",
    "index_ref_key",
    "index_ref_prefix",
    "is_index_manifest_key",
    "quarantine_key",
    "REFS",
    "HEADS",
    "TAGS",
    "COMMITS",
    "STATES",
    "PARTS",
    "CHUNKS",
    "INDEXES",
    "INDEX_REFS",
    "INDEX_DATA",
    "VIEWS",
    "COORDINATOR",
    "QUARANTINE",
    "put_cas_json",
    "get_cas_json",
    "read_dataset_info",
    "write_dataset_info",
    "await_created",
    "sealed_format",
    "put_artifact_json",
    "get_artifact_json",
    "RefStore",
    "check_ref_name",
    "encode_ref_name",
    "coordinator_prefix",
]

FORMAT_VERSION = 3
#: from this version ref names are encoded into one key segment (FORMAT.md "Refs")
ENCODED_REFS_VERSION = 3
DATASET_KEY = "dataset.json"
#: from this format version on, chunk footers carry their own checksum and index refs and
#: views are sealed; older datasets are read, and written, as their version wrote them
SEALED_FROM = 3


# ---- key names: this module is the one place that spells them (FORMAT.md) -------------------
REFS = "refs/"
HEADS = "refs/heads/"
TAGS = "refs/tags/"
COMMITS = "commits/"
STATES = "states/"
PARTS = "parts/"
CHUNKS = "chunks/"
INDEXES = "indexes/"
INDEX_REFS = "indexes/refs/"
INDEX_DATA = "indexes/data/"
VIEWS = "views/"
COORDINATOR = "coordinator/"
QUARANTINE = "quarantine/"

#: every prefix tensorplane writes under beside `DATASET_KEY` (FORMAT.md): all a dataset owns
DATASET_PREFIXES = (REFS, COMMITS, STATES, PARTS, CHUNKS, INDEXES, VIEWS, COORDINATOR,
                    QUARANTINE)


def chunk_key(hexdigest: str) -> str:
    return f"{CHUNKS}{hexdigest}"


def is_chunk_key(key: str) -> bool:
    """Chunks are content-addressed, hence immutable: the only objects safe to cache."""
    return key.startswith(CHUNKS)


def commit_key(commit_id: str) -> str:
    """The object of commit `commit_id` (its content address)."""
    return f"{COMMITS}{commit_id}.json"


def commit_id_of(key: str) -> str:
    """The commit id a `commit_key` names."""
    return key[len(COMMITS):].removesuffix(".json")


def view_key(name: str) -> str:
    return f"{VIEWS}{name}.json"


def view_name_of(key: str) -> str:
    """The name a `view_key` holds."""
    return key[len(VIEWS):].removesuffix(".json")


def index_data_key(hexdigest: str) -> str:
    """An index partition (faiss, BM25, min/max, sorted), content-addressed."""
    return f"{INDEX_DATA}{hexdigest}"


def index_ref_prefix(tensor: str | None = None) -> str:
    """Where the index refs (of `tensor`, or all) live."""
    return f"{INDEX_REFS}{tensor}/" if tensor else INDEX_REFS


def index_ref_key(tensor: str, kind: str, commit_id: str) -> str:
    """The ref naming the `kind` index of `tensor` built at `commit_id`."""
    return f"{INDEX_REFS}{tensor}/{kind}/{commit_id}"


def is_index_manifest_key(key: str) -> bool:
    return key.startswith(INDEXES) and key.endswith(".json")


def quarantine_key(stamp: str) -> str:
    """The JSONL of rows an ingest rejected (`stamp`: its time and a random suffix)."""
    return f"{QUARANTINE}{stamp}.jsonl"


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def put_cas_json(store: Store, prefix: str, obj: Any) -> str:
    """Write a JSON object under its content address `<prefix><xxh3>.json` (`prefix`: one of
    COMMITS, STATES, PARTS, INDEXES); return the key."""
    data = _dumps(obj)
    key = f"{prefix}{digest_hex(data)}.json"
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


def sealed_format(info: dict[str, Any]) -> bool:
    """Whether a dataset (its `dataset.json` info) seals footers, index refs and views."""
    return int(info.get("format_version", 1)) >= SEALED_FROM


def put_artifact_json(store: Store, key: str, obj: Any, sealed: bool) -> None:
    """Write a JSON object whose key is a name, not its content: sealed from format 3 on."""
    data = _dumps(obj)
    store.put(key, seal(data) if sealed else data)


def get_artifact_json(store: Store, key: str, sealed: bool, what: str) -> dict[str, Any]:
    """Read an object written by `put_artifact_json`: a sealed one is verified, an unsealed
    (format ≤ 2) one only parsed. Raises ChecksumError naming `what` and the object if it is
    damaged, or is not a JSON object."""
    where = f"{store.url}/{key}"
    raw = store.get(key)
    data = unseal(raw, f"{what} {where}") if sealed else raw
    try:
        obj = json.loads(data)
    except ValueError as e:  # UnicodeDecodeError too
        raise ChecksumError(f"{what} {where} is corrupt: {e}; delete it and re-create it") \
            from None
    if not isinstance(obj, dict):
        raise ChecksumError(f"{what} {where} is corrupt: not a JSON object; delete it and "
                            "re-create it")
    return obj


def await_created(store: Store, seconds: float = 10.0) -> bool:
    """Whether a dataset header appears at `store` within `seconds`, while the location holds
    only what a create() writes before its header (an empty state and ref records): another
    process is then creating the dataset. False at once for anything else (a user's files)."""
    deadline, pause = time.monotonic() + seconds, 0.01
    while not store.exists(DATASET_KEY):
        if time.monotonic() > deadline or any(
                not k.startswith((STATES, REFS)) for k in store.list("")):
            return False
        time.sleep(pause)  # polling a store that has no notifications; backs off to 0.5 s
        pause = min(0.5, pause * 2)
    return True


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


# ---- ref names -----------------------------------------------------------------------------
#: bytes a ref name keeps as they are in its key; every other byte is %XX (capitals included,
#: so names differing only in case stay apart on case-insensitive file systems)
_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789._-")
#: an encoded name is one key segment (a file or directory name on local disk: <= 255 bytes)
MAX_ENCODED_NAME = 240
_FORBIDDEN = " :*?[]\\~^@"
_SEQ = re.compile(r"[0-9]{20}")


def encode_ref_name(name: str) -> str:
    """The key segment of a branch or tag name (format >= 3): UTF-8 bytes outside
    [a-z0-9._-] and a leading '.' as %XX, so the segment holds no '/', is never '.' or '..',
    and no two names share one. UnicodeEncodeError for lone surrogates."""
    enc = "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in name.encode())
    return "%2E" + enc[1:] if enc.startswith(".") else enc


def coordinator_prefix(branch: str, format_version: int = FORMAT_VERSION) -> str:
    """Where a version coordinator of `branch` keeps its records (outside the format). From
    format 3 the branch name is encoded as one segment, as its refs are; an older dataset keeps
    the raw name its coordinators wrote (readers take only keys one level below it)."""
    seg = encode_ref_name(branch) if format_version >= ENCODED_REFS_VERSION else branch
    return f"{COORDINATOR}{seg}/"


def decode_ref_name(segment: str) -> str | None:
    """The name a key segment encodes, or None if it is not the encoding of any name."""
    try:
        name = urllib.parse.unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return None
    return name if encode_ref_name(name) == segment else None


def _name_problem(name: object, format_version: int) -> str | None:
    """Why `name` cannot be a branch or tag name (None if it can)."""
    if not isinstance(name, str):
        return f"it is a {type(name).__name__}, not a str"
    if not name:
        return "it is empty"
    try:
        name.encode()
    except UnicodeEncodeError:
        return "it is not valid Unicode text (a lone surrogate)"
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "it contains a control character (NUL, tab, newline, ...)"
    bad = sorted({c for c in name if c in _FORBIDDEN})
    if bad:
        return f"it contains {''.join(bad)!r}"
    if name.startswith(("/", "-")) or name.endswith("/"):
        return "it starts with '/' or '-', or ends with '/'"
    parts = name.split("/")
    if any(not p for p in parts):
        return "it contains '//'"
    if any(p.startswith(".") or ".." in p for p in parts):
        return "a '/'-separated part starts with '.' or contains '..'"
    if format_version < ENCODED_REFS_VERSION and any(_SEQ.fullmatch(p) for p in parts[1:]):
        return (f"a part after '/' is 20 digits, which a format-{format_version} dataset's "
                "ref records use (format 3 datasets allow it)")
    n = len(encode_ref_name(name))
    if n > MAX_ENCODED_NAME:
        return (f"it is too long: it takes {n} of the {MAX_ENCODED_NAME} bytes a name may "
                "take in a key (a-z, 0-9, '.', '_', '-' take 1, any other character 3 per "
                "UTF-8 byte)")
    return None


def check_ref_name(name: str, what: str = "branch", format_version: int = FORMAT_VERSION
                   ) -> str:
    """`name` if it may name a new branch or tag, else RefNameError saying why."""
    problem = _name_problem(name, format_version)
    if problem is not None:
        raise RefNameError(
            f"invalid {what} name {name!r} (argument `name`): {problem}. Use text without "
            "spaces, control characters or any of :*?[]\\~^@, with no '/' at either end and "
            "no part starting with '.', e.g. 'feature/new-labels'")
    return name


class RefStore:
    """Branch refs as sequence-numbered immutable objects, tags as single objects.

    A record is ``{"commit": <id or null>, "state": <state key>}``: the branch's last commit
    and its working state (equal to the commit's state when nothing is uncommitted). Moving a
    ref writes the next sequence number with put_if_absent, so two writers can never both
    succeed from the same base; the loser re-reads the head and retries. Tags are immutable
    objects created with put_if_absent.

    Keys (spelled only in this module): from format 3 `refs/heads/<enc>/<seq:020d>` and
    `refs/tags/<enc>` with `enc = encode_ref_name(name)`; before, the raw name
    (`refs/heads/<name>/<seq:020d>`, `refs/tags/<name>`), which a dataset of that version
    keeps writing. `format_version` defaults to the one in the store's dataset.json.
    """

    def __init__(self, store: Store, format_version: int | None = None) -> None:
        self.store = store
        self._version = format_version

    @property
    def format_version(self) -> int:
        if self._version is None:
            self._version = int(read_dataset_info(self.store).get("format_version", 1))
        return self._version

    @property
    def _encoded(self) -> bool:
        return self.format_version >= ENCODED_REFS_VERSION

    def check_name(self, name: str, what: str = "branch") -> str:
        return check_ref_name(name, what, self.format_version)

    def _segment(self, name: str) -> str | None:
        """The key form of a name, or None where the name cannot exist (a lookup of it finds
        nothing; a raw name that is no safe key in the old layout)."""
        if not isinstance(name, str) or not name:
            return None
        if self._encoded:
            try:
                return encode_ref_name(name)
            except UnicodeEncodeError:
                return None
        parts = name.split("/")
        if any(not p or p in (".", "..") or "\0" in p for p in parts):
            return None
        return name

    def _prefix(self, branch: str) -> str | None:
        seg = self._segment(branch)
        return None if seg is None else f"{HEADS}{seg}/"

    def _read(self, key: str) -> dict[str, Any]:
        rec: dict[str, Any] = json.loads(unseal(self.store.get(key), f"{self.store.url}/{key}"))
        return rec

    def _seqs(self, branch: str) -> list[int]:
        prefix = self._prefix(branch)
        if prefix is None:
            return []
        names = (k[len(prefix):] for k in self.store.list(prefix))
        return sorted(int(n) for n in names if n.isdigit())  # "a/b/..." is not branch "a"

    def _key(self, branch: str, seq: int) -> str:
        prefix = self._prefix(branch)
        if prefix is None:
            raise RefNameError(f"{branch!r} is not a valid branch name")
        return f"{prefix}{seq:020d}"

    def head(self, branch: str) -> tuple[int, dict[str, Any]] | None:
        """(seq, record) of the newest ref of `branch`, or None if there is no such branch."""
        seqs = self._seqs(branch)
        if not seqs:
            return None
        rec = self._read(self._key(branch, seqs[-1]))
        if rec.get("deleted"):
            return None
        return seqs[-1], rec

    def records(self, branch: str, last: int) -> list[dict[str, Any]]:
        """The newest `last` records of `branch`, oldest first (gc marks what they reach)."""
        return [self._read(self._key(branch, s)) for s in self._seqs(branch)[-last:]]

    def advance(self, branch: str, seq: int, record: dict[str, Any]) -> bool:
        """Create ref number `seq` (must be head + 1); False if someone else got there first."""
        body = dict(record, seq=seq, time=time.time())
        return self.store.put_if_absent(self._key(branch, seq), seal(_dumps(body)))

    def create(self, branch: str, record: dict[str, Any]) -> bool:
        """Start branch `branch` at `record`; False if it exists. A name is checked first."""
        self.check_name(branch)
        seqs = self._seqs(branch)
        if seqs and self.head(branch) is not None:
            return False
        return self.advance(branch, seqs[-1] + 1 if seqs else 0, record)

    def branches(self) -> list[str]:
        names: set[str] = set()
        for k in self.store.list(HEADS):
            seg = k[len(HEADS):].rsplit("/", 1)[0]
            name = decode_ref_name(seg) if self._encoded else seg
            if name is not None:
                names.add(name)
        return sorted(b for b in names if self.head(b) is not None)

    def delete_branch(self, branch: str) -> None:
        """Tombstone the branch (atomically, as a ref move), then remove its records."""
        while True:
            head = self.head(branch)
            if head is None:
                raise VersionNotFoundError(f"no branch {branch!r} in {self.store.url}")
            if self.advance(branch, head[0] + 1, {"deleted": True}):
                break
        for seq in self._seqs(branch):
            self.store.delete(self._key(branch, seq))

    def prune(self, branch: str, keep: int = 8) -> int:
        """Delete all but the newest `keep` records of a branch (history lives in commits)."""
        seqs = self._seqs(branch)[:-keep] if keep else self._seqs(branch)
        for seq in seqs:
            self.store.delete(self._key(branch, seq))
        return len(seqs)

    # ---- tags -----------------------------------------------------------------------------
    def _tag_key(self, name: str) -> str | None:
        seg = self._segment(name)
        return None if seg is None else f"{TAGS}{seg}"

    def put_tag(self, name: str, commit_id: str, message: str = "") -> bool:
        """Create tag `name` (the name is checked first); False if it exists."""
        self.check_name(name, "tag")
        key = self._tag_key(name)
        assert key is not None
        if not self._encoded:  # raw names: tag "a" (a file) and "a/b" (in a directory) clash
            for other in self.tags():
                if other.startswith(name + "/") or name.startswith(other + "/"):
                    raise RefNameError(
                        f"invalid tag name {name!r} (argument `name`): tag {other!r} exists, "
                        f"and a format-{self.format_version} dataset cannot hold a tag and "
                        "another tag inside its name ('a' and 'a/b'); choose another name")
        body = {"commit": commit_id, "message": message, "time": time.time()}
        return self.store.put_if_absent(key, seal(_dumps(body)))

    def get_tag(self, name: str) -> dict[str, Any] | None:
        key = self._tag_key(name)
        if key is None:
            return None
        try:
            return self._read(key)
        except ObjectNotFoundError:
            return None

    def tags(self) -> dict[str, dict[str, Any]]:
        out = {}
        for k in self.store.list(TAGS):
            seg = k[len(TAGS):]
            name = decode_ref_name(seg) if self._encoded else seg
            if name is not None:
                out[name] = self._read(k)
        return out

    def delete_tag(self, name: str) -> None:
        key = self._tag_key(name)
        if key is None or self.get_tag(name) is None:
            raise VersionNotFoundError(f"no tag {name!r} in {self.store.url}")
        self.store.delete(key)
