"""Task ids: ``new_task_id`` makes ULIDs, in order, encoded as the ULID library encodes them."""

from __future__ import annotations

import random

from ulid import ULID

from jobbers.state.records import encode_task_id, new_task_id


def test_encoded_id_is_the_ulid_text_of_the_value() -> None:
    rng = random.Random(7)
    values = [0, 1, 2**128 - 1, 2**80, (2**48 - 1) << 80, *(rng.getrandbits(128) for _ in range(2000))]

    for value in values:
        assert encode_task_id(value) == str(ULID.from_int(value))


def test_ids_made_in_a_row_are_ulids_in_increasing_order() -> None:
    ids = [new_task_id() for _ in range(1000)]

    assert ids == sorted(ids) and len(set(ids)) == 1000
    assert all(str(ULID.from_str(i)) == i for i in ids)
