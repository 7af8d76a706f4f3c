"""Media in and out: the one image decoder (:mod:`fakescope.media.image`) and the one video reader and frame
sampler (:mod:`fakescope.media.video`)."""
