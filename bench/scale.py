"""Every stage's cost as the input grows, on a Spark standalone cluster, with Common-Crawl-like WARCs.

    python -m bench.scale [--warcs 1 2 4] [--pages-per-warc 35000] [--master spark://HOST:PORT] [--output DIR]

Builds the WARCs (bench.crawl: real pages of ../shared/data, skewed hosts, exact and edited copies, a
50 MB page and a 10,000-image page), then for each N runs extract → filter → dedup → images → shards
through spark-submit, with the code shipped as --py-files as the README tells cluster users to. Without
--master it starts a standalone master and worker on 127.0.0.1 (two executors of one core, as `make
cluster-demo`). Between dedup and images the image URLs are pointed at the loopback image server, the
offline stand-in for the web (as in `make demo`); that step is not timed.

Per stage it prints documents read per core-second (the executors' task time, from Spark's event log),
the share of the wall time, the peak memory of an executor (its JVM and Python workers together,
proportional set size) and of the driver, the shuffle bytes read and written, output bytes per document,
the longest task, `linearity` (core-seconds per document at the largest N over the smallest) and, from a
least-squares fit over the N, each stage's fixed and marginal cost. It checks that every stage's stats
balance (in = out + every reason), where the extremes ended, and that at the smallest N the cluster's
output equals a local-mode run's byte for byte. Last line: key=value pairs for all of it.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pyarrow.parquet as pq

from bench.crawl import GALLERY_URL, GIANT, HUGE_URL, CrawlShape, crawl_warcs
from demo.cluster import StandaloneCluster, outputs
from demo.image_server import ImageServer, localize_docs
from tools.dist import build_zip, compiled_modules

ROOT = Path(__file__).resolve().parent.parent
STAGES = ["extract", "filter", "dedup", "images", "shards"]
EXECUTOR = "org.apache.spark.executor.CoarseGrainedExecutorBackend"


def tree_memory(process: psutil.Process) -> int:
    """Proportional set size of a process and its descendants: the forked Python workers share pages,
    which RSS would count once per worker."""
    total = 0
    for p in [process, *process.children(recursive=True)]:
        try:
            total += p.memory_full_info().pss
        except psutil.Error:
            pass
    return total


class MemoryPeaks(threading.Thread):
    """Samples, every `interval` seconds, the memory of each executor process on this machine (found by
    its main class, wherever the launcher put it in the process tree) and of the driver (the spark-submit
    process tree); `peaks()` gives the largest seen since `reset()`."""

    def __init__(self, interval: float = 0.5):
        super().__init__(daemon=True)
        self.interval = interval
        self.driver: int | None = None
        self.executor_peak = self.driver_peak = 0
        self.done = threading.Event()

    def reset(self, driver: int | None) -> None:
        self.driver, self.executor_peak, self.driver_peak = driver, 0, 0

    def run(self) -> None:
        while not self.done.wait(self.interval):
            for process in psutil.process_iter(["cmdline"]):
                try:
                    if EXECUTOR in " ".join(process.info["cmdline"] or []):
                        self.executor_peak = max(self.executor_peak, tree_memory(process))
                except psutil.Error:
                    pass  # it ended between the listing and the reading
            if self.driver is not None:
                try:
                    self.driver_peak = max(self.driver_peak, tree_memory(psutil.Process(self.driver)))
                except psutil.Error:
                    pass

    def peaks(self) -> tuple[int, int]:
        return self.executor_peak, self.driver_peak


def event_log_totals(event_log: Path) -> dict:
    """Shuffle bytes read and written, task time and the longest task, summed over an application's event log."""
    read = written = task_ms = longest_ms = 0
    for line in event_log.read_text().splitlines():
        event = json.loads(line)
        if event.get("Event") != "SparkListenerTaskEnd" or not event.get("Task Metrics"):
            continue
        metrics = event["Task Metrics"]
        shuffle_read = metrics.get("Shuffle Read Metrics", {})
        read += shuffle_read.get("Remote Bytes Read", 0) + shuffle_read.get("Local Bytes Read", 0)
        written += metrics.get("Shuffle Write Metrics", {}).get("Shuffle Bytes Written", 0)
        info = event["Task Info"]
        duration = info["Finish Time"] - info["Launch Time"]
        task_ms += duration
        longest_ms = max(longest_ms, duration)
    return {"shuffle_read": read, "shuffle_written": written, "task_s": task_ms / 1000, "longest_task_s": longest_ms / 1000}


