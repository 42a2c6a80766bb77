"""Benchmark of the prediction service (`make bench`): this API against `mlflow models serve`.

The same registered model (trained here by the real pipeline on demo data) is served by both, one
after the other, on the same machine, under the same load from `wrk` (a C load generator, so the
clients cost little CPU): one client sending text requests back to back, then 16 concurrent clients,
then batches of 1,000 products. Requests rotate over 200 real demo products. Products with a photo
(title + JPEG, multipart) are timed by one Python client (httpx, keep-alive), request after request.
Review feedback (`POST /feedback`) is timed with 16 concurrent clients (wrk), each request correcting
another logged prediction (distinct request ids, made by predictions first).
Then both servers again with every core at half speed: once a server is ready, its processes are
spread over one cgroup per core, each allowed half of that core's time in 2 ms periods (needs a
writable cgroup — root, or a delegated cgroup v2; the section says so otherwise). wrk stays outside,
as a client on another machine would.
Needs `wrk` on PATH
(Debian/Ubuntu: `apt-get install wrk`; macOS: `brew install wrk`); without it the section says so.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from string import Template

import pandas as pd

from core.data.demo.generator import DemoSpec, write_demo
from core.identity.roles import Role
from core.identity.service_tokens import create_token

Row = tuple[str, str, str]
SECONDS = 10
BATCH = 1_000
MODEL_URI = "models:/rakuten-product-classifier@champion"

LUA = """
local bodies = {%s}
local i = 0
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
request = function()
  i = i %% #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%f %%f %%f %%d %%d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
"""


# Requests numbered by one counter (`wrk` runs one thread, its 16 connections share it): predictions with
# distinct request ids (`X-Request-ID`), then one correction of each. The thread stops when the numbers
# run out, before wrk's clock does, so no request is ever sent twice.
RANGE_LUA = Template("""
$preamble
local i, last = $first - 1, $last
wrk.method = "POST"
request = function()
  i = i + 1
  if i > last then wrk.thread:stop() end
  local headers = {["Content-Type"] = "application/json"$auth}
  $request
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %f %f %f %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), e.status,
    e.connect + e.read + e.write + e.timeout))
