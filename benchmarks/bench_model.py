"""Forward+backward throughput of the full-size 3D ResNet (F=256, B=16, T=3): batch 1 vs 4 fp32, batch 8 AMP;
UnCRtainTS (published configuration) beside it.

Baseline: batch size 1, fp32, as the original trains. On CUDA at 256 px, with
bfloat16 autocast and channels-last as in training; on a CPU the same model at
64 px (256 px takes minutes per sample there), fp32 only. UnCRtainTS trains with
MGNLL at batch size 4 (fp32, as its original): its rate is compared with the 3D
ResNet's at batch 4 in fp32, with both models' parameter counts.
"""

from __future__ import annotations

import torch

from benchmarks.training import samples_per_s
from crts.models import ResNet3D, UnCRtainTS


def run() -> dict:
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    size, steps = (256, 10) if cuda else (64, 2)
    model = ResNet3D().to(device)
    out = {"device": torch.cuda.get_device_name() if cuda else "cpu", "patch_px": size}
    base = samples_per_s(model, 1, size, device, False, steps)
    out["batch 1 fp32 samples/s (baseline)"] = round(base, 3)
    batch4 = samples_per_s(model, 4, size, device, False, steps)
    out["batch 4 fp32 samples/s"] = round(batch4, 3)
    out["ratio batch 4 / batch 1"] = round(batch4 / base, 2)
    uncrtaints = UnCRtainTS().to(device)
    rate = samples_per_s(uncrtaints, 4, size, device, False, steps)
    out["UnCRtainTS batch 4 fp32 samples/s"] = round(rate, 3)
    out["ratio UnCRtainTS / 3D ResNet, batch 4 fp32"] = round(rate / batch4, 2)
    out["parameters 3D ResNet (T=3)"] = sum(p.numel() for p in model.parameters())
    out["parameters UnCRtainTS"] = sum(p.numel() for p in uncrtaints.parameters())
    if cuda:
        amp = samples_per_s(model, 8, size, device, True, steps)
        out["batch 8 AMP (bf16) samples/s"] = round(amp, 3)
        out["ratio AMP batch 8 / fp32 batch 1 (goal >= 5)"] = round(amp / base, 2)
    return out