def stage_args(stage: str, inputs: list[str], output: Path, port: int) -> list[str]:
    args = ["--input", *inputs, "--output", str(output)]
    if stage == "images":
        args += ["--set", f"images.allow_hosts=['127.0.0.1:{port}']"]
    return args


def balance(stats: dict) -> bool:
    docs = stats["docs"]
    return docs["in"] == docs["out"] + sum(docs["dropped"].values()) and not stats["units"]["failed"]


def pages_in(stage: str, stats: dict) -> int:
    """The documents a stage read; for extract, the response records (not requests, metadata, warcinfo)."""
    docs = stats["docs"]
    if stage == "extract":
        return docs["in"] - sum(n for reason, n in docs["dropped"].items() if reason.startswith("record_"))
    return docs["in"]


def output_bytes(folder: Path) -> int:
    """Bytes of what a stage hands on: its parquet parts, and the images stage's _images table."""
    parts = [*folder.glob("*.parquet"), *(folder / "_images").glob("*.parquet")]
    return sum(p.stat().st_size for p in parts)


def fate(run: Path, url: str) -> str:
    """Where a page ended: "<stage>:<reason>" for the first stage that rejected it, else "kept"."""
    for stage in STAGES:
        for part in sorted((run / stage / "_rejected").glob("*.parquet")):
            table = pq.read_table(part, columns=["url", "reason"])
            for row_url, reason in zip(table.column("url").to_pylist(), table.column("reason").to_pylist()):
                if row_url == url and not reason.startswith("record_"):  # its request and metadata records
                    return f"{stage}:{reason.split(':', 1)[0]}"
    return "kept"


