"""VersionControl (`ds.versions`): commits, branches, tags, checkout, log, diff, merge."""

from __future__ import annotations

from collections import deque
from typing import Any

from plane._errors import PlaneError, VersionNotFoundError
from plane.core._layout import COMMITS, commit_id_of
from plane.core._snapshot import Snapshot
from plane.core._state import Commit, State
from plane.core._working import WorkingState
from plane.version._diff import Diff, compute_diff
from plane.version._merge import MergeResult, merge_into

__all__ = ["VersionControl", "merge_base", "merge_bases"]


def _ancestors(store: Any, commit_id: str, parents: dict[str, tuple[str, ...]] | None = None
               ) -> dict[str, int]:
    """Every ancestor of a commit (itself included) with its BFS distance; `parents` memoises
    commit loads across calls."""
    memo = {} if parents is None else parents
    seen = {commit_id: 0}
    todo = deque([commit_id])
    while todo:
        c = todo.popleft()
        if c not in memo:
            memo[c] = Commit.load(store, c).parents
        for p in memo[c]:
            if p not in seen:
                seen[p] = seen[c] + 1
                todo.append(p)
    return seen


def merge_bases(store: Any, a: str, b: str) -> list[str]:
    """The best common ancestors of commits a and b: those that are not an ancestor of another
    common ancestor (Git's `merge-base --all`). More than one means criss-cross history."""
    parents: dict[str, tuple[str, ...]] = {}
    ours, theirs = _ancestors(store, a, parents), _ancestors(store, b, parents)
    common = [c for c in theirs if c in ours]
    stale: set[str] = set()
    todo = deque(p for c in common for p in parents[c])
    while todo:
        c = todo.popleft()
        if c not in stale:
            stale.add(c)
            todo.extend(parents[c])
    return [c for c in common if c not in stale]


def merge_base(store: Any, a: str, b: str) -> str | None:
    """The base of a three-way merge of a and b (None if they share no history): the best
    common ancestor; in criss-cross history, the most recent of them (then the larger id)."""
    best = merge_bases(store, a, b)
    if not best:
        return None
    return max(best, key=lambda c: (float(Commit.load(store, c).time), c))


