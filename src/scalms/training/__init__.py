"""Training: MACE (from scratch or multi-head replay fine-tuning) and SevenNet fine-tuning, each
through the trainer's own command in its model's environment; training curves; registration of
the trained model in model_config.yaml.

- :mod:`scalms.training.datasets`: checks of the training files and the E0 table before any work.
- :mod:`scalms.training.mace`, :mod:`scalms.training.sevennet`: one trainer each, both run
  as a child by :mod:`scalms.training.trainer_process`, their epochs reported by
  :mod:`scalms.training.progress`.
- :mod:`scalms.training.curves`: per-epoch metrics read from the trainers' logs.
- :mod:`scalms.training.register`: a trained model becomes one more model_config.yaml entry.
- :mod:`scalms.training.finish`: what happens after a training succeeds (register, curves
  figure, accuracy benchmark on the test set, summary).
"""
