"""Request identifiers stay unique and random, across forks too."""

from __future__ import annotations

import os
import uuid

from hub.ids import new_id


def test_ids_are_unique_version_4_uuids():
    ids = [new_id() for _ in range(5000)]
    assert len(set(ids)) == 5000
    assert all(uuid.UUID(i).version == 4 for i in ids)


def test_a_forked_child_does_not_repeat_the_parents_ids():
    new_id()  # the parent has a buffer of random bytes in hand
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.write(write, new_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    assert child != new_id()