end
""")
PREDICT_LUA = """headers["X-Request-ID"] = "$prefix" .. i
  return wrk.format(nil, nil, headers, bodies[i % #bodies + 1])"""
FEEDBACK_LUA = """local body = '{"request_id": "$prefix' .. i .. '", "true_code": ' .. codes[i % #codes + 1]
    .. ', "reviewer": "bench"}'
  return wrk.format(nil, nil, headers, body)"""
VERSUS = "this API · mlflow"


@dataclass(frozen=True)
class Load:
    requests: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def latency(self) -> str:
        return f"p50 {self.p50_ms:.1f} / p95 {self.p95_ms:.1f} / p99 {self.p99_ms:.1f} ms"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server not ready at {url}:\n{log.read_text()[-3000:]}")


@contextmanager
def _server(
    cmd: list[str], env: dict[str, str], cwd: Path, ready: str, log: Path, slow: HalfSpeed | None = None
) -> Iterator[int]:
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait(ready, process, log)
        if slow is not None:
            slow.place(process.pid)
        yield process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


@dataclass(frozen=True)
class HalfSpeed:
    """Every core at half speed: one cgroup per core, each allowed half of one core's time in 4 ms
    periods, its processes' threads kept on that core. A per-core limit, not half of the machine: a
    worker runs Python one thread at a time (the GIL), so under a machine-wide quota a lone worker
    would still get a whole core, at full speed (as this benchmark's first runs at "half speed" did)."""

    cores: tuple[int, ...]
    groups: tuple[Path, ...]

    def place(self, root: int) -> None:
        """Spread a server's processes over the slow cores, the largest (those holding the model: its
        workers and batch processes) first, so that two of them never share a core while one is free."""
        import psutil

        sizes: dict[int, int] = {}
        for _ in range(120):  # until every process has loaded what it loads (ready = the first worker)
            tree = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
            before, sizes = sizes, {p.pid: p.memory_info().rss for p in tree}
            if before and all(abs(sizes[pid] - before.get(pid, 0)) < 2**20 for pid in sizes):
                break
            time.sleep(0.5)
        tree.sort(key=lambda p: sizes[p.pid], reverse=True)
        for i, process in enumerate(tree):
            core = i % len(self.cores)
            with suppress(psutil.NoSuchProcess, ProcessLookupError):
                (self.groups[core] / "cgroup.procs").write_text(str(process.pid))
                for thread in process.threads():
                    os.sched_setaffinity(thread.id, {self.cores[core]})

    def slowdown(self) -> float:
        """How many times longer the same pure-Python loop takes on a slow core than on a free one
        (the quota's own cost comes on top of the halving: measured, not assumed)."""
        loop = "import time\nt = time.perf_counter()\nsum(range(30_000_000))\nprint(time.perf_counter() - t)"
        timings = []
        for slow in (False, True):
            process = subprocess.Popen([sys.executable, "-c", loop], stdout=subprocess.PIPE, text=True)
            os.sched_setaffinity(process.pid, {self.cores[0]})
            if slow:
                (self.groups[0] / "cgroup.procs").write_text(str(process.pid))
            timings.append(float(process.communicate()[0]))
        return timings[1] / timings[0]


@contextmanager
def _half_speed() -> Iterator[HalfSpeed | str]:
    """Slow cores for the servers (`HalfSpeed`), or why there are none: cgroup v2 (`cpu.max`) or v1
    (`cpu.cfs_quota_us`), made writable by root or a delegated cgroup v2; removed afterwards."""
    cores = tuple(sorted(os.sched_getaffinity(0)))
    groups: list[Path] = []
    try:
        slow: HalfSpeed | str = HalfSpeed(cores, tuple(_slow_group(core, groups) for core in cores))
    except FileNotFoundError:
        slow = "no cgroup CPU controller on this machine"
    except OSError as exc:
        slow = f"cannot make a cgroup here ({exc.strerror}): run as root"
    try:
        yield slow
    finally:
        for folder in groups:
            for _ in range(50):  # the servers' processes leave the group as they exit
                try:
                    folder.rmdir()
                    break
                except OSError:
                    time.sleep(0.2)


def _slow_group(core: int, made: list[Path]) -> Path:
    """A cgroup allowed half of one core's time, in 4 ms periods (short: a request is never stopped for
    long at once); appended to `made` as soon as it exists."""
    period = 4000  # µs: shorter periods than the kernel's 5 ms bandwidth slice slow a core unevenly
    v2, v1 = Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/cpu")
    name = f"rakuten-bench-{os.getpid()}-{core}"
    if (v2 / "cgroup.controllers").is_file():
        (v2 / name).mkdir()
        made.append(v2 / name)
        (v2 / name / "cpu.max").write_text(f"{period // 2} {period}")
    elif (v1 / "cpu.cfs_quota_us").is_file():
        (v1 / name).mkdir()
        made.append(v1 / name)
        (v1 / name / "cpu.cfs_period_us").write_text(str(period))
        (v1 / name / "cpu.cfs_quota_us").write_text(str(period // 2))
    else:
        raise FileNotFoundError(name)
    return v2 / name if (v2 / "cgroup.controllers").is_file() else v1 / name


def _script(bodies: list[str], folder: Path, name: str) -> Path:
    path = folder / f"{name}.lua"
    path.write_text(LUA % ",".join(f"[==[{b}]==]" for b in bodies))
    return path


def _wrk(url: str, script: Path, connections: int, seconds: int = SECONDS, threads: int = 2) -> Load:
    threads = min(connections, threads)
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    n, micros, p50, p95, p99, status, socket_errors = line.split()[1:]
    return Load(
        int(n),
        int(micros) / 1e6,
        float(p50) / 1e3,
        float(p95) / 1e3,
        float(p99) / 1e3,
        int(status) + int(socket_errors),
    )


def _range_script(
    folder: Path, name: str, request: str, preamble: str, first: int, last: int, token: str = ""
) -> Path:
    path = folder / f"{name}.lua"
    auth = f', ["Authorization"] = "Bearer {token}"' if token else ""
    path.write_text(
        RANGE_LUA.substitute(preamble=preamble, first=first, last=last, auth=auth, request=request)
    )
    return path


def _logged(database: Path, prefix: str) -> int:
    """How many predictions the log holds for request ids starting with `prefix`."""
    import sqlite3

    with closing(sqlite3.connect(database)) as db:
        return int(
            db.execute(
                "SELECT count(*) FROM predictions WHERE request_id LIKE ?", (f"{prefix}%",)
            ).fetchone()[0]
        )


def _feedback_latency(
    base: str, database: Path, folder: Path, products: list[dict[str, str]], prefix: str, token: str
) -> Load:
    """`POST /feedback` under 16 concurrent clients for `SECONDS`, each request correcting another logged
    prediction: 16 clients make predictions for `3 × SECONDS` first (request ids `<prefix><n>`)."""
    from core.categories import CODES

    bodies = "local bodies = {" + ",".join(f"[==[{json.dumps(p)}]==]" for p in products) + "}"
    predict = Template(PREDICT_LUA).substitute(prefix=prefix)
    _wrk(
        f"{base}/predict", _range_script(folder, "fb_predict", predict, bodies, 1, 10**9), 16, 3 * SECONDS, 1
    )
    deadline, previous, made = time.monotonic() + 60, -1, _logged(database, prefix)
    while made != previous or made == 0:  # the log is written in the background: until it settles
        if time.monotonic() > deadline:
            raise RuntimeError("the predictions made for the feedback benchmark were not all logged")
        time.sleep(0.5)
        previous, made = made, _logged(database, prefix)
    codes = "local codes = {" + ",".join(str(c) for c in CODES) + "}"
    correct = Template(FEEDBACK_LUA).substitute(prefix=prefix)
    warm_up = _range_script(folder, "fb_warm", correct, codes, 1, made, token)
    warm = _wrk(f"{base}/feedback", warm_up, 16, 2, 1)
    first = warm.requests + 100  # past those still in flight when the warm-up stopped
    timed = _range_script(folder, "fb", correct, codes, first, made, token)
    return _wrk(f"{base}/feedback", timed, 16, SECONDS, 1)


def _measure(
    server: int,
    url_one: str,
    url_batch: str,
    one: Path,
    batch: Path,
    batch_clients: int,
    *,
    sequential: bool = True,
) -> dict[str, Load]:
    _wrk(url_one, one, 4, seconds=3)  # warm-up: first requests load lazy imports
    _wrk(url_batch, batch, batch_clients, seconds=3)  # and the batch processes load their model
    out: dict[str, Load] = {}
    for name, url, script, clients in (
        *([("sequential", url_one, one, 1)] if sequential else []),
        ("concurrent", url_one, one, 16),
        ("batch", url_batch, batch, batch_clients),
    ):
        _settle(server)
        out[name] = _wrk(url, script, clients)
    return out


def _settle(root: int, timeout: float = 60) -> None:
    """Wait until the server's processes are idle (under 5 % of a core for half a second): each load
    is measured on its own, not on the previous one's tail — the inference log still writing the
    thousands of records a batch load left (on slowed cores that took seconds, and doubled the 16
    clients' p99 that followed)."""
    import psutil

    def busy() -> float:
        tree = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
        total = 0.0
        for process in tree:
            with suppress(psutil.NoSuchProcess):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    deadline = time.monotonic() + timeout
    before = busy()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        after = busy()
        if after - before < 0.025:
            return
        before = after


def _train(root: Path, raw: Path, env: dict[str, str]) -> None:
    write_demo(raw, DemoSpec(rows=10_000, image_rows=1_000), workers=os.cpu_count() or 1)
    subprocess.run(
        [sys.executable, "-m", "core", "pipeline"], env=env, cwd=root, check=True, capture_output=True
    )


def _photo_latency(base: str, raw: Path, n: int = 200) -> tuple[float, float, str]:
    """p50 and p95 (ms) of `/predict/product` for `n` demo test products with their photo, and which
    views answered the last one."""
    import httpx

    x = pd.read_csv(raw / "X_test_update.csv", index_col=0, keep_default_na=False)
    folder = raw / "images" / "image_test"
    items = []
    for _, row in x.iterrows():
        path = folder / f"image_{row['imageid']}_product_{row['productid']}.jpg"
        if path.is_file():
            items.append((row["designation"], row["description"], path.read_bytes()))
        if len(items) == n:
            break
    times, views = [], ""
    with httpx.Client(base_url=base, timeout=30) as client:
        for i in range(len(items) + 10):  # the first 10 warm the path up (lazy imports, network)
            title, description, photo = items[i % len(items)]
            start = time.perf_counter()
            response = client.post(
                "/predict/product",
                data={"designation": title, "description": description},
                files={"file": ("photo.jpg", photo, "image/jpeg")},
            )
            elapsed = time.perf_counter() - start
            response.raise_for_status()
            if i >= 10:
                times.append(elapsed * 1000)
            views = "+".join(v["view"] for v in response.json().get("views", []))
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.95)], views


def _products(raw: Path, n: int) -> list[dict[str, str]]:
    x = pd.read_csv(raw / "X_test_update.csv", index_col=0, keep_default_na=False)
    return [
        {"designation": d, "description": e}
        for d, e in zip(x["designation"][:n], x["description"][:n], strict=True)
    ]


def run(tmp: Path, workers: int) -> list[Row]:
    if shutil.which("wrk") is None:
        return [("Serving benchmark", "skipped: `wrk` not found (apt-get install wrk)", "—")]
    root, raw = tmp / "serving-project", tmp / "serving-raw"
    root.mkdir()
    repo = Path(__file__).resolve().parents[1]
    (root / "params.yaml").write_bytes((repo / "params.yaml").read_bytes())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAKUTEN_", "MLFLOW_", "PREFECT_"))}
    env |= {"RAKUTEN_ROOT": str(root), "RAKUTEN_DATA_DIR": str(raw), "RAKUTEN_API_ALIAS_CHECK_S": "0"}
    tokens_file = tmp / "service_tokens.json"  # a reviewer's service token sends the feedback
    env |= {"RAKUTEN_SERVICE_TOKENS_FILE": str(tokens_file)}
    review_token, _ = create_token(tokens_file, "bench-feedback", [Role.REVIEWER])
    _train(root, raw, env)

    products = _products(raw, 200 + BATCH)
    single, rows = products[:200], products[200 : 200 + BATCH]
    scripts = {
        "api_one": _script([json.dumps(p) for p in single], tmp, "api_one"),
        "api_batch": _script([json.dumps({"products": rows})], tmp, "api_batch"),
        "mlflow_one": _script([json.dumps({"dataframe_records": [p]}) for p in single], tmp, "mlflow_one"),
        "mlflow_batch": _script([json.dumps({"dataframe_records": rows})], tmp, "mlflow_batch"),
    }
    bin_dir = str(Path(sys.executable).parent)  # `mlflow models serve` runs `uvicorn` from PATH
    mlflow_env = env | {
        "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
        "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
    }
    mlflow = str(Path(sys.executable).with_name("mlflow"))
    results: dict[tuple[str, str, int], dict[str, Load]] = {}
    photo: tuple[float, float, str] | None = None
    feedback: dict[int, Load] = {}
    with _half_speed() as half:
        speeds = [("full", None), *([("half", half)] if isinstance(half, HalfSpeed) else [])]
        slowdown = half.slowdown() if isinstance(half, HalfSpeed) else None
        for cpu, slow in speeds:
            full = cpu == "full"
            for n_workers in (1, 2):
                port = _free_port()
                base = f"http://127.0.0.1:{port}"
                api = [sys.executable, "-m", "core", "serve", "--port", str(port)]
                api += ["--workers", str(n_workers), "--log-level", "warning"]
                log = tmp / f"api-{cpu}-{n_workers}.log"
                with _server(api, env, root, f"{base}/ready", log, slow) as pid:
                    results[("api", cpu, n_workers)] = _measure(
                        pid,
                        f"{base}/predict",
                        f"{base}/predict/batch",
                        scripts["api_one"],
                        scripts["api_batch"],
                        n_workers,
                        sequential=full,
                    )
                    if full and n_workers == 1:
                        photo = _photo_latency(base, raw)
                    if full:
                        database = root / "data" / "inference.db"
                        prefix = f"bench-fb-{n_workers}-"
                        feedback[n_workers] = _feedback_latency(
                            base, database, tmp, single, prefix, review_token
                        )
                port = _free_port()
                base = f"http://127.0.0.1:{port}"
                serve = [mlflow, "models", "serve", "-m", MODEL_URI, "--env-manager", "local"]
                serve += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(n_workers)]
                log = tmp / f"mlflow-{cpu}-{n_workers}.log"
                with _server(serve, mlflow_env, root, f"{base}/ping", log, slow) as pid:
                    results[("mlflow", cpu, n_workers)] = _measure(
                        pid,
                        f"{base}/invocations",
                        f"{base}/invocations",
                        scripts["mlflow_one"],
                        scripts["mlflow_batch"],
                        n_workers,
                        sequential=full,
                    )
    table = _rows(results, half if isinstance(half, str) else f"{slowdown:.1f}")
    if photo is not None:
        p50, p95, views = photo
        label = f"Serving: this API, 1 client, title + photo requests (1 worker; views: {views})"
        table.insert(1, (label, f"p50 {p50:.1f} / p95 {p95:.1f} ms", "p50 < 25 ms"))
    failed = int(table[-1][1]) + sum(load.errors for load in feedback.values())
    table[-1:] = [*_feedback_rows(feedback), (table[-1][0], f"{failed}", "0")]
    return table


def _feedback_rows(feedback: dict[int, Load]) -> list[Row]:
    return [
        (
            f"Review: POST /feedback, 16 concurrent clients, a distinct prediction each "
            f"({n} worker{'s' if n > 1 else ''})",
            f"{load.latency()}, {load.rps:,.0f} req/s",
            "p99 < 20 ms" if n == 2 else "—",
        )
        for n, load in sorted(feedback.items())
    ]


def _rows(r: dict[tuple[str, str, int], dict[str, Load]], slow: str) -> list[Row]:
    """Each load on this API beside `mlflow models serve` on the same model, workers and CPU (`slow`:
    how many times slower the slowed cores were, or why there were none)."""
    errors = sum(load.errors for runs in r.values() for load in runs.values())
    api1, ml1 = r[("api", "full", 1)]["sequential"], r[("mlflow", "full", 1)]["sequential"]
    rows: list[Row] = [
        (
            "Serving: this API, 1 client, text requests (1 worker)",
            f"{api1.latency()}, {api1.rps:,.0f} req/s",
            "p50 < 5 ms",
        ),
        (
            "Serving: `mlflow models serve`, same model and load (1 worker)",
            f"{ml1.latency()}, {ml1.rps:,.0f} req/s",
            "—",
        ),
    ]
    for cpu in ("full", "half"):
        if ("api", cpu, 1) not in r:
            continue
        speed = "" if cpu == "full" else f"; every core at half speed: {slow}× slower, measured"
        for n in (1, 2):
            api, ml = r[("api", cpu, n)]["concurrent"], r[("mlflow", cpu, n)]["concurrent"]
            rows.append(
                (
                    f"Serving: 16 concurrent clients, text requests ({_workers(n)}{speed}): {VERSUS}",
                    f"{_p99(api)} · {_p99(ml)} ({api.rps / ml.rps:.1f}×)",
                    "p99 < 50 ms, ≥ 2×",
                )
            )
        for n in (1, 2):
            api, ml = r[("api", cpu, n)]["batch"], r[("mlflow", cpu, n)]["batch"]
            clients = f"{n} client{'s' if n > 1 else ''}"
            rows.append(
                (
                    f"Serving: batches of {BATCH:,} products, {clients} ({_workers(n)}{speed}): {VERSUS}",
                    f"{api.rps * BATCH:,.0f} · {ml.rps * BATCH:,.0f} rows/s ({api.rps / ml.rps:.2f}×)",
                    "≥ 1× (never slower)" + (", ≥ 5,000 rows/s" if n == 2 and not speed else ""),
                )
            )
    if ("api", "half", 1) not in r:
        rows.append(("Serving: every core at half speed", f"skipped: {slow}", "—"))
    rows.append(("Serving: failed requests over every run above", f"{errors}", "0"))
    return rows


def _p99(load: Load) -> str:
    return f"{load.rps:,.0f} req/s, p99 {load.p99_ms:.0f} ms"


def _workers(n: int) -> str:
    return f"{n} worker{'s' if n > 1 else ''} each"


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as folder:
        for row in run(Path(folder), os.cpu_count() or 1):
            print(" | ".join(row))
