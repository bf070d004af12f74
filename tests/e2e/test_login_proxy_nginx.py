"""The README's nginx configuration, run by a real nginx in front of a real dashboard.

The ``location`` blocks are read from the README's ``nginx`` code block, so the documentation is
what is tested. oauth2-proxy is a Go program that cannot be installed here: a small stand-in
answers nginx's ``auth_request`` as oauth2-proxy does with ``--set-xauthrequest`` (202 with
``X-Auth-Request-Email`` for a signed-in cookie, 401 otherwise). A browser that forges the
identity and secret headers still arrives as the proxy's user, over the websocket too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, expect

from services.core.processes import ServerProcess, free_port, start_dashboard
from services.core.settings import PROJECT_ROOT
from tests.e2e.conftest import wait_until_ready

SECRET = "nginx-e2e-secret-0123456789"
SIGNED_IN_COOKIE = "stand_in_session"
USER = "vic@example.com"
README_SECRET = '"the same secret as FLIGHTDECK_AUTH_SECRET"'


def readme_nginx_locations() -> str:
    """The ``location`` blocks of the README's nginx server, as written there."""
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```nginx\n(.*?)```", readme, re.DOTALL)
    assert block, "the README has no nginx code block"
    body = block.group(1)
    start = body.index("    location ")
    return body[start : body.rstrip().rindex("}")]


class OAuth2ProxyStandIn(BaseHTTPRequestHandler):
    """Answers ``/oauth2/auth`` and ``/oauth2/sign_in`` like oauth2-proxy (a stand-in)."""

    def do_GET(self) -> None:  # the http.server API
        signed_in = f"{SIGNED_IN_COOKIE}=1" in (self.headers.get("Cookie") or "")
        if self.path.startswith("/oauth2/auth"):
            self.send_response(202 if signed_in else 401)
            if signed_in:
                self.send_header("X-Auth-Request-Email", USER)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = b"<h1>Sign in with your company account</h1>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return


@pytest.fixture(scope="module")
def nginx_in_front(
    mlflow_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).is_file():
        pytest.fail("nginx is missing: `make test` installs it (apt-get install nginx)")
    folder = tmp_path_factory.mktemp("nginx")
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow_server.url,
        "FLIGHTDECK_STORE_URL": f"sqlite:///{folder / 'flightdeck.db'}",
        "FLIGHTDECK_AUTH_HEADER": "X-Forwarded-Email",
        "FLIGHTDECK_AUTH_SECRET": SECRET,
    }
    dashboard = start_dashboard(free_port(), env, folder / "dashboard.log")
    stand_in = ThreadingHTTPServer(("127.0.0.1", 0), OAuth2ProxyStandIn)
    threading.Thread(target=stand_in.serve_forever, daemon=True).start()
    port = free_port()
    locations = (
        readme_nginx_locations()
        .replace("http://127.0.0.1:4180", f"http://127.0.0.1:{stand_in.server_port}")
        .replace("http://127.0.0.1:8501", dashboard.url)
        .replace(README_SECRET, f'"{SECRET}"')
    )
    for temp in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / temp).mkdir()
        (folder / temp).chmod(0o777)  # nginx's workers may run as another user
    config = folder / "nginx.conf"
    config.write_text(
        f"pid {folder}/nginx.pid;\nerror_log {folder}/error.log;\nevents {{}}\nhttp {{\n"
        f"  access_log {folder}/access.log;\n"
        + "".join(f"  {t}_temp_path {folder}/{t};\n" for t in ("proxy", "fastcgi", "uwsgi", "scgi"))
        + f"  client_body_temp_path {folder}/body;\n"
        f"  server {{\n    listen 127.0.0.1:{port};\n{locations}  }}\n}}\n",
        encoding="utf-8",
    )
    process = subprocess.Popen(
        [nginx, "-p", str(folder), "-c", str(config), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=(folder / "nginx.out").open("ab"),
        start_new_session=True,
    )
    server = ServerProcess("nginx", f"http://127.0.0.1:{port}", process, folder / "error.log")
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (folder / "nginx.out").read_text(errors="replace")
            try:
                requests.get(server.url, timeout=2)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, "nginx did not answer"
                time.sleep(0.2)
        yield server.url
    finally:
        server.stop()
        stand_in.shutdown()
        dashboard.stop()


def test_readme_nginx_passes_the_proxys_user_and_replaces_forged_headers(
    browser: Browser, nginx_in_front: str
) -> None:
    context = browser.new_context(
        extra_http_headers={"X-Forwarded-Email": "ada", "X-Flightdeck-Proxy-Secret": "forged"}
    )
    host = nginx_in_front.split("//", 1)[1].split(":")[0]
    context.add_cookies([{"name": SIGNED_IN_COOKIE, "value": "1", "domain": host, "path": "/"}])
    page = context.new_page()
    page.goto(f"{nginx_in_front}/admin")
    wait_until_ready(page)
    sidebar = page.locator("[data-testid='stSidebar']")
    expect(sidebar.get_by_text(f"{USER} · viewer")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("identified by the proxy")).to_be_visible(timeout=30_000)
    context.close()


def test_readme_nginx_sends_a_visitor_without_a_session_to_sign_in(
    browser: Browser, nginx_in_front: str
) -> None:
    page = browser.new_context(extra_http_headers={"X-Forwarded-Email": "ada"}).new_page()
    page.goto(nginx_in_front)
    expect(page.get_by_text("Sign in with your company account")).to_be_visible(timeout=30_000)
    expect(page.locator("[data-testid='stApp']")).to_have_count(0)
    page.context.close()
