"""FSSNet's result tables (Su & Chen, ICIC 2025), in the paper's column order, with its printed numbers.

* ``fssnet_gan``: Table 1, the 8 GAN test sets of ForenSynths (ProGAN is the training
  generator; its column is in the paper's mean).
* ``fssnet_dm``: Table 2, the 10 diffusion test sets (PNDM and VQ-Diffusion from the
  DIRE/DiffusionForensics release, the rest from UniversalFakeDetect).

``fakescope eval CKPT --data 'CNN_synth_testset/*' --table fssnet_gan`` (and the
diffusion folders with ``--table fssnet_dm``) writes ``table_fssnet_gan.md``/``.csv``.
Test-set folders match a column by name, case and punctuation ignored
(``ldm_200_cfg`` is ``LDM-200-cfg``).

Reference rows are the paper's printed numbers (Acc / A.P., percent; row tag ``paper``). The
PDF text is garbled in places; the cleaned values follow the project's reading of it, and
every cell that is not a clean print is footnoted: the two reconstructed Table 1 cells give
the range that the printed row mean allows (:func:`mean_allows`, the other cells as printed)
and the table they match (NPR's README); Wang's Glide-50-27 cell in Table 2 is an unverified
value from other papers' reproductions (not the paper's print); Durall's is missing. Tables 3 and 4 (band and component ablations,
means only) are kept as data in :data:`TABLE3_BANDS` and :data:`TABLE4_COMPONENTS`.
"""

from __future__ import annotations

import math

from fakescope.eval.tables import PaperTable, register_table

PAPER = "Su & Chen, FSSNet: Frequency-Spatial Synergy Network for Universal Deepfake Detection, ICIC 2025"

GAN_COLUMNS = ("ProGAN", "StyleGAN", "StyleGAN2", "BigGAN", "CycleGAN", "StarGAN", "GauGAN", "Deepfake")
DM_COLUMNS = ("PNDM", "DALL-E", "VQ-Diffusion", "LDM-100", "LDM-200", "LDM-200-cfg", "Guided", "Glide-100-10",
              "Glide-100-27", "Glide-50-27")

_GAN_ROWS: dict[str, tuple[tuple[float | None, float | None], ...]] = {
    # ProGAN, StyleGAN, StyleGAN2, BigGAN, CycleGAN, StarGAN, GauGAN, Deepfake, Mean
    "Wang (CVPR 2020, RGB)": ((50.4, 63.8), (50.4, 79.4), (68.2, 94.7), (50.2, 61.3), (50.0, 52.9), (50.0, 48.2),
                              (50.3, 67.6), (50.1, 51.5), (52.5, 64.9)),
    "Durall (CVPR 2020, Freq)": ((85.1, 79.5), (59.2, 55.2), (70.4, 63.8), (57.0, 53.9), (66.7, 61.4),
                                 (99.8, 99.6), (58.7, 54.8), (53.0, 51.9), (68.7, 65.0)),
    "BiHPF (WACV 2022, Freq)": ((90.7, 86.2), (76.9, 75.1), (76.2, 74.7), (84.9, 81.7), (81.9, 78.9),
                                (94.4, 94.4), (69.5, 78.1), (54.4, 54.6), (78.6, 77.9)),
    "SelfBlend (CVPR 2022, RGB)": ((58.8, 65.2), (50.1, 47.7), (48.6, 47.4), (51.1, 51.9), (59.2, 65.3),
                                   (74.5, 89.2), (59.2, 65.5), (93.8, 99.3), (61.9, 66.4)),
    "FrePGAN (AAAI 2022, Freq)": ((99.0, 99.9), (80.7, 89.6), (84.1, 98.6), (69.2, 71.1), (71.1, 74.4),
                                  (99.9, 100.0), (60.3, 71.7), (70.9, 91.9), (79.4, 87.2)),
    "LGrad (CVPR 2023, RGB)": ((99.9, 100.0), (94.8, 99.9), (96.0, 99.9), (82.9, 90.7), (85.3, 94.0),
                               (99.6, 100.0), (72.4, 79.3), (58.0, 67.9), (86.1, 91.5)),
    "Ojha (CVPR 2023, RGB)": ((99.7, 100.0), (89.0, 98.7), (83.9, 98.4), (90.5, 99.1), (87.9, 99.8),
                              (91.4, 100.0), (89.9, 100.0), (80.2, 90.2), (89.1, 98.3)),
    "FreqNet (AAAI 2024, Freq)": ((99.6, 100.0), (90.2, 99.7), (88.0, 99.5), (90.5, 96.0), (95.8, 99.6),
                                  (85.7, 99.8), (93.4, 98.6), (88.9, 94.4), (91.5, 98.5)),
    "FSSNet (RGB & Freq)": ((99.9, 100.0), (93.0, 98.2), (95.3, 98.8), (99.6, 99.9), (97.7, 99.7), (98.3, 99.8),
                            (99.8, 100.0), (74.6, 79.7), (94.8, 97.0)),
}

