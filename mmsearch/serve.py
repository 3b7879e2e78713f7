"""``mmsearch serve``: the API in this process, and the Streamlit UI as a child process.

In embedded mode this process owns the Qdrant Edge folder, so ingest jobs started from the UI
run inside it (the launcher given to the API); in distributed mode they go to Celery workers.
Ctrl-C (SIGINT) or SIGTERM stops uvicorn gracefully; the UI child, the background ingest
thread and the store are then closed in that order, so the store's lock is always released.

Exposure: on a loopback address only this machine can connect. Any other address (0.0.0.0,
a LAN address) is refused unless an API key is configured, because an open API lets anyone
who reaches it search, download every indexed file and start ingest jobs; ``--insecure``
overrides that for a trusted network, with a warning. ``--root`` names the folders that ingest
requests sent to this server may read, besides the data dir.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from mmsearch.output import EXIT_OK, say
from mmsearch.remote import remove_server_record, write_server_record
from search.errors import ConfigError
from search.services import Services
from search.settings import Settings

UI_APP = Path(__file__).resolve().parent.parent / "ui" / "app.py"


def serve(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    with_ui: bool = False,
    ui_port: int | None = None,
    services: Services | None = None,
    roots: Sequence[str] = (),
    insecure: bool = False,
) -> int:
    """Run until interrupted; the UI child is always stopped with us."""
    import uvicorn

    from ingest.jobs import BackgroundLauncher
    from ingest.watch import FolderWatcher, registry_for
    from search.api import create_app

    host = host or settings.api.host
    port = port or settings.api.port
    ui_port = ui_port or settings.api.ui_port
    check_exposure(settings, host, insecure)
    settings = with_roots(settings, roots)
    ensure_free(host, port, "API")
    if with_ui:
        ensure_free("127.0.0.1", ui_port, "UI")
    services = services or Services(settings)
    launcher = BackgroundLauncher(services)
    watcher = FolderWatcher(settings, services.catalog, launcher, registry=registry_for(settings)).start()
    app = create_app(settings, services=services, launcher=launcher, watcher=watcher)
    api_url = f"http://{client_host(host)}:{port}"
    key = settings.api.api_key.get_secret_value() if settings.api.api_key else None
    ui = start_ui(api_url, ui_port, log_path=settings.data_dir / "logs" / "ui.log", api_key=key) if with_ui else None
    say(f"API  {api_url}  (OpenAPI docs at {api_url}/docs)")
    if ui is not None:
        say(f"UI   http://127.0.0.1:{ui_port}")
    say("Press Ctrl-C to stop.")
    previous = signal.signal(signal.SIGTERM, _interrupt)
    write_server_record(settings, api_url)  # the CLI's search, ingest and jobs now come here (mmsearch.remote)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    except KeyboardInterrupt:
        pass  # uvicorn re-raises the signal it stopped on; stopping is what was asked
    finally:
        remove_server_record(settings)
        signal.signal(signal.SIGTERM, previous)
        if ui is not None:
            stop_process(ui)
        watcher.close()
        launcher.close()
        services.close()
    return EXIT_OK


def check_exposure(settings: Settings, host: str, insecure: bool) -> None:
    """Refuse an open API on a network address (ConfigError, exit 2), or warn when told to serve anyway."""
    if is_loopback(host):
        return
    if settings.api.api_key is None:
        if not insecure:
            raise ConfigError(
                f"refusing to serve on {host} without an API key: anyone who can reach that address could search, "
                "download every indexed file and start ingest jobs. Set MMSEARCH_API__API_KEY (and "
                "MMSEARCH_API__PROTECT_READS=true to keep reads private too), serve on 127.0.0.1, "
                "or pass --insecure if every machine on this network may do all of that."
            )
        _warn(
            f"WARNING: serving on {host} without an API key (--insecure): anyone who can reach it can search, "
            "download every indexed file and start ingest jobs."
        )
    elif not settings.api.protect_reads:
        _warn(
            f"note: on {host} writes need the API key, but searches and indexed files are open to anyone who can "
            "reach it; set MMSEARCH_API__PROTECT_READS=true to require the key for reads too."
        )


def _warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def is_loopback(host: str) -> bool:
    """True when ``host`` (an address or a name) means this machine only."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return False
    return bool(found) and all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in found)


def with_roots(settings: Settings, roots: Sequence[str]) -> Settings:
    """``settings`` whose ingest may also read the folders named by ``--root`` (each must exist)."""
    if not roots:
        return settings
    folders = []
    for root in roots:
        folder = Path(root).expanduser().resolve()
        if not folder.is_dir():
            raise ConfigError(f"--root {root}: no such folder")
        folders.append(folder)
    ingest = settings.ingest.model_copy(update={"allowed_roots": [*settings.ingest.allowed_roots, *folders]})
    return settings.model_copy(update={"ingest": ingest})


def ensure_free(host: str, port: int, what: str) -> None:
    """Fail with a sentence (not uvicorn's traceback) when the port is already taken."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            flag = "--port" if what == "API" else "--ui-port"
            raise ConfigError(
                f"cannot serve the {what} on {host}:{port} ({exc.strerror}); is mmsearch already running? Choose another with {flag}."
            ) from exc


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM ends the server like Ctrl-C, so the clean-up in ``serve`` still runs."""
    raise KeyboardInterrupt


def start_ui(
    api_url: str, port: int, address: str = "127.0.0.1", log_path: Path | None = None, api_key: str | None = None
) -> subprocess.Popen:
    """Start Streamlit on the UI app; its settings are the API's URL and, when it has one, key.

    Its output goes to ``log_path`` (never to an unread pipe, which would stall it when full).
    """
    env = {**os.environ, "MMSEARCH_API_URL": api_url}
    if api_key:
        env["MMSEARCH_API_KEY"] = api_key
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(UI_APP),
        "--server.port",
        str(port),
        "--server.address",
        address,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
        "--client.toolbarMode",
        "viewer",
    ]
    if log_path is None:
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_for_http(url: str, timeout: float = 60.0) -> bool:
    """Poll ``url`` until it answers 200, for start-up ordering in the demo and tests."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                return True
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    return False


def stop_process(process: subprocess.Popen, grace: float = 10.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def client_host(host: str) -> str:
    """The address a browser on this machine uses for a server bound to ``host``."""
    return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
