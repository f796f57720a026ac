"""Quality evaluation: a generated, exactly labelled product-photo set and SOD metrics.

* :mod:`.shapes` draws foreground objects (exact anti-aliased silhouettes, shaded looks),
* :mod:`.dataset` composes them onto backdrops into seeded :class:`~.dataset.Sample` s,
* :mod:`.metrics` scores a predicted mask (IoU, MAE, S-measure, F-measure),
* :mod:`.evaluate` runs a model through the worker's :class:`~cutq.worker.runtime.inference.Runner`.

Needs the ``eval`` extra (``pysodmetrics``, which brings scipy and OpenCV).
"""