_DM_ROWS: dict[str, tuple[tuple[float | None, float | None], ...]] = {
    # PNDM, DALL-E, VQ-Diffusion, LDM-100, LDM-200, LDM-200-cfg, Guided, Glide-100-10, Glide-100-27, Glide-50-27, Mean
    "Wang (CVPR 2020)": ((50.8, 90.3), (51.8, 61.3), (50.0, 71.0), (51.9, 63.7), (52.0, 64.5), (51.6, 63.1),
                         (54.9, 66.6), (53.3, 72.9), (53.0, 71.3), (54.2, 76.0), (52.4, 70.1)),
    "Durall (CVPR 2020)": ((44.5, 47.3), (55.9, 58.0), (38.6, 38.3), (62.0, 62.9), (61.7, 61.7), (58.4, 58.5),
                           (40.6, 42.3), (54.9, 52.3), (48.9, 46.9), (None, None), (51.7, 51.8)),
    "SelfBlend (CVPR 2022)": ((48.2, 48.2), (52.4, 51.6), (77.2, 82.7), (53.0, 54.0), (52.6, 51.9), (51.9, 52.6),
                              (58.3, 63.4), (58.8, 63.2), (59.4, 64.1), (64.2, 68.3), (57.6, 60.0)),
    "LGrad (CVPR 2023)": ((69.8, 98.5), (88.5, 97.3), (96.3, 100.0), (94.8, 99.2), (94.2, 99.1), (95.9, 99.2),
                          (86.6, 100.0), (89.4, 94.9), (87.4, 93.2), (90.7, 95.1), (89.4, 97.7)),
    "Ojha (CVPR 2023)": ((75.3, 92.5), (89.5, 96.8), (83.5, 97.7), (90.5, 97.0), (90.2, 97.1), (77.3, 88.6),
                         (75.7, 85.1), (90.1, 97.0), (90.7, 97.2), (91.1, 97.4), (85.4, 94.6)),
    "FreqNet (AAAI 2024)": ((85.2, 99.9), (97.2, 99.7), (100.0, 100.0), (97.8, 99.9), (97.4, 99.9), (97.2, 99.9),
                            (67.2, 75.4), (87.8, 96.0), (84.4, 95.6), (86.6, 95.8), (90.1, 96.2)),
    "FSSNet": ((97.9, 99.8), (96.2, 99.1), (97.0, 99.5), (97.2, 99.6), (97.6, 99.6), (89.8, 96.0), (88.9, 95.0),
               (86.9, 94.3), (88.0, 95.2), (86.7, 93.9), (92.6, 97.2)),
}


def _rows(columns: tuple[str, ...], rows: dict[str, tuple]) -> dict[str, dict[str, tuple[float | None, ...]]]:
    out = {}
    for method, cells in rows.items():
        if len(cells) != len(columns) + 1:
            raise ValueError(f"{method}: {len(cells)} cells for {len(columns)} columns + mean")
        out[method] = dict(zip((*columns, "Mean"), cells))
    return out


def mean_allows(columns: tuple[str, ...], row: dict[str, tuple[float | None, ...]], column: str, metric: int,
                decimals: int = 1) -> tuple[float, float]:
    """The values a cell can take, on the print's grid, for the row's printed mean to hold (the mean rounds to
    the print: it lies within half a unit of its last digit), the row's other cells taken as printed."""
    step = 10.0 ** -decimals
    others = sum(row[c][metric] for c in columns if c != column)
    n, mean = len(columns), row["Mean"][metric]
    lo, hi = n * (mean - step / 2) - others, n * (mean + step / 2) - others  # [lo, hi)
    first = math.ceil(round(lo / step, 6)) * step
    last = (math.ceil(round(hi / step, 6)) - 1) * step
    return round(max(first, 0.0), decimals), round(min(last, 100.0), decimals)


