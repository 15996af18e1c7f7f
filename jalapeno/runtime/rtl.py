"""The ``rtl`` backend: the ``core_system`` top (:mod:`sim.core_system`, the core on its RTL
memory) in a cocotb simulation that stays up while the device is open.

Opening the device builds the top for the preset, or reuses the cached build, as every bench
does (:func:`sim.runner.build_bench`, under ``build/sim/<sim>/core_system_<preset>/``, its
output in ``build.log``), and starts the simulator on :mod:`verification.tb.device_server`
(:func:`sim.runner.simulate_bench`, in a thread of this process, the simulator a child
process). The server connects back over :mod:`multiprocessing.connection` to a listener on
the loopback interface, authenticated by a random key, and serves one request at a time:
memory is read and written through the simulator's handles in zero simulated time, CSR
accesses and runs go over the core's AXI4-Lite port. While it waits for a request the
simulator stands still.

Failures surface as exceptions, never as a hang: this side polls the simulator while it
waits for it (a build that fails, a simulator that exits or never connects raise
:class:`~jalapeno.runtime.device.DeviceError` naming the log), and an exception inside the
server comes back as the same built-in type with its message (a run's ``TimeoutError``).
"""

import builtins
import itertools
import os
import secrets
import shutil
import signal
import socket
import sys
import threading
import time
import weakref
from multiprocessing.connection import Listener
from pathlib import Path

import numpy as np

from jalapeno.isa import CoreError
from rtl.config import PRESETS
from sim.core_system import DECERR, SLVERR
from sim.runner import build_bench, simulate_bench
from sim.toolchain import BUILD
from verification.tb.device_server import ADDRESS_ENV, AUTHKEY_ENV

from .device import Device, DeviceError, RunResult

__all__ = ["RtlDevice"]

#: Seconds the simulator may take to start and connect.
CONNECT_TIMEOUT = 300.0
#: Seconds the simulator may take to finish after ``close``.
CLOSE_TIMEOUT = 30.0
#: Seconds between checks that the simulator is alive while waiting for it.
_POLL = 0.2
_SERIAL = itertools.count()


class _Session:
    """The simulator and the connection to it; owns every resource, so that it can be shut
    down by a finalizer without the device."""

    def __init__(self, build, out_dir):
        self.build, self.out_dir = build, out_dir
        self.log = out_dir / "sim.log"
        self.key = secrets.token_bytes(32)
        self.listener = Listener(("127.0.0.1", 0), authkey=self.key)
        host, port = self.listener.address
        self.address = f"{host}:{port}"
        self.conn, self.pid = None, None
        self.outcome = None  # the BenchRun, or the exception the run raised
        self.thread = threading.Thread(target=self._simulate, daemon=True,
                                       name=f"rtl device {build.preset}")

    @property
    def what(self):
        return f"rtl: core_system ({self.build.preset}) on {self.build.sim}"

    def _simulate(self):
        env = {ADDRESS_ENV: self.address, AUTHKEY_ENV: self.key.hex()}
        try:
            self.outcome = simulate_bench(self.build, out_dir=self.out_dir, env=env, quiet=True,
                                          check=False)
        except BaseException as error:  # reported by whoever waits for the simulator
            self.outcome = error

    def died(self):
        """The exception for a simulator that is gone."""
        self.close()
        cause = self.outcome
        detail = f" ({type(cause).__name__}: {cause})" if isinstance(cause, BaseException) \
            else ""
        return DeviceError(f"{self.what}: the simulator exited{detail}; see {self.log}")

    def start(self):
        """Start the simulator and wait for its hello."""
        self.thread.start()
        accepted = {}

        def accept():
            try:
                accepted["conn"] = self.listener.accept()
            except Exception as error:
                accepted["error"] = error

        acceptor = threading.Thread(target=accept, daemon=True)
        acceptor.start()
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while acceptor.is_alive():
            acceptor.join(_POLL)
            if acceptor.is_alive() and (not self.thread.is_alive() or
                                        time.monotonic() > deadline):
                # Wake the accept up with a connection that says nothing.
                with socket.create_connection(self.listener.address):
                    pass
                acceptor.join()
                if self.thread.is_alive():
                    self.close()
                    raise DeviceError(f"{self.what}: the simulator did not connect within "
                                      f"{CONNECT_TIMEOUT:.0f} s; see {self.log}")
                raise self.died()
        if "error" in accepted:
            self.close()
            raise DeviceError(f"{self.what}: the simulator's connection failed "
                              f"({accepted['error']!r}); see {self.log}")
        self.conn = accepted["conn"]
        _, self.pid, memory_bytes = self.receive()
        return memory_bytes

    def receive(self, timeout=None):
        """The simulator's next message, watching that it stays alive."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while not self.conn.poll(_POLL):
                if not self.thread.is_alive():
                    raise self.died()
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"{self.what}: no answer within {timeout:.0f} s")
            return self.conn.recv()
        except (EOFError, OSError):
            raise self.died() from None

    def call(self, command, *args):
        if self.conn is None:
            raise DeviceError(f"{self.what}: the simulator is not running; see {self.log}")
        try:
            self.conn.send((command, *args))
        except OSError:
            raise self.died() from None
        reply = self.receive()
        if reply[0] == "ok":
            return reply[1]
        _, kind, message = reply
        cls = getattr(builtins, kind, None)
        if isinstance(cls, type) and issubclass(cls, Exception):
            raise cls(message)
        raise DeviceError(f"{self.what}: {kind}: {message}")

    def simulator_pid(self):
        """The simulator's process id: from its hello, or, if it never connected, the child
        process of this one whose environment holds this session's address."""
        if self.pid is not None:
            return self.pid
        mark = f"{ADDRESS_ENV}={self.address}".encode()
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                ppid = int((proc / "stat").read_text().rpartition(")")[2].split()[1])
                if ppid == os.getpid() and mark in (proc / "environ").read_bytes().split(b"\0"):
                    return int(proc.name)
            except (OSError, ValueError, IndexError):
                continue
        return None

    def close(self):
        """Ask the server to finish, wait for the simulator (kill it if it will not), and
        release everything; idempotent."""
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                conn.send(("close",))
                if conn.poll(CLOSE_TIMEOUT):
                    conn.recv()
            except (EOFError, OSError):
                pass
            conn.close()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(CLOSE_TIMEOUT if self.pid is not None else _POLL)
            pid = self.simulator_pid() if self.thread.is_alive() else None
            if pid is not None:
                os.kill(pid, signal.SIGKILL)  # our own child: this session's simulator
                self.thread.join(CLOSE_TIMEOUT)
        self.listener.close()
        if getattr(self.outcome, "failed", None) == 0:
            shutil.rmtree(self.out_dir, ignore_errors=True)


