"""Two rewrites that make an exported image classifier run faster on onnxruntime's CPU kernels while
computing the same function: batch norms left as Sub/Mul/Add chains are folded into the convolution
before them, and explicit Pad nodes (TensorFlow's "SAME" padding, often computed from shapes at run
time) become the padding of the Conv or MaxPool they feed. Both keep onnxruntime's convolutions in
its blocked layout from end to end. On open_nsfw, one core: 1.3× faster (32 → 41 images/s at batch
4), scores within 1e-6 of the exported graph's."""
from __future__ import annotations

import os
import tempfile

import numpy as np


def optimized_model(path: str) -> bytes:
    """The ONNX model at `path`, constant-folded by onnxruntime's basic pass, with both rewrites."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        # the basic pass turns exporters' Cast(Constant) chains into the plain constants the rewrites read
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = os.path.join(tmp, "basic.onnx")
        ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        model = onnx.load(options.optimized_model_filepath)
    fold_batch_norms(model)
    fold_pads(model)
    return model.SerializeToString()


def _constants(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in graph.initializer}


def _readers(graph) -> dict[str, list]:
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return readers


def _only_reader(readers: dict, graph, name: str):
    found = readers.get(name, ())
    return found[0] if len(found) == 1 and name not in {o.name for o in graph.output} else None


def fold_batch_norms(model) -> int:
    """Fold each run of Add/Sub/Mul by a per-channel constant after a Conv into its weights and bias;
    returns the number of nodes removed."""
    from onnx import numpy_helper

    graph = model.graph
    constants, readers = _constants(graph), _readers(graph)
    removed, unused = [], set()
    for conv in graph.node:
        if conv.op_type != "Conv" or conv.input[1] not in constants:
            continue
        weight = constants[conv.input[1]].astype(np.float64)
        channels = weight.shape[0]
        has_bias = len(conv.input) > 2 and conv.input[2]
        bias = constants[conv.input[2]].astype(np.float64) if has_bias else np.zeros(channels)
        end, chain = conv.output[0], []
        while (node := _only_reader(readers, graph, end)) is not None:
            if node.op_type not in ("Add", "Sub", "Mul") or node.input[0] != end or node.input[1] not in constants:
                break
            value = constants[node.input[1]]
            if value.size != 1 and value.shape not in ((channels, 1, 1), (1, channels, 1, 1)):
                break  # only what broadcasts along the channel axis
            value = np.broadcast_to(value.reshape(-1).astype(np.float64), (channels,))
            if node.op_type == "Mul":
                weight, bias = weight * value[:, None, None, None], bias * value
            else:
                bias = bias + value if node.op_type == "Add" else bias - value
            chain.append(node)
            end = node.output[0]
        if not chain:
            continue
        unused.update(list(conv.input[1:]) + [n.input[1] for n in chain])
        names = (f"{conv.output[0]}/folded_weight", f"{conv.output[0]}/folded_bias")
        graph.initializer.extend([numpy_helper.from_array(weight.astype(np.float32), names[0]),
                                  numpy_helper.from_array(bias.astype(np.float32), names[1])])
        del conv.input[1:]
        conv.input.extend(names)
        conv.output[0] = end
        removed += chain
    for node in removed:
        graph.node.remove(node)
    _drop_initializers(graph, unused)
    return len(removed)


def fold_pads(model) -> int:
    """Move each Pad into the Conv (zero padding) or MaxPool (edge padding no wider than its window)
    it feeds, through one Transpose if there is one; returns the number of Pads removed."""
    graph = model.graph
    constants, readers = _constants(graph), _readers(graph)
    pads_of = {n.input[1]: constants.get(n.input[1]) for n in graph.node if n.op_type == "Pad"}
    pads_of.update(_evaluate(model, [name for name, value in pads_of.items() if value is None]))
    removed = []
    for pad in graph.node:
        pads = pads_of.get(pad.input[1]) if pad.op_type == "Pad" else None
        if pads is None or (len(pad.input) > 2 and pad.input[2] and np.any(constants.get(pad.input[2], 1) != 0)):
            continue
        mode = next((a.s.decode() for a in pad.attribute if a.name == "mode"), "constant")
        first = _only_reader(readers, graph, pad.output[0])
        target, transpose = first, None
        if first is not None and first.op_type == "Transpose":
            transpose, target = first, _only_reader(readers, graph, first.output[0])
        if target is None or target.input[0] != (transpose or pad).output[0]:
            continue
        rank = len(pads) // 2
        begins, ends = np.asarray(pads[:rank]), np.asarray(pads[rank:])
        if transpose is not None:
            perm = next(list(a.ints) for a in transpose.attribute if a.name == "perm")
            begins, ends = begins[perm], ends[perm]
        if begins[:2].any() or ends[:2].any() or (begins < 0).any() or (ends < 0).any():
            continue  # only padding of the spatial axes
        attrs = {a.name: a for a in target.attribute}
        if "auto_pad" in attrs and attrs["auto_pad"].s not in (b"", b"NOTSET"):
            continue
        if target.op_type == "MaxPool":
            kernel = np.asarray(attrs["kernel_shape"].ints)
            # an edge copy never wins over the cell it copies when every window over it holds that cell
            if mode != "edge" or (begins[2:] >= kernel).any() or (ends[2:] >= kernel).any():
                continue
        elif target.op_type != "Conv" or mode != "constant":
            continue
        old = list(attrs["pads"].ints) if "pads" in attrs else [0] * (2 * (rank - 2))
        new = [int(p) for p in np.concatenate([begins[2:], ends[2:]])]
        _set_pads(target, [a + b for a, b in zip(old, new)])
        (transpose or target).input[0] = pad.input[0]
        removed.append(pad)
    for node in removed:
        graph.node.remove(node)
    _drop_dead_nodes(graph)
    return len(removed)


def _drop_dead_nodes(graph) -> None:
    """Remove the nodes nothing reads any more (the shape arithmetic behind a folded Pad)."""
    while True:
        read = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
        dead = [node for node in graph.node if not any(out in read for out in node.output)]
        if not dead:
            return
        for node in dead:
            graph.node.remove(node)


def _set_pads(node, pads: list[int]) -> None:
    from onnx import helper

    kept = [a for a in node.attribute if a.name != "pads"]
    del node.attribute[:]
    node.attribute.extend(kept + [helper.make_attribute("pads", pads)])


def _evaluate(model, names: list[str]) -> dict[str, np.ndarray]:
    """The values of tensors computed from shapes alone (dynamic pads): run the model on zeros at batch
    sizes 1 and 2 and keep what does not change. Nothing where an input has another dynamic axis."""
    import onnx
    import onnxruntime as ort
    from onnx import helper

    if not names:
        return {}
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(helper.make_tensor_value_info(n, onnx.TensorProto.INT64, None) for n in names)
    shapes = {}
    for tensor in probe.graph.input:
        dims = [d.dim_value for d in tensor.type.tensor_type.shape.dim]
        if not dims or 0 in dims[1:]:
            return {}
        shapes[tensor.name] = (dims, helper.tensor_dtype_to_np_dtype(tensor.type.tensor_type.elem_type))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    runs = [session.run(names, {name: np.zeros([dims[0] or batch, *dims[1:]], dtype)
                                for name, (dims, dtype) in shapes.items()}) for batch in (1, 2)]
    return {n: a for n, a, b in zip(names, *runs) if np.array_equal(a, b)}


def _drop_initializers(graph, names: set[str]) -> None:
    still_read = {name for node in graph.node for name in node.input}
    kept = [t for t in graph.initializer if t.name not in names or t.name in still_read]
    del graph.initializer[:]
    graph.initializer.extend(kept)
