"""fcbench's locustfile: a thin adapter from an arrival plan to a `Target`, inside Locust.

Loaded only by ``python -m locust -f <this file>`` in a subprocess (Locust monkey-patches with
gevent). The runner passes a `LocustConfig` JSON path in ``FCBENCH_LOCUST_CONFIG``. Each Locust
process that sends load runs one `Dispatch`: open loop = one dispatcher greenlet following an
absolute-time schedule (`load.dispatch.OpenLoop`) and spawning a greenlet per request; closed
loop = N user greenlets (`load.dispatch.ClosedLoop`) with
think time. Records stream to ``requests.part-<worker>.csv``; counters to a small status file.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import time
from collections import deque
from pathlib import Path
from collections.abc import Callable
from typing import Any

import gevent
from gevent.event import Event
from gevent.pool import Group
from locust import User, constant, events, task
from locust.runners import MasterRunner, WorkerRunner

from fcbench._io import atomic_write
from fcbench.load.dispatch import ClosedLoop, OpenLoop
from fcbench.load.config import CONFIG_ENV, LocustConfig, status_path
from fcbench.load.openai_requests import DrawnRequest, RequestGenerator
from fcbench.protocol import ALL_COLUMNS, InvocationRecord
from fcbench.results.records import RecordWriter
from fcbench.results import layout
from fcbench.targets import open_target

log = logging.getLogger("fcbench.locustfile")

_STATUS_INTERVAL_S = 0.5
#: Records a worker holds before it sends them to the master (also sent every status interval).
_FORWARD_BATCH = 500
_RECENT_COLD = 20
_LOCUST_CSV_INTERVAL_S = 1.0  # locust.stats.CSV_STATS_INTERVAL_SEC


class _TimerFd:
    """Sleeps until an absolute wall-clock time with microsecond precision (Linux timerfd).

    gevent's own timers ride on epoll's millisecond timeout and wake up to ~1 ms late; a
    timerfd armed for the exact time wakes the same epoll loop on time, at no CPU cost.
    """

    _CLOCK_REALTIME, _TFD_NONBLOCK, _TFD_CLOEXEC, _TFD_TIMER_ABSTIME = 0, 0o4000, 0o2000000, 1

    def __init__(self) -> None:
        import ctypes
        import ctypes.util

        class _Timespec(ctypes.Structure):
            _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]

        class _Itimerspec(ctypes.Structure):
            _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]

        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.timerfd_settime.argtypes = [ctypes.c_int, ctypes.c_int,
                                         ctypes.POINTER(_Itimerspec), ctypes.c_void_p]
        self._fd = libc.timerfd_create(self._CLOCK_REALTIME,
                                       self._TFD_NONBLOCK | self._TFD_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self._settime = libc.timerfd_settime
        self._spec = _Itimerspec()
        self._ref = ctypes.byref(self._spec)
        self._hub = gevent.get_hub()
        self._watcher = self._hub.loop.io(self._fd, 1)
        libc.prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK: 1 ns instead of the default 50 us

    def sleep_until(self, ts: float) -> None:
        sec = int(ts)
        self._spec.it_value.tv_sec = sec
        self._spec.it_value.tv_nsec = int((ts - sec) * 1e9)
        if self._settime(self._fd, self._TFD_TIMER_ABSTIME, self._ref, None) != 0:
            gevent.sleep(max(0.0, ts - time.time()))
            return
        self._hub.wait(self._watcher)
        try:
            os.read(self._fd, 8)
        except BlockingIOError:
            pass

    def close(self) -> None:
        self._watcher.close()
        os.close(self._fd)


def _precise_timer() -> _TimerFd | None:
    try:
        return _TimerFd()
    except (OSError, AttributeError):  # not Linux: gevent's timers
        log.warning("no timerfd here; the dispatcher uses gevent's timers")
        return None


class Counters:
    """What the progress line and the web UI show; small and bounded."""

    def __init__(self) -> None:
        self.sent = 0
        self.done = 0
        self.errors = 0
        self.cold = 0
        self.cold_known = 0
        self.recent_cold_ms: deque[float] = deque(maxlen=_RECENT_COLD)
        self.started = False
        self.finished = False
        self.expected: int | None = None

    def add(self, rec: InvocationRecord) -> None:
        self.done += 1
        if not rec.ok:
            self.errors += 1
        if rec.cold is not None:
            self.cold_known += 1
            # fcbench.measures: answered, and cold (a 504 is "failed"); asked only when cold
            if rec.cold and rec.outcome == "cold":
                self.cold += 1
                self.recent_cold_ms.append(round(rec.latency_ms, 1))

    def as_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "done": self.done, "errors": self.errors, "cold": self.cold,
                "cold_known": self.cold_known, "in_flight": self.sent - self.done,
                "recent_cold_ms": list(self.recent_cold_ms), "started": self.started,
                "finished": self.finished, "expected": self.expected, "ts": time.time()}


class Dispatch:
    """One process's share of the plan: sends, records, counts; runs once.

    Made when Locust starts (loading the workload, building the target, opening connections),
    so that nothing slow is left for `begin`, which only learns its shard and start time.
    """

    def __init__(self, env: Any, cfg: LocustConfig) -> None:
        self.env, self.cfg = env, cfg
        self.generator: RequestGenerator | None = None
        self._drawn: DrawnRequest | None = None
        if cfg.request_generator is not None:  # request.openai: a body drawn per request
            self.generator = RequestGenerator.from_dict(cfg.request_generator)
            self.body, self.content_type = b"", cfg.content_type
        else:
            self.body, self.content_type = Path(cfg.body_file).read_bytes(), cfg.content_type
        self.plan = cfg.plan_spec()
        self.target = open_target(cfg.target_config(), timeout=cfg.timeout_s,
                                  async_task_prefix=cfg.async_task_prefix)
        warm_up = getattr(self.target, "warm_up", None)
        if warm_up is not None:
            warm_up()
        self.index, self.count = 0, 1
        self.start_ts, self.duration_s = 0.0, cfg.duration_s
        self.writer: RecordWriter | None = None
        self.counters = Counters()
        self.group = Group()
        self.done = Event()
        self._seq = 0
        self._drawn_n = -1  # the number of the request `_drawn` is for: drawn ahead
        self._spin_s = None if cfg.spin_ms is None else cfg.spin_ms / 1000.0
        self._greenlets: list[gevent.Greenlet] = []
        self._interrupted = False
        self._loop: OpenLoop | None = None
        # a worker of a remote master streams its rows there (bounded: sent in small batches)
        self._forward: list[tuple[str, ...]] | None = \
            [] if cfg.forward_records and isinstance(env.runner, WorkerRunner) else None

    def begin(self, index: int, count: int, start_ts: float, duration_s: float) -> None:
        """Send shard `index` of `count` of the plan, from `start_ts` (epoch s) on."""
        self.index, self.count = index, count
        self.start_ts, self.duration_s = start_ts, duration_s
        if count > 1:
            self.plan = self.plan.shard(index, count)
        self.writer = RecordWriter(Path(self.cfg.run_dir) / layout.request_part(index),
                                   flush_interval_s=self.cfg.flush_interval_s)
        # Everything made so far lives for the whole run: keep the GC from rescanning it.
        gc.collect()
        gc.freeze()
        self.counters.started = True
        main = gevent.spawn(self._run)
        self._greenlets = [main, gevent.spawn(self._status_loop)]

    # -- sending -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            if self.plan.open_loop:
                self._open_loop()
            else:
                self._closed_loop()
            if not self.group.join(timeout=self.cfg.timeout_s + 10):
                self.group.kill(block=True, timeout=5)  # written as "interrupted" rows
        except gevent.GreenletExit:
            raise
        except Exception:  # noqa: BLE001 - logged; the run ends with what it has
            log.exception("the fcbench dispatcher failed")
        finally:
            if not self._interrupted:
                self._close()

    def _open_loop(self) -> None:
        plan = self.plan
        try:
            self.counters.expected = int(plan.expected_count(self.duration_s))
        except Exception:  # noqa: BLE001 - only for the progress line
            self.counters.expected = None
        timer = _precise_timer() if self.cfg.timer != "gevent" else None
        spin = self._spin_s if self._spin_s is not None else (0.0 if timer else 0.001)
        sleep_until = timer.sleep_until if timer is not None else \
            (lambda ts: gevent.sleep(max(0.0, ts - time.time())))
        self._loop = OpenLoop(plan.offsets(self.duration_s), self.start_ts, clock=time.time,
                              sleep_until=sleep_until, pause=lambda: gevent.sleep(0),
                              spawn=lambda due: self.group.spawn(self._wait, *self._send(due)),
                              spin_s=spin)
        try:
            self._loop.run()
        finally:
            if timer is not None:
                timer.close()

    def _closed_loop(self) -> None:
        self.counters.expected = None
        wait = self.start_ts - time.time()
        if wait > 0:
            gevent.sleep(wait)
        end = self.start_ts + self.duration_s
        for u in range(int(self.plan.users)):
            rng = self.plan.user_rng(u)
            user = ClosedLoop(end, think=lambda rng=rng: self.plan.think_time(rng),
                              clock=time.time, sleep=gevent.sleep, send=self._one)
            self.group.spawn(user.run)

    def _one(self, intended: float) -> None:
        """Closed loop: send and wait in this user's greenlet."""
        self._wait(*self._send(intended))

    def _send(self, intended: float) -> tuple[Callable[[], InvocationRecord], str, float, float]:
        # Open loop: called by the dispatcher at the intended time, so the request leaves then,
        # not when a new greenlet gets its turn behind every answer that is due.
        self._seq += 1
        rid = f"w{self.index}-{self._seq}"
        body, content_type = self.body, self.content_type
        if self.generator is not None:
            # the request's number in the whole plan: a shard sends arrivals index, index +
            # count, ... (closed loop: unique across shards all the same)
            n = (self._seq - 1) * self.count + self.index
            drawn = self._drawn if self._drawn is not None and self._drawn_n == n \
                else self.generator.draw(n)
            body, content_type = drawn.body, drawn.content_type
        self.counters.sent += 1
        begin = time.time()
        answer = self.target.send(body, content_type, self.cfg.timeout_s,
                                  intended_ts=intended, request_id=rid)
        if self.generator is not None:  # the next body now, not when it is due (~10 us)
            self._drawn_n = n + self.count
            self._drawn = self.generator.draw(self._drawn_n)
        return answer, rid, intended, begin

    def _wait(self, answer: Callable[[], InvocationRecord], rid: str, intended: float,
              begin: float) -> None:
        try:
            rec = answer()
        except gevent.GreenletExit:
            now = time.time()
            self._record(InvocationRecord(request_id=rid, intended_ts=intended, start_ts=begin,
                                          end_ts=now, latency_ms=(now - begin) * 1000.0,
                                          status=0, error="interrupted"))
            raise
        self._record(rec)

    def _record(self, rec: InvocationRecord) -> None:
        rec.worker = self.index
        assert self.writer is not None
        self.writer.write(rec)
        self.counters.add(rec)
        if self._forward is not None:
            self._forward.append(rec.row())
            if len(self._forward) >= _FORWARD_BATCH:
                self._send_records()
        self.env.events.request.fire(
            request_type="POST", name=self.cfg.request_name, response_time=rec.latency_ms,
            response_length=0, exception=None if rec.ok else RuntimeError(
                rec.error or f"HTTP {rec.status}"), context={"cold": rec.cold},
            start_time=rec.start_ts, url=None)

    # -- status and shutdown -----------------------------------------------------------------

    def _status_loop(self) -> None:
        while True:
            gevent.sleep(_STATUS_INTERVAL_S)
            if self.writer is not None:
                self.writer.maybe_flush()
            self._send_records()
            self.publish()

    def _send_records(self) -> None:
        if self._forward:
            rows, self._forward = self._forward, []
            self.env.runner.send_message("fcbench_records", {"worker": self.index, "rows": rows})

    def publish(self) -> None:
        data = {"worker": self.index, **self.counters.as_dict()}
        write_status(Path(self.cfg.control_dir), f"w{self.index}", data)
        runner = self.env.runner
        if isinstance(runner, WorkerRunner):
            runner.send_message("fcbench_status", data)

    def _close(self) -> None:
        if self.done.is_set():
            return
        if self.writer is not None:
            self.writer.close()
        self._send_records()  # before "done": the master has every row when it finishes
        self.target.close()
        self.counters.finished = True
        self.publish()
        self.done.set()
        for g in self._greenlets[1:]:
            g.kill(block=False)
        self.env.fcbench.dispatch_done(self)

    def interrupt(self) -> None:
        """Stop sending; in-flight requests are written as ``interrupted`` rows."""
        if self.done.is_set() or not self.counters.started:
            return
        self._interrupted = True
        if self._loop is not None:
            self._loop.stop()
        if self._greenlets:
            self._greenlets[0].kill(block=True, timeout=2)
        self.group.kill(block=True, timeout=5)
        self._close()


