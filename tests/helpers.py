"""Assertions the job tests share."""
import pyarrow as pa

from pipeline.schema import document_problems


def validate_table(table: pa.Table) -> None:
    """Raise ValueError naming the first invalid document of a docs table."""
    for row in table.select(["doc_id", "texts", "images", "image_meta"]).to_pylist():
        problems = document_problems(row)
        if problems:
            raise ValueError(f"document {row['doc_id']}: {'; '.join(problems)}")


# The transform of `red_classifier`, as --set overrides: 8×8 squash, RGB, 0..1, channels first.
RED_CLASSIFIER_SETTINGS = ["images.nsfw.fit=squash", "images.nsfw.resize=8", "images.nsfw.crop=8",
                           "images.nsfw.jpeg_roundtrip=false", "images.nsfw.channels=rgb",
                           "images.nsfw.scale=0.00392156862745098", "images.nsfw.mean=[0,0,0]",
                           "images.nsfw.std=[1,1,1]", "images.nsfw.layout=nchw", "images.nsfw.unsafe_outputs=[0]"]


def red_classifier(path) -> str:
    """A stand-in safety model as an ONNX file: its output is the mean of each channel, so with
    unsafe_outputs [0] an image's score is how red it is, and a test flags the images it chooses."""
    import onnx
    from onnx import TensorProto, helper

    pixels = helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["n", 3, 8, 8])
    means = helper.make_tensor_value_info("means", TensorProto.FLOAT, ["n", 3])
    node = helper.make_node("ReduceMean", ["pixels"], ["means"], axes=[2, 3], keepdims=0)
    model = helper.make_model(helper.make_graph([node], "red", [pixels], [means]),
                              opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.save(model, str(path))
    return str(path)
