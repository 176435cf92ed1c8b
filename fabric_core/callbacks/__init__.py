"""Callbacks that ship with fabric-core, selectable by name in ``Fabric(callbacks=[...])``.

* :class:`ProgressBar` (``"progress_bar"``): step, metrics, it/s and ETA on global rank 0.
* :class:`LossSpikeDetector` (``"loss_spike"``): warns (or raises) when the loss jumps.

They are plain objects whose methods a training loop calls through ``fabric.call``
(``on_train_start``, ``on_train_batch_end``, ``on_validation_end``, ``on_train_end``); see
docs/guide/callbacks.md for the arguments. Importing this package imports neither tqdm
nor rich: the progress bar imports tqdm when it first draws.
"""

from fabric_core.callbacks.loss_spike import LossSpikeDetector, LossSpikeError, LossSpikeWarning
from fabric_core.callbacks.progress import ProgressBar

__all__ = ["LossSpikeDetector", "LossSpikeError", "LossSpikeWarning", "ProgressBar"]