class Runner:
    def __init__(self, work: Path, cluster: StandaloneCluster, server: ImageServer, peaks: MemoryPeaks):
        self.work, self.cluster, self.server, self.peaks = work, cluster, server, peaks
        self.py_files = build_zip(work / "dist" / "webweave.zip")
        self.files = compiled_modules(work / "dist")
        self.events = work / "events"
        self.events.mkdir(parents=True, exist_ok=True)

    def submit(self, stage: str, args: list[str]) -> dict:
        before = set(self.events.iterdir())
        conf = {"spark.eventLog.enabled": "true", "spark.eventLog.dir": self.events.as_uri(),
                "spark.eventLog.rolling.enabled": "false", "spark.eventLog.compress": "false"}
        started = time.perf_counter()
        self.cluster.submit(f"jobs/{stage}.py", args, self.py_files, self.files, conf=conf, on_start=self.peaks.reset,
                            log=self.work / "logs" / f"{stage}.log")
        seconds = time.perf_counter() - started
        executor, driver = self.peaks.peaks()
        logs = [p for p in set(self.events.iterdir()) - before if not p.name.endswith(".inprogress")]
        shuffle = event_log_totals(logs[0]) if logs else {}
        return {"seconds": seconds, "executor_memory": executor, "driver_memory": driver, **shuffle}

    def pipeline(self, warcs: list[str], run: Path, on_cluster: bool) -> dict:
        """Every stage on `warcs` into run/<stage>; returns per-stage measurements and stats."""
        if run.exists():
            shutil.rmtree(run)
        result = {}
        previous = None
        for stage in STAGES:
            inputs = warcs if stage == "extract" else [str(run / previous)]
            if stage == "images":
                localize_docs(str(run / "dedup"), str(run / "web"), self.server.url)
                inputs = [str(run / "web")]
            args = stage_args(stage, inputs, run / stage, self.server.port)
            if on_cluster:
                measured = self.submit(stage, args)
            else:
                started = time.perf_counter()
                subprocess.run([sys.executable, "-m", f"jobs.{stage}", *args, "--set", "spark.master=local[2]"],
                               check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                measured = {"seconds": time.perf_counter() - started}
            stats = json.loads((run / stage / "_stats.json").read_text())
            result[stage] = {**measured, "stats": stats, "pages": pages_in(stage, stats), "out": stats["docs"]["out"],
                             "output_bytes": output_bytes(run / stage), "balanced": balance(stats)}
            print(f"  {stage:8s} {result[stage]['pages']:7d} in → {result[stage]['out']:7d} out "
                  f"{measured['seconds']:7.1f} s", flush=True)
            previous = stage
        return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--warcs", type=int, nargs="+", default=[1, 2, 4], help="N values: WARCs per run")
    parser.add_argument("--pages-per-warc", type=int, default=CrawlShape.pages_per_warc)
    parser.add_argument("--master", help="a running standalone master whose workers run on this machine (they read "
                        "the WARCs here and fetch from the loopback image server). "
                        "Default: start a master and a worker on 127.0.0.1")
    parser.add_argument("--cores", type=int, default=2, help="executor cores of the cluster (one per executor)")
    parser.add_argument("--output", default="out/scale")
    args = parser.parse_args(argv)
    out = Path(args.output).resolve()
    shape = CrawlShape(pages_per_warc=args.pages_per_warc)
    ns = sorted(set(args.warcs))

    from tqdm import tqdm

    with tqdm(total=shape.pages_per_warc * ns[-1], desc="building WARCs", unit="page", mininterval=2) as bar:
        warcs = [str(p) for p in crawl_warcs(out / "warcs", shape, ns[-1], progress=lambda: bar.update())]
    runs: dict[int, dict] = {}
    with ImageServer() as server, StandaloneCluster(out / "spark", cores=args.cores, master=args.master) as cluster:
        peaks = MemoryPeaks()
        peaks.start()
        runner = Runner(out, cluster, server, peaks)
        for n in ns:
            print(f"N={n}: {n} WARC(s), {n * shape.pages_per_warc} pages, on {cluster.url}", flush=True)
            runs[n] = runner.pipeline(warcs[:n], out / f"n{n}" / "cluster", on_cluster=True)
        peaks.done.set()
        print(f"N={ns[0]} in local mode, for the comparison", flush=True)
        local = runner.pipeline(warcs[: ns[0]], out / f"n{ns[0]}" / "local", on_cluster=False)
    first = out / f"n{ns[0]}"
    identical = {s: outputs(first / "cluster" / s) == outputs(first / "local" / s) for s in STAGES}
    report = summarize(runs, args.cores, identical, {
        "huge_page": fate(first / "cluster", HUGE_URL), "gallery_page": fate(first / "cluster", GALLERY_URL),
        "giant_domain_pages": giant_pages(first / "cluster"),
        "distinct_images": distinct_images(out / f"n{ns[-1]}" / "cluster")})
    (out / "scale.json").write_text(json.dumps({"runs": {str(n): r for n, r in runs.items()}, "local": local,
                                                **report}, indent=1, default=str))
    return report


def giant_pages(run: Path) -> int:
    total = 0
    for part in (run / "extract").glob("*.parquet"):
        total += sum(d == GIANT for d in pq.read_table(part, columns=["domain"]).column("domain").to_pylist())
    return total


def summarize(runs: dict[int, dict], cores: int, identical: dict, extremes: dict) -> dict:
    """The table and the key=value line. Rates and linearity count core-seconds (the executors' task
    time, Spark's event log): at N=1 a per-WARC stage has one task and leaves the other core idle, which
    wall time would charge to the pages."""
    ns = sorted(runs)
    large = runs[ns[-1]]
    total = {n: sum(r[s]["seconds"] for s in STAGES) for n, r in runs.items()}
    print(f"\n{'stage':8s} " + " ".join(f"{'N=' + str(n) + ' pages/core-s':>17s}" for n in ns) +
          f" {'wall s':>7s} {'share':>6s} {'executor MB':>11s} {'driver MB':>9s} {'shuffle r/w MB':>15s} "
          f"{'bytes/doc':>9s} {'longest task s':>14s} {'linearity':>9s}")
    line = {}
    for s in STAGES:
        rates = [runs[n][s]["pages"] / max(runs[n][s]["task_s"], 1e-9) for n in ns]
        linearity = rates[0] / rates[-1]
        share = large[s]["seconds"] / total[ns[-1]]
        executor = max(runs[n][s]["executor_memory"] for n in ns) / 2**20
        driver = max(runs[n][s]["driver_memory"] for n in ns) / 2**20
        per_doc = large[s]["output_bytes"] / max(1, large[s]["out"])
        print(f"{s:8s} " + " ".join(f"{r:17.1f}" for r in rates) +
              f" {large[s]['seconds']:7.1f} {share:6.1%} {executor:11.0f} {driver:9.0f} "
              f"{large[s]['shuffle_read'] / 2**20:7.1f}/{large[s]['shuffle_written'] / 2**20:<7.1f} "
              f"{per_doc:9.0f} {large[s]['longest_task_s']:14.1f} {linearity:9.2f}")
        line.update({f"{s}_pages_per_core_s": round(rates[-1], 2), f"{s}_wall_s": round(large[s]["seconds"], 1),
                     f"{s}_share": round(share, 3), f"{s}_executor_mb": round(executor), f"{s}_driver_mb": round(driver),
                     f"{s}_shuffle_read_mb": round(large[s]["shuffle_read"] / 2**20, 2),
                     f"{s}_shuffle_written_mb": round(large[s]["shuffle_written"] / 2**20, 2),
                     f"{s}_bytes_per_doc": round(per_doc), f"{s}_longest_task_s": round(large[s]["longest_task_s"], 1),
                     f"{s}_linearity": round(linearity, 3)})
    balanced = all(runs[n][s]["balanced"] for n in ns for s in STAGES)
    pages = {n: runs[n]["extract"]["pages"] for n in ns}
    print("\nwall: " + ", ".join(f"N={n}: {total[n]:.0f} s for {pages[n]} pages" for n in ns) +
          f" ({cores} executor cores)")
    print(f"stats balance at every N: {balanced}; cluster = local mode at N={ns[0]}: {identical}")
    print(f"extremes: {extremes}")
    line.update({"cores": cores, "pages": pages[ns[-1]], "wall_s": round(total[ns[-1]], 1), "balanced": balanced,
                 "identical_to_local": all(identical.values()), **extremes})
    if len(ns) > 1:
        line.update(marginal(runs, ns))
    print(" ".join(f"{k}={v}" for k, v in line.items()))
    return {**line, "identical": identical}


def fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least squares y = fixed + per_x * x."""
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    per_x = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return my - per_x * mx, per_x


def marginal(runs: dict[int, dict], ns: list[int]) -> dict:
    """Each stage's task time as fixed + marginal cost per document it reads (least squares over the
    N), and the images stage's per unique URL and per image kept: the unit costs docs/scale.md carries
    to a whole snapshot."""
    out = {}
    print(f"\n{'stage':8s} {'fixed core-s':>12s} {'core-ms per doc in':>18s}")
    for s in STAGES:
        fixed, per_doc = fit([runs[n][s]["pages"] for n in ns], [runs[n][s]["task_s"] for n in ns])
        print(f"{s:8s} {fixed:12.1f} {per_doc * 1000:18.2f}")
        out.update({f"{s}_fixed_core_s": round(fixed, 1), f"{s}_core_ms_per_doc": round(per_doc * 1000, 3)})
    urls = [runs[n]["images"]["stats"]["urls"] for n in ns]
    task_s = [runs[n]["images"]["task_s"] for n in ns]
    per_url = fit([u["unique"] for u in urls], task_s)[1]
    per_ok = fit([u["status"].get("ok", 0) for u in urls], task_s)[1]
    raw = urls[-1]["bytes_stored"] / max(1, urls[-1]["status"].get("ok", 0))
    print(f"images: {per_url * 1000:.2f} core-ms per unique URL, {per_ok * 1000:.2f} per image kept "
          f"({raw / 1024:.0f} KB each as stored)")
    return {**out, "images_core_ms_per_url": round(per_url * 1000, 3), "images_core_ms_per_ok": round(per_ok * 1000, 3),
            "image_kb": round(raw / 1024)}


def distinct_images(run: Path) -> int:
    """Distinct images (sha256) among those kept: the loopback server answers every URL with one of a few
    real photos, and the checks and the safety model run once per distinct image."""
    found = set()
    for part in (run / "images" / "_images").glob("*.parquet"):
        table = pq.read_table(part, columns=["status", "sha256"])
        found.update(h for s, h in zip(table.column("status").to_pylist(), table.column("sha256").to_pylist())
                     if s == "ok")
    return len(found)


if __name__ == "__main__":
    main()
