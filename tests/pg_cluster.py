"""Run a command against a throwaway PostgreSQL cluster.

    python tests/pg_cluster.py -- pytest ...

initdb into a temporary folder, start `postgres` on a free loopback port,
export DATABASE_URL for the command, then stop the server and remove the
folder, whatever the command did. Debian keeps the server binaries off the PATH
(/usr/lib/postgresql/<version>/bin); as root they must run as `postgres`.

Without server binaries the run is skipped with a loud reason, or fails when
CI_REQUIRE_ALL=1 (CI must never pass by skipping).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def find_bindir() -> Path | None:
    candidates = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        version = Path(initdb).parent.parent.name
        candidates.append((float(version) if version.replace(".", "").isdigit() else 0, initdb))
    if candidates:
        return Path(max(candidates)[1]).parent
    on_path = shutil.which("initdb")
    if on_path and shutil.which("postgres"):
        return Path(on_path).parent
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def as_postgres_user() -> dict:
    """Keyword arguments for subprocess that drop root to `postgres`."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam("postgres")

    def demote() -> None:
        os.setgid(entry.pw_gid)
        os.setuid(entry.pw_uid)

    return {"preexec_fn": demote}


def wait_ready(bindir: Path, port: int, socket_dir: str, timeout: float = 30.0) -> None:
    pg_isready = bindir / "pg_isready"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready = subprocess.run(
            [str(pg_isready), "-h", "127.0.0.1", "-p", str(port), "-q"], check=False
        )
        if ready.returncode == 0:
            return
        time.sleep(0.2)
    raise SystemExit(f"PostgreSQL did not start within {timeout:.0f}s (socket dir {socket_dir})")


def main(argv: list[str]) -> int:
    if "--" not in argv or argv.index("--") == len(argv) - 1:
        print(__doc__)
        return 2
    command = argv[argv.index("--") + 1 :]
    bindir = find_bindir()
    if bindir is None:
        banner = (
            "PostgreSQL server binaries (initdb, postgres) not found: "
            "the PostgreSQL test run is SKIPPED. Install them with `apt-get install postgresql`."
        )
        print(f"\n{'!' * 78}\n{banner}\n{'!' * 78}\n", file=sys.stderr)
        return 1 if os.environ.get("CI_REQUIRE_ALL") in {"1", "true", "yes"} else 0

    root = tempfile.mkdtemp(prefix="fleet-portal-pg-")
    data_dir = os.path.join(root, "data")
    os.makedirs(data_dir)
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        for path in (root, data_dir):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    demote = as_postgres_user()
    port = free_port()
    log_path = os.path.join(root, "postgres.log")
    server = None
    try:
        subprocess.run(
            [str(bindir / "initdb"), "-D", data_dir, "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--no-sync"],
            check=True, stdout=subprocess.DEVNULL, **demote,
        )  # fmt: skip
        with open(log_path, "w") as log:
            if os.geteuid() == 0:
                os.chown(log_path, pwd.getpwnam("postgres").pw_uid, -1)
            server = subprocess.Popen(
                [str(bindir / "postgres"), "-D", data_dir, "-p", str(port),
                 "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={root}",
                 "-c", "fsync=off", "-c", "synchronous_commit=off",
                 "-c", "full_page_writes=off", "-c", "max_connections=200"],
                stdout=log, stderr=subprocess.STDOUT, **demote,
            )  # fmt: skip
        wait_ready(bindir, port, root)
        env = dict(os.environ)
        env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{port}/fleet_portal"
        print(f"PostgreSQL {bindir.parent.name} running on 127.0.0.1:{port} ({root})", flush=True)
        return subprocess.run(command, env=env, check=False).returncode
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