class VersionControl:
    """Version operations of one dataset's working state; the Dataset forwards the common
    ones."""

    def __init__(self, ws: WorkingState) -> None:
        self._ws = ws

    def __repr__(self) -> str:
        where = self._ws.branch or self._ws.commit_id
        return f"VersionControl({self._ws.url}, at {where!r})"

    @property
    def _store(self) -> Any:
        return self._ws.store

    @property
    def _refs(self) -> Any:
        return self._ws.refs

    # ---- resolving ------------------------------------------------------------------------
    def resolve(self, version: str) -> tuple[str | None, str | None]:
        """(branch or None, commit id or None) for a branch, tag, commit id or unique prefix."""
        if self._refs.head(version) is not None:
            rec = self._refs.head(version)[1]
            return version, rec.get("commit")
        tag = self._refs.get_tag(version)
        if tag is not None:
            return None, str(tag["commit"])
        if len(version) >= 6 and all(c in "0123456789abcdef" for c in version):
            found = [commit_id_of(k) for k in self._store.list(COMMITS + version)]
            if len(found) == 1:
                return None, found[0]
            if len(found) > 1:
                raise VersionNotFoundError(f"commit prefix {version!r} is ambiguous "
                                           f"({len(found)} commits); give more digits")
        raise VersionNotFoundError(
            f"no branch, tag or commit {version!r} in {self._ws.url}; branches: "
            f"{', '.join(self.branches()) or '(none)'}; tags: "
            f"{', '.join(self.tags()) or '(none)'}")

    def _locate(self, version: str) -> tuple[str | None, int, str | None, str]:
        """(branch or None, ref sequence number, commit id, state key) of a version."""
        branch, commit = self.resolve(version)
        if branch is not None:
            head = self._refs.head(branch)
            assert head is not None
            seq, rec = head
            return branch, seq, rec.get("commit"), rec["state"]
        assert commit is not None
        return None, -1, commit, Commit.load(self._store, commit).state

    def _goto(self, version: str) -> None:
        branch, seq, commit, key = self._locate(version)
        self._ws.set_base(branch, seq, commit, key, State.load(self._store, key))

    def _view(self, version: str | None) -> Snapshot:
        """A Snapshot of `version` (None: the working state, unflushed writes included)."""
        ws = self._ws
        if version is None:
            return ws.view()
        branch, _, commit, key = self._locate(version)
        return Snapshot.open(self._store, key, commit_id=commit, branch=branch,
                             cache_bytes=ws.reader.cache.max_bytes,
                             link_storage_options=ws.link_storage_options)

    # ---- commits --------------------------------------------------------------------------
    def commit(self, message: str = "", allow_empty: bool = False) -> str:
        """Flush and record the working state as a commit on the current branch."""
        self._ws.check_writable("commit")
        cid = self._ws.publish(message, allow_empty=allow_empty)
        assert cid is not None
        return cid

    def log(self, version: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Commits reachable from `version` (default: current), newest first."""
        if version is None:
            start = self._ws.commit_id
        else:
            start = self.resolve(version)[1]
        if start is None:
            return []
        out: list[dict[str, Any]] = []
        for cid in _ancestors(self._store, start):
            c = Commit.load(self._store, cid)
            out.append({"id": cid, "parents": list(c.parents), "message": c.message,
                        "author": c.author, "time": c.time})
        out.sort(key=lambda d: float(d["time"]), reverse=True)
        return out[:limit] if limit else out

    # ---- branches -------------------------------------------------------------------------
    def branches(self) -> list[str]:
        return list(self._refs.branches())

    def create_branch(self, name: str, version: str | None = None) -> None:
        """Create branch `name` at `version` (default: the current commit). One small object."""
        self._refs.check_name(name)
        if version is None:
            commit = self._ws.commit_id
            state = (Commit.load(self._store, commit).state if commit
                     else self._ws.base_key)
        else:
            _, commit = self.resolve(version)
            if commit is None:
                raise PlaneError(f"{version!r} has no commits to branch from; commit first")
            state = Commit.load(self._store, commit).state
        if not self._refs.create(name, {"commit": commit, "state": state}):
            raise PlaneError(f"branch {name!r} already exists in {self._ws.url}")

    def delete_branch(self, name: str) -> None:
        if name == self._ws.branch:
            raise PlaneError(f"cannot delete branch {name!r}: it is checked out; checkout "
                             "another branch first")
        self._refs.delete_branch(name)

    def checkout(self, version: str, create: bool = False) -> None:
        """Switch to a branch (writable) or a tag/commit (read-only). Flushes pending writes
        first; they stay on the branch they were made on."""
        ws = self._ws
        if not ws.store.read_only and ws.branch is not None:
            ws.publish(None)  # flush
        if create:
            self.create_branch(version)
        self._goto(version)

    # ---- tags -----------------------------------------------------------------------------
    def tag(self, name: str, commit: str | None = None, message: str = "") -> None:
        self._refs.check_name(name, "tag")
        cid = self.resolve(commit)[1] if commit else self._ws.commit_id
        if cid is None:
            raise PlaneError("nothing to tag: there is no commit yet; commit first")
        if not self._refs.put_tag(name, cid, message):
            raise PlaneError(f"tag {name!r} already exists; tags are immutable, delete it "
                             "first with ds.versions.delete_tag(name)")

    def tags(self) -> dict[str, str]:
        return {k: str(v["commit"]) for k, v in self._refs.tags().items()}

    def delete_tag(self, name: str) -> None:
        self._refs.delete_tag(name)

    # ---- diff / merge ---------------------------------------------------------------------
    def diff(self, a: str | None = None, b: str | None = None) -> Diff:
        """Rows added/updated/deleted and schema changes from version a to version b.

        Defaults: a = the current commit, b = the working state (including unflushed writes).
        """
        commit_id = self._ws.commit_id
        if a is None:
            a_view = self._view(commit_id) if commit_id else self._empty()
            a_label = commit_id or "(empty)"
        else:
            a_view, a_label = self._view(a), a
        b_view = self._view(b)
        return compute_diff(a_view, b_view, a_label, b or "working")

    def _empty(self) -> Snapshot:
        """The empty version (no tensors, no rows), in memory: the base of a first commit."""
        ws = self._ws
        return Snapshot(self._store, None, State(version=ws.format_version), {}, info=ws.info,
                        reader=ws.reader, links=ws.links)

    def merge(self, other: str, conflicts: str = "fail", message: str | None = None
              ) -> MergeResult:
        """Three-way merge of branch/tag/commit `other` into the current branch.

        Rows appended on either side are kept; rows changed on one side are taken; rows changed
        differently on both sides (or deleted on one and updated on the other) are conflicts:
        conflicts="fail" raises MergeConflictError listing them and changes nothing, "ours"
        keeps this branch's version, "theirs" takes the other's. Tensors added on either side
        are kept. The result is a merge commit with two parents.
        """
        ws = self._ws
        ws.check_writable("merge")
        ws.publish(None)  # flush
        if ws.has_changes:
            raise PlaneError("commit your changes before merging (ds.commit(message))")
        _, theirs_commit = self.resolve(other)
        if theirs_commit is None:
            raise PlaneError(f"{other!r} has no commits to merge")
        ours_commit = ws.commit_id
        if ours_commit == theirs_commit:
            return MergeResult(ours_commit, up_to_date=True)
        base = merge_base(self._store, ours_commit, theirs_commit) if ours_commit else None
        if base == theirs_commit:
            return MergeResult(ours_commit, up_to_date=True)
        if base == ours_commit or ours_commit is None:
            if ours_commit is None and ws.base.tensors:
                pass  # uncommitted history on our side: fall through to a real merge
            else:
                return self._fast_forward(theirs_commit)
        base_view = self._view(base) if base else self._empty()
        return merge_into(ws, self._view(theirs_commit), base_view, theirs_commit, other,
                          conflicts, message)

    def _fast_forward(self, commit: str) -> MergeResult:
        ws = self._ws
        assert ws.branch is not None
        state = Commit.load(self._store, commit).state
        while True:
            head = self._refs.head(ws.branch)
            assert head is not None
            if head[1].get("commit") != ws.commit_id:
                raise PlaneError(f"branch {ws.branch!r} moved during the merge; retry")
            if self._refs.advance(ws.branch, head[0] + 1,
                                  {"commit": commit, "state": state}):
                break
        self._goto(ws.branch)
        return MergeResult(commit, fast_forward=True)
