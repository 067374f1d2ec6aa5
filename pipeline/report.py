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

import duckdb
import yaml

from filters.text import METRICS
from pipeline.filtering import document_judged_scores

STAGES = ["extract", "filter", "dedup", "images", "shards"]


def _stats(run: Path, stage: str) -> dict | None:
    path = run / stage / "_stats.json"
    return json.loads(path.read_text()) if path.exists() else None


def _config(run: Path, stage: str) -> dict:
    path = run / stage / "_config.yaml"
    return yaml.safe_load(path.read_text()) if path.exists() else {}


def _parts(run: Path, stage: str, rejected: bool = False) -> str | None:
    folder = run / stage / ("_rejected" if rejected else "")
    return f"'{folder}/*.parquet'" if list(folder.glob("*.parquet")) else None


def _query(sql: str) -> list[tuple]:
    return duckdb.sql(sql).fetchall()


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=90)
    _plt().close(fig)
    return name


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
        stats = _stats(run, stage)
        docs = stats.get("docs", {"in": 0, "out": 0, "dropped": {}})  # a failed stage counted none
        parts = _parts(run, stage)
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
    paragraphs = _query(f"select coalesce(sum(len(string_split(t, chr(10) || chr(10)))), 0) "
                        f"from (select unnest(texts) t from {parts}) where t is not null")[0][0]
    images = _query(f"select count(u) from (select unnest(images) u from {parts})")[0][0]
    return paragraphs, images


def funnel_plot(rows: list[dict], out: Path) -> str:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    names = [r["stage"] for r in rows]
    axes[0].bar(names, [r["out"] for r in rows], color="#3b6ea5")
    axes[0].set_title("documents after each stage")
    for i, r in enumerate(rows):
        axes[0].text(i, r["out"], str(r["out"]), ha="center", va="bottom", fontsize=8)
    axes[1].bar(names, [r["images"] for r in rows], color="#c47f2c")
    axes[1].set_title("image positions after each stage")
    return _save(fig, out, "funnel.png")


def reasons_plot(rows: list[dict], out: Path) -> str:
    plt = _plt()
    labels, values = [], []
    for r in rows:
        for reason, n in sorted(r["dropped"].items(), key=lambda kv: -kv[1]):
            labels.append(f"{r['stage']}: {reason}")
            values.append(n)
    fig, ax = plt.subplots(figsize=(11, max(2.0, 0.28 * len(labels) + 0.8)))
    ax.barh(labels[::-1], values[::-1], color="#a33b3b")
    ax.set_title("documents dropped, by stage and reason")
    return _save(fig, out, "drops.png")


# ---------------------------------------------------------------- distributions

