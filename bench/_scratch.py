"""Shared helpers for the metering benchmarks (bench/ingest.py, bench/current_usage.py).

A scratch PostgreSQL database created on DATABASE_URL's server and dropped at the end, Django set
up on it in this process, the fixtures both benchmarks need (API key, metrics `api_calls` and
`tokens`, a plan with standard usage charges on both, customers and subscriptions starting today),
gunicorn started and stopped, and a light HTTP client. Not a test helper: nothing here is imported
by the application.
"""

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
DEFAULT_SERVER = "postgres://root@127.0.0.1:5432/postgres"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

_started = time.perf_counter()


def log(message: str) -> None:
    """Progress on stderr (stdout is kept for the result line)."""
    print(f"[{time.perf_counter() - _started:7.1f}s] {message}", file=sys.stderr, flush=True)


def load() -> str:
    """The load average, as `uptime` prints it."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def fmt(n: float) -> str:
    return f"{n:,.0f}"


@contextlib.contextmanager
def uninterrupted():
    """Hold off Ctrl-C and SIGTERM while cleaning up (a second Ctrl-C must not skip the rest)."""
    signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)


def sigterm_as_interrupt() -> None:
    """SIGTERM unwinds like Ctrl-C, so that every `finally` (drop the database) runs."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


# --- the scratch database ----------------------------------------------------------------------


def _with_database(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))


def _conninfo(url: str) -> str:
    """psycopg reads postgres:// URLs; dj-database-url also allows postgresql:// and pgsql://."""
    return "postgresql://" + url.split("://", 1)[1] if "://" in url else url


