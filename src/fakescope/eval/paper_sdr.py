"""SDR's result tables (Chu et al., ICASSP 2025): video-level AUC, beside the numbers known from the papers.

* ``sdr_ffpp``: FF++ HQ (c23), one column per manipulation and their average. The
  average is the one number recovered for SDR (99.6), from a summary of the paper
  (tag ``secondary``: the paper's table was not read); FTCN's 99.4 is ``derived``
  (the summary says SDR is 0.2 above FTCN). The per-manipulation cells were not recovered.
* ``sdr_cross``: trained on FF++ c23, tested on Celeb-DF v2 and DFDC. SDR's own cells
  were not recovered (TODO), so SDR has no row; FTCN's numbers from its own paper, as a
  benchmark listing gives them (``secondary``), are shown for scale.

``fakescope eval CKPT --data 'ffpp_c23/test/*' --table sdr_ffpp`` (and the cross-dataset
sets with ``--table sdr_cross``) writes ``table_sdr_ffpp.md``/``.csv``. Our cells are the
``video_auc`` metric: the mean of the clip scores of each video, then ROC AUC over videos.
"""

from __future__ import annotations

from fakescope.eval.tables import PaperTable, register_table

PAPER = "Chu et al., Reduced Spatial Dependency for More General Video-level Deepfake Detection, ICASSP 2025"
FTCN = "Zheng et al., Exploring Temporal Coherence for More General Video Face Forgery Detection, ICCV 2021"

FFPP_COLUMNS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")
CROSS_COLUMNS = ("Celeb-DF-v2", "DFDC")

SDR_FFPP = register_table(PaperTable(
    name="sdr_ffpp",
    title="SDR: FF++ HQ (c23), video-level AUC per manipulation",
    columns=FFPP_COLUMNS,
    metrics=("video_auc",),
    aliases={"Deepfakes": ("DF",), "Face2Face": ("F2F",), "FaceSwap": ("FS",), "NeuralTextures": ("NT",)},
    reference={
        "SDR": {"Avg": (99.6,)},
        "FTCN (in SDR's table)": {"Avg": (99.4,)},
    },
    row_sources={"SDR": "secondary", "FTCN (in SDR's table)": "derived"},
    mean_label="Avg",
    footnotes={
        ("SDR", "Avg"): "the only SDR number recovered (average AUC on FF++ HQ), from a summary of the paper "
                        "(arxivlens); the paper's table was not read; its per-manipulation cells were not recovered",
        ("FTCN (in SDR's table)", "Avg"): "derived by us: the same summary says SDR is 0.2 above FTCN, so "
                                          "99.6 - 0.2; not a number we read anywhere",
    },
    source=f"{PAPER}, via a summary of it (the project's spec, section 3.1)",
))

SDR_CROSS = register_table(PaperTable(
    name="sdr_cross",
    title="SDR: cross-dataset video-level AUC (trained on FF++ c23)",
    columns=CROSS_COLUMNS,
    metrics=("video_auc",),
    aliases={"Celeb-DF-v2": ("celebdf", "celeb-df", "celebdfv2", "cdf", "cdfv2"), "DFDC": ("dfdc-test",)},
    reference={
        "FTCN (its own paper)": {"Celeb-DF-v2": (86.9,), "DFDC": (74.0,)},
    },
    row_sources={"FTCN (its own paper)": "secondary"},
    footnotes={
        ("FTCN (its own paper)", "Celeb-DF-v2"): f"{FTCN}, as a benchmark listing (wizwand) gives it; not read in "
                                                 "FTCN's paper, and not from SDR's table",
        ("FTCN (its own paper)", "DFDC"): "as above; on FTCN's own DFDC subset",
    },
    source=f"{FTCN}. SDR's own cross-dataset numbers were not recovered (TODO), nor the DFDC subset it used",
))
