"""The clock at company scale, on PostgreSQL: 10,000 mailboxes (issue 22, item 6).

State in a throw-away PostgreSQL database, the embedded CRM and the local target in a
temporary home. Every step runs in its own process, as the clock runs in production:

1. set-up: the CRM gets 10,000 users and their people (Sage's data, not ours, and not
   timed as ours); then each salesperson adds their people through the engine, as the
   CLI and the bot do (timed: *set-up*), and `index build` runs.
   Mailbox n lists its own person and one of 1,000 customers (each listed by 10
   mailboxes); every 10th mailbox also lists one *shared* person (1,000 mailboxes).
2. the first cycle: one clock process syncs every mailbox (mailboxes per second).
3. the idle cycle: nothing changed; time and database statements per cycle.
4. the shared person changes in the CRM: all 1,000 mailboxes that list them are synced
   in the next cycle, by 1, 2 and 4 clock processes sharing the work (each mailbox once).
5. the clock's memory over 1,000 cycles (a customer changes every 50 cycles, so some
   cycles sync): resident size at cycles 1, 100, 500 and 1,000.

`--keep FILE` keeps the database and home after the run and writes where they are to FILE;
a later run given the same FILE reuses them and skips the set-up and the first cycle (about
seven minutes at 10,000 mailboxes), e.g. to repeat only the 1,000-mailbox change:
`--keep /tmp/scale.json --steps change --processes 1,2,4 --repeat 3`. `--drop FILE` drops
them. `--code DIR` measures another checkout (e.g. main's, on the same kept set-up).

`--compare DIR` runs the same steps, in the same run, against another checkout (e.g.
`git worktree add /tmp/old c5ee02c`) and prints the ratios. `--watch` adds what the
production clock does after each cycle (metrics, health, problems and alerts; issue 22's
`bot/ops.py`), where the code base has it.

    .venv/bin/python bench/bench_scale.py [--mailboxes 10000] [--cycles 1000] [--compare DIR] [--watch]
        [--keep FILE] [--steps idle,change,memory] [--repeat N] [--drop FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

PG_ADMIN = os.environ.get(
    "CRM_CONTACTS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
HERE = Path(__file__).resolve()


# -- the steps, each run in a worker process ----------------------------------------------


def _engine():  # type: ignore[no-untyped-def]
    from sync_engine.config import load_settings
    from sync_engine.service import Engine

    return Engine(load_settings())


def _clock(engine, args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The scheduler, with the production clock's after-cycle watch (metrics, health,
    problems; bot/ops.py) when --watch asks for it and the code base has one."""
    from sync_engine.schedule import Scheduler

    scheduler = Scheduler(engine)
    if getattr(args, "watch", False):
        try:
            from bot.ops import watch
        except ImportError:  # an older code base: no watch to add
            return scheduler
        watch(scheduler, listen=False)
    return scheduler


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _plan(mailboxes: int, shared_every: int) -> dict[str, Any]:
    return {"mailboxes": mailboxes, "customers": mailboxes // 10, "shared_every": shared_every}


def step_setup(args: argparse.Namespace) -> dict[str, Any]:
    from sync_engine.crm.embedded import EmbeddedCrm, seed_large

    engine = _engine()
    crm = EmbeddedCrm(engine.crm)
    n, customers = args.mailboxes, args.mailboxes // 10
    began = time.perf_counter()
    emails = [f"rep{i:05d}@example.com" for i in range(n)]
    for i, email in enumerate(emails):
        crm.add_user(email, "Rep", str(i))
    seed_large(engine.crm, n + customers)
    shared = crm.add_person(first="Shared", last="Buyer", company="Big Co", title="Buyer")
    ids = sorted(p.id for p in engine.crm.iter_people() if p.id != shared)
    crm_seconds = time.perf_counter() - began

    began = time.perf_counter()
    sharers = []
    for i, email in enumerate(emails):
        user = engine.user(email)
        people = [ids[i], ids[n + i % customers]]
        if i % 10 == 0:
            people.append(shared)
            sharers.append(email)
        engine.add(user, people)
    setup_seconds = time.perf_counter() - began
    began = time.perf_counter()
    engine.index.build()
    index_seconds = time.perf_counter() - began
    engine.close()
    return {
        "crm_seconds": crm_seconds,
        "setup_seconds": setup_seconds,
        "index_seconds": index_seconds,
        "shared": shared,
        "customers": ids[n : n + customers],
        "sharers": sharers,
    }


def step_first(args: argparse.Namespace) -> dict[str, Any]:
    from sync_engine.schedule import Scheduler

    engine = _engine()
    began, cpu = time.perf_counter(), time.process_time()
    report = Scheduler(engine).run_cycle()
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    engine.close()
    return {
        "seconds": seconds,
        "cpu": cpu,
        "synced": len(report.synced),
        "failed": len(report.failed),
        "requests": report.requests,
        "error": report.error,
    }


def step_idle(args: argparse.Namespace) -> dict[str, Any]:
    """Idle cycles of the bare scheduler, then (--watch) of the production clock with
    its after-cycle watch, where the code base has one."""
    from sqlalchemy import event

    from sync_engine.schedule import Scheduler

    engine = _engine()
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
        statements.append(statement.split()[0].upper())

    for db in {engine.store.engine, engine.crm.engine}:
        event.listen(db, "before_cursor_execute", record)

    def measure(scheduler) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        scheduler.run_cycle()  # warm: a running clock has done cycles before
        statements.clear()
        times = []
        for _ in range(args.idle_cycles):
            began = time.perf_counter()
            report = scheduler.run_cycle()
            times.append(time.perf_counter() - began)
            assert report.due == 0 and report.error is None, report
        return {
            "ms": [t * 1000 for t in times],
            "statements": len(statements) / args.idle_cycles,
            "kinds": sorted(set(statements)),
        }

    out = measure(Scheduler(engine))
    watched = _clock(engine, args)
    if getattr(watched, "after_cycle", None):
        out["watched"] = measure(watched)
    engine.close()
    return out


def step_change(args: argparse.Namespace) -> dict[str, Any]:
    """One clock process: warm up, say ready, wait for `go`, run one cycle."""
    from sqlalchemy import event

    engine = _engine()
    scheduler = _clock(engine, args)
    scheduler.run_cycle()
    statements = {"state": 0, "crm": 0}

    def counter(name: str):  # type: ignore[no-untyped-def]
        def count(*_args):  # type: ignore[no-untyped-def]
            statements[name] += 1

        return count

    event.listen(engine.store.engine, "before_cursor_execute", counter("state"))
    event.listen(engine.crm.engine, "before_cursor_execute", counter("crm"))
    statements["transactions"] = 0  # state transactions (BEGIN ... COMMIT), not autocommit

    def commit(conn):  # type: ignore[no-untyped-def]
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            statements["transactions"] += 1

    event.listen(engine.store.engine, "commit", commit)
    print("ready", flush=True)
    sys.stdin.readline()
    began, cpu = time.perf_counter(), time.process_time()
    report = scheduler.run_cycle()
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    engine.close()
    return {
        "seconds": seconds,
        "cpu": cpu,
        "statements": statements,
        "synced": report.synced,
        "failed": report.failed,
        "taken_by_others": report.taken_by_others,
        "requests": report.requests,
        "error": report.error,
    }


def step_touch(args: argparse.Namespace) -> dict[str, Any]:
    from sync_engine.crm.embedded import EmbeddedCrm

    engine = _engine()
    EmbeddedCrm(engine.crm).update_person(args.person, title=args.title)
    engine.close()
    return {}


def step_memory(args: argparse.Namespace) -> dict[str, Any]:
    from sync_engine.crm.embedded import EmbeddedCrm

    engine = _engine()
    crm = EmbeddedCrm(engine.crm)
    scheduler = _clock(engine, args)
    customers = json.loads(args.customers)
    rss: dict[int, float] = {}
    synced = 0
    began = time.perf_counter()
    for cycle in range(1, args.cycles + 1):
        if cycle % 50 == 0:
            crm.update_person(customers[cycle % len(customers)], title=f"Title {cycle}")
        report = scheduler.run_cycle()
        assert report.error is None and not report.failed, report
        synced += len(report.synced)
        if cycle in (1, 10, 100, 250, 500, 750, 1000) or cycle == args.cycles:
            rss[cycle] = _rss_mib()
    seconds = time.perf_counter() - began
    engine.close()
    return {"rss": rss, "synced": synced, "seconds": seconds}


STEPS = {
    "setup": step_setup,
    "first": step_first,
    "idle": step_idle,
    "change": step_change,
    "touch": step_touch,
    "memory": step_memory,
}


# -- the driver -----------------------------------------------------------------------------


class Run:
    """One code base on one fresh database and home."""

    def __init__(
        self, code: Path, args: argparse.Namespace, kept: dict[str, Any] | None = None
    ) -> None:
        """A fresh database and home, or (`kept`) the ones a `--keep` run left."""
        from sqlalchemy import create_engine, text

        self.code, self.args, self.kept = code, args, False
        if kept is not None:
            self.home, self.db = Path(kept["home"]), kept["db"]
            self.kept = True  # left for the next run; --drop drops it
        else:
            self.home = Path(tempfile.mkdtemp(prefix="bench-scale-"))
            self.db = f"bench_scale_{uuid.uuid4().hex[:8]}"
            admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self.db}"'))
            admin.dispose()
        self.url = PG_ADMIN.rsplit("/", 1)[0] + "/" + self.db

    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SLACK_", "EWS_", "GRAPH_", "CRM_", "SAGE_"))
        }
        env.update(
            DATABASE_URL=self.url,
            CRM_CONTACTS_HOME=str(self.home),
            PYTHONPATH=str(self.code),
            MAILBOX_BACKEND="local",
        )
        return env

    def command(self, step: str, *extra: str) -> list[str]:
        watch = ["--watch"] if self.args.watch else []
        return [sys.executable, str(HERE), "--worker", step, "--mailboxes",
                str(self.args.mailboxes), *watch, *extra]  # fmt: skip

    def step(self, step: str, *extra: str) -> dict[str, Any]:
        done = subprocess.run(
            self.command(step, *extra), env=self.env(), capture_output=True, text=True
        )
        if done.returncode != 0:
            raise SystemExit(f"{step} failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def change(self, processes: int, person: int, title: str) -> dict[str, Any]:
        workers = [
            subprocess.Popen(
                self.command("change"),
                env=self.env(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for _ in range(processes)
        ]
        for w in workers:
            assert w.stdout is not None and w.stdout.readline().strip() == "ready"
        self.step("touch", "--person", str(person), "--title", title)
        began = time.perf_counter()
        for w in workers:
            assert w.stdin is not None
            w.stdin.write("go\n")
            w.stdin.flush()
        results = []
        for w in workers:
            out, _ = w.communicate()
            results.append(json.loads(out.strip().splitlines()[-1]))
        seconds = time.perf_counter() - began
        return {"seconds": seconds, "workers": results}

    def titles(self, title: str) -> int:
        from sqlalchemy import create_engine, text

        target = create_engine(f"sqlite:///{self.home / 'mailboxes.sqlite'}")
        with target.connect() as conn:
            n = conn.execute(
                text("SELECT count(*) FROM contacts WHERE job_title = :t"), {"t": title}
            ).scalar()
        target.dispose()
        return int(n or 0)

    def close(self) -> None:
        import shutil

        from sqlalchemy import create_engine, text

        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)'))
        admin.dispose()
        shutil.rmtree(self.home, ignore_errors=True)


def _load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def measure(code: Path, args: argparse.Namespace, label: str) -> dict[str, Any]:
    kept = json.loads(args.keep.read_text()) if args.keep and args.keep.exists() else None
    if kept is not None and kept["mailboxes"] != args.mailboxes:
        raise SystemExit(
            f"{args.keep} holds {kept['mailboxes']:,} mailboxes, not {args.mailboxes:,}"
        )
    run = Run(code, args, kept)
    out: dict[str, Any] = {"label": label}
    try:
        say = lambda text: print(f"[{label}] {text}; {_load()}", flush=True)  # noqa: E731
        if kept is not None:
            setup = kept["setup"]
            say(f"reusing the set-up in {args.keep} (database {run.db}, home {run.home})")
        else:
            setup = run.step("setup")
            say(
                f"set-up: CRM seeded in {setup['crm_seconds']:.0f} s; {args.mailboxes:,} lists "
                f"added in {setup['setup_seconds']:.1f} s; index built in "
                f"{setup['index_seconds']:.1f} s"
            )
            first = run.step("first")
            out["first"] = first
            assert first["synced"] == args.mailboxes and not first["failed"], first
            say(
                f"first cycle: {first['seconds']:.0f} s ({first.get('cpu', 0):.0f} s CPU), "
                f"{first['synced'] / first['seconds']:.1f} mailboxes/s, {first['requests']} requests"
            )
            if args.keep:
                run.kept = True
                args.keep.write_text(
                    json.dumps(
                        {
                            "db": run.db,
                            "home": str(run.home),
                            "mailboxes": args.mailboxes,
                            "setup": setup,
                        }
                    )
                )
        out["setup"] = setup
        if "idle" in args.steps:
            _idle(run, args, out, say)
        if "change" in args.steps:
            for _ in range(args.repeat):
                _change(run, args, out, setup, say)
        if "memory" in args.steps and args.cycles:
            _memory(run, args, out, setup, say)
    finally:
        if not run.kept:
            run.close()
    return out


def _idle(run: Run, args: argparse.Namespace, out: dict[str, Any], say: Any) -> None:
    idle = run.step("idle", "--idle-cycles", str(args.idle_cycles))
    out["idle"] = idle
    ms = idle["ms"]
    say(
        f"idle cycle: median {statistics.median(ms):.0f} ms (min {min(ms):.0f}, "
        f"max {max(ms):.0f}), {idle['statements']:.0f} statements ({', '.join(idle['kinds'])})"
    )
    if "watched" in idle:
        w = idle["watched"]
        say(
            f"idle cycle with the clock's watch (metrics, health, problems): median "
            f"{statistics.median(w['ms']):.0f} ms (min {min(w['ms']):.0f}, max "
            f"{max(w['ms']):.0f}), {w['statements']:.0f} statements"
        )


def _change(
    run: Run, args: argparse.Namespace, out: dict[str, Any], setup: dict[str, Any], say: Any
) -> None:
    """The shared person changes, once per process count; each of their mailboxes must be
    synced exactly once and hold the new title (a title no earlier run wrote)."""
    sharers = set(setup["sharers"])
    for processes in args.processes:
        title = f"Buyer {processes} {uuid.uuid4().hex[:6]}"
        load = os.getloadavg()[0]
        result = run.change(processes, setup["shared"], title)
        synced = [m for w in result["workers"] for m in w["synced"]]
        assert sorted(synced) == sorted(sharers), (len(synced), len(set(synced)))
        assert run.titles(title) == len(sharers)
        assert not any(w["failed"] or w["error"] for w in result["workers"]), result
        result["load"] = [load, os.getloadavg()[0]]
        out.setdefault("change", {}).setdefault(processes, []).append(result)
        state = sum(w["statements"]["state"] for w in result["workers"]) / len(sharers)
        crm = sum(w["statements"]["crm"] for w in result["workers"]) / len(sharers)
        say(
            f"{len(sharers):,} mailboxes changed, {processes} process(es): all synced once "
            f"in {result['seconds']:.1f} s (per process: "
            + ", ".join(
                f"{len(w['synced'])} in {w['seconds']:.1f} s, {w['cpu']:.1f} s CPU"
                for w in result["workers"]
            )
            + f"); per mailbox {state:.1f} state and {crm:.1f} CRM statements"
            + (
                f", {sum(w['statements']['transactions'] for w in result['workers']) / len(sharers):.1f}"
                " state transactions"
                if all("transactions" in w["statements"] for w in result["workers"])
                else ""
            )
            + "; "
            f"1-min load {load:.2f} before"
        )


def _memory(
    run: Run, args: argparse.Namespace, out: dict[str, Any], setup: dict[str, Any], say: Any
) -> None:
    memory = run.step(
        "memory",
        "--cycles",
        str(args.cycles),
        "--customers",
        json.dumps(setup["customers"][:100]),
    )
    out["memory"] = memory
    rss = memory["rss"]
    say(
        f"memory over {args.cycles} cycles ({memory['synced']} syncs, "
        f"{memory['seconds'] / args.cycles * 1000:.0f} ms a cycle): "
        + ", ".join(f"cycle {c}: {v:.0f} MiB" for c, v in rss.items())
    )


def _summary(out: dict[str, Any]) -> None:
    """Median and range of each process count's change times (with --repeat)."""
    for processes, results in out.get("change", {}).items():
        times = [r["seconds"] for r in results]
        loads = [x for r in results for x in r["load"]]
        print(
            f"[{out['label']}] {processes} process(es), {len(times)} run(s): median "
            f"{statistics.median(times):.1f} s (range {min(times):.1f}–{max(times):.1f}); "
            f"1-min load {min(loads):.2f}–{max(loads):.2f}",
            flush=True,
        )


def ratios(ours: dict[str, Any], base: dict[str, Any]) -> None:
    def row(what: str, a: float, b: float, unit: str) -> None:
        print(f"  {what:<44} {a:>10.1f} {unit:<4} {b:>10.1f} {unit:<4} {b / a if a else 0:>6.2f}x")

    print(f"\n  {'':<44} {'ours':>15} {'baseline':>15} {'ratio':>7}")
    row("set-up (lists added)", ours["setup"]["setup_seconds"], base["setup"]["setup_seconds"], "s")
    if "first" in ours and "first" in base:
        row("first cycle", ours["first"]["seconds"], base["first"]["seconds"], "s")
    if "idle" in ours and "idle" in base:
        row(
            "idle cycle (median)",
            statistics.median(ours["idle"]["ms"]),
            statistics.median(base["idle"]["ms"]),
            "ms",
        )
        row("idle cycle statements", ours["idle"]["statements"], base["idle"]["statements"], "")
    for processes in ours.get("change", {}):
        if processes in base.get("change", {}):
            row(
                f"1,000-mailbox change, {processes} process(es), median",
                statistics.median(r["seconds"] for r in ours["change"][processes]),
                statistics.median(r["seconds"] for r in base["change"][processes]),
                "s",
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mailboxes", type=int, default=10_000)
    parser.add_argument("--cycles", type=int, default=1000, help="memory run; 0 skips it")
    parser.add_argument("--idle-cycles", type=int, default=20)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--compare", type=Path, help="another checkout, measured in the same run")
    parser.add_argument(
        "--code",
        type=Path,
        help="the checkout to measure (default: this one), e.g. on a --keep set-up",
    )
    parser.add_argument(
        "--watch", action="store_true", help="with the clock's after-cycle watch (metrics, alerts)"
    )
    parser.add_argument(
        "--keep", type=Path, help="keep the set-up (database, home) and note it in FILE; reuse it"
    )
    parser.add_argument("--drop", type=Path, help="drop the set-up a --keep run noted in FILE")
    parser.add_argument("--steps", default="idle,change,memory", help="after the first cycle")
    parser.add_argument("--repeat", type=int, default=1, help="runs of the change per count")
    parser.add_argument("--worker", choices=sorted(STEPS), help=argparse.SUPPRESS)
    parser.add_argument("--person", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--title", help=argparse.SUPPRESS)
    parser.add_argument("--customers", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(STEPS[args.worker](args)))
        return
    if args.drop:
        kept = json.loads(args.drop.read_text())
        Run(HERE.parent.parent, args, kept).close()
        args.drop.unlink()
        return
    if args.keep and args.compare:
        raise SystemExit("--keep and --compare: one set-up each; run them one at a time")
    args.processes = [int(p) for p in args.processes.split(",")]
    args.steps = set(args.steps.split(","))
    print(
        f"{args.mailboxes:,} mailboxes, state on PostgreSQL, local target"
        f"{', with the clock watch' if args.watch else ''}; "
        f"{_load()} at the start",
        flush=True,
    )
    code = args.code.resolve() if args.code else HERE.parent.parent
    ours = measure(code, args, "ours" if args.code is None else str(args.code))
    _summary(ours)
    if args.compare:
        base = measure(args.compare.resolve(), args, "baseline")
        _summary(base)
        ratios(ours, base)
    print(f"{_load()} at the end")


if __name__ == "__main__":
    main()
