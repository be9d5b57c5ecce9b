"""`policyengine serve` as a child process, for integration tests and load tests (ours and yours).

Starts `python -m policyengine serve ARGS --port 0` in its own session, reads the URL from the line the server prints
on stderr once it listens, and stops it with SIGTERM (SIGKILL to the whole session, workers included, if it does not
finish in time). stderr is kept in `lines` / `log`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Mapping


class ServeProcess:
    def __init__(self, *args: str, env: Mapping[str, str] | None = None, cwd: str | Path | None = None,
                 timeout: float = 60.0):
        penv = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "policyengine", "serve", *args, "--port", "0"],
                                     cwd=cwd, env=penv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.lines: list[str] = []
        self.url = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self.url and self.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self.url:
            code = self.proc.poll()
            self.stop()
            raise RuntimeError(("serve did not print its URL" if code is None else f"serve exited {code}")
                               + ":\n" + self.log)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if not self.url and " on http://" in line:
                self.url = line.split(" on ", 1)[1].split()[0]

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: the workers go too
                self.proc.wait(10)
        self._reader.join(5)
        return self.proc.returncode


__all__ = ["ServeProcess"]
