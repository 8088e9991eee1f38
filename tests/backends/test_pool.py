"""The worker pool both backends share: one trial per worker, ready workers first, pinned hardware honoured."""

import threading
import time

import pytest

from overnight.backends.base import NoSuchHardware, Worker, WorkerPool


def test_the_pool_prefers_ready_workers_and_never_hands_one_out_twice():
    pool = WorkerPool([Worker("c-0"), Worker("c-1")])
    first, second = pool.acquire(), pool.acquire()
    assert {first.name, second.name} == {"c-0", "c-1"}
    first.up = second.up = True

    got: list[str] = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire().name))
    waiter.start()
    time.sleep(0.2)
    assert got == []  # both busy: the third trial waits for a worker
    pool.release(second, healthy=True)
    waiter.join(5)
    assert got == [second.name]

    pool.release(first, healthy=False)  # it died under a trial: relaunched next time
    assert not first.up and pool.acquire() is first


def test_a_trial_pinned_to_a_hardware_type_waits_for_a_worker_of_that_type():
    pool = WorkerPool([Worker("a", hardware="h100", up=True), Worker("b", hardware="h200", up=True)])
    assert pool.acquire("h200").name == "b"
    got: list[str] = []
    waiter = threading.Thread(target=lambda: got.append(pool.acquire("h200").name))
    waiter.start()
    time.sleep(0.2)
    assert got == []  # the h100 worker is idle, but it is the wrong type
    pool.release(pool.workers[1])
    waiter.join(5)
    assert got == ["b"]
    with pytest.raises(NoSuchHardware, match="no worker runs on a100"):
        pool.acquire("a100")
