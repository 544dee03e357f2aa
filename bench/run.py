"""The gateway against its ceiling, on one core each side: issue 6's benchmark in one command.

    .venv/bin/python -m bench.run [--quick] [--duration 15] [--connections 32]

Seeds (or reuses) a store of 1,000,000 clients and 10,000,000 calls (`--quick`: 100,000 and
1,000,000), starts the bare aiohttp handler (`bench.ceiling`) pinned to CPU 0 and loads it with
`wrk` pinned to CPU 1, then does the same with the real gateway (`crm-gateway serve`) on a copy
of the seeded store: the inbound-call webhook for new and for known callers, the status callback
of existing calls and `/leads`. Every Twilio request is a Twilio-shaped form with a valid
`X-Twilio-Signature`; every request of a row is different (new CallSids, new numbers, new
e-mails), cycled from pre-signed bodies. Then the CSV import of `bench.csv_import`. Prints a table
and writes the same figures as JSON to `bench/results/<timestamp>-sqlite.json`.

`--database-url postgresql+asyncpg://…` runs the same on PostgreSQL: the seed becomes a template
database on that server (`crm_bench_seed_{N}_{M}`, kept), copied per run to `crm_bench_work`.
Pin the PostgreSQL server to the gateway's core yourself if you want it to share that core.

Then the answered-callback → Bot API latency (card pop) at 50 calls/s, `bench.card_pop` (the gateway
on CPU 0 on a SQLite file of its own, the fakes on CPU 1), with Telegram's free 30 messages a
second and with paid broadcasts (`--skip-card-pop` leaves it out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from bench import seed

ROOT = Path(__file__).parent
RESULTS = ROOT / "results"
SERVER_CPU = "0"
LOAD_CPU = "1"
ACCOUNT_SID = "AC" + "b" * 32
AUTH_TOKEN = "bench-auth-token-0123456789abcdef"  # noqa: S105  # a made-up token for the bench
OUR_NUMBER = "+14155550100"
VOICE = "/webhooks/twilio/voice"
STATUS = "/webhooks/twilio/status"
LEADS = "/leads"
FORM = "application/x-www-form-urlencoded"
JSON_TYPE = "application/json"

LUA = """
local path, ctype, file = "{path}", "{ctype}", "{file}"
local sigs, bodies, n = {{}}, {{}}, 0
local step, counter = {threads}, 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
end

function init(args)
  for line in io.lines(file) do
    local tab = line:find("\\t", 1, true)
    n = n + 1
    sigs[n] = line:sub(1, tab - 1)
    bodies[n] = line:sub(tab + 1)
  end
  i = tonumber(tid) or 0
end

function request()
  i = (i + step - 1) % n + 1
  local headers = {{["Content-Type"] = ctype}}
  if sigs[i] ~= "" then headers["X-Twilio-Signature"] = sigs[i] end
  return wrk.format("POST", path, headers, bodies[i])
end
"""


@dataclass
class Load:
    """One wrk run's figures."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx/3xx answers plus socket errors


@dataclass
class Row:
    name: str
    load: Load
    ratio: float | None = None  # throughput / the ceiling's
    p99_ratio: float | None = None  # p99 / the ceiling's


@dataclass
class Results:
    database: str
    clients: int
    calls: int
    duration_s: int
    connections: int
    started_at: str
    machine: dict[str, Any] = field(default_factory=dict)
    seed_s: float | None = None
    rows: list[Row] = field(default_factory=list)
    csv_import_rows: int | None = None
    csv_import_s: float | None = None
    gateway_peak_rss_mb: float | None = None
    gateway_rss_at_start_mb: float | None = None
    # bench.card_pop at 50 calls/s: p50, p99, max (ms), calls, agents, answers/s, refused and paid sends
    card_pop_ms: dict[str, Any] | None = None  # Telegram's free 30 messages a second
    card_pop_paid_ms: dict[str, Any] | None = None  # CRM_TELEGRAM_PAID_BROADCAST=true


