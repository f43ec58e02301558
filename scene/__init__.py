"""Whole-scene inference: remove the clouds of a Sentinel-2 scene of any size with a trained model.

The public API:

* :class:`ScenePredictor` — an experiment (``checkpoints/<name>/``) or a published weight file
  (``weights=``) ready to predict scenes;
  :meth:`ScenePredictor.predict` writes one and returns a :class:`SceneResult`.
* :func:`predict_scene_file` — the same for one scene in one call.
* :data:`OUT_DTYPES` — the output types ('float32' reflectance, 'uint16' reflectance x 10000).

The modules beneath, bottom up: :mod:`scene.products` (the products users download: stacked
GeoTIFF, SAFE, STAC item, behind one interface: bands by name, grid, units),
:mod:`scene.windows` (the window grid and the blending), :mod:`scene.reader` (windows read in
batches), :mod:`scene.domain` (how a scene is given to a model by its input domain: Sentinel
scaling, the PNG mapping, no SAR; the check of the inputs against it), :mod:`scene.io` (the inputs
and their checks), :mod:`scene.scaling` (Sentinel scaling on the device), :mod:`scene.output`
(output types, GeoTIFF profile, atomic output), :mod:`scene.paths` (where a run writes, checked
before it writes), :mod:`scene.keep_clear` (``--keep_clear``), :mod:`scene.pipeline` (the
streaming pipeline and its threads), :mod:`scene.model` (the trained model and its forward
function), :mod:`scene.stac_item` (tags and the STAC item of an output), :mod:`scene.writing` (the
files of one run), :mod:`scene.files` (what a run reports), :mod:`scene.predictor` (the API
above), :mod:`scene.batch` and :mod:`scene.shard` (many scenes, and each worker's share).
``predict.py`` is its command line.
"""

from scene.output import COMPRESSIONS, OUT_DTYPES, OutputFormat
from scene.pipeline import Forward
from scene.predictor import ScenePredictor, SceneResult, predict_scene_file
from util.allocator import keep_heap_flat

__all__ = [
    "COMPRESSIONS",
    "OUT_DTYPES",
    "Forward",
    "OutputFormat",
    "ScenePredictor",
    "SceneResult",
    "keep_heap_flat",
    "predict_scene_file",
]
