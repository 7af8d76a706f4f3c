"""The record ``fakescope detect`` writes for every input, as JSON lines or CSV."""

from __future__ import annotations

import json
from typing import Any

# score: the P(fake) shown and labelled: the checkpoint's temperature-scaled probability where it is calibrated
# (calibrated: true), else the model's own; model_score: the model's own P(fake); threshold: on the scale of score;
# region: what part of the input the model saw; operating_point: how the threshold was chosen (fixed, eer, fpr1, fpr5) and threshold_source: on what;
# face_boxes: the faces scored, [frame index, x1, y1, x2, y2] in the frame's pixels (face-stage models);
# provenance: what the file says of its origin (C2PA, XMP, generator metadata, camera), apart from the score;
# members, signals, reasons: a fusion's (fakescope.inference.fusion): each member detector's score or error, each
# signal's value (watermark, C2PA, metadata), and the contributions to the fused verdict in words
RECORD_FIELDS = ("path", "kind", "score", "label", "threshold", "calibrated", "model_score", "operating_point",
                 "threshold_source", "faces_found", "face_boxes", "frame_scores", "frame_indices", "frame_times", "clip_scores",
                 "region", "warnings", "model", "model_version", "backend", "demonstration", "error", "seconds", "explanation",
                 "provenance", "members", "signals", "reasons")


def csv_row(rec: dict[str, Any]) -> dict[str, Any]:
    """A record as a CSV row: lists become JSON text, missing values empty cells; text is valid UTF-8 and never
    a spreadsheet formula (:func:`fakescope.utils.cells.csv_cell`: ``=cmd.png`` is written ``'=cmd.png``)."""
    from fakescope.utils.cells import csv_cell, utf8_obj

    row = {}
    for k in RECORD_FIELDS:
        v = rec.get(k)
        row[k] = "" if v is None else csv_cell(json.dumps(utf8_obj(v)) if isinstance(v, (list, dict)) else v)
    return row


def json_record(rec: dict[str, Any]) -> str:
    return json.dumps({k: rec.get(k) for k in RECORD_FIELDS})