# -- wrk ----------------------------------------------------------------------------------------


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is missing: apt-get install -y wrk", flush=True)
    if subprocess.run(["apt-get", "install", "-y", "wrk"], check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], check=True)
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=True)
    found = shutil.which("wrk")
    if not found:
        sys.exit("wrk could not be installed")
    return found


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_LATENCY = re.compile(r"^\s*(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m)\s*$", re.MULTILINE)


def parse_wrk(output: str) -> Load:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if rps is None or total is None:
        raise RuntimeError(f"cannot read wrk's output:\n{output}")
    latency = {m.group(1): float(m.group(2)) * _UNIT_MS[m.group(3)] for m in _LATENCY.finditer(output)}
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if sock:
        errors += sum(int(g) for g in sock.groups())
    return Load(
        requests_per_s=float(rps.group(1)),
        p50_ms=latency.get("50", float("nan")),
        p99_ms=latency.get("99", float("nan")),
        requests=int(total.group(1)),
        errors=errors,
    )


def write_bodies(path: Path, bodies: Iterator[tuple[str, str]]) -> int:
    """Write `signature<TAB>body` lines for the Lua script; returns how many."""
    count = 0
    with path.open("w", encoding="utf-8") as f:
        for signature, body in bodies:
            f.write(f"{signature}\t{body}\n")
            count += 1
    return count


def run_wrk(
    wrk: str, url: str, path: str, ctype: str, bodies: Path, *, duration: int, connections: int, threads: int
) -> Load:
    script = bodies.with_suffix(".lua")
    lua = LUA.format(path=path, ctype=ctype, file=bodies, threads=threads)
    script.write_text(lua, encoding="utf-8")
    cmd = [
        "taskset",
        "-c",
        LOAD_CPU,
        wrk,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        "--timeout",
        "10s",
        "--latency",
        "-s",
        str(script),
        url + path,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


# -- request bodies -----------------------------------------------------------------------------


class Signer:
    def __init__(self, public_url: str) -> None:
        self.public_url = public_url
        self.validator = RequestValidator(AUTH_TOKEN)

    def form(self, path: str, params: Mapping[str, str]) -> tuple[str, str]:
        signature = self.validator.compute_signature(self.public_url + path, dict(params))
        return signature, urlencode(params)


def _voice_params(sid: str, caller: str) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": sid,
        "CallStatus": "ringing",
        "Called": OUR_NUMBER,
        "Caller": caller,
        "Direction": "inbound",
        "From": caller,
        "FromCountry": "US",
        "To": OUR_NUMBER,
        "ToCountry": "US",
    }


def voice_bodies(signer: Signer, count: int, *, tag: int, known: int | None) -> Iterator[tuple[str, str]]:
    """Inbound calls, each with its own CallSid; from new numbers, or from seeded clients when
    `known` (the number of seeded clients) is given."""
    rng = random.Random(tag)
    for k in range(count):
        caller = seed.phone_for(rng.randrange(known) + 1) if known else seed.new_number(tag * 1_000_000 + k)
        yield signer.form(VOICE, _voice_params(f"CA{tag:08x}{k:024x}", caller))


def status_bodies(signer: Signer, count: int, calls: int, clients: int) -> Iterator[tuple[str, str]]:
    """Status callbacks (completed) for seeded calls, each call once."""
    for j in random.Random(3).sample(range(1, calls + 1), min(count, calls)):
        params = {
            "AccountSid": ACCOUNT_SID,
            "ApiVersion": "2010-04-01",
            "CallSid": seed.call_sid(j),
            "CallStatus": "completed",
            "CallDuration": "120",
            "Direction": "inbound",
            "From": seed.phone_for((j * 7919) % clients + 1),
            "To": OUR_NUMBER,
        }
        yield signer.form(STATUS, params)


