"""`make cluster-demo`: the cluster path, proven on one machine.

Starts a Spark standalone master and one worker (two executors of one core each) on 127.0.0.1 from
the pyspark distribution, runs `spark-submit --master spark://127.0.0.1:PORT --py-files
dist/webweave.zip --files dist/_compiled_*.so jobs/extract.py …` and then jobs/filter.py on its
output, exactly as the README tells cluster users to, checks that both outputs equal a local-mode run
of the same stages, and stops the cluster.

    python -m demo.cluster [WARC ...] [--output DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tools.dist import build_zip, compiled_modules

ROOT = Path(__file__).resolve().parent.parent


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[1]} exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


class StandaloneCluster:
    """A master and one worker on 127.0.0.1, stopped (with their process groups) on exit."""

    def __init__(self, work: Path, cores: int = 2, memory: str = "2g", master: str | None = None):
        self.work, self.cores, self.memory, self.external = work, cores, memory, master is not None
        self.port = free_port()
        self.url = master or f"spark://127.0.0.1:{self.port}"
        self.processes: list[subprocess.Popen] = []
        self.env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_HOME": str(spark_home()),
                    "PYSPARK_PYTHON": sys.executable, "SPARK_WORKER_DIR": str(work / "worker"),
                    "SPARK_LOG_DIR": str(work / "logs")}

    def _start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.work / f"{name}.log", "wb")
        process = subprocess.Popen([str(spark_home() / "bin" / "spark-class"), *args], env=self.env,
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.processes.append(process)
        return process

    def __enter__(self) -> "StandaloneCluster":
        self.work.mkdir(parents=True, exist_ok=True)
        if self.external:
            return self
        master = self._start("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                             "--port", str(self.port), "--webui-port", str(free_port()))
        wait_for_port(self.port, master)
        self._start("worker", "org.apache.spark.deploy.worker.Worker", self.url, "--host", "127.0.0.1",
                    "--cores", str(self.cores), "--memory", self.memory, "--webui-port", str(free_port()),
                    "--work-dir", str(self.work / "worker"))
        return self

    def __exit__(self, *exc) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)

    def submit(self, script: str, args: list[str], py_files: Path, files: list[Path], conf: dict | None = None,
               on_start=None, log: Path | None = None) -> str:
        """spark-submit `script` and return what it printed; `on_start(pid)` is called with the
        spark-submit process id. With `log`, its output goes to that file instead of this terminal."""
        settings = {"spark.executor.cores": "1", "spark.executor.memory": "1g", "spark.cores.max": str(self.cores),
                    "spark.driver.host": "127.0.0.1", "spark.ui.enabled": "false",
                    "spark.pyspark.python": sys.executable, **(conf or {})}
        command = [str(spark_home() / "bin" / "spark-submit"), "--master", self.url,
                   *[x for key, value in settings.items() for x in ("--conf", f"{key}={value}")],
                   "--py-files", str(py_files), *(["--files", ",".join(map(str, files))] if files else []),
                   str(ROOT / script), *args]
        if log:
            log.parent.mkdir(parents=True, exist_ok=True)
            sink = open(log, "ab")
        else:
            print("$ " + " ".join(command), flush=True)
        try:
            process = subprocess.Popen(command, env=self.env, cwd=ROOT, text=not log,
                                       stdout=sink if log else subprocess.PIPE, stderr=subprocess.STDOUT if log else None)
            if on_start:
                on_start(process.pid)
            stdout, _ = process.communicate()
        finally:
            if log:
                sink.close()
        if process.returncode:
            raise subprocess.CalledProcessError(process.returncode, command, stdout)
        if stdout:
            print(stdout, end="", flush=True)
        return stdout or ""


PROBE = """
import json, sys
from pyspark.sql import SparkSession
sc = SparkSession.builder.appName("webweave-probe").getOrCreate().sparkContext
def where(_):
    import pipeline
    try:
        from pipeline.extract import compiled
        return [pipeline.__file__, *compiled.module_files]
    except ImportError as exc:
        return [pipeline.__file__, str(exc)]
