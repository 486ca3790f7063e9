"""Fixtures: a real bridge (the repository's cmd/bridge, built once) on a
free loopback port, with a config dir of its own."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, os.path.abspath(os.path.join(HERE, "..")))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="session")
def bridge_bin(tmp_path_factory):
    """The bridge binary: BRIDGE_BIN, else built from the repository."""
    if os.environ.get("BRIDGE_BIN"):
        return os.environ["BRIDGE_BIN"]
    out = str(tmp_path_factory.mktemp("bin") / "bridge")
    subprocess.check_call(["go", "build", "-o", out, "./cmd/bridge"], cwd=REPO)
    return out


class RunningBridge(object):
    def __init__(self, binary, home, port, args):
        self.binary, self.home, self.port, self.args = binary, home, port, args
        self.addr = "127.0.0.1:%d" % port
        self.proc = None

    def start(self):
        env = dict(os.environ, HOME=self.home, XDG_CONFIG_HOME=os.path.join(self.home, ".config"), BRIDGE_LOG_LEVEL="warn")
        for k in ("BRIDGE_ADDR", "BRIDGE_TOKEN", "BRIDGE_TOKEN_FILE", "WEBSOCKET_URL"):
            env.pop(k, None)
        self.proc = subprocess.Popen([self.binary, "serve", "--addr", self.addr] + self.args, env=env)
        for _ in range(200):
            try:
                urllib.request.urlopen("http://%s/healthz" % self.addr, timeout=1).read()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the bridge did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)

    def sessions(self):
        req = urllib.request.Request("http://%s/api/sessions" % self.addr)
        return json.loads(urllib.request.urlopen(req, timeout=5).read())


@pytest.fixture
def bridge(bridge_bin, tmp_path, monkeypatch):
    """A bridge on a free port; the SDK finds it through BRIDGE_ADDR and
    keeps its instance files in the test's config dir."""
    home = str(tmp_path)
    b = RunningBridge(bridge_bin, home, free_port(), ["--busy-after", "1s", "--resume-wait", "30s"]).start()
    monkeypatch.setenv("BRIDGE_ADDR", b.addr)
    monkeypatch.setenv("XDG_CONFIG_HOME", os.path.join(home, ".config"))
    monkeypatch.setenv("HOME", home)
    for k in ("BRIDGE_TOKEN", "BRIDGE_TOKEN_FILE", "WEBSOCKET_URL"):
        monkeypatch.delenv(k, raising=False)
    yield b
    b.stop()