def lead_bodies(count: int) -> Iterator[tuple[str, str]]:
    for k in range(count):
        body = {
            "name": f"Lead {k}",
            "email": f"lead{k}@bench.example.com",
            "phone": seed.new_number(900_000 + k),
            "message": "Please call me back about the gold plan.",
            "source": "bench",
            "utm_source": "bench",
        }
        yield "", json.dumps(body)


# -- servers ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_up(url: str, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=1):  # noqa: S310  # our own http URL
                return
        except OSError as exc:
            if getattr(exc, "code", None) is not None:
                return  # an HTTP error status still means it is up
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


@contextmanager
def server(cmd: Sequence[str], probe: str, *, env: Mapping[str, str], log: Path) -> Iterator[int]:
    """Run `cmd` pinned to the server core until the block ends; yields its pid."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *cmd], env=dict(env), stdout=out, stderr=subprocess.STDOUT
        )
        try:
            wait_until_up(probe, 120, proc)
            yield proc.pid
        finally:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def memory_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of `pid` in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


# -- the run ------------------------------------------------------------------------------------


def csv_import(rows: int) -> float:
    """Seconds `bench.csv_import` takes for `rows` rows (on the server core)."""
    out = subprocess.run(
        ["taskset", "-c", SERVER_CPU, sys.executable, "-m", "bench.csv_import", "--rows", str(rows)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT.parent,
    ).stdout
    print(f"  {out.strip()}", flush=True)
    match = re.search(r"imported \d+ rows in ([\d.]+) s", out)
    if match is None:
        raise RuntimeError(f"cannot read bench.csv_import's output: {out}")
    return float(match.group(1))


CARD_POP_AGENTS = 500  # each agent then answers a call every 10 s, not every second


def card_pop(*, paid_broadcast: bool) -> dict[str, Any]:
    """Answered callback → card at the Bot API at 50 calls/s for 10 s (`bench.card_pop`)."""
    from bench import card_pop as bench_card_pop  # imports the fakes of the tests

    mode = "on" if paid_broadcast else "off"
    print(f"card pop at 50 calls/s, {CARD_POP_AGENTS} agents, paid broadcasts {mode} …", flush=True)
    figures = asyncio.run(
        bench_card_pop.measure(rate=50, seconds=10, agents=CARD_POP_AGENTS, paid_broadcast=paid_broadcast)
    )
    print(bench_card_pop.report(figures), flush=True)
    keys = (
        "p50",
        "p99",
        "max",
        "calls",
        "agents",
        "answers_per_s",
        "refused_sends",
        "paid_sends",
        "gateway_cpu_ms_per_call",
    )
    return {key: figures[key] for key in keys}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="100k clients, 1M calls, 100k CSV rows")
    parser.add_argument("--clients", type=int)
    parser.add_argument("--calls", type=int)
    parser.add_argument("--duration", type=int, default=15, help="seconds per load row")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--bodies", type=int, default=120_000, help="distinct requests per row")
    parser.add_argument("--import-rows", type=int)
    parser.add_argument("--skip-import", action="store_true")
    parser.add_argument("--skip-card-pop", action="store_true")
    parser.add_argument(
        "--database-url",
        help="postgresql+asyncpg://user@host:port/db of a running server (default: SQLite files)",
    )
    args = parser.parse_args(argv)

    clients, calls = seed.QUICK if args.quick else seed.FULL
    clients, calls = args.clients or clients, args.calls or calls
    import_rows = args.import_rows or (100_000 if args.quick else 1_000_000)
    wrk = ensure_wrk()
    load = {"duration": args.duration, "connections": args.connections, "threads": args.threads}
    pg_url = args.database_url
    if pg_url and not pg_url.startswith("postgresql+asyncpg://"):
        sys.exit("--database-url must be postgresql+asyncpg://… (SQLite is the default)")
    res = Results(
        database="postgresql" if pg_url else "sqlite",
        clients=clients,
        calls=calls,
        duration_s=args.duration,
        connections=args.connections,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        machine={"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()},
    )

    started = time.perf_counter()
    if pg_url:
        asyncio.run(seed.pg_seeded(pg_url, clients, calls))
        res.seed_s = round(time.perf_counter() - started, 1)  # near 0 when the template existed
    else:
        cached = seed.cache_path(clients, calls).exists()
        seed.seeded(clients, calls)
        if not cached:
            res.seed_s = round(time.perf_counter() - started, 1)

    with tempfile.TemporaryDirectory(prefix="crm-bench-") as tmp_name:
        tmp = Path(tmp_name)
        port = free_port()
        public = f"http://127.0.0.1:{port}"
        signer = Signer(public)
        n = args.bodies
        files = {
            "voice_new": write_bodies(tmp / "voice_new.txt", voice_bodies(signer, n, tag=1, known=None)),
            "voice_known": write_bodies(
                tmp / "voice_known.txt", voice_bodies(signer, n, tag=2, known=clients)
            ),
            "status": write_bodies(tmp / "status.txt", status_bodies(signer, n, calls, clients)),
            "leads": write_bodies(tmp / "leads.txt", lead_bodies(n)),
            "voice_known_logged": write_bodies(
                tmp / "voice_known_logged.txt", voice_bodies(signer, n, tag=3, known=clients)
            ),
            "warm": write_bodies(tmp / "warm.txt", voice_bodies(signer, n, tag=9, known=clients)),
        }
        print(f"bodies: {files}", flush=True)

        env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
        rows: dict[str, Load] = {}
        signature = ["--check-signature", AUTH_TOKEN, "--public-url", public]
        for name, extra in (
            ("ceiling", []),
            ("ceiling + parse form", ["--parse-form"]),
            ("ceiling + parse form + check signature", signature),
        ):
            cport = free_port()
            cmd = [sys.executable, "-m", "bench.ceiling", "--port", str(cport), *extra]
            curl = f"http://127.0.0.1:{cport}"
            with server(cmd, curl + "/", env=env, log=tmp / "ceiling.log"):
                run_wrk(wrk, curl, VOICE, FORM, tmp / "warm.txt", **{**load, "duration": 2})
                rows[name] = run_wrk(wrk, curl, VOICE, FORM, tmp / "voice_new.txt", **load)
            print(f"  {name}: {rows[name]}", flush=True)

        if pg_url:
            work_url = asyncio.run(seed.pg_work_copy(pg_url, clients, calls, "crm_bench_work"))
        else:
            work_url = f"sqlite+aiosqlite:///{seed.work_copy(clients, calls, seed.CACHE / 'work-sqlite.db')}"
        genv = {
            **env,
            "CRM_DATABASE_URL": work_url,
            "CRM_HOST": "127.0.0.1",
            "CRM_PORT": str(port),
            "CRM_PUBLIC_URL": public,
            "CRM_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "CRM_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "CRM_LEADS_RATE_LIMIT": "1000000/second",
        }
        gateway = [str(Path(sys.executable).parent / "crm-gateway"), "serve"]
        glog = ROOT / ".cache" / f"gateway-{res.database}.log"
        # As deploy/ runs it: the proxy logs the requests. What the gateway's own access log costs
        # is the last row, from a second start with it on.
        with server(gateway, public + "/healthz", env={**genv, "CRM_ACCESS_LOG": "false"}, log=glog) as pid:
            res.gateway_rss_at_start_mb = round(memory_mb(pid)[0], 1)
            run_wrk(wrk, public, VOICE, FORM, tmp / "warm.txt", **{**load, "duration": 2})
            for name, path, ctype, file in (
                ("voice webhook, new callers", VOICE, FORM, "voice_new"),
                ("voice webhook, known callers", VOICE, FORM, "voice_known"),
                ("status callback", STATUS, FORM, "status"),
                ("/leads (JSON)", LEADS, JSON_TYPE, "leads"),
            ):
                rows[name] = run_wrk(wrk, public, path, ctype, tmp / f"{file}.txt", **load)
                print(f"  {name}: {rows[name]}", flush=True)
                if rows[name].requests > files[file]:
                    print(
                        f"    note: {rows[name].requests} requests > {files[file]} distinct bodies",
                        flush=True,
                    )
            res.gateway_peak_rss_mb = round(memory_mb(pid)[1], 1)
        name = "voice webhook, known callers, access log on"
        logged = {**genv, "CRM_ACCESS_LOG": "true"}
        with server(gateway, public + "/healthz", env=logged, log=glog.with_suffix(".access-log-on.log")):
            rows[name] = run_wrk(wrk, public, VOICE, FORM, tmp / "voice_known_logged.txt", **load)
            print(f"  {name}: {rows[name]}", flush=True)
        print(f"  gateway log: {glog}", flush=True)

    ceiling = rows["ceiling"]
    for name, figures in rows.items():
        res.rows.append(
            Row(
                name,
                figures,
                ratio=round(figures.requests_per_s / ceiling.requests_per_s, 3),
                p99_ratio=round(figures.p99_ms / ceiling.p99_ms, 2),
            )
        )

    if not args.skip_import:
        print(f"CSV import of {import_rows:,} rows …", flush=True)
        res.csv_import_rows = import_rows
        res.csv_import_s = csv_import(import_rows)

    if not args.skip_card_pop:
        res.card_pop_ms = card_pop(paid_broadcast=False)
        res.card_pop_paid_ms = card_pop(paid_broadcast=True)

    print_table(res)
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"{stamp}-{res.database}.json"
    tmp_out = out.with_suffix(".tmp")
    tmp_out.write_text(json.dumps(asdict(res), indent=2) + "\n", encoding="utf-8")
    tmp_out.rename(out)
    print(f"\nwrote {out.relative_to(ROOT.parent)}")


def print_table(res: Results) -> None:
    print(
        f"\n{res.database}: {res.clients:,} clients, {res.calls:,} calls; wrk {res.connections} connections, "
        f"{res.duration_s} s per row; server on CPU {SERVER_CPU}, wrk on CPU {LOAD_CPU}\n"
    )
    w = max(len(row.name) for row in res.rows)
    head = f"| {'handler':<{w}} | {'requests/s':>10} | {'p50 ms':>7} | {'p99 ms':>7} | {'× ceiling':>9} | "
    head += f"{'p99 × ceiling':>13} | {'errors':>6} |"
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for row in res.rows:
        ld = row.load
        print(
            f"| {row.name:<{w}} | {ld.requests_per_s:>10,.0f} | {ld.p50_ms:>7.2f} | {ld.p99_ms:>7.2f} | "
            f"{row.ratio or 0:>9.1%} | {row.p99_ratio or 0:>13.1f} | {ld.errors:>6} |"
        )
    print()
    if res.csv_import_s is not None and res.csv_import_rows:
        print(
            f"CSV import: {res.csv_import_rows:,} rows in {res.csv_import_s:.1f} s "
            f"({res.csv_import_rows / res.csv_import_s:,.0f} rows/s)"
        )
    print(
        f"gateway memory: {res.gateway_rss_at_start_mb} MB at start, "
        f"peak (VmHWM) {res.gateway_peak_rss_mb} MB"
    )
    for label, pop in (("free 30/s", res.card_pop_ms), ("paid broadcasts", res.card_pop_paid_ms)):
        if pop is not None:
            print(
                f"card pop (answered callback → Bot API), 50 calls/s, {pop['agents']} agents, {label}: "
                f"p50 {pop['p50']} ms, p99 {pop['p99']} ms, max {pop['max']} ms (None: > 5 s); "
                f"answers {pop['answers_per_s']}/s, {pop['refused_sends']} sends refused, "
                f"{pop['paid_sends']} paid"
            )
    if res.seed_s is not None:
        print(f"seeding took {res.seed_s} s")


if __name__ == "__main__":
    main()
