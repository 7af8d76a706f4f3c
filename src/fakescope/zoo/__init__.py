"""The weights package: released detectors by name, downloads and the cache, Hub ids, converters, checkpoints.

* :mod:`~fakescope.zoo.catalogue`: the released detectors as data, one validated YAML file per family
  (``entries/``); :func:`list_pretrained`, :func:`pretrained_entry`;
* :mod:`~fakescope.zoo.hub`: official files by URL and Hugging Face Hub models, into ``$FAKESCOPE_HOME`` and the
  Hugging Face cache, checked by size and SHA-256 (:func:`~fakescope.zoo.hub.sha256_of`, the one hash helper);
  ``hf-hub:user/name[@revision]`` ids (:func:`~fakescope.zoo.hub.parse_hub_id`, the one parser);
* :mod:`~fakescope.zoo.convert`: the key maps from the official files to fakescope's architectures;
* :mod:`~fakescope.zoo.checkpoint`: fakescope checkpoint folders (safetensors weights, config, model card);
* :mod:`~fakescope.zoo.pretrained`: a name, a path or a Hub id to a loaded detector (:func:`load_pretrained`).

The architectures (:mod:`fakescope.models`) import nothing from here: importing this package installs it as
their source of Hub weights (:func:`fakescope.models.sources.set_weight_source`).
"""

from fakescope.models.sources import set_weight_source as _set_weight_source
from fakescope.zoo.catalogue import PRETRAINED, PretrainedEntry, list_pretrained, pretrained_entry
from fakescope.zoo.checkpoint import load, save
from fakescope.zoo.hub import hub_file as _hub_file
from fakescope.zoo.hub import hub_model as _hub_model
from fakescope.zoo.pretrained import load_pretrained, pretrained_checkpoint, resolve_checkpoint

_set_weight_source(_hub_model, _hub_file)

__all__ = ["PRETRAINED", "PretrainedEntry", "list_pretrained", "load", "load_pretrained", "pretrained_checkpoint",
           "pretrained_entry", "resolve_checkpoint", "save"]