print("WEBWEAVE_PROBE " + json.dumps(sorted(set(map(tuple, sc.parallelize(range(4), 4).map(where).collect())))))
"""


def executors_import_from(cluster: StandaloneCluster, py_files: Path, files: list[Path],
                          work: Path) -> list[list[str]]:
    """Where the executors' Python found the project's code (inside the shipped zip, not the checkout)
    and its compiled walk (or why it could not load it), once per distinct answer."""
    script = work / "probe.py"
    script.write_text(PROBE)
    stdout = cluster.submit(str(script), [], py_files, files)
    line = next(x for x in stdout.splitlines() if x.startswith("WEBWEAVE_PROBE "))
    return json.loads(line.split(" ", 1)[1])


def outputs(folder: Path) -> dict:
    """What must match between runs: the bytes of every kept and rejected part and the document
    counts. File names hold a hash of the input path, which differs between the two runs' inputs."""
    return {"kept": sorted(p.read_bytes() for p in folder.glob("*.parquet")),
            "rejected": sorted(p.read_bytes() for p in (folder / "_rejected").glob("*.parquet")),
            "docs": json.loads((folder / "_stats.json").read_text())["docs"]}


def executors_used(work: Path) -> list[int]:
    """Executors the worker launched for each application, in order (one folder each under worker/<app>/;
    the master may start a replacement while an application shuts down, so this is at least two)."""
    return [sum(1 for e in app.iterdir() if e.is_dir()) for app in sorted((work / "worker").glob("app-*"))]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="demo.cluster", description=__doc__.splitlines()[0])
    parser.add_argument("warcs", nargs="*", help="WARC files (default: two of ../shared/data/warc)")
    parser.add_argument("--output", default="out/cluster-demo")
    args = parser.parse_args(argv)
    out = Path(args.output).resolve()
    if out.exists():
        shutil.rmtree(out)  # a fresh comparison every time
    warcs = args.warcs or sorted(str(p) for p in (ROOT.parent / "shared" / "data" / "warc").glob("*.warc.gz"))[:3]
    if not warcs:
        sys.exit("cluster-demo: no WARC files; pass some")
    py_files = build_zip(out / "dist" / "webweave.zip")
    files = compiled_modules(out / "dist")
    stages = [("jobs/extract.py", warcs, "extract"), ("jobs/filter.py", None, "filter")]
    with StandaloneCluster(out / "spark") as cluster:  # master.log, worker.log, executor logs stay here
        print(f"standalone cluster at {cluster.url}: one worker, {cluster.cores} executors of one core", flush=True)
        imported_from = executors_import_from(cluster, py_files, files, out)
        print(f"executors import webweave from {imported_from}", flush=True)
        for script, inputs, name in stages:
            cluster.submit(script, ["--input", *(inputs or [str(out / "cluster" / "extract")]),
                                    "--output", str(out / "cluster" / name)], py_files, files)
    for script, inputs, name in stages:
        module = script.replace("/", ".").removesuffix(".py")
        subprocess.run([sys.executable, "-m", module, "--input", *(inputs or [str(out / "local" / "extract")]),
                        "--output", str(out / "local" / name), "--set", "spark.master=local[2]"],
                       check=True, cwd=ROOT)
    executors = executors_used(out / "spark")
    on_cluster = {name: outputs(out / "cluster" / name) for _, _, name in stages}
    same = {name: on_cluster[name] == outputs(out / "local" / name) for name in on_cluster}
    docs = {name: on_cluster[name]["docs"] for name in on_cluster}
    print(json.dumps({"identical_to_local_mode": same, "executors_per_application": executors,
                      "executors_import_from": imported_from, "docs": docs}, indent=1))
    if not all(same.values()):
        sys.exit("cluster-demo: the cluster's output differs from local mode")
    return {"identical": same, "executors_per_application": executors, "imported_from": imported_from, "docs": docs}


if __name__ == "__main__":
    main()
