"""SDR's result tables (Chu et al., ICASSP 2025): video-level AUC, beside the numbers known from the papers.

* ``sdr_ffpp``: FF++ HQ (c23), one column per manipulation and their average. The
  average is the one number recovered for SDR (99.6); the per-manipulation cells of
  its table were not recovered.
* ``sdr_cross``: trained on FF++ c23, tested on Celeb-DF v2 and DFDC. SDR's own cells
  were not recovered (TODO); FTCN's numbers from its own paper are shown for scale.

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
    mean_label="Avg",
    footnotes={
        ("SDR", "Avg"): "the only SDR number recovered (average AUC on FF++ HQ); its per-manipulation cells "
                        "were not recovered",
        ("FTCN (in SDR's table)", "Avg"): "derived, not printed where we read it: SDR is reported 0.2 above FTCN",
    },
    source=f"{PAPER} (via the project's spec, section 3.1)",
))

SDR_CROSS = register_table(PaperTable(
    name="sdr_cross",
    title="SDR: cross-dataset video-level AUC (trained on FF++ c23)",
    columns=CROSS_COLUMNS,
    metrics=("video_auc",),
    aliases={"Celeb-DF-v2": ("celebdf", "celeb-df", "celebdfv2", "cdf", "cdfv2"), "DFDC": ("dfdc-test",)},
    reference={
        "SDR": {"Celeb-DF-v2": (None,), "DFDC": (None,)},
        "FTCN (own paper)": {"Celeb-DF-v2": (86.9,), "DFDC": (74.0,)},
    },
    footnotes={
        ("SDR", "Celeb-DF-v2"): "TODO: SDR's cross-dataset numbers were not recovered",
        ("SDR", "DFDC"): "TODO: not recovered; the DFDC subset SDR used is unknown as well",
        ("FTCN (own paper)", "Celeb-DF-v2"): f"from {FTCN}, not from SDR's table",
        ("FTCN (own paper)", "DFDC"): "from FTCN's own paper, on its own DFDC subset",
    },
    source=f"{PAPER}; {FTCN}",
))