def write_status(control_dir: Path, name: str, data: dict[str, Any]) -> None:
    """Atomically replace one status file (read by the runner's progress line)."""
    atomic_write(status_path(control_dir, name), json.dumps(data))


# -- the per-process run state, driven by Locust's events ---------------------------------------

class RunState:
    """What this Locust process knows about the run, kept on Locust's `Environment` as
    ``environment.fcbench`` (Locust's events are process-wide; each handler finds it there)."""

    def __init__(self, environment: Any, cfg: LocustConfig) -> None:
        self.env, self.cfg = environment, cfg
        self.dispatch: Dispatch | None = None
        self.started = False
        self.finishing = False
        self.quitting = False
        self.stopped_early = False
        self.assigned: dict[str, int] = {}  # master: worker client id -> shard index
        self.worker_status: dict[int, dict[str, Any]] = {}
        self.workers_done: set[int] = set()
        self.worker_rows: dict[int, RecordWriter] = {}  # master: worker index -> its part file

    def snapshot(self) -> dict[str, Any]:
        """Counters of this whole run as this process knows them (all workers on a master)."""
        if self.dispatch is not None:
            return {"workers": 1, **self.dispatch.counters.as_dict()}
        total: dict[str, Any] = {"sent": 0, "done": 0, "errors": 0, "cold": 0, "cold_known": 0,
                                 "in_flight": 0, "recent_cold_ms": [], "expected": None,
                                 "started": self.started, "workers": len(self.worker_status)}
        recent: list[tuple[float, float]] = []
        expected = 0
        for data in self.worker_status.values():
            for key in ("sent", "done", "errors", "cold", "cold_known", "in_flight"):
                total[key] += int(data.get(key) or 0)
            expected += int(data.get("expected") or 0)
            recent += [(data.get("ts", 0), v) for v in data.get("recent_cold_ms", [])]
        total["expected"] = expected or None
        total["recent_cold_ms"] = [v for _, v in recent[-_RECENT_COLD:]]
        total["finished"] = bool(self.assigned) and len(self.workers_done) >= len(self.assigned)
        total["ts"] = time.time()
        return total

    def status_loop(self) -> None:
        """The runner's view: this process's counters, or on a master all workers' together."""
        if isinstance(self.env.runner, WorkerRunner):
            return
        while True:
            gevent.sleep(_STATUS_INTERVAL_S)
            write_status(Path(self.cfg.control_dir), "main", self.snapshot())

    def start(self) -> None:
        """Locust's test_start: begin the plan here, or on a master split it among workers."""
        cfg, runner = self.cfg, self.env.runner
        if isinstance(runner, WorkerRunner):
            return  # waits for the master's fcbench_assign
        if self.started:
            log.warning("fcbench runs its plan once per Locust process; restart `fcbench run` "
                        "for another run")
            return
        self.started = True
        start_ts = time.time() + cfg.start_delay_s
        if isinstance(runner, MasterRunner):
            nodes = runner.clients.ready + runner.clients.running + runner.clients.spawning
            ids = sorted((n.id for n in nodes), key=runner.get_worker_index)
            self.assigned = {cid: i for i, cid in enumerate(ids)}
            for cid, i in self.assigned.items():
                runner.send_message("fcbench_assign", {"index": i, "count": len(ids),
                                                       "start_ts": start_ts,
                                                       "duration_s": cfg.duration_s},
                                    client_id=cid)
            log.info("fcbench: plan split across %d workers, start at %.3f", len(ids), start_ts)
            gevent.spawn_later(cfg.start_delay_s + cfg.duration_s + cfg.timeout_s + 60,
                               self.finish, "workers did not all report back in time")
            return
        self.begin(0, 1, start_ts, cfg.duration_s)

    def begin(self, index: int, count: int, start_ts: float, duration_s: float) -> None:
        """Send shard `index` of `count` from `start_ts` on (or end the run: nothing to send)."""
        self.started = True
        if self.dispatch is None:  # it failed to prepare (logged): end the run now
            runner = self.env.runner
            if isinstance(runner, WorkerRunner):
                runner.send_message("fcbench_done", {"worker": index, "failed": True})
            else:
                self.finish("the dispatcher could not start")
            return
        self.dispatch.begin(index, count, start_ts, duration_s)

    def on_assign(self, msg: Any) -> None:
        if self.dispatch is not None and self.dispatch.counters.started:
            return
        d = msg.data
        self.begin(int(d["index"]), int(d["count"]), float(d["start_ts"]),
                   float(d["duration_s"]))

    def on_worker_status(self, msg: Any) -> None:
        self.worker_status[int(msg.data["worker"])] = msg.data

    def on_worker_records(self, msg: Any) -> None:
        """A remote worker's rows: appended to this master's part file for that worker (append:
        rows that come late, after the run was closed, must not wipe earlier ones)."""
        index = int(msg.data["worker"])
        writer = self.worker_rows.get(index)
        if writer is None:
            writer = self.worker_rows[index] = RecordWriter(
                Path(self.cfg.run_dir) / layout.request_part(index),
                flush_interval_s=self.cfg.flush_interval_s)
        for row in msg.data["rows"]:
            writer.write(InvocationRecord.from_row(dict(zip(ALL_COLUMNS, row))))
        writer.flush()

    def close_worker_rows(self) -> None:
        for writer in self.worker_rows.values():
            writer.close()
        self.worker_rows.clear()

    def on_worker_done(self, msg: Any) -> None:
        self.worker_status[int(msg.data["worker"])] = msg.data
        self.workers_done.add(int(msg.data["worker"]))
        if len(self.workers_done) >= len(self.assigned):
            self.finish("every worker finished its share of the plan")

    def dispatch_done(self, dispatch: Dispatch) -> None:
        """This process sent and recorded its share: tell the master, or end the run."""
        runner = self.env.runner
        if isinstance(runner, WorkerRunner):
            send_stats = getattr(runner, "_send_stats", None)
            if send_stats is not None:
                send_stats()  # the master's totals then include every request before "done"
            runner.send_message("fcbench_done", {"worker": dispatch.index,
                                                 **dispatch.counters.as_dict()})
            return
        if not self.quitting:
            self.finish("the plan is complete" if not self.stopped_early
                        else "stopped from the web UI")

    def finish(self, reason: str) -> None:
        """End the run: last status, then quit Locust (after its CSV and, with a UI, a linger)."""
        if self.finishing:
            return
        self.finishing = True
        cfg, environment = self.cfg, self.env
        log.info("fcbench: %s", reason)
        self.close_worker_rows()
        write_status(Path(cfg.control_dir), "main", {**self.snapshot(), "finished": True,
                                                     "stopped_early": self.stopped_early})
        runner = environment.runner
        if cfg.ui and environment.web_ui is not None:
            runner.stop()

            def quit_later() -> None:
                gevent.sleep(max(cfg.ui_linger_s, _LOCUST_CSV_INTERVAL_S + 0.2))
                runner.quit()
                environment.web_ui.stop()

            gevent.spawn(quit_later)
        else:
            # Locust rewrites its CSV statistics once a second and not at exit: let it catch up.
            gevent.spawn_later(_LOCUST_CSV_INTERVAL_S + 0.2, runner.quit)

    def stop(self) -> None:
        """Stop pressed in the web UI (or a master's stop): end the plan early, keep the rows."""
        if self.finishing or self.quitting:
            return
        self.stopped_early = True
        if self.dispatch is not None:
            gevent.spawn(self.dispatch.interrupt)
        elif self.assigned and not isinstance(self.env.runner, WorkerRunner):
            gevent.spawn_later(10, self.finish, "stopped from the web UI")

    def quit(self) -> None:
        self.quitting = True
        if self.dispatch is not None:
            self.dispatch.interrupt()
        self.close_worker_rows()


