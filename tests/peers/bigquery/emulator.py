"""A real BigQuery REST endpoint on loopback for the parity tests: local-bigquery, in its own venv.

:func:`provision` builds ``.cache/bigquery-emulator/`` once (a Python 3.13 virtualenv with the pinned
emulator and its DuckDB extensions, and a HOME whose ``.duckdb/extensions`` holds them, since the
emulator would otherwise try to download them); :class:`Emulator` starts it on a free port with
its own data directory and stops it. Every failure says exactly what went wrong, so a machine that
cannot run the emulator fails the parity tests loudly instead of skipping them.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
CACHE = Path(os.environ.get("BIGQUERY_EMULATOR_CACHE", ROOT / ".cache" / "bigquery-emulator"))
REQUIREMENTS = HERE / "requirements.txt"
DUCKDB_VERSION = "v1.5.5"
PROJECT = "parity-test"


class EmulatorUnavailable(RuntimeError):
    """The emulator cannot be installed or started here; the message says why."""


def find_python313() -> str:
    """A Python 3.13 interpreter: $BIGQUERY_EMULATOR_PYTHON, python3.13 on PATH, or pyenv's."""
    candidates = [os.environ.get("BIGQUERY_EMULATOR_PYTHON"), shutil.which("python3.13"),
                  *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.13*/bin/python3.13")), reverse=True)]
    for candidate in filter(None, candidates):
        try:
            out = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2] >= (3, 13))"],
                                 capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.stdout.strip() == "True":
            return candidate
    raise EmulatorUnavailable("no Python 3.13 found (local-bigquery needs it): install one (pyenv install 3.13) "
                              "or set BIGQUERY_EMULATOR_PYTHON to its path")


def provision() -> tuple[Path, Path]:
    """(python of the emulator venv, HOME for it), installing them if missing or out of date.

    Test workers (pytest-xdist) provision at the same time: a lock file makes one install and the
    others wait for it.
    """
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with open(CACHE.parent / f"{CACHE.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _provision()


def _provision() -> tuple[Path, Path]:
    venv, home = CACHE / "venv", CACHE / "home"
    python = venv / "bin" / "python"
    stamp = CACHE / "installed.sha256"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python, home
    shutil.rmtree(CACHE, ignore_errors=True)
    CACHE.mkdir(parents=True)
    base = find_python313()
    _say(f"BigQuery emulator: installing into {CACHE} with {base} (about 800 MB, a few minutes; once)")
    _run([base, "-m", "venv", str(venv)], "create the emulator's virtualenv")
    _say("BigQuery emulator: pip install -r tests/peers/bigquery/requirements.txt …")
    _run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
         "install the emulator (pip install -r tests/peers/bigquery/requirements.txt)")
    arch = {"x86_64": "linux_amd64", "aarch64": "linux_arm64"}.get(platform.machine(), "linux_amd64")
    extensions = home / ".duckdb" / "extensions" / DUCKDB_VERSION / arch
    extensions.mkdir(parents=True)
    found = glob.glob(str(venv / "lib" / "python3.*" / "site-packages" / "duckdb_extension_*" / "extensions"
                          / DUCKDB_VERSION / "*.duckdb_extension"))
    if len(found) < 3:
        raise EmulatorUnavailable(f"expected the icu, ducklake and spatial extension files in the emulator venv, "
                                  f"found {found}")
    for file in found:
        shutil.copy(file, extensions)
    stamp.write_text(wanted)
    _say("BigQuery emulator: installed")
    return python, home


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)  # progress while pytest would otherwise sit silent


def _run(cmd: list[str], what: str) -> None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EmulatorUnavailable(f"could not {what}: {exc}") from None
    if out.returncode:
        tail = "\n".join((out.stderr or out.stdout).strip().splitlines()[-15:])
        raise EmulatorUnavailable(f"could not {what} (exit {out.returncode}):\n{tail}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    """local-bigquery serving on 127.0.0.1; ``endpoint`` is what BIGQUERY_API_ENDPOINT takes."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.endpoint = ""
        self.project = PROJECT
        self._dir = Path(tempfile.mkdtemp(prefix="bq-emulator-"))
        self._log = self._dir / "emulator.log"

    def start(self, timeout_s: float = 60.0) -> "Emulator":
        python, home = provision()
        port, grpc_port = _free_port(), _free_port()
        data = self._dir / "data"
        data.mkdir()
        env = {**os.environ, "HOME": str(home)}
        env.pop("PYTHONPATH", None)
        with open(self._log, "wb") as log:
            self.proc = subprocess.Popen(
                [str(python), str(HERE / "launch.py"), "serve", "--host", "127.0.0.1", "--port", str(port),
                 "--grpc-port", str(grpc_port), "--project", PROJECT, "--data-dir", str(data)],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self._dir)
        self.endpoint = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EmulatorUnavailable(f"the emulator exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/bigquery/v2/projects/{PROJECT}/datasets", timeout=2):
                    return self
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise EmulatorUnavailable(f"the emulator did not answer within {timeout_s:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self._log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self._dir, ignore_errors=True)


if __name__ == "__main__":  # python -m tests.peers.bigquery.emulator [--install]: install it, start it
    if "--install" in sys.argv:
        python, _ = provision()
        print(f"BigQuery emulator installed: {python}")
        sys.exit(0)
    emulator = Emulator().start()
    print(f"BIGQUERY_API_ENDPOINT={emulator.endpoint} (project {PROJECT}); Ctrl-C stops it", flush=True)
    try:
        emulator.proc.wait()
    except KeyboardInterrupt:
        emulator.stop()
        sys.exit(0)
