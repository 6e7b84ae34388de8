"""NPOS's CLIP fine-tune (``deeplearning-wisc/npos``, ``CLIP_based/OOD/CLIP/CLIP_ft.py``).

``CLIP_ft(num_classes, layers)`` keeps CLIP ViT-B/16's blocks ``layers … 11`` as
``transformer_resblocks.block{0 … 11 − layers}`` (each CLIP's ``ln_1``, ``attn.in_proj_*``,
``attn.out_proj``, ``ln_2``, ``mlp.c_fc``, ``mlp.c_proj``), ``ln_post``, ``proj`` (768 × 512)
and the uncertainty MLP ``outlier_MLP`` (512 → 32 → ReLU → 1). ``train_npos.py`` saves
``net.state_dict()`` every epoch (``module.``-prefixed under ``nn.DataParallel``), and
``test_npos.py`` loads it with the prefix removed. Its inputs are the tokens the frozen first
``layers`` blocks produce, cached beforehand; its logits are the image embedding against the
prompt-ensembled text embeddings of the class names.

oodlab: :class:`~oodlab.models.clip_tail.CLIPViTTail` (``blocks.{i}`` ← ``block{i}``,
``ln_post``, ``proj``) with the extra head ``bin_logit`` ← ``outlier_MLP``. The text
embeddings are not in the checkpoint (``CLIP_ft`` computes them with CLIP's text encoder when
it is built, as a plain attribute), so the format needs them as an option:
``--model-set class_embeddings=FILE``, a ``(C, 512)`` (or the official ``(512, C)``)
``.npy`` / ``.pt`` array; they become the rows of the linear head (bias zero). Heads:
``width // 64`` (CLIP's rule). Normalisation: none (the inputs are tokens; CLIP's image
statistics were applied before the frozen blocks). Default score: MCM (the paper's).

Notes:
    ``CLIP_ft.logits_compute`` divides the image embeddings by ``image_embedding.norm()``
    without ``dim``, i.e. by the norm of the whole batch, so its logits depend on the batch;
    oodlab's logits are ``z·w_c`` (the official ones times that batch norm). MCM, the score
    the paper reports, uses the per-sample cosine and is unaffected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from oodlab.errors import ConfigError
from oodlab.models.converters.base import Converted, key_matcher, register_format, strip

_BLOCK = re.compile(r"transformer_resblocks\.block(\d+)\.(.+)")
_LEAF = (
    r"(ln_[12]\.(weight|bias)|attn\.in_proj_(weight|bias)|attn\.out_proj\.(weight|bias)"
    r"|mlp\.c_(fc|proj)\.(weight|bias))"
)


def _class_embeddings(path: object, out_dim: int) -> Tensor:
    from oodlab.synthesis.feature_data import load_features

    text = load_features(str(path), "class embeddings")
    if text.shape[1] != out_dim and text.shape[0] == out_dim:
        text = text.T  # the official layout: (embedding dim, classes)
    if text.shape[1] != out_dim:
        raise ConfigError(
            f"class embeddings {path} have shape {tuple(text.shape)}; expected (classes, "
            f"{out_dim}), the text embeddings of the class names in CLIP's embedding space"
        )
    return text.contiguous()


@register_format(
    "npos_clip",
    paper="Tao et al. (NPOS), ICLR 2023, arXiv:2303.02966 (CLIP-B/16 fine-tune)",
    matches=key_matcher(
        rf"transformer_resblocks\.block\d+\.{_LEAF}",
        r"ln_post\.(weight|bias)",
        "proj",
        r"outlier_MLP\.[02]\.(weight|bias)",
    ),
    layout="transformer_resblocks.blockN.{ln_1,attn,ln_2,mlp.c_fc,mlp.c_proj}, ln_post, proj, "
    "outlier_MLP.{0,2} (needs --model-set class_embeddings=FILE)",
)
def npos_clip(state: Mapping[str, Tensor], options: dict[str, Any]) -> Converted:
    """NPOS's ``CLIP_ft`` as ``clip_vit_tail`` with its uncertainty MLP as ``bin_logit``."""
    flat = {strip(k): v for k, v in state.items()}
    proj = flat["proj"]
    width, out_dim = (int(n) for n in proj.shape)
    path = options.pop("class_embeddings", None)
    if path is None:
        raise ConfigError(
            "an NPOS CLIP checkpoint holds no classifier (CLIP_ft computes the class-name text "
            "embeddings at start-up); give them with --model-set class_embeddings=FILE, a "
            f"(classes, {out_dim}) .npy or .pt array"
        )
    text = _class_embeddings(path, out_dim)
    renamed: dict[str, Tensor] = {}
    blocks = 0
    for key, value in flat.items():
        found = _BLOCK.fullmatch(key)
        if found:
            blocks = max(blocks, int(found.group(1)) + 1)
            renamed[f"backbone.blocks.{found.group(1)}.{found.group(2)}"] = value
    for p in ("weight", "bias"):
        renamed[f"backbone.ln_post.{p}"] = flat[f"ln_post.{p}"]
    renamed["backbone.proj"] = proj
    renamed["backbone.linear.weight"] = text
    renamed["backbone.linear.bias"] = torch.zeros(len(text))
    for index in (0, 2):
        for p in ("weight", "bias"):
            renamed[f"extra_heads.bin_logit.{index}.{p}"] = flat[f"outlier_MLP.{index}.{p}"]
    hidden = int(flat["outlier_MLP.0.weight"].shape[0])
    return Converted(
        "clip_vit_tail", len(text), renamed,
        model_options={"width": width, "heads": width // 64, "blocks": blocks,
                       "out_dim": out_dim},
        heads={"bin_logit": {"kind": "bin_logit", "hidden": hidden}},
        normalization="none", scores=["mcm", "msp", "energy"],
        notes=[f"NPOS CLIP tail: {blocks} fine-tuned blocks (CLIP layers {12 - blocks}-11); "
               "inputs are the frozen blocks' tokens (N, L, width)"],
    )  # fmt: skip
