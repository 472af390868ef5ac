"""A hypothesis state machine drives versioning against a plain in-memory model."""

from __future__ import annotations

import uuid
from collections import deque

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import plane
from plane.storage import MemoryStore

Row = tuple[int, int, str]  # (row id, v, t)
BRANCHES = ["main", "b1", "b2"]
MERGES: list[int] = []  # real three-way merges seen (reported by the test below)


class VersionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.name = f"sm-{uuid.uuid4().hex}"
        self.url = f"mem://{self.name}"
        self.ds = plane.create(self.url)
        self.ds.create_tensor("v", dtype="int64")
        self.ds.create_tensor("t", htype="text")
        first = self.ds.commit("init", allow_empty=True)
        self.commits: dict[str, tuple[list[Row], list[str]]] = {first: ([], [])}
        self.head = {"main": first}
        self.work: dict[str, list[Row]] = {"main": []}
        self.branch = "main"
        self.counter = 0

    def teardown(self) -> None:
        MemoryStore.drop(self.name)

    @property
    def rows(self) -> list[Row]:
        return self.work[self.branch]

    def _ancestors(self, c: str) -> dict[str, int]:
        seen, todo = {c: 0}, deque([c])
        while todo:
            x = todo.popleft()
            for p in self.commits[x][1]:
                if p not in seen:
                    seen[p] = seen[x] + 1
                    todo.append(p)
        return seen

    # ---- rules ----------------------------------------------------------------------------
    @rule(k=st.integers(1, 4))
    def append(self, k: int) -> None:
        vals = list(range(self.counter, self.counter + k))
        self.counter += k
        self.ds.extend({"v": vals, "t": [f"t{x}" for x in vals]})
        rids = self.ds.row_ids[-k:].tolist()
        self.rows.extend((r, x, f"t{x}") for r, x in zip(rids, vals))

    @precondition(lambda self: bool(self.rows))
    @rule(data=st.data(), which=st.sampled_from(["v", "t", "both"]))
    def update(self, data: st.DataObject, which: str) -> None:
        i = data.draw(st.integers(0, len(self.rows) - 1))
        new = data.draw(st.integers(-3, 3))  # small range: equal values happen
        rid, v, t = self.rows[i]
        if which in ("v", "both"):
            self.ds["v"][i] = new
            v = new
        if which in ("t", "both"):
            self.ds["t"][i] = f"u{new}"
            t = f"u{new}"
        self.rows[i] = (rid, v, t)

    @precondition(lambda self: bool(self.rows))
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        i = data.draw(st.integers(0, len(self.rows) - 1))
        self.ds.delete([i])
        del self.rows[i]

    @rule()
    def commit(self) -> None:
        if self.rows == self.commits[self.head[self.branch]][0]:
            # logically unchanged: refused if nothing was written at all; an add-then-delete
            # leaves a different physical state (a deletion vector), which may be committed
            try:
                cid = self.ds.commit("maybe nothing")
            except plane.PlaneError as e:
                assert "nothing to commit" in str(e)
                return
        else:
            cid = self.ds.commit(f"c{len(self.commits)}")
        self.commits[cid] = (list(self.rows), [self.head[self.branch]])
        self.head[self.branch] = cid

    @rule(name=st.sampled_from(BRANCHES))
    def create_branch(self, name: str) -> None:
        if name in self.head:
            try:
                self.ds.branch(name)
            except plane.PlaneError as e:
                assert "already exists" in str(e)
                return
            raise AssertionError("duplicate branch accepted")
        self.ds.branch(name)
        self.head[name] = self.head[self.branch]
        self.work[name] = list(self.commits[self.head[name]][0])

    @rule(name=st.sampled_from(BRANCHES))
    def checkout(self, name: str) -> None:
        if name not in self.head:
            return
        self.ds.checkout(name)
        self.branch = name

    @rule()
    def reopen(self) -> None:
        self.ds.flush()
        self.ds = plane.open(self.url, version=self.branch)

    @rule(other=st.sampled_from(BRANCHES))
    def merge(self, other: str) -> None:
        if other not in self.head or other == self.branch:
            return
        self.commit()  # merge needs a clean working state
        ours_c, theirs_c = self.head[self.branch], self.head[other]
        ours_anc = self._ancestors(ours_c)
        if theirs_c in ours_anc:
            assert self.ds.merge(other).up_to_date
            return
        theirs_anc = self._ancestors(theirs_c)
        if ours_c in theirs_anc:
            assert self.ds.merge(other).fast_forward
            self.head[self.branch] = theirs_c
            self.work[self.branch] = list(self.commits[theirs_c][0])
            return
        # the base: a best common ancestor (not an ancestor of another common ancestor);
        # in criss-cross history the most recent of them, then the larger id
        common = {c for c in ours_anc if c in theirs_anc}
        stale = {a for c in common for a in self._ancestors(c) if a != c}
        times = {e["id"]: float(e["time"]) for e in self.ds.log()}
        base_c = max(common - stale, key=lambda c: (times[c], c))
        base = {r[0]: r for r in self.commits[base_c][0]}
        ours = {r[0]: r for r in self.rows}
        theirs_rows = self.commits[theirs_c][0]
        theirs = {r[0]: r for r in theirs_rows}
        conflict = False
        for rid in set(base) | set(ours) | set(theirs):
            b, o, t = base.get(rid), ours.get(rid), theirs.get(rid)
            if b is None:
                continue
            for k in (1, 2):
                ou = o is not None and o[k] != b[k]
                tu = t is not None and t[k] != b[k]
                if ou and tu and o[k] != t[k]:  # type: ignore[index]
                    conflict = True
                if (t is None and ou) or (o is None and tu):
                    conflict = True
        if conflict:
            before = self.ds.commit_id
            try:
                self.ds.merge(other)
            except plane.MergeConflictError:
                assert self.ds.commit_id == before
                MERGES.append(0)
                return
            raise AssertionError("a conflicting merge went through")
        merged: list[Row] = []
        for rid, o in ours.items():
            if rid in base and rid not in theirs:
                continue  # deleted on their side
            t = theirs.get(rid)
            b = base.get(rid)
            if t is not None and b is not None:
                o = (rid, t[1] if t[1] != b[1] else o[1], t[2] if t[2] != b[2] else o[2])
            merged.append(o)
        merged += [r for r in theirs_rows if r[0] not in base and r[0] not in ours]
        res = self.ds.merge(other)
        MERGES.append(1)
        assert res.commit is not None
        self.commits[res.commit] = (merged, [ours_c, theirs_c])
        self.head[self.branch] = res.commit
        self.work[self.branch] = list(merged)

    @rule(data=st.data())
    def diverge_and_merge(self, data: st.DataObject) -> None:
        """Random edits on two branches from one commit, then a three-way merge."""
        others = [b for b in self.head if b != self.branch]
        if not others:
            self.create_branch("b1" if self.branch != "b1" else "b2")
            others = [b for b in self.head if b != self.branch]
        other = data.draw(st.sampled_from(sorted(others)))
        home = self.branch
        self.commit()
        for side in (other, home):
            self.checkout(side)
            for _ in range(data.draw(st.integers(1, 3))):
                op = data.draw(st.sampled_from(["append", "update", "delete"]))
                if op == "append" or not self.rows:
                    self.append(data.draw(st.integers(1, 3)))
                elif op == "update":
                    self.update(data, data.draw(st.sampled_from(["v", "t", "both"])))
                else:
                    self.delete(data)
            self.commit()
        self.merge(other)

    # ---- invariants -----------------------------------------------------------------------
    @invariant()
    def working_state_matches(self) -> None:
        got = list(zip(self.ds.row_ids.tolist(), self.ds["v"].numpy(aslist=True),
                       self.ds["t"].numpy()))
        assert [(r, int(np.asarray(v)), t) for r, v, t in got] == self.rows

    @invariant()
    def every_commit_reads_back(self) -> None:
        for cid, (rows, _) in list(self.commits.items())[-4:]:
            old = plane.open(self.url, version=cid, read_only=True)
            got = list(zip(old.row_ids.tolist(), old["v"].numpy(aslist=True),
                           old["t"].numpy()))
            assert [(r, int(np.asarray(v)), t) for r, v, t in got] == rows, cid


VersionMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestVersionMachine = VersionMachine.TestCase


def test_model_helpers_are_sane() -> None:
    m = VersionMachine()
    try:
        m.append(3)
        m.commit()
        assert len(m.commits) == 2 and m.rows == m.commits[m.head["main"]][0]
    finally:
        m.teardown()
