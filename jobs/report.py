"""The run report: index.html (funnel, plots, the training run) and viewer.html (documents as the
trainer reads them), built by pipeline/report.py from a run folder's stage outputs.

    python -m jobs.report RUN_DIR [--out DIR]   (make report)
"""
from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.report import build


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="jobs.report", description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a run folder with stage outputs (e.g. out/demo)")
    parser.add_argument("--out", help="where to write the report (default RUN/report)")
    args = parser.parse_args(argv)
    index = build(Path(args.run), Path(args.out) if args.out else None)
    print(f"report: {index}\nviewer: {index.parent / 'viewer.html'}")
    return index


if __name__ == "__main__":
    main()
