"""Overlapping waves: the next wave is planned while the current one runs, so no worker waits for the planner.

With `pipeline: true` a campaign keeps up to two waves' screening trials in flight, the baseline (wave 0) included.
Wave k+1 is planned as soon as wave k is planned (the planner sees wave k's trials as running, i.e. pending), and
its trials queue for the campaign's `wave_size` worker slots; each starts the moment a slot frees. When a wave's
screening trials have all ended, the next wave may be planned. When trials of several waves wait for a slot, the
oldest wave's go first, so a wave's confirmation runs are not stuck behind newer screening trials. Decisions
(screen, confirm, crown, reflect) are taken one wave at a time, in wave order; a wave is planned knowing the
results of the wave before last.

This module only coordinates threads; the campaign flow runs each wave in a thread of its own.
"""

from __future__ import annotations

import heapq
import itertools
import threading

WAIT_S = 1.0  # waits wake up this often, so that Ctrl-C (raised in the main thread) is never held up
SETTLE_S = 5.0  # at most this long a finished trial's recording waits for the next trials to start


class PipelineStopped(RuntimeError):
    """The campaign is stopping (Ctrl-C, or another wave failed); this wave records what it has and ends."""


class Slot:
    """A worker held by one trial. Released once: as soon as the trial's process ends (recording its result needs no
    worker), or when its task ends, whichever comes first."""

    def __init__(self, pipeline: Pipeline):
        self._pipeline = pipeline
        self._held = True
        self._starting = True
        self._lock = threading.Lock()

    def started(self) -> None:
        """The trial's process is being launched: nothing of overnight's stands between it and its worker now."""
        with self._lock:
            was, self._starting = self._starting, False
        if was:
            self._pipeline.started_one()

    def release(self) -> None:
        self.started()
        with self._lock:
            if not self._held:
                return
            self._held = False
        self._pipeline.free_slot()

    def let_others_start(self, timeout_s: float = SETTLE_S) -> None:
        """Wait (a little) until no trial waits for a worker or is being launched: on a small orchestrator machine,
        recording a result competes for the CPU with the trials taking the freed workers, and they go first."""
        self._pipeline.wait_for_starts(timeout_s)


class Pipeline:
    """Worker slots shared by the waves in flight, and the milestones that order them."""

    def __init__(self, workers: int, first_wave: int = 1):
        self.workers = workers
        self._first = first_wave  # waves before it ended in an earlier process (a resumed campaign)
        self._free = workers
        self._queue: list[tuple[int, int]] = []  # (wave, ticket): the oldest wave's requests first
        self._tickets = itertools.count()
        self._planned: set[int] = set(range(first_wave))  # waves before the first are done already
        self._screened: set[int] = set(range(first_wave))
        self._finished: set[int] = set(range(first_wave))
        self._started: set[int] = set()
        self._launching = 0  # trials given a worker whose process is not launched yet
        self.stopping = ""  # why the campaign stops, once it does
        self._state = threading.Condition()

    # --- worker slots ------------------------------------------------------------------------------------------------

    def take_slot(self, wave: int) -> Slot:
        """Block until a worker is free and no older wave is waiting for one; raises PipelineStopped when stopping."""
        with self._state:
            request = (wave, next(self._tickets))
            heapq.heappush(self._queue, request)
            try:
                while not (self._free > 0 and self._queue[0] == request):
                    self._raise_if_stopping()
                    self._state.wait(WAIT_S)
                self._raise_if_stopping()
            except BaseException:
                self._queue.remove(request)
                heapq.heapify(self._queue)
                self._state.notify_all()
                raise
            heapq.heappop(self._queue)
            self._free -= 1
            self._launching += 1
            self._state.notify_all()
        return Slot(self)

    def started_one(self) -> None:
        with self._state:
            self._launching -= 1
            self._state.notify_all()

    def wait_for_starts(self, timeout_s: float) -> None:
        """Until no trial waits for a free worker or is being launched on one, or `timeout_s`."""
        with self._state:
            self._state.wait_for(
                lambda: self.stopping or not (self._launching or (self._queue and self._free)), timeout_s
            )

    def free_slot(self) -> None:
        with self._state:
            self._free += 1
            self._state.notify_all()

    def busy_slots(self) -> int:
        with self._state:
            return self.workers - self._free

    # --- milestones --------------------------------------------------------------------------------------------------

    def started(self, wave: int) -> None:
        self._mark(self._started, wave)

    def planned(self, wave: int) -> None:
        """The wave's trials are recorded: the next wave may be planned, seeing them as pending."""
        self._mark(self._planned, wave)

    def screened(self, wave: int) -> None:
        """The wave's screening trials have all ended: a new wave may join the queue."""
        self._mark(self._planned, wave)
        self._mark(self._screened, wave)

    def finished(self, wave: int) -> None:
        """The wave's decisions are taken (or it failed): the next wave may take its own."""
        self._mark(self._planned, wave)
        self._mark(self._screened, wave)
        self._mark(self._finished, wave)

    def _mark(self, done: set[int], wave: int) -> None:
        with self._state:
            done.add(wave)
            self._state.notify_all()

    def wait_turn(self, wave: int) -> None:
        """Block until the previous wave has taken its decisions, so that waves decide in order."""
        with self._state:
            while wave - 1 >= self._first and wave - 1 not in self._finished:
                self._raise_if_stopping()
                self._state.wait(WAIT_S)
            self._raise_if_stopping()

    def wait_for_room(self, newest: int) -> bool:
        """Block until a new wave may be planned after wave `newest`: it is planned, and every wave before it has
        ended its screening trials. False when the campaign is stopping."""
        with self._state:
            while not self.stopping and not self._room(newest):
                self._state.wait(WAIT_S)
            return not self.stopping

    def _room(self, newest: int) -> bool:
        if newest < self._first:  # nothing of this process in flight yet
            return True
        return newest in self._planned and all(w in self._screened for w in self._started if w < newest)

    def waves_in_flight(self) -> int:
        """Waves started whose screening trials have not all ended."""
        with self._state:
            return sum(1 for w in self._started if w not in self._screened)

    # --- stopping ----------------------------------------------------------------------------------------------------

    def stop(self, why: str) -> None:
        """Start no more trials or waves; waves end at their next step, recording what finished. The first reason
        given is kept."""
        with self._state:
            self.stopping = self.stopping or why
            self._state.notify_all()

    def check(self) -> None:
        with self._state:
            self._raise_if_stopping()

    def _raise_if_stopping(self) -> None:
        if self.stopping:
            raise PipelineStopped(self.stopping)
