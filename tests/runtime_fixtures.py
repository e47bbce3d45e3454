"""Servers the runtime tests need: redis-server and Xvfb on 127.0.0.1, started and stopped per test.

A missing binary FAILS the test with the Debian package to install (never a skip).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]

#: a closed loop without feedback, small enough to split across processes: participant -> decoder -> cursor
SPLIT_SESSION = """\
[session]
name = "split"
seed = 2

[nodes.participant]
type = "sim_participant"
n_channels = 16
max_bins = 60
realtime = true

[nodes.decoder]
type = "decoder"
calibration_s = 0.4
inputs = { features = "participant.features", intention = "participant.intention" }

[nodes.cursor]
type = "cursor"
inputs = { velocity = "decoder.velocity" }
"""


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed; install the Debian package {package} "
            f"(scripts/install-system-deps.sh does it)",
            pytrace=False,
        )
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """A throw-away redis-server on a free 127.0.0.1 port, without persistence.

    ``password`` starts it with ``--requirepass`` (the ``default`` user's password);
    ``users`` maps ACL user names to passwords, each allowed every command on the keys
    ``neurolace:*`` only. :attr:`url` carries no credentials.
    """

    def __init__(
        self, port: int | None = None, *, password: str | None = None, users: dict[str, str] | None = None
    ) -> None:
        self.binary = require_binary("redis-server", "redis-server")
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.password = password
        self.users = dict(users or {})
        self.process: subprocess.Popen | None = None

    def url_with(self, user: str, password: str) -> str:
        """The server's URL logging in as ``user`` (empty: the default user) with ``password``."""
        return f"redis://{user}:{password}@127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        authentication = ["--requirepass", self.password] if self.password is not None else []
        for user, password in self.users.items():
            authentication += ["--user", user, "on", f">{password}", "~neurolace:*", "+@all"]
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                *authentication,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as connection:
                    connection.sendall(b"PING\r\n")
                    # up, and answering or asking for a password
                    if connection.recv(16).startswith((b"+PONG", b"-NOAUTH")):
                        return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        pytest.fail(f"redis-server did not answer on port {self.port} within 5 s", pytrace=False)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)
        self.process = None


@pytest.fixture
def redis_server(request):
    """A redis-server; ``@pytest.mark.parametrize("redis_server", [{"password": ...}], indirect=True)``
    passes :class:`RedisServer`'s keyword arguments (a password, ACL users)."""
    server = RedisServer(**getattr(request, "param", {})).start()
    yield server
    server.stop()


@pytest.fixture
def bus_key(monkeypatch):
    """A fresh session key for the Redis bus, in ``NEUROLACE_BUS_KEY`` (child processes inherit it)."""
    from neurolace.runtime.bus_auth import BUS_KEY_ENV, new_bus_key

    key = new_bus_key()
    monkeypatch.setenv(BUS_KEY_ENV, key.hex())
    return key


@pytest.fixture
def xvfb_display():
    """An Xvfb display (1024 x 768) on a free display number; yields ':N'."""
    binary = require_binary("Xvfb", "xvfb")
    require_binary("xdotool", "xdotool")
    number = next(
        n
        for n in range(90, 200)
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists()
    )
    display = f":{number}"
    process = subprocess.Popen(
        [binary, display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10.0
    environment = {**os.environ, "DISPLAY": display}
    while time.monotonic() < deadline:
        probe = subprocess.run(
            ["xdotool", "getmouselocation"], env=environment, capture_output=True, check=False
        )
        if probe.returncode == 0:
            break
        time.sleep(0.05)
    else:
        process.kill()
        pytest.fail(f"Xvfb did not start on {display}", pytrace=False)
    yield display
    process.kill()
    process.wait(timeout=5)


def pointer_position(display: str) -> tuple[int, int]:
    """Pointer position read back with xdotool."""
    output = subprocess.run(
        ["xdotool", "getmouselocation", "--shell"],
        env={**os.environ, "DISPLAY": display},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    values = dict(line.split("=", 1) for line in output.split())
    return int(values["X"]), int(values["Y"])
