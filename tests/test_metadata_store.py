"""The SQLite metadata store's reads never wait for an open write transaction (WAL): a
status call must answer while a publish is in progress, also from a thread that has never
read before."""
from __future__ import annotations

import threading

from msqcore.storage.metadata import SqliteMetadataStore, TaskRecord


def test_a_new_threads_first_read_does_not_wait_for_an_open_transaction(tmp_path):
    store = SqliteMetadataStore(str(tmp_path / "metadata.db"))
    store.insert_task(TaskRecord("t1", "query_controller", "wiki", "2026-01-01T00:00:00.000Z", "RUNNING", -1,
                                 None, {}, None))
    inside, release = threading.Event(), threading.Event()

    def publish() -> None:  # holds the write transaction open, as a paused publish does
        with store._tx() as db:
            db.execute("UPDATE tasks SET status='SUCCESS' WHERE id='t1'")
            inside.set()
            release.wait(30)

    writer = threading.Thread(target=publish)
    writer.start()
    try:
        assert inside.wait(30)
        seen = []
        reader = threading.Thread(target=lambda: seen.append(store.get_task("t1").status))
        reader.start()
        reader.join(10)
        assert not reader.is_alive(), "the first read of a new thread waited for the writer"
        assert seen == ["RUNNING"]  # the last committed state
    finally:
        release.set()
        writer.join()
    assert store.get_task("t1").status == "SUCCESS"
    store.close()


def test_reads_share_pooled_connections(tmp_path):
    """A read takes a reader connection from the pool and gives it back: threads that come and
    go (a controller thread per task) do not each leave an open connection behind, and reads
    at the same time each get their own."""
    store = SqliteMetadataStore(str(tmp_path / "metadata.db"))
    store.insert_task(TaskRecord("t1", "query_controller", "wiki", "2026-01-01T00:00:00.000Z", "RUNNING", -1,
                                 None, {}, None))
    for _ in range(20):
        reader = threading.Thread(target=store.get_task, args=("t1",))
        reader.start()
        reader.join()
    assert len(store._readers) == 1
    # two reads open at once: two connections, both back in the pool afterwards
    with store._read() as first, store._read() as second:
        assert first is not second
        assert first.execute("SELECT status FROM tasks").fetchone()[0] == "RUNNING"
    assert len(store._readers) == 2 and len(store._idle) == 2
    store.close()
