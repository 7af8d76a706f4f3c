"""Inference: a trained detector run on files, folders, images, arrays and videos (:class:`Detector`).

Inputs (:mod:`.inputs`) -> backend (:mod:`.backends`: PyTorch or onnxruntime) -> the checkpoint's own face and
pixel stages (:mod:`.pipeline`: the detector; :mod:`.images`, :mod:`.videos` and :mod:`.faces`: the paths of
each kind of input) -> one record per input (:mod:`.records`, :mod:`.verdict`). ``fakescope detect``
(:mod:`.stream`) writes them to a resumable output (:mod:`.detect_output`, :mod:`.outputs`).
"""

from fakescope.inference.backends import OnnxImageModel, load_model, resolve_device
from fakescope.inference.inputs import MEDIA_EXTENSIONS, expand_inputs
from fakescope.inference.pipeline import Detector, InferenceOptions
from fakescope.inference.records import RECORD_FIELDS, csv_row, json_record
from fakescope.inference.visual import log_spectrum

__all__ = ["Detector", "InferenceOptions", "MEDIA_EXTENSIONS", "OnnxImageModel", "RECORD_FIELDS", "csv_row",
           "expand_inputs", "json_record", "load_model", "log_spectrum", "resolve_device"]
