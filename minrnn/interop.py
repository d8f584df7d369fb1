"""A checkpoint's model as a safetensors file under PyTorch's names, and back.

The file holds every parameter as a float32 tensor named as minrnn.torch's nn.Module names it (the
recurrent layers' tensors under `rnn.`, as nn.LSTM's own names inside that module; a seq2seq
model's two halves under `enc.` and `dec.`), and in its metadata, under the key "minrnn", a JSON
object with the configuration, the vocabulary and what else the checkpoint holds (labels, the
condition's scaling). Importing reverses it exactly: minrnn -> safetensors -> minrnn is bit-exact.

Reading is done here (every file is untrusted; bfloat16 tensors too); writing uses the safetensors
package, an optional extra (`pip install safetensors`): without it export says so.
"""

import dataclasses
import json
import os
import re
import stat

import numpy as np

from minrnn import __version__, core
from minrnn.errors import UserError
from minrnn.rundir import replacing

FORMAT = "minrnn-safetensors"
VERSION = 1
LAYER = re.compile(r"^(weight|bias)_(ih|hh)_l\d+$")   # nn.RNN/LSTM/GRU's own names


def torch_name(name):
    """minrnn's tensor name -> the name in the file: a layer's tensor moves under `rnn.`, keeping a
    seq2seq half's `enc.` or `dec.` in front."""
    half = name[:4] if name.startswith(("enc.", "dec.")) else ""
    rest = name[len(half):]
    return half + "rnn." + rest if LAYER.match(rest) else name


def safetensors_module():
    try:
        import safetensors.numpy
    except ImportError:
        raise UserError("safetensors files need the safetensors package: pip install safetensors") from None
    return safetensors.numpy


def describe(ck):
    """The metadata of a checkpoint's model: what is needed to rebuild it, as JSON-ready values."""
    cfg = ck.model.config
    return {"format": FORMAT, "version": VERSION, "minrnn": __version__,
            "kind": core.config_kind(cfg), "config": dataclasses.asdict(cfg), "vocab": [int(s) for s in ck.vocab],
            "encoding": ck.encoding, "labels": list(ck.labels),
            "cond_scaling": None if ck.cond_scaling is None else [a.astype(float).tolist() for a in ck.cond_scaling],
            "input_scaling": None if ck.input_scaling is None else [a.astype(float).tolist() for a in ck.input_scaling],
            "meta": ck.meta}


def export_safetensors(ck, path):
    """Write ck's model (its float32 parameters, whatever the checkpoint's precision) to path."""
    st = safetensors_module()
    tensors = {torch_name(name): np.ascontiguousarray(view) for name, view in ck.model.tensors.items()}
    try:
        with replacing(path) as tmp:
            st.save_file(tensors, str(tmp), metadata={"minrnn": json.dumps(describe(ck), sort_keys=True)})
    except Exception as e:   # safetensors reports a failed write in its own exception type
        raise UserError(f"{path}: cannot write it ({getattr(e, 'strerror', None) or e})") from None


# ---- reading: every file is untrusted, and every way it can be wrong is a UserError naming the field

# safetensors' element types (https://github.com/huggingface/safetensors): numpy's, and bfloat16,
# which numpy lacks (the high halves of float32s, widened exactly)
DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
          "I8": "i1", "U8": "u1", "BOOL": "?"}


def json_object(text, path, what):
    """The JSON object text holds; UserError for anything else, a key given twice included."""
    def once(pairs):
        keys = [k for k, _ in pairs]
        twice = next((k for k in keys if keys.count(k) > 1), None)
        if twice is not None:
            raise ValueError(f"the key {twice!r} twice")
        return dict(pairs)
    try:
        value = json.loads(text, object_pairs_hook=once)
    except (TypeError, ValueError, RecursionError) as e:
        raise UserError(f"{path}: {what} is not JSON ({e})") from None
    if not isinstance(value, dict):
        raise UserError(f"{path}: {what} is not a JSON object")
    return value


