"""Where the bridge is and which token to send: the same environment and
default token file as the `bridge` command line."""

import os
import sys
from urllib.parse import urlparse

DEFAULT_ADDR = "127.0.0.1:8098"


def bridge_addr(addr=None):
    """host:port of the bridge: addr, else BRIDGE_ADDR, else the host:port
    of WEBSOCKET_URL (as AYON sets it), else 127.0.0.1:8098. An empty host
    or a wildcard one is dialled as 127.0.0.1."""
    addr = addr or os.environ.get("BRIDGE_ADDR")
    if not addr:
        url = os.environ.get("WEBSOCKET_URL", "")
        addr = urlparse(url).netloc if url else ""
    addr = addr or DEFAULT_ADDR
    if addr.isdigit():
        addr = ":" + addr
    host, _, port = addr.rpartition(":")
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return host + ":" + port


def user_config_dir():
    """The directory Go's os.UserConfigDir names, where the bridge keeps its
    default token file."""
    if sys.platform == "win32":
        return os.environ.get("APPDATA", "")
    if sys.platform == "darwin":
        return os.path.join(os.path.expanduser("~"), "Library", "Application Support")
    return os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")


def default_token_file():
    return os.path.join(user_config_dir(), "dccbridge", "token")


def bridge_token(token=None):
    """The token to send: token, else BRIDGE_TOKEN, else the file
    BRIDGE_TOKEN_FILE names, else the default token file, else None."""
    if token:
        return token
    if os.environ.get("BRIDGE_TOKEN"):
        return os.environ["BRIDGE_TOKEN"]
    for path in (os.environ.get("BRIDGE_TOKEN_FILE"), default_token_file()):
        if path and os.path.isfile(path):
            with open(path, "r", encoding="utf-8") as f:
                t = f.read().strip()
            if t:
                return t
    return None


def instance_file(app):
    """The file that keeps an app's instance id across restarts."""
    return os.path.join(user_config_dir(), "dccbridge", "instances", app)
