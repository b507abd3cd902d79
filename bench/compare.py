"""altcraft-sync against what its users would pick instead: drt and dlt, side by side, on the same shop.

    python bench/compare.py                                   # 200,000 and 1,000,000 orders, SQLite
    python bench/compare.py --dialect postgresql --pg-url postgresql://...
    python bench/compare.py --orders 200000 --tools altcraft-sync,drt

Each tool runs from a terminal, as its users run it, against one emulator (``sandbox``) in its own
process, syncing the demo shop's orders with their lines:

* **altcraft-sync**: ``altcraft-sync sync --stream orders`` (no Prefect API configured: in its own process);
* **drt** (drt-core 1.2.1, its own virtualenv): a SQL model that nests the lines
  (``bench/peers/orders.<dialect>.sql``), ``rest_api`` in batch mode, 500 records a request, its 10
  requests/s default raised so it is not the limit;
* **dlt** (1.31, its own virtualenv): ``bench/peers/dlt_orders.py``, an incremental resource over the same
  SQL and a ``@dlt.destination(batch_size=500)`` sink that posts with requests.

drt and dlt get the cursor ``max(order.updated_at, lines.updated_at)``, so a line-only change moves it too.
The catalog (categories, products, SKUs) and the custom field definitions are loaded first, untimed, as an
account set up for orders would be. Per tool: a full sync into an account without orders, a run with no
change, then (after 1% of orders changed) an incremental run. Each is measured by ``measure.run_command``:
wall time, CPU of the tool's process tree (``wait4``), peak RSS of the tree (sampled).

After each full sync the emulator's canonical digest of every stored order (``sandbox.emulator_digest``)
is compared with altcraft-sync's: the same orders, the same content. drt and dlt count any 2xx as
success, so an order Altcraft rejected inside a 2xx shows up here as *missing*, and one that
altcraft-sync quarantines (its contract) but a peer sent as *extra*.

Writes ``bench/results/compare-latest.json`` and ``.md`` (the README's table).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# bench/ is the script's own directory
from measure import compile_sources, emulator_control, free_port, run_command, start_emulator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PEERS = ROOT / "bench" / "peers"
RESULTS = ROOT / "bench" / "results"
TOKEN = "bench-token"
TOOLS = ("altcraft-sync", "drt", "dlt")
PEER_PACKAGES = {
    "drt": ["drt-core[postgres]==1.2.1"],
    "dlt": ["dlt==1.31.0", "requests", "psycopg[binary]>=3.2"],
    # as `pip install altcraft-sync` gives it: the runtime dependencies only (the development extra adds
    # hypothesis, which pandera imports on its first validation: ~0.16 CPU-s that no user pays)
    "altcraft-sync": ["-e", str(ROOT)],
}
PREFECT_REPEAT = 3
"""Flow runs of each kind under the Prefect server, interleaved; the report gives their medians (a single
run can land on the server's own periodic work and take seconds longer)."""
WARNED = (0, 1)
"""altcraft-sync's exit statuses of a run that did its job: 1 is "completed with warnings", which the demo
shop's planted invalid rows (quarantined, as the content check expects) always give."""
QUIET = {"DO_NOT_TRACK": "1", "RUNTIME__DLTHUB_TELEMETRY": "false", "ALTCRAFT_TOKEN": TOKEN,
         "PREFECT_API_URL": "", "OPENBLAS_NUM_THREADS": "1"}


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over ``runs`` (``measure.run_command`` results)."""
    import statistics

    return {key: round(statistics.median(r[key] for r in runs), 2) for key in runs[0]}


# --- the peers' virtualenvs and projects -------------------------------------------------------------
def peer_venv(name: str, workdir: Path) -> Path:
    """The peer's own virtualenv (created once; reinstalled when its pinned packages change)."""
    venv = workdir / "venvs" / name
    stamp = venv / ".bench-installed"
    wanted = " ".join(PEER_PACKAGES[name])
    if name == "altcraft-sync":  # an editable install follows the code; its dependencies follow pyproject
        wanted += " " + hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if stamp.is_file() and stamp.read_text() == wanted:
        return venv
    print(f"[setup] installing {wanted} into {venv}", flush=True)
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *PEER_PACKAGES[name]], check=True)
    stamp.write_text(wanted)
    return venv


