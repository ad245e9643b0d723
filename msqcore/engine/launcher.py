"""Worker launchers: how a controller gets worker processes.

``WorkerLauncher`` is the interface a distributed engine (Ray, say) implements later;
``LocalProcessLauncher`` starts local processes from a forkserver that has the engine
preloaded, so a worker starts in milliseconds and never inherits the server's threads.
"""
from __future__ import annotations

import multiprocessing
import threading
from abc import ABC, abstractmethod
from multiprocessing.connection import Connection


class WorkerHandle(ABC):
    id: str

    @abstractmethod
    def send(self, message) -> None: ...

    @property
    @abstractmethod
    def connection(self) -> Connection:
        """Waitable with ``multiprocessing.connection.wait``."""

    @abstractmethod
    def alive(self) -> bool: ...

    @abstractmethod
    def kill(self) -> None:
        """Stop at once (cancellation)."""

    @abstractmethod
    def stop(self, timeout: float = 5.0) -> None:
        """Ask to exit after the current order; kill if it does not."""


class WorkerLauncher(ABC):
    @abstractmethod
    def launch(self, worker_id: str) -> WorkerHandle: ...


class _ProcessHandle(WorkerHandle):
    def __init__(self, worker_id: str, process, conn: Connection):
        self.id = worker_id
        self.process = process
        self._conn = conn
        # kill() comes from HTTP threads (a worker's shutdown) as well as the controller's:
        # two closes of the pipe would close its fd twice (EBADF, or someone else's new fd),
        # and two polls would both read the exit code from the forkserver's pipe.
        self._lock = threading.Lock()

    def send(self, message) -> None:
        self._conn.send(message)

    @property
    def connection(self) -> Connection:
        return self._conn

    def alive(self) -> bool:
        with self._lock:
            return self.process.is_alive()

    def kill(self) -> None:
        with self._lock:
            if self.process.is_alive():
                self.process.kill()
            self.process.join(5)
            self._conn.close()

    def stop(self, timeout: float = 5.0) -> None:
        with self._lock:
            try:
                if self.process.is_alive():
                    self._conn.send(None)
            except (OSError, ValueError):
                pass
            self.process.join(timeout)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(5)
            self._conn.close()


class LocalProcessLauncher(WorkerLauncher):
    def __init__(self):
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(["msqcore.engine.worker"])

    def launch(self, worker_id: str) -> WorkerHandle:
        from msqcore.engine.worker import worker_main
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(target=worker_main, args=(child,), name=worker_id, daemon=True)
        process.start()
        child.close()
        return _ProcessHandle(worker_id, process, parent)
