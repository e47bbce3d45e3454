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
    """A throw-away redis-server on a free 127.0.0.1 port, without persistence."""

    def __init__(self, port: int | None = None) -> None:
        self.binary = require_binary("redis-server", "redis-server")
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> RedisServer:
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
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(16).startswith(b"+PONG"):
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
def redis_server():
    server = RedisServer().start()
    yield server
    server.stop()


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
