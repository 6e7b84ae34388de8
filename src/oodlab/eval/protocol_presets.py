"""The protocol presets of the seed papers (see :mod:`oodlab.eval.protocols`).

Conventions per paper (long_tailed.md §4.6, synthesis_and_mos.md §0, §1.8, §3.6, spec
paper_results.md): PASCL / ImOOD / PATT report the mean over the six SC-OOD sets (ImageNet-LT:
one set) of AUROC, AUPR (average precision, OOD positive) and FPR95 by the code's
closest-recall rule, with SC-OOD images of ID classes counted as ID; ASCOOD reports OpenOOD's
FPR@95 (ID flagged at 95% OOD, first ROC point) and AUROC per setting; MOS the mean over four
sets of AUROC and FPR95 at 95% ID accepted.
"""

from __future__ import annotations

from oodlab.eval.protocols import Protocol, register_protocol

_LT_NOTE = (
    "FPR95 by the code's closest-recall rule (fpr95_closest), AUPR = average precision with OOD "
    "positive (aupr_out); the mean over the benchmark's OOD sets."
)
_PASCL_ACC = (
    " The paper's ID accuracy is that of the ABF (stage-2) branch; a stage-1 checkpoint "
    "classifies worse (maintainer note, long_tailed.md §1.6)."
)

for dataset, table in (
    ("cifar10_lt", "pascl_t1_cifar10_lt"),
    ("cifar100_lt", "pascl_t2_cifar100_lt"),
    ("imagenet_lt", "pascl_t3_imagenet_lt"),
):
    register_protocol(
        Protocol(
            f"pascl_{dataset}",
            "Wang et al. (PASCL), ICML 2022, arXiv:2207.01160",
            dataset,
            ("msp",),
            table,
            {"msp": "PASCL"},
            ("pascl",),
            notes=_LT_NOTE + _PASCL_ACC,
        )
    )

for dataset, table in (
    ("cifar10_lt", "imood_t1_cifar10_lt"),
    ("cifar100_lt", "imood_t1_cifar100_lt"),
    ("imagenet_lt", "imood_t2_imagenet_lt"),
):
    register_protocol(
        Protocol(
            f"imood_{dataset}",
            "Liu et al. (ImOOD), NeurIPS 2024, arXiv:2407.16430",
            dataset,
            ("bin_disc",),
            table,
            {"bin_disc": "PASCL + ImOOD"},
            ("imood",),
            notes=_LT_NOTE + " The BinDisc baseline row (Table 4) is --paper-row BinDisc of "
            "imood_t4_cifar10_lt.",
        )
    )

for dataset in ("cifar10_lt", "cifar100_lt", "imagenet_lt"):
    register_protocol(
        Protocol(
            f"patt_{dataset}",
            "He et al. (PATT), AAAI 2025, arXiv:2408.06742",
            dataset,
            ("patt_energy",),
            None,
            formats=("patt",),
            notes=_LT_NOTE + " PATT's tables could not be found: no paper row.",
        )
    )

_ASCOOD = "Regmi (ASCOOD), arXiv:2411.10794"
_ASCOOD_NOTE = (
    "Scores as the repo's test scripts (synthesis_and_mos.md §1.6); they tune hyper-parameters "
    "by OpenOOD's APS on the OOD validation set (add --tune). FPR@95 is OpenOOD's (fpr95)."
)
for dataset, score in (
    ("waterbirds", "odin"),
    ("celeba", "odin"),
    ("cars", "relation"),
    ("aircraft", "nnguide"),
    ("cifar10", "scale:space=features"),
    ("cifar100", "scale:space=features"),
):
    table = {"cars": "ascood_t2_cars", "aircraft": "ascood_t2_aircraft"}.get(
        dataset, f"ascood_t1_{dataset}"
    )
    name = score.split(":")[0]
    extra = (
        " SCALE on the raw features h as OpenOOD's ScaleNet does on ASCOOD's net (space="
        "features, bypassing the z-score)."
        if name == "scale"
        else ""
    )
    register_protocol(
        Protocol(
            f"ascood_{dataset}",
            _ASCOOD,
            dataset,
            (score,),
            table,
            {name: "ASCOOD"},
            ("ascood",),
            notes=_ASCOOD_NOTE + extra,
        )
    )

for dataset in ("cifar10", "cifar100"):
    register_protocol(
        Protocol(
            f"openood_{dataset}_odin",
            _ASCOOD + " Table 6 (OpenOOD v1.5 checkpoints)",
            dataset,
            ("odin", "iodin"),
            f"ascood_t6_{dataset}",
            {"odin": "ODIN", "iodin": "i-ODIN"},
            ("openood_resnet18_32x32",),
            notes="OpenOOD's ODIN / i-ODIN defaults (T = 1000, epsilon = 0.0014); the paper's "
            "values come from OpenOOD's APS (add --tune). FPR@95 is OpenOOD's (fpr95).",
        )
    )

_MOS = "Huang & Li (MOS), CVPR 2021, arXiv:2105.01879"
_MOS_NOTE = "FPR95 = OOD accepted at 95% ID accepted (fpr95_id); mean over the four OOD sets."
register_protocol(
    Protocol(
        "mos_imagenet1k",
        _MOS,
        "imagenet1k",
        ("mos",),
        "mos_t1_imagenet1k",
        {"mos": "MOS"},
        ("mos_bit",),
        notes=_MOS_NOTE,
    )
)
register_protocol(
    Protocol(
        "mos_flat_imagenet1k",
        _MOS + " (flat-softmax baselines)",
        "imagenet1k",
        ("msp", "energy", "odin", "kl_matching", "mahalanobis"),
        "mos_t1_imagenet1k",
        {
            "msp": "MSP",
            "energy": "Energy",
            "odin": "ODIN",
            "kl_matching": "KL Matching",
            "mahalanobis": "Mahalanobis",
        },
        ("mos_bit",),
        notes=_MOS_NOTE + " Baselines on the flat-softmax BiT fine-tune.",
    )
)

for dataset in ("cifar10", "cifar100"):
    register_protocol(
        Protocol(
            f"npos_{dataset}",
            "Tao et al. (NPOS), ICLR 2023, arXiv:2303.02966",
            dataset,
            ("knn:k=300",),
            None,
            formats=("npos",),
            notes="KNN with k = 300 on the L2-normalised penultimate features (the repo's test "
            "scripts); FPR95 by the KNN convention (fpr95_id). NPOS's CIFAR tables could not be "
            "found, and its OOD sets (SVHN, Textures, Places365, LSUN-C, LSUN-R, iSUN) are not "
            "those of this OpenOOD-style preset.",
        )
    )
