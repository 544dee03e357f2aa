"""How long `crm-gateway import` takes for a large CSV (and how much memory it needs).

Writes a CSV of N clients (numbers in several national spellings, e-mails, tags, a custom
column, 2% duplicate rows in another spelling), then imports it into a fresh SQLite store with
the same code the CLI uses, and prints rows per second.

    .venv/bin/python -m bench.csv_import [--rows 100000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import random
import resource
import tempfile
import time
from pathlib import Path

from crm.domain.clock import SystemClock
from crm.files.csv_import import import_clients
from crm.storage.store import Store
from gateway.cli import freeze_startup_objects


def write_csv(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    spellings = ["({a}) {b}-{c}", "+1 {a} {b} {c}", "{a}.{b}.{c}", "1-{a}-{b}-{c}"]
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["name", "phone", "email", "company", "tags", "notes", "owner", "plan"])
        for i in range(rows):
            n = i if rng.random() > 0.02 else rng.randrange(max(i, 1))  # ~2% repeat an earlier client
            a, b, c = 200 + n % 700, 200 + (n // 700) % 800, n % 10_000
            phone = rng.choice(spellings).format(a=a, b=f"{b:03}", c=f"{c:04}")
            out.writerow(
                [
                    f"Client {n}",
                    phone,
                    f"client{n}@example.com",
                    f"Company {n % 5000}",
                    "vip;new" if n % 3 == 0 else "new",
                    "",
                    "",
                    rng.choice(["gold", "silver"]),
                ]
            )


async def run(rows: int, database_url: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "clients.csv"
        write_csv(source, rows)
        url = database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        store = Store(url, pool_size=2)
        await store.upgrade()
        freeze_startup_objects()  # as `crm-gateway import` does
        started, cpu_started = time.perf_counter(), time.process_time()
        report = await import_clients(store, source, region="US", clock=SystemClock())
        # CPU time of all the process's threads, too: other load on the machine stretches the
        # wall clock far more than it does the CPU time.
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        await store.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"imported {rows} rows in {elapsed:.1f} s ({rows / elapsed:,.0f} rows/s): created {report.created}, "
        f"updated {report.updated}, skipped {report.skipped}, errors {len(report.errors)}; "
        f"peak memory {peak_mb:.0f} MB; CPU {cpu:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    asyncio.run(run(args.rows, args.database_url))


if __name__ == "__main__":
    main()
