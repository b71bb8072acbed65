"""Real-browser test support: the real app under `streamlit run`, driven by Debian's Chromium.

Shared by every `tests/test_browser_*.py` (Upload page, live webcam page). The recipe follows
/work/shared/docs/browser-testing.md, verified on this machine's kind:

    from tests.browser import launch_chromium, running_app, skip_without_browser

    skip_without_browser()                      # clear skip when Chromium/Playwright are absent
    with running_app(env={"FER_MODELS_DIR": ...}) as app, sync_playwright() as playwright:
        browser = launch_chromium(playwright, extra_args=["--use-file-for-fake-video-capture=x.y4m"])
        page = browser.new_page()
        open_app(page, app.url)

`running_app` takes extra environment variables for the server (e.g. a PYTHONPATH holding a
test-only sitecustomize.py) and a command prefix (e.g. ["nice", "-n", "10"]). For WebRTC tests
run the whole pytest inside `unshare --net sh -c 'ip link set lo up && pytest ...'` (or
`unshare -rn`), so the server and the browser share a loopback-only network; the server binds
127.0.0.1 for that reason. Never `playwright install`: Chromium comes from apt.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("FER_CHROMIUM", "/usr/bin/chromium")
HOST = "127.0.0.1"

# The recipe's arguments: headless, no sandbox (root in a container), nothing that phones home
# (host resolution limited to localhost), fake media devices allowed for the webcam page.
CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
    "--autoplay-policy=no-user-gesture-required",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
)


def skip_without_browser() -> None:
    """Skip the calling test (or module, at import) when Playwright or Chromium is missing."""
    if importlib.util.find_spec("playwright") is None:
        pytest.skip("the playwright Python package is not installed (pip install playwright)", allow_module_level=True)
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(
            f"no Chromium at {CHROMIUM} (apt-get install chromium fonts-liberation; or set FER_CHROMIUM)",
            allow_module_level=True,
        )


def launch_chromium(playwright: Any, extra_args: Sequence[str] = (), headless: bool = True) -> Any:
    """Debian's Chromium with the recipe's arguments plus `extra_args` (e.g. a fake camera file).

    Playwright creates a fresh profile itself; do not pass --user-data-dir.
    """
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=headless, args=[*CHROMIUM_ARGS, *extra_args])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclass
class RunningApp:
    """A `streamlit run` server started by `running_app`."""

    url: str
    port: int
    process: subprocess.Popen
    log_path: Path

    def log(self, tail: int = 4000) -> str:
        """The last `tail` characters of the server's stdout+stderr (for failure messages)."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-tail:]
        except OSError:
            return ""


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


@contextmanager
def running_app(
    app: str = "app.py",
    env: Mapping[str, str] | None = None,
    prefix: Sequence[str] = (),
    port: int | None = None,
    extra_args: Sequence[str] = (),
    timeout: float = 120.0,
    cwd: Path = REPO_ROOT,
) -> Iterator[RunningApp]:
    """Start `streamlit run <app>` on a free port, wait until it serves, stop it afterwards.

    env: variables added to this process's environment for the server.
    prefix: command words put in front, e.g. ["nice", "-n", "10"].
    extra_args: more `streamlit run` options, e.g. ["--server.maxUploadSize", "10"].
    """
    port = port or free_port()
    command = [
        *prefix,
        sys.executable,
        "-m",
        "streamlit",
        "run",
        app,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.port",
        str(port),
        "--server.address",
        HOST,
        "--server.fileWatcherType",
        "none",
        *extra_args,
    ]
    server_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    log_dir = Path(tempfile.mkdtemp(prefix="fer_app_"))
    log_path = log_dir / "streamlit.log"
    with log_path.open("wb") as log_file:
        # A new session (process group) so the server and anything it spawns stop together.
        process = subprocess.Popen(
            command, cwd=cwd, env=server_env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    app_handle = RunningApp(url=f"http://{HOST}:{port}", port=port, process=process, log_path=log_path)
    try:
        deadline = time.monotonic() + timeout
        while not _healthy(app_handle.url):
            if process.poll() is not None:
                raise RuntimeError(f"streamlit exited with status {process.returncode}:\n{app_handle.log()}")
            if time.monotonic() > deadline:
                message = f"streamlit did not serve {app_handle.url} within {timeout:.0f} s"
                raise TimeoutError(f"{message}:\n{app_handle.log()}")
            time.sleep(0.3)
        yield app_handle
    finally:
        _stop(process)
        shutil.rmtree(log_dir, ignore_errors=True)


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except ProcessLookupError:
        pass


def open_app(page: Any, url: str, timeout_ms: float = 120_000) -> None:
    """Load the app and wait until its first script run has finished."""
    page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
    wait_until_idle(page, timeout_ms)


def wait_until_idle(page: Any, timeout_ms: float = 120_000) -> None:
    """Wait until the app is connected and no script run is in progress.

    After an interaction, wait for the content you expect instead: a rerun may not have
    started yet when this is called.
    """
    page.wait_for_selector(
        '[data-testid="stApp"][data-test-connection-state="CONNECTED"][data-test-script-state="notRunning"]',
        timeout=timeout_ms,
    )


class SentFrames:
    """Counts the messages a page sends to the app over its websocket (attach before loading it).

    A keyboard shortcut that reaches a button sends one; nothing else is sent while the page is
    left alone (no heartbeat frames), so a count that does not move means the key went nowhere."""

    def __init__(self, page: Any):
        self.count = 0
        page.on("websocket", lambda socket: socket.on("framesent", self._sent))

    def _sent(self, _payload: Any) -> None:
        self.count += 1


def press_shortcut(page: Any, key: str, frames: SentFrames, attempts: int = 3, wait_ms: float = 2000) -> None:
    """Press `key` until the page sends it to the app (at most `attempts` times).

    NOTE: Streamlit 1.67's frontend sometimes ignores a button shortcut pressed within a second
    or so after the first script run has finished (the keydown reaches the document, no message
    leaves the page); later presses all go through. A person simply presses again, and so does
    this helper; it fails when no press ever reaches the app."""
    for _ in range(attempts):
        before = frames.count
        page.keyboard.press(key)
        waited = 0.0
        while waited < wait_ms:
            if frames.count > before:
                return
            page.wait_for_timeout(50)
            waited += 50
    raise AssertionError(f"pressing {key!r} {attempts} times sent nothing to the app")
