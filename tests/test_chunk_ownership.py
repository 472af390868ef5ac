"""Rendezvous ownership of chunks (`actors.chunk_cache.owner_of`): adding or losing one
shard moves only that shard's share of the keys, never a key between two survivors."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.chunk_cache import owner_of

keys = st.lists(st.text(alphabet="0123456789abcdef/", min_size=1, max_size=40),
                min_size=1, max_size=100, unique=True)
shard_sets = st.lists(st.integers(0, 10_000), min_size=2, max_size=12, unique=True)


@settings(max_examples=100, deadline=None)
@given(keys=keys, shards=shard_sets, data=st.data())
def test_losing_a_shard_moves_only_its_keys(keys: list[str], shards: list[int],
                                            data: st.DataObject) -> None:
    gone = data.draw(st.sampled_from(shards))
    left = [s for s in shards if s != gone]
    for k in keys:
        before, after = owner_of(k, shards), owner_of(k, left)
        assert after in left
        if before != gone:
            assert after == before  # a survivor keeps every key it had
    # and the order of the shard list does not matter
    assert [owner_of(k, shards) for k in keys] == [owner_of(k, shards[::-1]) for k in keys]


@settings(max_examples=100, deadline=None)
@given(keys=keys, shards=shard_sets, new=st.integers(10_001, 20_000))
def test_adding_a_shard_takes_keys_only_for_itself(keys: list[str], shards: list[int],
                                                   new: int) -> None:
    for k in keys:
        before, after = owner_of(k, shards), owner_of(k, [*shards, new])
        assert after in (before, new)  # a key moves only to the new shard


def test_shares_are_balanced() -> None:
    shards = list(range(8))
    owners = [owner_of(f"chunks/{i:08x}", shards) for i in range(8000)]
    counts = [owners.count(s) for s in shards]
    assert min(counts) > 800 and max(counts) < 1200  # 1000 each, within a few sigma


def test_shards_follow_the_gpus_of_each_node_unless_told() -> None:
    from actors.chunk_cache import shard_nodes

    nodes = [{"NodeID": "cpu", "Resources": {"CPU": 16.0}},
             {"NodeID": "a100x8", "Resources": {"CPU": 96.0, "GPU": 8.0}},
             {"NodeID": "gpu1", "Resources": {"GPU": 1.0}}]
    assert shard_nodes(nodes, None) == ["cpu"] + ["a100x8"] * 4 + ["gpu1"]
    assert shard_nodes(nodes, 2) == ["cpu", "cpu", "a100x8", "a100x8", "gpu1", "gpu1"]