def open_model_file(path):
    """path open for reading (binary); UserError unless it is a regular file (a FIFO is refused
    rather than waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as e:
        raise UserError(f"{path}: cannot read it ({e.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise UserError(f"{path}: not a file; give a .safetensors file or a PyTorch state dict")
    return os.fdopen(fd, "rb")


def read_safetensors(path, with_tensors=True):
    """(tensors {name: float32 or integer array}, or {} without with_tensors, and the minrnn
    metadata or None) of a safetensors file, read here: its header (8 bytes of length, a JSON
    object), then each tensor's bytes into its own array, every size and offset checked against
    the file first. Without tensors only the header is read."""
    with open_model_file(path) as f:
        size = os.fstat(f.fileno()).st_size
        bad = lambda why: UserError(f"{path}: not a readable safetensors file ({why})")   # noqa: E731
        n = int.from_bytes(f.read(8), "little") if size >= 8 else -1
        if not 0 < n <= size - 8:
            raise bad("its header is cut short")
        header = json_object(f.read(n), path, "its header")
        metadata = header.pop("__metadata__", {})
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise bad("its __metadata__ is not an object of strings")
        tensors = {}
        for name, t in header.items():
            try:
                dtype, shape, (a, b) = t["dtype"], [int(x) for x in t["shape"]], t["data_offsets"]
                width = np.dtype(DTYPES[dtype]).itemsize
            except (KeyError, TypeError, ValueError):
                raise bad(f"tensor {name!r}: no dtype, shape and data_offsets of the format") from None
            if min(shape, default=0) < 0 or not (isinstance(a, int) and isinstance(b, int) and 0 <= a <= b <= size - 8 - n) \
                    or b - a != int(np.prod(shape, dtype=object)) * width:
                raise bad(f"tensor {name!r}: its shape and offsets do not fit the file")
            tensors[name] = (dtype, shape, 8 + n + a, (b - a) // width)
        for name, (dtype, shape, at, count) in tensors.items() if with_tensors else ():
            f.seek(at)
            raw = np.fromfile(f, DTYPES[dtype], count)
            if raw.size != count:   # the file shrank while it was read
                raise bad(f"tensor {name!r} is cut short")
            tensors[name] = ((raw.astype(np.uint32) << 16).view(np.float32) if dtype == "BF16" else raw).reshape(shape)
    return tensors if with_tensors else {}, parse_info(metadata.get("minrnn"), path)


def read_state_dict(path):
    """(tensors {name: array}, the minrnn metadata or None) of a file torch.save wrote: a state dict
    (module.state_dict()), or {"state_dict": ..., "minrnn": metadata} as minrnn.torch.save writes
    it. Read with weights_only: a PyTorch file can hold code, and this runs none."""
    try:
        import torch
    except ImportError:
        raise UserError(f"{path}: reading a PyTorch file needs torch (pip install torch); or save it from "
                        "PyTorch with minrnn.torch.save(module, info, 'FILE.safetensors')") from None
    try:
        saved = torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except Exception as e:   # torch's long advice is about trusting a file's code, which import never runs
        raise UserError(f"{path}: not a PyTorch file of tensors that torch.load reads with weights_only=True "
                        f"({type(e).__name__}); import reads .safetensors files and PyTorch state dicts") from None
    info = None
    if isinstance(saved, dict) and "state_dict" in saved:
        info, saved = saved.get("minrnn"), saved["state_dict"]
    if not isinstance(saved, dict) or not all(isinstance(v, torch.Tensor) for v in saved.values()):
        raise UserError(f"{path}: not a state dict (a dict of named tensors, what module.state_dict() returns)")
    tensors = {str(name): (t.detach().float() if t.is_floating_point() else t.detach()).numpy()
               for name, t in saved.items()}
    return tensors, parse_info(info, path)


def parse_info(text, path):
    """The minrnn metadata (a JSON object) a file carries, or None if it carries none."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise UserError(f"{path}: its minrnn metadata is not JSON text")
    info = json_object(text, path, "its minrnn metadata")
    if info.get("format") != FORMAT:
        raise UserError(f"{path}: its metadata is not minrnn's ({FORMAT})")
    if info.get("version") != VERSION:
        raise UserError(f"{path}: minrnn-safetensors version {info.get('version')}; this minrnn reads {VERSION}")
    return info


