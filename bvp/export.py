"""The deployed artefacts: an exported program (torch.export) and a bitmap-sparse state_dict."""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch
from torch import Tensor, nn

from bvp.io import atomic_write_bytes
from bvp.names import EXPORT_FILE

_BITS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)


def pack_bits(mask: Tensor) -> Tensor:
    """Bool tensor -> uint8 bitmap, 8 entries a byte (numpy.packbits order)."""
    flat = mask.flatten().to(torch.uint8)
    flat = torch.cat([flat, flat.new_zeros(-flat.numel() % 8)])
    return (flat.view(-1, 8) * _BITS).sum(1, dtype=torch.uint8)


def unpack_bits(bits: Tensor, numel: int) -> Tensor:
    return ((bits[:, None] & _BITS) > 0).flatten()[:numel]


def encode_sparse(state_dict: dict[str, Tensor]) -> dict[str, object]:
    """Each float tensor as its nonzero values plus a 1-bit-per-entry mask; ints stay as they are."""
    out: dict[str, object] = {}
    for key, t in state_dict.items():
        t = t.detach().cpu()
        if t.is_floating_point():
            mask = t != 0
            out[key] = {"shape": tuple(t.shape), "values": t[mask].clone(), "bits": pack_bits(mask)}
        else:
            out[key] = t.clone()
    return out


def decode_sparse(encoded: dict[str, object]) -> dict[str, Tensor]:
    """Inverse of ``encode_sparse``: the identical dense state_dict."""
    out = {}
    for key, v in encoded.items():
        if isinstance(v, dict):
            numel = int(torch.Size(v["shape"]).numel())
            dense = torch.zeros(numel, dtype=v["values"].dtype)
            dense[unpack_bits(v["bits"], numel)] = v["values"]
            out[key] = dense.view(v["shape"])
        else:
            out[key] = v
    return out


def saved_bytes(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def cpu_state_dict(module: nn.Module) -> dict[str, Tensor]:
    """A plain dict of the module's tensors on the CPU: what gets written to disk."""
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def load_sparse_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    return decode_sparse(torch.load(path, weights_only=True))


def export_classifier(classifier: nn.Module, example: Tensor, out_dir: Path) -> dict[str, str]:
    """Write the deployed classifier as ``classifier.pt2`` (torch.export: loads and runs with plain
    PyTorch via ``torch.export.load(path).module()``) and ``classifier.sparse.pt`` (encode_sparse).

    The archive keeps its example input (what AOTInductor compiles against): a fresh copy of two samples
    of ``example``, since a slice of a test batch would keep the whole batch's storage in the file. Two,
    because torch.export specialises a dimension whose example size is 1."""
    model = classifier.eval().cpu()
    batch = torch.export.Dim("batch", min=1)
    sample = example[:2].detach().to("cpu", copy=True)
    program = torch.export.export(model, (sample,), dynamic_shapes=({0: batch},))
    buf = io.BytesIO()
    torch.export.save(program, buf)
    paths = {"exported": out_dir / EXPORT_FILE, "sparse_state_dict": out_dir / "classifier.sparse.pt"}
    atomic_write_bytes(paths["exported"], buf.getvalue())
    atomic_write_bytes(paths["sparse_state_dict"], saved_bytes(encode_sparse(cpu_state_dict(model))))
    return {k: str(v) for k, v in paths.items()}