class RtlDevice(Device):
    """A :class:`~jalapeno.runtime.device.Device` on the simulated RTL.

    Parameters
    ----------
    preset : str
        The design point to build (:data:`rtl.config.PRESETS`); :attr:`config` is read
        back from the simulated core's CSRs.
    sim : str
        ``"verilator"`` or ``"icarus"``.

    Attributes
    ----------
    pid : int
        Process id of the simulator.
    log : pathlib.Path
        The simulator's output (kept after a failure, removed after a clean close).
    slverr, decerr : tuple of (int, int)
        The byte ranges where the simulated memory answers ``SLVERR`` and ``DECERR``
        (:mod:`sim.core_system`), to give a ``golden`` device for the same answers.

    Raises
    ------
    ValueError
        If the preset or simulator is unknown.
    DeviceError
        If the build fails or the simulator does not start.
    """

    backend = "rtl"

    def __init__(self, preset="default", sim="verilator"):
        def building():
            print(f"rtl: building core_system ({preset}) on {sim} ...", file=sys.stderr,
                  flush=True)

        try:
            build = build_bench("device", preset=preset, sim=sim, quiet=True,
                                on_build=building)
        except (RuntimeError, SystemExit) as error:
            log = BUILD / "sim" / sim / f"core_system_{preset}" / "build.log"
            raise DeviceError(f"rtl: building core_system ({preset}) on {sim} failed ({error}); "
                              f"see {log}") from None
        out_dir = build.build_dir / "device" / f"{os.getpid()}-{next(_SERIAL)}"
        self._session = _Session(build, out_dir)
        self._finalizer = weakref.finalize(self, self._session.close)
        super().__init__(self._session.start())
        self.pid, self.log = self._session.pid, self._session.log
        self.slverr, self.decerr = SLVERR, DECERR
        try:
            self._discover()
            if self.config != PRESETS[preset]:
                raise DeviceError(f"rtl: core_system built for {preset} reports {self.config}")
        except BaseException:
            self.close()
            raise
        self._granule = self.config.bus_bytes

    def _read_span(self, lo, hi):
        return np.frombuffer(self._session.call("read", lo, hi), np.uint8)

    def _write_span(self, lo, data):
        self._session.call("write", lo, data)

    def _read_register(self, name):
        return self._session.call("read_csr", name)

    def _write_register(self, name, value):
        self._session.call("write_csr", name, value)

    def _run(self, base, length, window, limit):
        code, addr, counters, wall = self._session.call("run", base, length, window, limit)
        return RunResult(CoreError(code), addr, counters, counters["CYCLES"], wall)

    def _close(self):
        self._finalizer()