def model_sql(dialect: str) -> str:
    return "\n".join(line for line in (PEERS / f"orders.{dialect}.sql").read_text().splitlines()
                     if not line.startswith("--"))


def drt_project(root: Path, dialect: str, url: str, api: str) -> Path:
    """A drt project as its docs lay one out: ``drt_project.yml``, the profile in ``$HOME/.drt``, the model
    in ``syncs/models`` and the sync in ``syncs``. Returns the HOME drt runs with."""
    import sqlalchemy as sa
    import yaml

    shutil.rmtree(root, ignore_errors=True)
    (root / "project" / "syncs" / "models").mkdir(parents=True)
    (root / "home" / ".drt").mkdir(parents=True)
    (root / "project" / "drt_project.yml").write_text("name: altcraft_bench\nversion: '0.1'\nprofile: shop\n")
    u = sa.make_url(url)
    profile = ({"type": "sqlite", "database": u.database} if dialect == "sqlite" else
               {"type": "postgres", "host": u.host, "port": u.port or 5432, "dbname": u.database, "user": u.username,
                "password_env": "SHOP_DB_PASSWORD"})
    (root / "home" / ".drt" / "profiles.yml").write_text(yaml.safe_dump({"shop": profile}))
    (root / "project" / "syncs" / "models" / "altcraft_orders.sql").write_text(model_sql(dialect))
    sync = {
        "name": "orders",
        "model": "ref('altcraft_orders')",
        "destination": {
            "type": "rest_api", "url": api + "market/orders/import", "method": "POST",
            "headers": {"Content-Type": "application/json"},
            "body_mode": "batch", "max_records_per_request": 500,
            "batch_template": '{"data": [{% for row in rows %}{{ row.doc }}{% if not loop.last %},{% endif %}{% endfor %}]}',
            "auth": {"type": "bearer", "token_env": "ALTCRAFT_TOKEN"},
        },
        "sync": {"mode": "incremental", "cursor_field": "cursor", "batch_size": 500,
                 "rate_limit": {"requests_per_second": 10_000}, "on_error": "fail"},
    }
    (root / "project" / "syncs" / "orders.yml").write_text(yaml.safe_dump(sync, sort_keys=False))
    return root / "home"