_GAN_REF = _rows(GAN_COLUMNS, _GAN_ROWS)
_LGRAD_RANGE = mean_allows(GAN_COLUMNS, _GAN_REF["LGrad (CVPR 2023, RGB)"], "ProGAN", 0)
_OJHA_RANGE = mean_allows(GAN_COLUMNS, _GAN_REF["Ojha (CVPR 2023, RGB)"], "Deepfake", 0)
NPR_README = "the results table in the README of NPR's code (Tan et al., CVPR 2024)"

TABLE1 = register_table(PaperTable(
    name="fssnet_gan",
    title="FSSNet Table 1: generalisation to GANs (trained on ProGAN, 4 classes), Acc / A.P.",
    columns=GAN_COLUMNS,
    metrics=("acc", "ap"),
    aliases={"Deepfake": ("deepfakes",)},
    reference=_GAN_REF,
    row_sources={m: "paper" for m in _GAN_ROWS},
    source=f"{PAPER}, Table 1 (baselines as the paper quotes them from their papers or reproductions)",
    footnotes={
        ("LGrad (CVPR 2023, RGB)", "ProGAN", "acc"):
            f"Acc printed as 99.0 (a typo): the printed row mean 86.1 allows only {_LGRAD_RANGE[0]:.1f} to "
            f"{_LGRAD_RANGE[1]:.1f} (the other cells as printed); shown as 99.9, LGrad's ProGAN Acc in {NPR_README}.",
        ("Ojha (CVPR 2023, RGB)", "Deepfake", "acc"):
            f"Acc garbled in the PDF text ('80./'): the printed row mean 89.1 allows {_OJHA_RANGE[0]:.1f} to "
            f"{_OJHA_RANGE[1]:.1f} (the other cells as printed); shown as 80.2, the Ojha row's Deepfake Acc in "
            f"{NPR_README}.",
    },
))

TABLE2 = register_table(PaperTable(
    name="fssnet_dm",
    title="FSSNet Table 2: generalisation to diffusion models (trained on ProGAN, 4 classes), Acc / A.P.",
    columns=DM_COLUMNS,
    metrics=("acc", "ap"),
    # `fakescope prepare dire` names its sets <domain>_<generator>
    aliases={"Guided": ("guided_diffusion",), "PNDM": ("lsun_bedroom_pndm",),
             "VQ-Diffusion": ("lsun_bedroom_vqdiffusion",)},
    reference=_rows(DM_COLUMNS, _DM_ROWS),
    row_sources={m: "paper" for m in _DM_ROWS},
    source=f"{PAPER}, Table 2 (column order reconstructed from the garbled header; FreqNet re-evaluated by the "
           "FSSNet authors from its official checkpoint)",
    footnotes={
        ("Wang (CVPR 2020)", "Glide-50-27"): "unverified: lost in the PDF text; 54.2 / 76.0 is Wang's value in the "
                                             "NPR and FreqNet reproductions as recalled, not checked against those "
                                             "tables (NOT the paper's print); it gives the printed mean 52.4 / 70.1.",
        ("Durall (CVPR 2020)", "Glide-50-27"): "lost in the PDF text and not recoverable; the printed mean "
                                               "51.7 / 51.8 needs Acc in [51.0, 52.0) and AP in [49.3, 50.3).",
    },
))

# Table 3: mean Acc / A.P. (%) per frequency band kept by the mask (the paper picks low).
TABLE3_BANDS: dict[str, dict[str, tuple[float, float]]] = {
    "GANs": {"low": (94.78, 97.02), "mid": (94.24, 96.51), "high": (94.42, 96.66)},
    "DMs": {"low": (92.54, 97.18), "mid": (92.58, 97.18), "high": (92.30, 97.05)},
    "Average": {"low": (93.66, 97.10), "mid": (93.41, 96.85), "high": (93.36, 96.86)},
}

# Table 4: mean Acc / A.P. (%) with components removed; keys name the ablation configs.
# Note (as printed): the full model's DM row equals Table 3's *mid* column, not its low column.
TABLE4_COMPONENTS: dict[str, dict[str, tuple[float, float]]] = {
    "GANs": {"rgb_only": (89.78, 91.52), "freq_only": (89.14, 91.05), "no_sbca": (93.50, 95.77),
             "no_aff": (92.88, 95.20), "full": (94.78, 97.02)},
    "DMs": {"rgb_only": (88.35, 93.51), "freq_only": (87.94, 92.88), "no_sbca": (90.98, 96.39),
            "no_aff": (91.92, 97.30), "full": (92.58, 97.18)},
}
