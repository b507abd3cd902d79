"""The dependency checks' index of delivered ids: 64-bit hashes, sorted, looked up a chunk at a time."""

from __future__ import annotations

import sys

from connectors.state.id_index import IdIndex, hash_ids, held_among


def test_it_holds_exactly_its_ids_in_batches_and_alone():
    ids = [f"SKU-{i}" for i in range(0, 20_000, 2)]
    index = IdIndex.from_batches([ids[:3_000], ids[3_000:], []])
    probe = ["SKU-0", "SKU-1", "SKU-19998", "SKU-19999", "", "sku-0"]
    assert index.contains(probe).tolist() == [True, False, True, False, False, False]
    assert "SKU-4" in index and "SKU-5" not in index and 4 not in index
    assert len(index) == len(ids)


def test_an_empty_index_holds_nothing_and_unions_add_up():
    assert IdIndex().contains(["a"]).tolist() == [False] and "a" not in IdIndex.of([])
    both = IdIndex.union([IdIndex.of(["a", "b"]), IdIndex.of(["b", "c"])]).with_ids(["d"])
    assert both.contains(["a", "b", "c", "d", "e"]).tolist() == [True, True, True, True, False]


def test_hashes_are_stable_across_processes_and_a_plain_set_answers_the_same():
    # the fixed-key SipHash of pandas: not Python's per-process salted hash()
    assert hash_ids(["order-1"]).tolist() == hash_ids(["order-1"]).tolist()
    assert held_among({"a"}, ["a", "b"]).tolist() == held_among(IdIndex.of(["a"]), ["a", "b"]).tolist() == [True, False]


def test_it_costs_eight_bytes_an_id_where_a_set_of_strings_costs_ten_times_more():
    ids = [f"customer{i}@example.com" for i in range(100_000)]
    index = IdIndex.of(ids)
    as_set = set(ids)
    set_bytes = sys.getsizeof(as_set) + sum(sys.getsizeof(i) for i in ids)
    assert index.nbytes == 8 * len(ids)
    assert set_bytes > 10 * index.nbytes
