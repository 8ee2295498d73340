"""Shared helpers for qnnc's Python oracle tests and benchmarks.

Builds deterministic torchvision models, exports them to ONNX, makes seeded inputs and
compares outputs. Randomly initialised ResNets have badly scaled batch-norm statistics
(activations blow up and the logits barely depend on the input), so by default the
batch-norm running statistics are re-estimated on random data; that gives a model whose
output is a meaningful function of its input, which is what accuracy checks need.
"""

from __future__ import annotations

import numpy as np
import torch
import torchvision

TORCHVISION_MODELS = ("resnet18", "resnet34", "resnet50", "wide_resnet50_2", "resnext50_32x4d",
                      "mobilenet_v2", "regnet_x_400mf", "regnet_x_1_6gf", "mobilenet_v3_small",
                      "mobilenet_v3_large", "efficientnet_b0", "regnet_y_400mf", "mnasnet0_5", "mnasnet1_0",
                      "squeezenet1_0", "squeezenet1_1", "densenet121", "googlenet", "inception_v3",
                      "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "convnext_tiny", "vgg11", "vgg11_bn", "alexnet",
                      "vit_b_16", "swin_t")


def add_model_args(p) -> None:
    """The arguments every oracle and benchmark script takes: qnnc binary, model, size, opset."""
    p.add_argument("--qnnc", required=True, help="path to the qnnc binary")
    p.add_argument("--model", default="resnet50", choices=TORCHVISION_MODELS,
                   help="torchvision model (default: %(default)s)")
    p.add_argument("--size", type=int, default=224, help="input height/width (default: %(default)s)")
    p.add_argument("--opset", type=int, default=13, help="ONNX opset for export (default: %(default)s)")


def reestimate_batchnorm(model: torch.nn.Module, size: int, batches: int = 4,
                         batch_size: int = 8, seed: int = 0) -> None:
    """Replace BN running stats with cumulative averages over seeded random batches."""
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    if not bns:  # transformers: nothing to estimate (and the forward passes cost seconds)
        return
    for bn in bns:
        bn.momentum = None  # cumulative moving average
        bn.reset_running_stats()
    gen = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn(batch_size, 3, size, size, generator=gen))
    model.eval()


def redraw_degenerate_init(model: torch.nn.Module, seed: int = 0) -> None:
    """Redraw parameters whose torchvision initialisation hides part of the network.

    ConvNeXt initialises its layer scales to 1e-6, which makes every residual block an identity
    to within rounding: they are drawn from N(0, 0.3) so that the blocks count in the output.
    ViT zero-initialises its classification head, so that every logit would be 0: drawn from
    N(0, 0.05).
    """
    gen = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "layer_scale") and isinstance(m.layer_scale, torch.nn.Parameter):
                m.layer_scale.copy_(torch.randn(m.layer_scale.shape, generator=gen) * 0.3)
        head = getattr(getattr(model, "heads", None), "head", None)
        if isinstance(head, torch.nn.Linear):
            head.weight.copy_(torch.randn(head.weight.shape, generator=gen) * 0.05)


def make_torchvision(name: str, seed: int = 0, size: int = 224,
                     reestimate_bn: bool = True) -> torch.nn.Module:
    """Return an eval-mode torchvision model with weights drawn from torch.manual_seed(seed)."""
    if name not in TORCHVISION_MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(TORCHVISION_MODELS)}")
    torch.manual_seed(seed)
    # Vision transformers are built for the input size (their position embeddings fix it).
    kwargs = {"image_size": size} if name.startswith("vit_") else {}
    model = getattr(torchvision.models, name)(weights=None, **kwargs)
    redraw_degenerate_init(model)
    if reestimate_bn:
        reestimate_batchnorm(model, size, seed=seed + 1)
    return model.eval()


def export_onnx(model: torch.nn.Module, path: str, size: int, opset: int = 13,
                batch: int = 1) -> None:
    """Export `model` to ONNX with a static (batch, 3, size, size) input named "input"."""
    dummy = torch.zeros(batch, 3, size, size)
    # Under no_grad, PyTorch runs multi-head attention through a fused kernel that ONNX export
    # does not know; with gradients enabled it traces the plain operators.
    attention = any(isinstance(m, torch.nn.MultiheadAttention) for m in model.modules())
    with torch.enable_grad() if attention else torch.no_grad():
        torch.onnx.export(model, dummy, path, opset_version=opset, input_names=["input"],
                          output_names=["logits"], do_constant_folding=True)


def random_input(size: int, seed: int = 1, batch: int = 1, channels: int = 3) -> np.ndarray:
    """Seeded standard-normal float32 NCHW input."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((batch, channels, size, size), dtype=np.float32)


def torch_forward(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    """Run `model` on a numpy input and return a float32 numpy output."""
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy().astype(np.float32)


def rel_l2(ref: np.ndarray, out: np.ndarray) -> float:
    """||out - ref|| / ||ref|| computed in float64 (inf if ref is all zeros)."""
    ref = np.asarray(ref, np.float64)
    out = np.asarray(out, np.float64)
    if ref.shape != out.shape:
        raise ValueError(f"shape mismatch: reference {ref.shape} vs output {out.shape}")
    denom = np.linalg.norm(ref)
    err = np.linalg.norm(out - ref)
    return float(err / denom) if denom > 0 else (0.0 if err == 0 else float("inf"))


def _error_metrics(ref: np.ndarray, out: np.ndarray) -> dict:
    """rel_l2, SQNR in dB and cosine similarity of two float64 arrays of equal shape."""
    diff = out - ref
    sig, noise = float(np.sum(ref * ref)), float(np.sum(diff * diff))
    if noise == 0:
        sqnr = float("inf")
    elif sig == 0:
        sqnr = float("-inf")
    else:
        sqnr = 10.0 * np.log10(sig / noise)
    norms = np.linalg.norm(ref) * np.linalg.norm(out)
    cosine = float(np.sum(ref * out) / norms) if norms > 0 else float("nan")
    return {"rel_l2": rel_l2(ref, out), "sqnr_db": float(sqnr), "cosine": cosine}


def centered_metrics(ref: np.ndarray, out: np.ndarray) -> dict:
    """Accuracy metrics for logits `out` against reference `ref`, both shaped (batch, classes).

    Returns rel_l2, sqnr_db, cosine on the raw logits; centered_rel_l2, centered_sqnr_db,
    centered_cosine after subtracting the reference's mean over the batch (ref.mean(0)) from
    both (this removes the large input-independent part of random-weight logits, so the
    metrics measure how well the input-dependent part is reproduced); and top1 agreement
    (fraction of rows whose argmax matches).
    """
    ref = np.asarray(ref, np.float64)
    out = np.asarray(out, np.float64)
    if ref.shape != out.shape:
        raise ValueError(f"shape mismatch: reference {ref.shape} vs output {out.shape}")
    if ref.ndim == 1:
        ref, out = ref[None], out[None]
    raw = _error_metrics(ref, out)
    mean = ref.mean(axis=0, keepdims=True)
    centered = _error_metrics(ref - mean, out - mean)
    flat_ref = ref.reshape(ref.shape[0], -1)
    flat_out = out.reshape(out.shape[0], -1)
    top1 = float(np.mean(flat_ref.argmax(axis=1) == flat_out.argmax(axis=1)))
    result = dict(raw)
    result.update({f"centered_{k}": v for k, v in centered.items()})
    result["top1"] = top1
    return result