@contextlib.contextmanager
def scratch_database(prefix: str = "q2c_bench"):
    """Create an empty database on DATABASE_URL's server; yield its URL; drop it at the end."""
    import psycopg

    server = os.environ.get("DATABASE_URL") or DEFAULT_SERVER
    name = f"{prefix}_{os.getpid()}"
    url = _with_database(server, name)
    with psycopg.connect(_conninfo(server), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    log(f"created database {name} on {urllib.parse.urlsplit(server).netloc}")
    try:
        yield url
    finally:
        with uninterrupted():
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
            with psycopg.connect(_conninfo(server), autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            log(f"dropped database {name}")


def server_env(url: str) -> dict:
    """The environment the app runs with: the scratch database, DEBUG off, no query logging."""
    return {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "LOG_LEVEL": "WARNING",
    }


def migrate(url: str) -> None:
    started = time.perf_counter()
    subprocess.run(
        # the project's venv, else this interpreter (a worktree shares another checkout's venv)
        [str(VENV_BIN / "python") if VENV_BIN.exists() else sys.executable]
        + ["manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=server_env(url),
        check=True,
        stdout=sys.stderr,
    )
    log(f"migrated in {time.perf_counter() - started:.1f} s")


def django_setup(url: str) -> None:
    """Set Django up in this process on the scratch database (after `migrate`)."""
    os.environ.update(server_env(url))
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def pg_connect(url: str, **kwargs):
    import psycopg

    return psycopg.connect(_conninfo(url), **kwargs)


# --- fixtures ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sub:
    external_id: str
    customer_external_id: str
    pk: int
    customer_id: int


@dataclass(frozen=True)
class Fixtures:
    api_key: str
    metric_ids: dict  # code -> pk
    subscriptions: list  # of Sub


def fixtures(*, customers: int, prefix: str = "bench") -> Fixtures:
    """An API key, the metrics api_calls (count) and tokens (sum of properties.tokens), a monthly
    plan with standard usage charges on both, and `customers` customers with one subscription
    each, starting today (so the current billing period covers now)."""
    from decimal import Decimal

    from catalog.models import BillableMetric, Charge, Plan
    from core import clock
    from core.services import api_key_create
    from customers.models import Customer
    from subscriptions.services import subscription_create

    _, raw_key = api_key_create(name="benchmark")
    api_calls = BillableMetric.objects.create(
        code="api_calls", name="API calls", aggregation=BillableMetric.Aggregation.COUNT
    )
    tokens = BillableMetric.objects.create(
        code="tokens",
        name="Tokens",
        aggregation=BillableMetric.Aggregation.SUM,
        field_name="tokens",
    )
    plan = Plan.objects.create(code=f"{prefix}_plan", name="Benchmark plan", currency="USD")
    for position, (metric, price, unit) in enumerate(
        [(api_calls, "0.001", "call"), (tokens, "0.000002", "token")]
    ):
        Charge.objects.create(
            plan=plan,
            name=metric.name,
            metric=metric,
            charge_model=Charge.Model.STANDARD,
            billing_timing=Charge.Timing.IN_ARREARS,
            unit_price=Decimal(price),
            unit_name=unit,
            position=position,
        )
    subs = []
    for n in range(customers):
        customer = Customer.objects.create(
            external_id=f"{prefix}_cust_{n:03d}",
            name=f"Benchmark customer {n}",
            billing_email=f"billing+{n}@bench.example",
        )
        subscription = subscription_create(
            customer=customer,
            plan=plan,
            external_id=f"{prefix}_sub_{n:03d}",
            start_date=clock.today(),
            term_months=12,
        )
        subs.append(
            Sub(subscription.external_id, customer.external_id, subscription.pk, customer.pk)
        )
    log(f"fixtures: API key, 2 metrics, 1 plan, {customers} customer(s) with a subscription each")
    return Fixtures(raw_key, {"api_calls": api_calls.pk, "tokens": tokens.pk}, subs)


# --- gunicorn ----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            found.append(int(entry))
    return found


class Gunicorn:
    def __init__(self, proc: subprocess.Popen, port: int, workers: int):
        self.proc, self.port, self.workers = proc, port, workers

    def worker_pids(self) -> list[int]:
        return _children(self.proc.pid)

    def worker_cpu(self) -> float:
        return sum(cpu_seconds(p) for p in self.worker_pids())


@contextlib.contextmanager
def gunicorn(url: str, *, workers: int, worker_class: str = "sync", threads: int = 1):
    """Start `gunicorn config.wsgi` on a free loopback port; stop it (by its pid) at the end."""
    port = free_port()
    command = [
        str(VENV_BIN / "gunicorn"),
        "config.wsgi",
        "-w",
        str(workers),
        "-k",
        worker_class,
        "--threads",
        str(threads),
        "-b",
        f"127.0.0.1:{port}",
        "--timeout",
        "120",
        "--log-level",
        "warning",
    ]
    for name in ("DATABASE_URL", "DEBUG", "ALLOWED_HOSTS", "LOG_LEVEL"):
        command += ["--env", f"{name}={server_env(url)[name]}"]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=server_env(url),
        stdout=subprocess.DEVNULL,
        stderr=sys.stderr,
        start_new_session=True,  # Ctrl-C reaches only us; we stop it in `finally`
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited with code {proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("gunicorn did not listen within 60 s") from None
                time.sleep(0.1)
        # Every worker imports the app when it boots; wait until all of them are there.
        while len(_children(proc.pid)) < workers and time.monotonic() < deadline:
            time.sleep(0.1)
        log(f"gunicorn: {workers} {worker_class} workers on 127.0.0.1:{port} (pid {proc.pid})")
        yield Gunicorn(proc, port, workers)
    finally:
        with uninterrupted():
            if proc.poll() is None:
                proc.terminate()  # graceful: the workers finish their current request
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            log("gunicorn stopped")


class Client:
    """A keep-alive HTTP/1.1 client (http.client). gunicorn's sync worker closes the connection
    after each answer; http.client then reconnects by itself on the next request."""

    def __init__(self, port: int, api_key: str):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        self.headers = {"Authorization": f"Bearer {api_key}", "Host": "127.0.0.1"}

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            # Closed by the server while idle: one new connection, the same request once.
            self.conn.close()
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.conn.close()


def warm_up(server: Gunicorn, fx: Fixtures, rounds: int = 3) -> None:
    """Concurrent current-usage reads, so that every worker has loaded the app and opened its
    database connection before anything is timed."""
    import threading

    sub = fx.subscriptions[0]
    path = (
        f"/api/v1/customers/{sub.customer_external_id}/current_usage"
        f"?external_subscription_id={sub.external_id}"
    )
    statuses = []

    def read() -> None:
        client = Client(server.port, fx.api_key)
        for _ in range(rounds):
            statuses.append(client.request("GET", path)[0])
        client.close()

    threads = [threading.Thread(target=read) for _ in range(server.workers * 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if set(statuses) != {200}:
        raise RuntimeError(f"warm-up answers: {sorted(set(statuses))}")


def median_p95(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    n = len(ordered)
    median = (ordered[(n - 1) // 2] + ordered[n // 2]) / 2
    p95 = ordered[min(n - 1, max(0, -(-95 * n // 100) - 1))]  # nearest rank
    return median, p95
