"""The pipeline's rules for overlapping waves: who gets a free worker, when a new wave may start, how it stops."""

import threading
import time

import pytest

from overnight.pipeline import Pipeline, PipelineStopped


def in_thread(fn, *args) -> threading.Thread:
    thread = threading.Thread(target=fn, args=args, daemon=True)
    thread.start()
    return thread


def test_a_freed_worker_goes_to_the_oldest_wave_waiting():
    pipeline = Pipeline(workers=1)
    pipeline.take_slot(1)  # wave 1's screening trial runs
    order = []
    newer = in_thread(lambda: (pipeline.take_slot(2), order.append(2)))
    time.sleep(0.2)  # wave 2's trial queues first...
    older = in_thread(lambda: (pipeline.take_slot(1), order.append(1)))  # ...then wave 1's confirmation run
    time.sleep(0.2)
    assert order == [] and pipeline.busy_slots() == 1
    pipeline.free_slot()
    older.join(2)
    assert order == [1]  # the confirmation goes first
    pipeline.free_slot()
    newer.join(2)
    assert order == [1, 2]


def test_never_more_trials_than_workers():
    pipeline = Pipeline(workers=3)
    running, most, lock = [0], [0], threading.Lock()

    def trial(wave):
        pipeline.take_slot(wave)
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        pipeline.free_slot()

    threads = [in_thread(trial, 1 + i % 2) for i in range(12)]
    for thread in threads:
        thread.join(5)
    assert most[0] == 3 and pipeline.busy_slots() == 0


def test_a_new_wave_waits_until_the_newest_is_planned_and_the_one_before_has_screened():
    pipeline = Pipeline(workers=2, first_wave=1)
    assert pipeline.wait_for_room(0)  # the baseline is done: wave 1 may start
    pipeline.started(1)
    room = []
    waiter = in_thread(lambda: room.append(pipeline.wait_for_room(1)))
    time.sleep(0.2)
    assert room == []  # wave 1 is still planning
    pipeline.planned(1)
    waiter.join(2)
    assert room == [True]  # wave 2 is planned while wave 1 runs
    pipeline.started(2)
    pipeline.planned(2)
    assert pipeline.waves_in_flight() == 2
    waiter = in_thread(lambda: room.append(pipeline.wait_for_room(2)))
    time.sleep(0.2)
    assert room == [True]  # a third wave waits for wave 1's screening trials to end
    pipeline.screened(1)
    waiter.join(2)
    assert room == [True, True] and pipeline.waves_in_flight() == 1


def test_waves_decide_in_order():
    pipeline = Pipeline(workers=2)
    decided = []
    second = in_thread(lambda: (pipeline.wait_turn(2), decided.append(2)))
    time.sleep(0.2)
    assert decided == []
    pipeline.wait_turn(1)  # wave 0 (the baseline) is done
    decided.append(1)
    pipeline.finished(1)
    second.join(2)
    assert decided == [1, 2]


def test_stopping_wakes_every_waiter_with_the_reason():
    pipeline = Pipeline(workers=1)
    pipeline.take_slot(1)
    errors = []

    def wait(fn, *args):
        try:
            fn(*args)
        except PipelineStopped as error:
            errors.append(str(error))

    threads = [in_thread(wait, pipeline.take_slot, 2), in_thread(wait, pipeline.wait_turn, 3)]
    room = []
    threads.append(in_thread(lambda: room.append(pipeline.wait_for_room(5))))
    time.sleep(0.2)
    pipeline.stop("interrupted by the user")
    pipeline.stop("a later reason is not kept")
    for thread in threads:
        thread.join(3)
    assert errors == ["interrupted by the user"] * 2 and room == [False]
    with pytest.raises(PipelineStopped, match="interrupted by the user"):
        pipeline.check()


def test_wave_1_is_planned_while_the_baseline_runs():
    pipeline = Pipeline(workers=4, first_wave=0)  # a new agent run: the baseline (wave 0) goes through it too
    assert pipeline.wait_for_room(-1)
    pipeline.started(0)
    pipeline.wait_turn(0)  # nothing before the baseline to wait for
    pipeline.planned(0)
    assert pipeline.wait_for_room(0)  # wave 1 may be planned: the baseline's trials are pending
    pipeline.started(1)
    pipeline.planned(1)
    room = []
    waiter = in_thread(lambda: room.append(pipeline.wait_for_room(1)))
    time.sleep(0.2)
    assert room == []  # wave 2 waits for the baseline's trials to end
    pipeline.screened(0)
    waiter.join(2)
    assert room == [True]
