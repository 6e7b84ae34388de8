"""Bench presets: which methods ``oodlab bench PRESET`` compares, on what, with which seeds.

Offline presets (``demo``, ``fmnist_lt``, ``fmnist_lt_open``, ``synthetic``) are a base config
plus per-method overrides; the papers' presets (``cifar10_lt``, ``cifar100_lt``,
``imagenet_lt``, and the ASCOOD / NPOS / MOS settings ``waterbirds``, ``celeba``, ``cars``,
``aircraft``, ``cifar10``, ``cifar100``, ``imagenet100``, ``imagenet1k``) take each method's
published settings from ``configs/<preset>/<method>.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oodlab.config import RunConfig, load_config
from oodlab.errors import ConfigError
from oodlab.registry import Registry


@dataclass(frozen=True)
class BenchMethod:
    """One row group of the table: a label, config overrides, and the method's own score.

    ``config_file``: a YAML run config (a published setting under ``configs/``) that replaces
    the preset's base; ``overrides`` then apply to it.
    """

    label: str
    overrides: tuple[str, ...]
    default_score: str = "msp"
    config_file: Path | None = None


@dataclass(frozen=True)
class BenchPreset:
    """A base run config, the methods compared on it, the seeds, and evaluation options."""

    name: str
    base: dict[str, Any]
    methods: tuple[BenchMethod, ...]
    seeds: tuple[int, ...] = (0,)
    scores: str = "zoo"
    highlight: tuple[str, ...] = (
        "msp",
        "energy",
        "ada_energy",
        "patt_energy",
        "knn",
        "mahalanobis",
    )
    eval_batch_size: int = 512
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


PRESETS: Registry[BenchPreset] = Registry("bench preset")

FMNIST_METHODS: tuple[BenchMethod, ...] = (
    BenchMethod("ce", ("method.name=ce",)),
    BenchMethod("ce_logit_adjust", ("method.name=ce", "method.options.tau=1.0")),
    BenchMethod("oe", ("method.name=oe", "method.options.weight=0.5")),
    BenchMethod("energy_oe", ("method.name=energy_oe",), "energy"),
    BenchMethod("bin_disc", ("method.name=bin_disc",), "bin_disc"),
    BenchMethod("pascl", ("method.name=pascl", "method.options.abf_epochs=3")),
    BenchMethod("imood", ("method.name=imood",), "bin_disc"),
    BenchMethod("patt", ("method.name=patt", "method.options.views=batch"), "patt_energy"),
)
# NPOS, ASCOOD and MOS take their CPU-sized settings from configs/fmnist_lt/ (same budget).
FMNIST_METHODS += tuple(
    BenchMethod(
        label, (), score, Path(__file__).resolve().parents[3] / f"configs/fmnist_lt/{label}.yaml"
    )
    for label, score in (("npos", "knn"), ("ascood", "iodin"), ("mos", "mos"))
)
DEMO_METHODS = tuple(m for m in FMNIST_METHODS if m.label in ("ce", "oe", "imood", "patt"))


def _preset(preset: BenchPreset) -> None:
    PRESETS.register(preset.name, paper=preset.description)(lambda: preset)


_preset(
    BenchPreset(
        name="demo",
        description="reduced fmnist_lt: CE, OE, ImOOD, PATT; small CNN; whole score zoo (CPU)",
        base={
            "data": {
                "benchmark": "fmnist_lt",
                "options": {"n_max": 2000, "test_size": 3000, "n_aux": 10000, "n_textures": 1000},
                "batch_size": 128,
                "crop_padding": 2,
            },
            "model": {"name": "small_cnn", "options": {"width": 0.5}},
            "train": {"epochs": 8, "lr": 0.003, "quiet": True},
        },
        methods=DEMO_METHODS,
    )
)


def _open_methods(methods: tuple[BenchMethod, ...]) -> tuple[BenchMethod, ...]:
    """The methods on ``fmnist_lt_open``: those read from ``configs/fmnist_lt/*.yaml`` name
    ``fmnist_lt`` there and are pointed at ``fmnist_lt_open``; MOS's Fashion-MNIST grouping is
    restricted to the six ID classes (T-shirt/top, Pullover, Coat | Trouser, Dress | Sandal)."""
    out = []
    for m in methods:
        if m.config_file is not None:
            extra = ["data.benchmark=fmnist_lt_open"]
            if m.label == "mos":
                extra.append("method.options.groups=[0, 1, 0, 1, 0, 2]")
            m = BenchMethod(m.label, (*m.overrides, *extra), m.default_score, m.config_file)
        out.append(m)
    return tuple(out)


for _name, _what in (
    ("fmnist_lt", "Fashion-MNIST-LT (rho 0.01) vs digits and textures"),
    ("fmnist_lt_open", "Fashion-MNIST-LT with 4 held-out classes as near-OOD"),
):
    _preset(
        BenchPreset(
            name=_name,
            description=f"{_what}; small CNN; 3 seeds",
            base={
                "data": {"benchmark": _name, "batch_size": 128, "crop_padding": 2},
                "model": {"name": "small_cnn"},
                "train": {"epochs": 12, "lr": 0.003, "quiet": True},
            },
            methods=FMNIST_METHODS if _name == "fmnist_lt" else _open_methods(FMNIST_METHODS),
            seeds=(0, 1, 2),
        )
    )
_preset(
    BenchPreset(
        name="synthetic",
        description="generated images, seconds: for tests of the bench itself",
        base={
            "data": {"benchmark": "synthetic", "batch_size": 32, "crop_padding": 2},
            "model": {"name": "small_cnn", "options": {"width": 0.25}},
            "train": {"epochs": 2, "lr": 0.003, "quiet": True},
        },
        methods=(FMNIST_METHODS[0], FMNIST_METHODS[2]),
        seeds=(0, 1),
        eval_batch_size=64,
    )
)


CONFIGS_DIR = Path(__file__).resolve().parents[3] / "configs"


def methods_from_configs(
    folder: str, labels: tuple[str, ...], overrides: dict[str, tuple[str, ...]] | None = None
) -> tuple[BenchMethod, ...]:
    """Bench methods from ``configs/<folder>/<label>.yaml`` (the papers' settings), each with
    its method's own score and ``overrides[label]``. The files are read when the bench runs
    (source checkouts)."""
    from oodlab.train.run import default_scores_of_run

    overrides = overrides or {}
    methods = []
    for label in labels:
        path = CONFIGS_DIR / folder / f"{label}.yaml"
        if not path.is_file():
            raise ConfigError(
                f"{path} not found: config-file presets need a source checkout of oodlab "
                "(its configs/ folder); use `oodlab train CONFIG` with your own copy instead"
            )
        score = default_scores_of_run(load_config(RunConfig, path))[0]
        methods.append(BenchMethod(label, overrides.get(label, ()), score, path))
    return tuple(methods)


LT_LABELS = ("ce", "ce_logit_adjust", "oe", "energy_oe", "bin_disc", "pascl", "imood", "patt")


def _config_preset(
    name: str,
    folder: str,
    labels: tuple[str, ...],
    description: str,
    overrides: dict[str, tuple[str, ...]] | None = None,
) -> None:
    """A preset of published settings: one ``configs/<folder>/<label>.yaml`` per method, read
    when the preset is used; 3 seeds."""

    def build() -> BenchPreset:
        methods = methods_from_configs(folder, labels, overrides)
        return BenchPreset(name, {}, methods, seeds=(0, 1, 2), description=description)

    PRESETS.register(name, paper=description)(build)


for _name, _what in (("cifar10_lt", "CIFAR-10-LT"), ("cifar100_lt", "CIFAR-100-LT")):
    _config_preset(
        _name,
        _name,
        LT_LABELS,
        f"{_what} (rho 0.01) vs the six SC-OOD sets, ResNet-18, the papers' settings",
    )
# The ASCOOD / NPOS / MOS settings: each method against the CE (MSP) baseline it is compared
# with in its paper, same backbone and budget (configs/<setting>/ce.yaml).
for _name, _labels, _what in (
    ("waterbirds", ("ce", "ascood"), "Waterbirds (spurious OOD), ImageNet-pretrained ResNet-18"),
    ("celeba", ("ce", "ascood"), "CelebA (spurious OOD), ImageNet-pretrained ResNet-18"),
    ("cars", ("ce", "ascood"), "Stanford Cars (fine-grained OOD), pretrained ResNet-50"),
    ("aircraft", ("ce", "ascood"), "FGVC-Aircraft (fine-grained OOD), pretrained ResNet-50"),
    ("cifar10", ("ce", "ascood", "npos"), "CIFAR-10 vs OpenOOD's near/far sets, ResNet-18"),
    ("cifar100", ("ce", "ascood", "npos"), "CIFAR-100 vs OpenOOD's near/far sets, ResNet-18"),
    ("imagenet100", ("ascood",), "ImageNet-100 (NPOS classes) vs iNaturalist/SUN/Places/Textures"),
    ("imagenet1k", ("mos",), "ImageNet-1k vs iNaturalist/SUN/Places/Textures, BiT-S-R101x1"),
):
    # NPOS's own config evaluates on the paper's OOD sets; in the table every method meets the
    # same sets (the preset's OpenOOD near/far split).
    _config_preset(
        _name,
        _name,
        _labels,
        f"{_what}; the papers' settings",
        {"npos": ("data.options={}",)},
    )
_config_preset(
    "imagenet_lt",
    "imagenet_lt",
    ("oe", "pascl", "imood", "patt"),
    "ImageNet-LT vs ImageNet-1k-OOD, ResNet-50, the papers' settings (multi-GPU via torchrun)",
)
