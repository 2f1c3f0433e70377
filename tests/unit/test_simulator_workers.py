"""Several simulator workers on one queue (issue #14): a key is never worked by two at once, and work
that arrives for a key in flight is served after its release, not lost."""

from __future__ import annotations

import threading
import time

from devcluster.simulator import workqueue
from devcluster.simulator.common import Json, Key
from devcluster.simulator.context import Context
from devcluster.simulator.database_roles import DatabaseRoleHandler
from devcluster.simulator.kube import Kube
from devcluster.simulator.roles import ActualRole, DesiredRole, apply_role
from devcluster.simulator.runtime import group_workers, worker_group


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_claimed_key_is_not_handed_to_a_second_worker_until_released() -> None:
    queue: workqueue.WorkQueue[str] = workqueue.WorkQueue()
    queue.add("a")
    queue.add("b")
    assert queue.claim(timeout=0) == "a"
    queue.add("a")  # a watch event for the object being worked on
    assert queue.claim(timeout=0) == "b"
    assert queue.claim(timeout=0) is None  # "a" waits for its release
    queue.release("a")
    assert queue.claim(timeout=0) == "a"  # the event is not lost
    queue.release("a")
    queue.release("b")
    assert queue.claim(timeout=0) is None and len(queue) == 0


def test_a_retry_due_while_the_key_is_in_flight_runs_after_its_release() -> None:
    clock = FakeClock()
    queue: workqueue.WorkQueue[str] = workqueue.WorkQueue(clock=clock)
    queue.failed("k")
    clock.now += 1
    assert queue.claim(timeout=0) == "k"
    queue.failed("k")  # a failure of this run: retry in 1 s
    queue.add("k")
    clock.now += 5
    assert queue.claim(timeout=0) is None
    queue.release("k")
    assert queue.claim(timeout=0) == "k"


def test_parallel_workers_never_work_one_key_twice_at_once() -> None:
    queue: workqueue.WorkQueue[int] = workqueue.WorkQueue()
    active: set[int] = set()
    overlaps: list[int] = []
    done: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        while (key := queue.claim(timeout=0.2)) is not None:
            with lock:
                if key in active:
                    overlaps.append(key)
                active.add(key)
            time.sleep(0.001)
            with lock:
                active.discard(key)
                done.append(key)
            queue.release(key)

    for round_ in range(20):
        for key in range(10):
            queue.add(key if round_ % 2 else 9 - key)
    workers = [threading.Thread(target=work) for _ in range(4)]
    for worker in workers:
        worker.start()
    for key in range(10):
        queue.add(key)
    for worker in workers:
        worker.join(10)
    assert not overlaps
    assert set(done) == set(range(10))


def test_database_roles_have_a_group_of_several_workers() -> None:
    assert worker_group(DatabaseRoleHandler) == "databaseroles"  # type: ignore[arg-type]
    assert group_workers([DatabaseRoleHandler]) > 1  # type: ignore[list-item]


class CountingPg:
    """read_role and statements counted; the role is already as desired."""

    def __init__(self, actual: ActualRole) -> None:
        self.actual, self.reads, self.transactions = actual, 0, 0

    def read_role(self, name: str) -> ActualRole:
        self.reads += 1
        return self.actual

    def run_in_transaction(self, statements: object) -> None:
        self.transactions += 1


def test_a_role_already_as_desired_costs_one_read_and_no_statement() -> None:
    desired = DesiredRole(name="app", login=True)
    actual = ActualRole(name="app", superuser=False, inherit=True, createrole=False, createdb=False,
                        login=True, replication=False, bypassrls=False, connection_limit=-1,
                        valid_until_epoch=None, has_password=False, comment=None, in_roles=frozenset(), xmin=42)
    pg = CountingPg(actual)
    assert apply_role(pg, desired, None, None, None) == 42  # type: ignore[arg-type]
    assert (pg.reads, pg.transactions) == (1, 0)


def test_the_echo_of_the_simulators_own_finalizer_patch_enqueues_nothing() -> None:
    kube = Kube.__new__(Kube)  # only its memory of own writes is used here
    kube._own_writes, kube._own_lock = {}, threading.Lock()
    kube._seen, kube._seen_lock = {}, threading.Lock()
    queued: list[Key] = []
    ctx = Context(kube=kube, pg=None, enqueue=queued.append, logs=None, node_name="n")  # type: ignore[arg-type]
    handler = DatabaseRoleHandler(ctx)
    role: Json = {"metadata": {"namespace": "t", "name": "r", "resourceVersion": "1", "generation": 1}}
    handler._event("ADDED", role)
    patched = {"metadata": {**role["metadata"], "resourceVersion": "2", "finalizers": ["cnpg.io/x"]}}
    kube.remember_write("databaseroles", patched)
    handler._event("MODIFIED", patched)  # our own write
    assert queued == [("databaserole", "t", "r")]
    by_someone = {"metadata": {**patched["metadata"], "resourceVersion": "3", "generation": 2}}
    handler._event("MODIFIED", by_someone)
    assert queued == [("databaserole", "t", "r")] * 2