def read_model_file(path):
    """(tensors, metadata or None) of a safetensors file (by its name or its first bytes: a header
    length, then JSON) or of anything else torch.save wrote."""
    with open_model_file(path) as f:
        head = f.read(9)
    if head.startswith(b"minrnnCK"):   # minrnn_checkpoint's magic
        raise UserError(f"{path} is a minrnn checkpoint already: sample, eval and the C example run it as it is")
    if str(path).endswith(".safetensors") or head[8:9] == b"{":
        return read_safetensors(path)
    return read_state_dict(path)


def info_like(path):
    """The metadata of the model that a checkpoint or an exported safetensors file holds: what a bare
    state dict lacks (configuration, vocabulary, labels)."""
    if str(path).endswith(".safetensors"):
        info = read_safetensors(path, with_tensors=False)[1]   # the metadata is all --like gives
        if info is None:
            raise UserError(f"--like {path}: no minrnn metadata; give a checkpoint or a file python -m minrnn "
                            "export wrote")
        return info
    try:
        return describe(core.load_checkpoint(path))
    except core.MinrnnError as e:
        raise UserError(f"--like {e}") from None


def config_of(info, path):
    """The configuration the metadata gives (core.config_of_kind's checks, and the library's)."""
    try:
        cfg = core.config_of_kind(info.get("kind"), info.get("config"))
        core.c_config(cfg)
        return cfg
    except (KeyError, TypeError, ValueError, core.MinrnnError) as e:
        raise UserError(f"{path}: its configuration is not one minrnn builds ({e})") from None


def model_from(tensors, cfg, path):
    """The model of cfg with tensors' values: UserError naming the first tensor that is missing,
    unknown, of another shape or not floating point (all checked before the model is allocated: a
    configuration that claims more than its tensors hold is a damaged file, not a lack of memory)."""
    expected = {torch_name(name): shape for name, shape in core.tensor_shapes(cfg)}
    for name in tensors:
        if name not in expected:
            raise UserError(f"{path}: tensor {name!r} is not one of this model's ({', '.join(sorted(expected))})")
    for name, shape in expected.items():
        if name not in tensors:
            raise UserError(f"{path}: tensor {name!r} is missing")
        value = tensors[name]
        if not np.issubdtype(value.dtype, np.floating):
            raise UserError(f"{path}: tensor {name!r} holds {value.dtype}, not floating-point numbers")
        if value.shape != shape:
            raise UserError(f"{path}: tensor {name!r} has shape {tuple(value.shape)} where the configuration says "
                            f"{shape}; the file is probably damaged (or --like is another model's)")
        if not np.all(np.isfinite(value)):
            raise UserError(f"{path}: tensor {name!r} holds NaN or infinite values")
    model = core.model_for(cfg, params=np.zeros(core.param_count(cfg), np.float32))
    for name, view in model.tensors.items():
        view[...] = tensors[torch_name(name)].astype(np.float32)
    return model


def import_model(path, like=None):
    """A Checkpoint (no training state) from a file export_safetensors or minrnn.torch.save wrote, or
    from a PyTorch state dict with `like` (a checkpoint or exported file) giving its configuration
    and vocabulary; like's metadata wins over the file's own."""
    tensors, info = read_model_file(path)
    if like is not None:
        info = info_like(like)
    if info is None:
        raise UserError(f"{path}: no minrnn metadata (the configuration and vocabulary): give --like with the "
                        "checkpoint or .safetensors file the model started from")
    cfg = config_of(info, path)
    try:
        vocab, encoding, labels, scaling = core.checked_contents(cfg, info.get("vocab"), info.get("encoding"),
                                                                 info.get("labels") or [], info.get("cond_scaling"))
        D = getattr(cfg, "input_size", 0)   # (a Seq2seqConfig has none)
        input_scaling = core.checked_scaling(info.get("input_scaling"), D, "input_scaling")
    except ValueError as e:
        raise UserError(f"{path}: its metadata's {e}") from None
    model = model_from(tensors, cfg, path)
    meta = info.get("meta") if isinstance(info.get("meta"), dict) else {}
    return core.Checkpoint(model, vocab, encoding, meta, None, labels, scaling, input_scaling=input_scaling)