@events.init.add_listener
def _on_init(environment: Any, **_kw: Any) -> None:
    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise RuntimeError(f"{CONFIG_ENV} is not set; run this locustfile through `fcbench run`")
    state = environment.fcbench = RunState(environment, LocustConfig.read(path))
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        runner.register_message("fcbench_status", lambda msg, **_: state.on_worker_status(msg))
        runner.register_message("fcbench_done", lambda msg, **_: state.on_worker_done(msg))
        runner.register_message("fcbench_records", lambda msg, **_: state.on_worker_records(msg))
    elif isinstance(runner, WorkerRunner):
        runner.register_message("fcbench_assign", lambda msg, **_: state.on_assign(msg))
    if environment.web_ui is not None:
        from fcbench.load.webui import install
        install(environment, state.snapshot, harness_url=state.cfg.harness_url)
    if not isinstance(runner, MasterRunner) and state.cfg.target is not None:
        try:
            state.dispatch = Dispatch(environment, state.cfg)
        except Exception:  # noqa: BLE001 - the run then ends at its start, with this logged
            log.exception("fcbench could not prepare this process's load")
    gevent.spawn(state.status_loop)


@events.test_start.add_listener
def _on_test_start(environment: Any, **_kw: Any) -> None:
    environment.fcbench.start()


@events.test_stop.add_listener
def _on_test_stop(environment: Any, **_kw: Any) -> None:
    environment.fcbench.stop()


@events.quitting.add_listener
def _on_quitting(environment: Any, **_kw: Any) -> None:
    environment.fcbench.quit()


class FcbenchUser(User):
    """A placeholder Locust user: the load comes from `Dispatch`, not from user tasks.

    Locust needs a user class to start a run (and its web UI asks for a user count); this one
    only waits, so the number of users entered does not change the arrival plan.
    """

    wait_time = constant(1)

    @task
    def idle(self) -> None:
        gevent.sleep(1)
