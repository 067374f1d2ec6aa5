"""The run report: a static HTML page with PNG plots, and a document viewer, built from a run's
stage outputs and their _stats.json files. Both open offline: no script, font or image comes from
outside the report folder.

    python -m jobs.report RUN_DIR [--out DIR]   (make report)

RUN_DIR holds the stage outputs as `make demo` lays them out: extract/ filter/ dedup/ images/
shards/ and train-*/ (any of them may be missing; the report shows what exists).
"""
from __future__ import annotations

import html
import io
import json
from pathlib import Path

from pipeline.report_plots import (
    domains_and_clusters,
    images_per_doc_plot,
    metric_plots,
    parts_of,
    plt_module,
    query,
    safety_plot,
    safety_summary,
    save_plot,
    stage_stats,
    training_plots,
    words_plot,
)

STAGES = ["extract", "filter", "dedup", "images", "shards"]


# ---------------------------------------------------------------- the funnel

def stages_of(run: Path) -> list[str]:
    """The run's stage folders in pipeline order: the built-in stages, then any other folder with a
    _stats.json (a stage added later shows up without a change here)."""
    found = {p.parent.name for p in run.glob("*/_stats.json")}
    return [s for s in STAGES if s in found] + sorted(found - set(STAGES))


def funnel(run: Path) -> list[dict]:
    """Per stage: documents in/out and drops by reason, paragraphs and images after it, bytes written."""
    rows = []
    for stage in stages_of(run):
        stats = stage_stats(run, stage)
        docs = stats.get("docs", {"in": 0, "out": 0, "dropped": {}})  # a failed stage counted none
        parts = parts_of(run, stage)
        paragraphs, images = _counts(parts) if parts else (0, 0)
        rows.append({
            "stage": stage, "in": docs["in"], "out": docs["out"],
            "dropped": docs["dropped"], "nodes": stats.get("nodes", {}).get("dropped", {}),
            "paragraphs": paragraphs, "images": images, "tally": stats.get("tally", {}),
            "bytes": sum(p.stat().st_size for p in (run / stage).glob("*.parquet")),
            "seconds": stats.get("seconds"), "failed": stats["units"].get("failed", 0),
        })
    return rows


def _counts(parts: str) -> tuple[int, int]:
    """Paragraphs (texts split on blank lines) and image positions of a docs table."""
    paragraphs = query(f"select coalesce(sum(len(string_split(t, chr(10) || chr(10)))), 0) "
                        f"from (select unnest(texts) t from {parts}) where t is not null")[0][0]
    images = query(f"select count(u) from (select unnest(images) u from {parts})")[0][0]
    return paragraphs, images


def funnel_plot(rows: list[dict], out: Path) -> str:
    plt = plt_module()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    names = [r["stage"] for r in rows]
    axes[0].bar(names, [r["out"] for r in rows], color="#3b6ea5")
    axes[0].set_title("documents after each stage")
    for i, r in enumerate(rows):
        axes[0].text(i, r["out"], str(r["out"]), ha="center", va="bottom", fontsize=8)
    axes[1].bar(names, [r["images"] for r in rows], color="#c47f2c")
    axes[1].set_title("image positions after each stage")
    return save_plot(fig, out, "funnel.png")


def reasons_plot(rows: list[dict], out: Path) -> str:
    plt = plt_module()
    labels, values = [], []
    for r in rows:
        for reason, n in sorted(r["dropped"].items(), key=lambda kv: -kv[1]):
            labels.append(f"{r['stage']}: {reason}")
            values.append(n)
    fig, ax = plt.subplots(figsize=(11, max(2.0, 0.28 * len(labels) + 0.8)))
    ax.barh(labels[::-1], values[::-1], color="#a33b3b")
    ax.set_title("documents dropped, by stage and reason")
    return save_plot(fig, out, "drops.png")


# ---------------------------------------------------------------- the viewer

def _thumbnail(data: bytes, out: Path, name: str) -> str | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.thumbnail((360, 360))
            image.convert("RGB").save(out / name, "JPEG", quality=80)
        return name
    except Exception:  # noqa: BLE001 - the viewer shows what it can; jobs.verify is the check
        return None