# --- one size of one dialect -------------------------------------------------------------------------
class Bench:
    def __init__(self, args: argparse.Namespace, dialect: str, n: int, url: str, workdir: Path) -> None:
        self.args, self.dialect, self.n, self.url = args, dialect, n, url
        self.work = workdir / f"compare-{dialect}-{n}"
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        self.log = self.work / "tools.log"
        self.emulator, self.api = start_emulator(ROOT, TOKEN)
        self.tools = [t for t in TOOLS if t in args.tools]
        self.commands: dict[str, tuple[list[str], dict[str, str], Path | None]] = {}

    def control(self, path: str, body: dict[str, Any] | None = None) -> Any:
        return emulator_control(self.api, path, body)

    def prepare(self) -> None:
        from run import write_config

        self.config = write_config(self.work, self.url, self.api, "ours")
        python = str(peer_venv("altcraft-sync", self.args.workdir) / "bin" / "python")
        ours = [python, "-m", "cli.main", "sync", "--config", str(self.config), "--stream", "orders"]
        self.commands["altcraft-sync"] = (ours, {"PREFECT_HOME": str(self.work / "prefect-home")}, ROOT)
        u = __import__("sqlalchemy").make_url(self.url)
        if "drt" in self.tools:
            home = drt_project(self.work / "drt", self.dialect, self.url, self.api)
            env = {"HOME": str(home), "SHOP_DB_PASSWORD": u.password or ""}
            self.commands["drt"] = ([str(peer_venv("drt", self.args.workdir) / "bin" / "drt"), "run"], env,
                                    self.work / "drt" / "project")
        if "dlt" in self.tools:
            db = u.database if self.dialect == "sqlite" else u.set(drivername="postgresql").render_as_string(False)
            cmd = [str(peer_venv("dlt", self.args.workdir) / "bin" / "python"), str(PEERS / "dlt_orders.py"),
                   "--dialect", self.dialect, "--db", str(db), "--api", self.api, "--state", str(self.work / "dlt")]
            self.commands["dlt"] = (cmd, {}, self.work)
        # the account: catalog and custom field definitions, untimed
        self.control("reset", {})
        catalog = [python, "-m", "cli.main", "sync", "--config", str(self.config),
                   "--stream", "categories", "--stream", "products", "--stream", "skus"]
        run_command(catalog, env=QUIET, cwd=ROOT, log=self.log, accept=WARNED)

    def timed(self, tool: str) -> dict[str, float]:
        cmd, env, cwd = self.commands[tool]
        with self.log.open("a") as f:
            f.write(f"\n=== {tool}: {' '.join(cmd)}\n")
        return run_command(cmd, env={**QUIET, **env}, cwd=cwd, log=self.log,
                           accept=WARNED if tool == "altcraft-sync" else (0,))

    def run(self) -> dict[str, Any]:
        try:
            return self._run()
        finally:  # a failed tool must not leave the emulator running
            self.emulator.terminate()
            self.emulator.wait()

    def _run(self) -> dict[str, Any]:
        from run import change_one_percent

        self.prepare()
        res: dict[str, dict[str, Any]] = {t: {} for t in self.tools}
        reference: dict[str, str] | None = None
        for tool in self.tools:  # full syncs, each into an account without orders
            self.control("reset", {"kinds": ["orders"]})
            res[tool]["full"] = self.timed(tool)
            stored = self.control("digest/orders")["items"]
            if reference is None:
                reference = stored
            res[tool]["content"] = compare_content(reference, stored, self.n)
            self.say(tool, "full", res[tool])
        for tool in self.tools:
            res[tool]["nochange"] = self.timed(tool)
            self.say(tool, "nochange", res[tool])
        if self.args.prefect_server and "altcraft-sync" in self.tools:
            res["altcraft-sync"]["prefect"] = self.under_prefect()
        changed = change_one_percent(self.url)
        time.sleep(1.1)  # past the second the change was stamped in, for the peers' `cursor >` filters
        for tool in self.tools:
            res[tool]["incremental"] = self.timed(tool)
            self.say(tool, "incremental", res[tool])
        return {"dialect": self.dialect, "orders": self.n, "changed": changed, "tools": res}

    def under_prefect(self) -> dict[str, Any]:
        """The no-change run as a Prefect flow run under a Prefect server already running (as a deployment
        or a terminal with ``PREFECT_API_URL`` set runs it), against an empty flow's run under the same
        server: the target is the empty flow's time plus 1 s."""
        home = self.work / "prefect-home"
        env = {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_API_URL": ""}
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port",
                                   str(port)], env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        api = f"http://127.0.0.1:{port}/api"
        try:
            for _ in range(600):
                try:
                    urllib.request.urlopen(api + "/health", timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.2)
            env["PREFECT_API_URL"] = api
            cmd, _, cwd = self.commands["altcraft-sync"]
            noop = [cmd[0], "-c", "from prefect import flow; flow(name='noop')(lambda: None)()"]  # the same Python
            run_command(noop, env={**QUIET, **env}, cwd=ROOT, log=self.log)  # the server's first flow run warms it
            empties, runs = [], []
            for _ in range(PREFECT_REPEAT):  # interleaved: the server's own background work lands on either
                empties.append(run_command(noop, env={**QUIET, **env}, cwd=ROOT, log=self.log))
                runs.append(run_command(cmd, env={**QUIET, **env}, cwd=cwd, log=self.log, accept=WARNED))
            empty, ours = median_run(empties), median_run(runs)
        finally:
            server.terminate()
            server.wait()
        print(f"[{self.dialect} {self.n}] under a running Prefect server: empty flow {empty['wall_s']:.1f} s, "
              f"altcraft-sync no-change {ours['wall_s']:.1f} s", flush=True)
        return {"empty_flow": empty, "nochange": ours, "repeat": PREFECT_REPEAT}

    def say(self, tool: str, phase: str, res: dict[str, Any]) -> None:
        m = res[phase]
        extra = f"  content: {res['content']['summary']}" if phase == "full" else ""
        print(f"[{self.dialect} {self.n}] {tool:<13} {phase:<11} {m['wall_s']:>7.1f} s wall {m['cpu_s']:>7.1f} s CPU "
              f"{m['peak_rss_mb']:>6.0f} MB{extra}", flush=True)


