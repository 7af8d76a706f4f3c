"""SFCL-HCMF's result tables (Qiao, Tian, Wang, arXiv 2504.17223), beside the numbers reported for it.

* ``sfcl_ffpp``: intra-dataset FF++ c23 and c40, frame accuracy and AUC.
* ``sfcl_cross``: trained on FF++ c23, frame AUC and video AUC on FF++ c23, Celeb-DF v2 and DFDC.
* ``sfcl_xmanip``: the cross-manipulation grid of spec decision A13 (train on one FF++
  manipulation, AUC on all four); one row per trained model. The paper's protocol and
  numbers were not recovered, so the table has no reference row.

``fakescope eval CKPT --data ... --table sfcl_ffpp sfcl_cross`` writes ``table_<name>.md``/``.csv``.
Test sets match a column by name, case and punctuation ignored (``celebdf_v2`` is ``Celeb-DF v2``).

**Every reference number here is secondary-source.** The paper's PDF was not available; the
four SFCL-HCMF numbers come from a literature table of another project and agree with
independent thesis notes (spec section 1.10). The EfficientNet-B4 row is DeepfakeBench's
harmonised frame AUC as quoted in those notes, under a different protocol. Each reference
cell carries a footnote saying so; none of them was measured by fakescope.
"""

from __future__ import annotations

from fakescope.eval.tables import PaperTable, register_table

PAPER = ("Qiao, Tian, Wang, Towards Generalizable Deepfake Detection with Spatial-Frequency Collaborative Learning "
         "and Hierarchical Cross-Modal Fusion, arXiv 2504.17223, 2025")
SECONDARY = "secondary source (a literature table and thesis notes quoting the paper; the paper's table was not read)"
SFCL_ROW = "SFCL-HCMF [secondary source]"
B4_ROW = "EfficientNet-B4, DeepfakeBench [secondary source]"

# Reported numbers (percent), spec section 1.10. Accuracy / AUC.
REPORTED = {
    "FF++ c23": {"acc": 97.43, "auc": 99.58},
    "FF++ c40": {"acc": 91.77, "auc": 94.21},
    "Celeb-DF v2": {"acc": None, "auc": 74.68},
    "DFDC": {"acc": None, "auc": 73.71},
}

FFPP_ALIASES = {
    "FF++ c23": ("ffpp_c23", "ff++ c23", "ffpp-c23", "c23", "ffpp_c23_test"),
    "FF++ c40": ("ffpp_c40", "ff++ c40", "ffpp-c40", "c40", "ffpp_c40_test"),
}
CROSS_ALIASES = {
    "FF++ c23": FFPP_ALIASES["FF++ c23"],
    "Celeb-DF v2": ("celebdf_v2", "celeb-df-v2", "celebdfv2", "celeb_df_v2", "cdf", "cdfv2", "celebdf"),
    "DFDC": ("dfdc", "dfdc_test", "dfdc_public_test"),
}
MANIPULATIONS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
XMANIP_ALIASES = {
    "Deepfakes": ("df", "deepfake"),
    "Face2Face": ("f2f",),
    "FaceSwap": ("fs",),
    "NeuralTextures": ("nt", "neural_textures"),
}


def _cells(method: str, columns, metrics) -> tuple[dict, dict]:
    row, notes = {}, {}
    for col in columns:
        vals = tuple(REPORTED[col].get(m) for m in metrics)
        row[col] = vals
        if any(v is not None for v in vals):
            notes[(method, col)] = SECONDARY
    return row, notes


_ffpp_row, _ffpp_notes = _cells(SFCL_ROW, ("FF++ c23", "FF++ c40"), ("acc", "auc"))
SFCL_FFPP = register_table(PaperTable(
    name="sfcl_ffpp",
    title="SFCL-HCMF, FF++ intra-dataset (frame level): accuracy and AUC",
    columns=("FF++ c23", "FF++ c40"),
    metrics=("acc", "auc"),
    aliases=FFPP_ALIASES,
    reference={SFCL_ROW: _ffpp_row},
    source=f"{PAPER}; numbers from a {SECONDARY}",
    footnotes=_ffpp_notes,
))

_cross_row, _cross_notes = _cells(SFCL_ROW, ("FF++ c23", "Celeb-DF v2", "DFDC"), ("auc",))
_cross_row = {col: (v[0], None) for col, v in _cross_row.items()}
_cross_notes[(B4_ROW, "Celeb-DF v2")] = ("secondary source (DeepfakeBench README as quoted in thesis notes); "
                                         "DeepfakeBench's protocol, not SFCL-HCMF's")
SFCL_CROSS = register_table(PaperTable(
    name="sfcl_cross",
    title="SFCL-HCMF trained on FF++ c23: frame AUC and video AUC, intra- and cross-dataset",
    columns=("FF++ c23", "Celeb-DF v2", "DFDC"),
    metrics=("auc", "video_auc"),
    aliases=CROSS_ALIASES,
    reference={SFCL_ROW: _cross_row, B4_ROW: {"Celeb-DF v2": (74.87, None)}},
    source=f"{PAPER}; numbers from a {SECONDARY}. The paper reports frame-level AUC; video AUC is ours only",
    footnotes=_cross_notes,
))

SFCL_XMANIP = register_table(PaperTable(
    name="sfcl_xmanip",
    title="SFCL-HCMF cross-manipulation (decision A13): trained on one FF++ c23 manipulation, frame AUC on each",
    columns=MANIPULATIONS,
    metrics=("auc",),
    aliases=XMANIP_ALIASES,
    reference={},
    source=f"{PAPER}; the paper's cross-manipulation protocol and numbers were not recovered (no reference row)",
))