def metric_plots(run: Path, out: Path) -> list[str]:
    kept, rejected = _parts(run, "filter"), _parts(run, "filter", rejected=True)
    if kept is None:
        return []
    thresholds = _config(run, "filter").get("filter", {})
    doc_limits = thresholds.get("document", {})
    selects = [f"select 'kept' k, lang_score, scores, prose_scores, lang from {kept}"]
    if rejected:
        selects.append(f"select 'rejected' k, lang_score, scores, prose_scores, lang from {rejected} "
                       "where scores is not null and scores.words > 0")  # empty texts have no metrics
    # what the document rules judged: a document with enough prose on its prose, one of structure without
    # its prose floors
    judge_words = thresholds.get("prose_judge_words") or 0
    flagged = tuple(sorted((thresholds.get("words", {}).get("flagged") or {}).items()))
    table = [(k, lang_score, document_judged_scores(scores, prose, lang, judge_words, flagged))
             for k, lang_score, scores, prose, lang in duckdb.sql(" union all ".join(selects)).fetchall()]
    plt = _plt()
    # one panel per score column, each with the bounds the config gave it under filter.document
    panels = [("lang_score", None, None)] + [
        (m.name, f"min_{m.name}" if "min" in m.bounds else None, f"max_{m.name}" if "max" in m.bounds else None)
        for m in METRICS] + [("perplexity", None, None)]
    fig, axes = plt.subplots(2, (len(panels) + 1) // 2, figsize=(2.7 * ((len(panels) + 1) // 2), 6))
    for ax in axes.ravel()[len(panels):]:
        ax.set_axis_off()
    for ax, (name, low, high) in zip(axes.ravel(), panels):
        ax.set_title(name + (" (document, as judged)" if name != "lang_score" else ""), fontsize=9)
        ax.tick_params(labelsize=7)
        measured = False
        for label, color in (("kept", "#3b6ea5"), ("rejected", "#a33b3b")):
            values = [(row[1] if name == "lang_score" else (row[2] or {}).get(name)) for row in table if row[0] == label]
            values = [v for v in values if v is not None]
            if values:
                measured = True
                ax.hist(values, bins=30, alpha=0.6, color=color, label=f"{label} ({len(values)})")
        if not measured:  # perplexity without a KenLM model
            ax.text(0.5, 0.5, "not measured in this run", ha="center", va="center", fontsize=8, transform=ax.transAxes)
            continue
        limits = [thresholds.get("lang", {}).get("min_score")] if name == "lang_score" else \
            [thresholds.get("perplexity", {}).get("max")] if name == "perplexity" else \
            [doc_limits.get(low) if low else None, doc_limits.get(high) if high else None]
        for limit in limits:
            if limit is not None:
                ax.axvline(limit, color="black", linestyle="--", linewidth=1)
    axes.ravel()[0].legend(fontsize=7)
    return [_save(fig, out, "filter-metrics.png")]


def images_per_doc_plot(run: Path, out: Path) -> list[str]:
    kept, rejected = _parts(run, "images"), _parts(run, "images", rejected=True)
    if kept is None:
        return []
    cfg = _config(run, "images").get("images", {})
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for parts, label, color in ((kept, "kept", "#3b6ea5"), (rejected, "rejected", "#a33b3b")):
        if parts:
            counts = [r[0] for r in _query(f"select count(u) from (select doc_id, unnest(images) u from {parts}) "
                                           f"group by doc_id")]
            counts += [0] * (_query(f"select count(*) from {parts}")[0][0] - len(counts))
            ax.hist(counts, bins=range(0, max(counts + [cfg.get("max_images", 30)]) + 2), alpha=0.6, color=color,
                    label=label)
    for limit in (cfg.get("min_images"), cfg.get("max_images")):
        if limit is not None:
            ax.axvline(limit, color="black", linestyle="--", linewidth=1)
    ax.set_title("images per document after download")
    ax.legend(fontsize=7)
    return [_save(fig, out, "images-per-doc.png")]


def words_plot(run: Path, out: Path) -> list[str]:
    final = next((s for s in ("shards", "images", "dedup") if _parts(run, s)), None)
    if final is None or not _parts(run, "filter"):
        return []
    words = [r[0] for r in _query(f"select scores.words from {_parts(run, final)} where scores is not null")]
    limits = _config(run, "filter").get("filter", {}).get("document", {})
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(words, bins=30, color="#3b6ea5")
    for key in ("min_words", "max_words"):
        if limits.get(key) is not None:
            ax.axvline(limits[key], color="black", linestyle="--", linewidth=1)
    ax.set_title(f"words per document ({final} output)")
    return [_save(fig, out, "words-per-doc.png")]


def domains_and_clusters(run: Path, out: Path) -> tuple[list[str], list[tuple]]:
    plots, plt = [], _plt()
    final = next((s for s in ("shards", "images", "dedup", "filter", "extract") if _parts(run, s)), None)
    top = _query(f"select domain, count(*) n from {_parts(run, final)} group by 1 order by n desc, domain limit 15") \
        if final else []
    if top:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.barh([d for d, _ in top][::-1], [n for _, n in top][::-1], color="#3b6ea5")
        ax.set_title(f"top domains ({final} output)")
        ax.tick_params(labelsize=7)
        plots.append(_save(fig, out, "domains.png"))
    clusters = run / "dedup" / "_clusters"
    if list(clusters.glob("*.parquet")):
        sizes = [r[0] for r in _query(f"select size from '{clusters}/*.parquet'")]
        if sizes:
            fig, ax = plt.subplots(figsize=(6, 3.2))
            ax.hist(sizes, bins=range(2, max(sizes) + 2), color="#c47f2c")
            ax.set_title(f"near-duplicate cluster sizes ({len(sizes)} clusters)")
            plots.append(_save(fig, out, "clusters.png"))
    return plots, top


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def training_plots(run: Path, out: Path) -> list[str]:
    """Per training run: the loss curve beside the held-out loss with the right and with shuffled images
    (the gap is what the model learned from the images), then its health over the steps."""
    plots = []
    plt = _plt()
    for path in sorted(run.glob("train-*/metrics.jsonl")):
        name, records = path.parent.name, _records(path)
        if not records:
            continue
        steps = [r["step"] for r in records]
        fig, (loss_ax, eval_ax) = plt.subplots(1, 2, figsize=(10, 3.2), gridspec_kw={"width_ratios": [3, 2]})
        loss_ax.plot(steps, [r["loss"] for r in records], label="training loss")
        evals = [(r["step"], r["eval_loss"]) for r in records if "eval_loss" in r]
        if evals:
            loss_ax.plot(*zip(*evals), "o-", label="held-out loss")
        spikes = [(r["step"], r["loss"]) for r in records if r.get("skipped")]
        if spikes:
            loss_ax.plot(*zip(*spikes), "rx", label=f"spike, update skipped ({len(spikes)})")
        loss_ax.set_xlabel("step")
        loss_ax.set_title(f"{name}: loss")
        loss_ax.legend(fontsize=7)
        held_out = path.parent / "eval.json"
        if held_out.exists():
            result = json.loads(held_out.read_text())
            groups = [("all text", "eval_loss"), ("text after an image", "after_image_loss")]
            for k, (which, color) in enumerate((("right", "#2c7fb8"), ("shuffled", "#c47f2c"))):
                values = [result[which][key] for _, key in groups]
                label = f"{which} images"
                bars = eval_ax.bar([g + 0.38 * k for g in range(len(groups))], values, 0.36, label=label, color=color)
                eval_ax.bar_label(bars, fmt="%.3f", fontsize=7)
            eval_ax.set_xticks([g + 0.19 for g in range(len(groups))], [g for g, _ in groups])
            eval_ax.set_ylabel("loss per token")
            gap = result["shuffled"]["after_image_loss"] - result["right"]["after_image_loss"]
            eval_ax.set_title(f"held out, {result['right']['docs']} docs at step {result['step']}: "
                              f"shuffling costs {gap:+.3f} nats", fontsize=9)
            eval_ax.legend(fontsize=7)
        else:
            eval_ax.text(0.5, 0.5, "no held-out evaluation\n(--eval-shards or holdout)", ha="center", va="center")
            eval_ax.set_axis_off()
        plots.append(_save(fig, out, f"{name}-loss.png"))
        if "attn_gate" in records[0]:
            plots.append(health_plot(name, records, out))
    return plots


def health_plot(name: str, records: list[dict], out: Path) -> str:
    plt = _plt()
    steps = [r["step"] for r in records]
    fig, axes = plt.subplots(2, 2, figsize=(10, 5.4))
    panels = [("attn_gate", "tanh(attention gate) per block"), ("xattn_rms", "RMS a block adds to image tokens"),
              ("xattn_grad_norm", "gradient norm per block")]
    for ax, (key, title) in zip(axes.flat, panels):
        for block in range(len(records[0][key])):
            ax.plot(steps, [r[key][block] for r in records], label=f"block {block}", lw=1)
        ax.set_title(title, fontsize=9)
    axes[1, 0].plot(steps, [r["resampler_grad_norm"] for r in records], "k--", lw=1, label="resampler")
    axes[1, 0].set_yscale("log")
    axes[1, 0].legend(fontsize=6, ncol=2)
    rate = axes[1, 1]
    rate.plot(steps, [r["tokens"] / r["seconds"] for r in records], label="tokens/s")
    rate.plot(steps, [r["images"] / r["seconds"] for r in records], label="images/s")
    rate.set_yscale("log")
    rate.set_title("throughput per step", fontsize=9)
    rate.legend(fontsize=7)
    for ax in axes[1]:
        ax.set_xlabel("step")
    fig.suptitle(f"{name}: health", fontsize=10)
    return _save(fig, out, f"{name}-health.png")


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
        for text, url, meta, data in zip(row["texts"], row["images"], row["image_meta"], row["image_bytes"]):
            if text is not None:
                parts.append("".join(f"<p>{html.escape(p)}</p>" for p in text.split("\n\n")))
                continue
            hover = " | ".join(f"{k}: {meta[k]}" for k in ("alt", "caption") if meta and meta.get(k)) or url
            name = _thumbnail(data, out / "img", f"{row['doc_id'][:16]}-{len(parts)}.jpg")
            if name:
                caption = html.escape((meta or {}).get("caption") or "")
                parts.append(f'<figure><img src="img/{name}" title="{html.escape(hover)}" alt="{html.escape(hover)}">'
                             f"{f'<figcaption>{caption}</figcaption>' if caption else ''}</figure>")
        cards.append(f'<article class="doc"><h3><a href="{html.escape(row["url"])}">{html.escape(row["title"] or row["url"])}'
                     f'</a></h3><div class="meta">{html.escape(row["domain"] or "")} · {row.get("lang") or ""} · '
                     f'{sum(u is not None for u in row["images"])} images</div>{"".join(parts)}</article>')
    return cards


def rejected_documents(run: Path, per_stage: int) -> list[str]:
    cards = []
    for stage in STAGES:
        parts = _parts(run, stage, rejected=True)
        if not parts:
            continue
        rows = _query(f"select distinct on (reason) reason, doc_id, url, texts, images from {parts} "
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


def build(run: Path, out: Path | None = None, sample: int = 20) -> Path:
    """Write index.html, viewer.html and their PNGs under `out` (default RUN/report); returns index.html."""
    out = out or run / "report"
    out.mkdir(parents=True, exist_ok=True)
    rows = funnel(run)
    plots = [funnel_plot(rows, out), reasons_plot(rows, out)] if rows else []
    plots += words_plot(run, out) + metric_plots(run, out) + images_per_doc_plot(run, out)
    more, top = domains_and_clusters(run, out)
    plots += more + training_plots(run, out)
    dedup = _stats(run, "dedup") or {}
    images = (_stats(run, "images") or {}).get("urls", {})
    sections = [
        "<h1>webweave run report</h1>",
        f"<p>Run folder <code>{html.escape(str(run))}</code>. <a href='viewer.html'>Open the document viewer</a>.</p>",
        "<h2>Funnel</h2>", funnel_table(rows),
        "<h2>Image downloads</h2>" + (f"<p>{images.get('unique', 0)} unique URLs: "
                                      f"{html.escape(json.dumps(images.get('status', {})))}; reasons "
                                      f"{html.escape(json.dumps(images.get('reasons', {})))}</p>" if images else "<p>no images stage</p>"),
        "<h2>Evaluation-set matches (decontamination)</h2>"
        f"<p>{html.escape(json.dumps(dedup.get('eval_matches_by_set', {})))}; near-duplicate clusters: "
        f"{dedup.get('near_duplicate_clusters', 0)}</p>",
        "<h2>Top domains</h2><p>" + html.escape(", ".join(f"{d} ({n})" for d, n in top)) + "</p>",
        "<h2>Plots</h2>" + "".join(f'<img class="plot" src="{p}" alt="{p}">' for p in plots),
    ]
    (out / "index.html").write_text(_page("webweave report", "".join(sections)), encoding="utf-8")
    kept, rejected = kept_documents(run, out, sample), rejected_documents(run, 4)
    viewer = ("<h1>Documents</h1><p><a href='index.html'>Back to the report</a>. Kept documents are shown as the "
              "trainer reads them (texts and images in order; hover an image for its alt text and caption), then "
              "a sample of rejected documents per stage and reason.</p>"
              f"<h2>Kept ({len(kept)} of the first shard)</h2>{''.join(kept) or '<p>no shards yet</p>'}"
              f"<h2>Rejected</h2>{''.join(rejected) or '<p>none</p>'}")
    (out / "viewer.html").write_text(_page("webweave documents", viewer), encoding="utf-8")
    return out / "index.html"