def compare_content(reference: dict[str, str], stored: dict[str, str], n: int) -> dict[str, Any]:
    """What a tool's full sync left in the account against altcraft-sync's: the same orders with the same
    canonical content, orders missing (rejected by Altcraft, or never sent) and extra ones."""
    same = sum(1 for k, v in stored.items() if reference.get(k) == v)
    differ = sorted((k for k, v in stored.items() if k in reference and reference[k] != v), key=int)
    missing = sorted(set(reference) - set(stored), key=int)
    extra = sorted(set(stored) - set(reference), key=int)
    not_stored = n - len(stored)
    summary = f"{len(stored)} stored ({not_stored} of the shop's not), {same} identical"
    if differ:
        summary += f", {len(differ)} differ (e.g. {differ[:3]})"
    if missing:
        summary += f", {len(missing)} missing (e.g. {missing[:3]})"
    if extra:
        summary += f", {len(extra)} extra (e.g. {extra[:3]})"
    return {"stored": len(stored), "identical": same, "differ": len(differ), "missing": len(missing), "extra": len(extra),
            "not_stored_of_shop": not_stored, "examples": {"differ": differ[:5], "missing": missing[:5], "extra": extra[:5]},
            "summary": summary}


# --- the report ----------------------------------------------------------------------------------------
COLUMNS = (("full wall (s)", "full", "wall_s"), ("full CPU (s)", "full", "cpu_s"), ("peak RSS (MB)", "peak", "peak_rss_mb"),
           ("no-change wall (s)", "nochange", "wall_s"), ("1% wall (s)", "incremental", "wall_s"))


def figure(tool: dict[str, Any], phase: str, key: str) -> float:
    if phase == "peak":  # the tool's largest process tree in any of its runs
        return max(tool[p]["peak_rss_mb"] for p in ("full", "nochange", "incremental"))
    return float(tool[phase][key])