def kept_documents(run: Path, out: Path, limit: int) -> list[str]:
    files = sorted((run / "shards").glob("part-*.parquet"))
    if not files:
        return []
    import pyarrow.parquet as pq

    (out / "img").mkdir(exist_ok=True)
    cards = []
    first = next(pq.ParquetFile(files[0]).iter_batches(batch_size=limit), None)
    for row in first.to_pylist() if first is not None else []:
        parts = []
        infos = row.get("image_info") or [None] * len(row["images"])
        for text, url, meta, data, info in zip(row["texts"], row["images"], row["image_meta"], row["image_bytes"], infos):
            if text is not None:
                parts.append("".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n\n")))
                continue
            hover = " | ".join(f"{k}: {meta[k]}" for k in ("alt", "caption") if meta and meta.get(k)) or url
            name = _thumbnail(data, out / "img", f"{row['doc_id'][:16]}-{len(parts)}.jpg")
            if name:
                caption = html.escape((meta or {}).get("caption") or "")
                score = (info or {}).get("nsfw")
                safety = f'<div class="meta">nsfw {score:.3f}</div>' if score is not None else ""
                parts.append(f'<figure><img src="img/{name}" title="{html.escape(hover)}" alt="{html.escape(hover)}">'
                             f"{f'<figcaption>{caption}</figcaption>' if caption else ''}{safety}</figure>")
        cards.append(f'<article class="doc"><h3><a href="{html.escape(row["url"])}">{html.escape(row["title"] or row["url"])}'
                     f'</a></h3><div class="meta">{html.escape(row["domain"] or "")} · {row.get("lang") or ""} · '
                     f'{sum(u is not None for u in row["images"])} images</div>{"".join(parts)}</article>')
    return cards


def rejected_documents(run: Path, per_stage: int) -> list[str]:
    cards = []
    for stage in STAGES:
        parts = parts_of(run, stage, rejected=True)
        if not parts:
            continue
        rows = query(f"select distinct on (reason) reason, doc_id, url, texts, images from {parts} "
                      f"order by reason, doc_id limit {per_stage}")
        for reason, doc_id, url, texts, images in rows:
            body = []
            for text, image in zip(texts or [], images or []):
                if text is not None:
                    body.append(f"<p>{html.escape(text[:600])}{'…' if len(text) > 600 else ''}</p>")
                else:
                    body.append(f'<div class="noimg">image not shown: {html.escape(image)}</div>')
            cards.append(f'<article class="doc rejected"><div class="reason">{stage}: {html.escape(reason)}</div>'
                         f'<h3>{html.escape(url or doc_id)}</h3>{"".join(body[:12]) or "<p><i>no text</i></p>"}</article>')
    return cards


# ---------------------------------------------------------------- pages

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right;vertical-align:top}
td:first-child,th:first-child{text-align:left}.reasons{text-align:left;font-size:12px;color:#555}
img.plot{max-width:100%;border:1px solid #eee;margin:.5em 0}.doc{border:1px solid #ddd;border-radius:6px;padding:1em;margin:1em 0}
.doc img{max-width:360px;display:block}.doc figure{margin:.6em 0}.meta{color:#777;font-size:12px}
.rejected{background:#fdf6f6}.reason{font-weight:bold;color:#a33b3b}.noimg{font-size:12px;color:#777;border:1px dashed #ccc;padding:4px}
"""


def _page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body>{body}</body></html>")


def funnel_table(rows: list[dict]) -> str:
    head = "<tr><th>stage</th><th>docs in</th><th>docs out</th><th>paragraphs</th><th>images</th><th>MB</th>" \
           "<th>seconds</th><th>dropped documents</th><th>dropped nodes</th></tr>"
    body = "".join(
        f"<tr><td>{r['stage']}</td><td>{r['in']}</td><td>{r['out']}</td><td>{r['paragraphs']}</td><td>{r['images']}</td>"
        f"<td>{r['bytes'] / 1e6:.1f}</td><td>{r['seconds']}</td>"
        f"<td class=reasons>{html.escape(', '.join(f'{k} {v}' for k, v in r['dropped'].items()))}</td>"
        f"<td class=reasons>{html.escape(', '.join(f'{k} {v}' for k, v in r['nodes'].items()))}</td></tr>"
        for r in rows)
    return f"<table>{head}{body}</table>"


def safety_table(summary: dict | None) -> str:
    if summary is None:
        return "<p>no images stage</p>"
    if not summary["enabled"]:
        return "<p>The NSFW classifier was off in this run (images.nsfw.enabled).</p>"
    removed = (f"{summary['docs_image_nsfw']} documents" if summary["action"] == "drop_document"
               else f"{summary['positions_image_nsfw']} image positions")
    return (f"<p>Classifier <code>{html.escape(summary['model'])}</code>, threshold {summary['threshold']:g}, "
            f"action <code>{html.escape(summary['action'])}</code>: {summary['scored']} downloaded images (unique URLs) scored, "
            f"{summary['unsafe']} at or above the threshold, {summary['undecided']} undecided "
            f"(0.2 to the threshold).</p><table><tr><th>rule</th><th>stage</th><th>removed</th></tr>"
            f"<tr><td>unsafe image (NSFW classifier)</td><td>images</td><td>{removed}</td></tr>"
            f"<tr><td>flagged words in the text</td><td>filter</td><td>{summary['docs_flagged_words']} documents, "
            f"{summary['paragraphs_flagged_words']} paragraphs</td></tr></table>")


def build(run: Path, out: Path | None = None, sample: int = 20) -> Path:
    """Write index.html, viewer.html and their PNGs under `out` (default RUN/report); returns index.html."""
    out = out or run / "report"
    out.mkdir(parents=True, exist_ok=True)
    rows = funnel(run)
    plots = [funnel_plot(rows, out), reasons_plot(rows, out)] if rows else []
    plots += words_plot(run, out) + metric_plots(run, out) + images_per_doc_plot(run, out)
    more, top = domains_and_clusters(run, out)
    safety = safety_summary(run)
    plots += more + safety_plot(run, out, safety) + training_plots(run, out)
    dedup = stage_stats(run, "dedup") or {}
    images = (stage_stats(run, "images") or {}).get("urls", {})
    sections = [
        "<h1>webweave run report</h1>",
        f"<p>Run folder <code>{html.escape(str(run))}</code>. <a href='viewer.html'>Open the document viewer</a>.</p>",
        "<h2>Funnel</h2>", funnel_table(rows),
        "<h2>Image downloads</h2>" + (f"<p>{images.get('unique', 0)} unique URLs: "
                                      f"{html.escape(json.dumps(images.get('status', {})))}; reasons "
                                      f"{html.escape(json.dumps(images.get('reasons', {})))}</p>" if images else "<p>no images stage</p>"),
        "<h2>Safety</h2>" + safety_table(safety),
        "<h2>Evaluation-set matches (decontamination)</h2>"
        f"<p>{html.escape(json.dumps(dedup.get('eval_matches_by_set', {})))}; near-duplicate clusters: "
        f"{dedup.get('near_duplicate_clusters', 0)}</p>",
        "<h2>Top domains</h2><p>" + html.escape(", ".join(f"{d} ({n})" for d, n in top)) + "</p>",
        "<h2>Plots</h2>" + "".join(f'<img class="plot" src="{p}" alt="{p}">' for p in plots),
    ]
    (out / "index.html").write_text(_page("webweave report", "".join(sections)), encoding="utf-8")
    kept, rejected = kept_documents(run, out, sample), rejected_documents(run, 4)
    viewer = ("<h1>Documents</h1><p><a href='index.html'>Back to the report</a>. Kept documents are shown as the "
              "trainer reads them (texts and images in order, each image with its NSFW score; hover an image for its alt "
              "text and caption), then "
              "a sample of rejected documents per stage and reason.</p>"
              f"<h2>Kept ({len(kept)} of the first shard)</h2>{''.join(kept) or '<p>no shards yet</p>'}"
              f"<h2>Rejected</h2>{''.join(rejected) or '<p>none</p>'}")
    (out / "viewer.html").write_text(_page("webweave documents", viewer), encoding="utf-8")
    return out / "index.html"
