"""4-bit weights for a CPU's decode steps (``precision: int4``), with torch's own kernel.

A decode step multiplies a few rows (one per active conversation) by every weight matrix,
so its speed is set by the bytes of weights it reads: 540 MB a token for the embedded model
at float32, 270 MB at bfloat16, about 75 MB with 4-bit weights in groups of 32 (a scale and
a zero point per group), the layout of the GGUF file the embedded model is read from
(Q4_1). ``torch.ops.aten._weight_int4pack_mm_for_cpu`` multiplies bfloat16 rows by such
weights without unpacking them. It costs more than a dense GEMM once there are more than
a few rows (prompt encoding, 100s of rows at once), so every layer keeps its bfloat16 weight
for those and takes the 4-bit copy only at ``DECODE_ROWS`` rows or fewer.

The 4-bit codes are each group's ``round((w - min) / scale)`` with ``scale = (max - min) / 15``,
as llama.cpp's Q4_1 does; for weights that came from a Q4_1 file this recovers its codes,
and only the scales and zero points are rounded (to bfloat16, as the kernel reads them).
The output projection (``lm_head``, tied to the embeddings) stays bfloat16.
"""

from __future__ import annotations

import types
from typing import Any

GROUP = 32
DECODE_ROWS = range(1, 9)


def pack(weight) -> tuple[Any, Any]:
    """(packed 4-bit codes, scales and zero points [groups, out, 2] in bfloat16) of a weight."""
    import torch

    out_features, in_features = weight.shape
    groups = weight.detach().float().reshape(out_features, in_features // GROUP, GROUP)
    low, high = groups.amin(-1), groups.amax(-1)
    scale = ((high - low) / 15).clamp(min=torch.finfo(torch.float32).tiny)
    codes = ((groups - low[..., None]) / scale[..., None]).round().clamp(0, 15).to(torch.int32)
    packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes.reshape(out_features, in_features), 1)
    # The kernel dequantises (code - 8) * scale + zero.
    scales_and_zeros = torch.stack([scale.T, (low + 8 * scale).T], dim=-1).contiguous().to(torch.bfloat16)
    return packed, scales_and_zeros


def packable(layer) -> bool:
    out_features, in_features = layer.weight.shape
    return in_features % GROUP == 0 and out_features % 16 == 0


def use_int4_decode(model) -> int:
    """Give every packable linear layer of the decoder (not ``lm_head``) a 4-bit copy of its
    weight for decode steps; returns how many layers. The model must be bfloat16 on a CPU."""
    import torch

    def forward(self, x):
        rows = x.numel() // x.shape[-1]
        if rows not in DECODE_ROWS:
            return self.dense_forward(x)
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(
            x.reshape(rows, x.shape[-1]), self.int4_weight, GROUP, self.int4_scales_and_zeros
        ).reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias

    output = model.get_output_embeddings()
    count = 0
    for layer in model.modules():
        if type(layer) is not torch.nn.Linear or layer is output or not packable(layer):
            continue
        layer.int4_weight, layer.int4_scales_and_zeros = pack(layer.weight)
        layer.dense_forward = layer.forward  # F.linear, or the skinny W @ x.T (loading.use_skinny_linear)
        layer.forward = types.MethodType(forward, layer)
        count += 1
    return count