def targets(run: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """Issue 19's targets for one run: (target, met, the figures)."""
    t = run["tools"]
    ours = t.get("altcraft-sync")
    if not ours or "drt" not in t:
        return []
    drt = t["drt"]
    f = lambda tool, phase, key: figure(tool, phase, key)  # noqa: E731
    out = [
        ("full CPU <= drt", f(ours, "full", "cpu_s") <= f(drt, "full", "cpu_s"),
         f"{f(ours, 'full', 'cpu_s'):.1f} vs {f(drt, 'full', 'cpu_s'):.1f} s"),
        ("full wall <= 0.8 x drt", f(ours, "full", "wall_s") <= 0.8 * f(drt, "full", "wall_s"),
         f"{f(ours, 'full', 'wall_s'):.1f} vs {0.8 * f(drt, 'full', 'wall_s'):.1f} s"),
        ("no-change wall <= drt", f(ours, "nochange", "wall_s") <= f(drt, "nochange", "wall_s"),
         f"{f(ours, 'nochange', 'wall_s'):.2f} vs {f(drt, 'nochange', 'wall_s'):.2f} s"),
        ("1% run <= 5% of full", f(ours, "incremental", "wall_s") <= 0.05 * f(ours, "full", "wall_s"),
         f"{f(ours, 'incremental', 'wall_s'):.2f} vs {0.05 * f(ours, 'full', 'wall_s'):.2f} s"),
        ("peak RSS <= 250 MB", f(ours, "peak", "") <= 250, f"{f(ours, 'peak', ''):.0f} MB"),
    ]
    if "prefect" in ours:
        p = ours["prefect"]
        out.append(("no-change under Prefect <= empty flow + 1 s", p["nochange"]["wall_s"] <= p["empty_flow"]["wall_s"] + 1,
                    f"{p['nochange']['wall_s']:.2f} vs {p['empty_flow']['wall_s']:.2f} + 1 s"))
    return out


def markdown(report: dict[str, Any]) -> str:
    lines = [f"Measured {report['when']} on {report['machine']}; each tool from a terminal, orders with their lines, "
             "into the sandbox emulator.", ""]
    for run in report["runs"]:
        t = run["tools"]
        lines += [f"**{run['dialect']}, {run['orders']:,} orders** ({run['changed']:,} changed for the 1% run)", "",
                  "| tool | " + " | ".join(c[0] for c in COLUMNS) + " | orders stored | content vs altcraft-sync |",
                  "|---|" + "---:|" * len(COLUMNS) + "---:|---|"]
        for name, tool in t.items():
            lines.append(f"| {name} | " + " | ".join(f"{figure(tool, p, k):g}" for _, p, k in COLUMNS)
                         + f" | {tool['content']['stored']:,} | {tool['content']['summary']} |")
        if "altcraft-sync" in t and len(t) > 1:
            peers = [p for p in t if p != "altcraft-sync"]
            for peer in peers:
                lines.append(f"| altcraft-sync ÷ {peer} | " + " | ".join(
                    f"{figure(t['altcraft-sync'], p, k) / max(1e-9, figure(t[peer], p, k)):.2f}" for _, p, k in COLUMNS)
                    + " | | |")
            lines.append("| altcraft-sync ÷ fastest peer | " + " | ".join(
                f"{figure(t['altcraft-sync'], p, k) / max(1e-9, min(figure(t[q], p, k) for q in peers)):.2f}"
                for _, p, k in COLUMNS) + " | | |")
        checks = targets(run)
        if checks:
            lines += ["", "Targets: " + "; ".join(f"{name}: {'met' if ok else 'NOT met'} ({fig})" for name, ok, fig in checks)]
        lines.append("")
    flat = rss_flatness(report)
    if flat:
        lines.append(flat)
    return "\n".join(lines)


def rss_flatness(report: dict[str, Any]) -> str:
    """Whether altcraft-sync's peak memory stays flat from the smallest to the largest shop, per dialect."""
    out = []
    for dialect in sorted({r["dialect"] for r in report["runs"]}):
        runs = sorted((r for r in report["runs"] if r["dialect"] == dialect and "altcraft-sync" in r["tools"]),
                      key=lambda r: r["orders"])
        if len(runs) > 1:
            small, big = (figure(r["tools"]["altcraft-sync"], "peak", "") for r in (runs[0], runs[-1]))
            out.append(f"altcraft-sync peak RSS on {dialect}: {small:.0f} MB at {runs[0]['orders']:,} orders, "
                       f"{big:.0f} MB at {runs[-1]['orders']:,} (x{big / small:.2f}).")
    return " ".join(out)


def main() -> None:
    from run import child  # generating in a child keeps this process (and the RSS it lends to children) small

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, action="append", help="shop sizes (default: 200000 and 1000000)")
    ap.add_argument("--dialect", action="append", choices=["sqlite", "postgresql"])
    ap.add_argument("--pg-url", default=os.environ.get("SHOP_TEST_PG_URL"))
    ap.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset of " + ", ".join(TOOLS))
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench" / ".work")
    ap.add_argument("--reuse", action="store_true", help="reuse a generated SQLite shop of the same size")
    ap.add_argument("--no-prefect-server", dest="prefect_server", action="store_false",
                    help="skip the no-change run under a running Prefect server (starting one takes ~20 s)")
    args = ap.parse_args()
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if unknown := set(args.tools) - set(TOOLS):
        raise SystemExit(f"--tools: unknown {sorted(unknown)}; choose from {', '.join(TOOLS)}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    compile_sources(ROOT)
    runs = []
    for dialect in args.dialect or ["sqlite"]:
        if dialect == "postgresql" and not args.pg_url:
            raise SystemExit("--dialect postgresql needs --pg-url (or SHOP_TEST_PG_URL)")
        for n in args.orders or [200_000, 1_000_000]:
            url = f"sqlite:///{args.workdir}/shop-{n}.db" if dialect == "sqlite" else args.pg_url
            t = time.perf_counter()
            child("generate", url=url, n_orders=n, n_skus=0, reuse_shop="yes" if args.reuse and dialect == "sqlite" else "no")
            print(f"[{dialect} {n}] shop ready ({time.perf_counter() - t:.0f} s)", flush=True)
            runs.append(Bench(args, dialect, n, url, args.workdir).run())
    report = {"when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}", "runs": runs}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "compare-latest.json").write_text(json.dumps(report, indent=2))
    (RESULTS / "compare-latest.md").write_text(markdown(report))
    print()
    print(markdown(report))


if __name__ == "__main__":
    main()
