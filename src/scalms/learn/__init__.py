"""Active learning: MD with a committee, its force spread, the frames that matter labelled, the
committee fine-tuned on them, again (``scalms learn``).

The pure parts live in ``scalms.analysis`` (so that the plots can draw them without importing
this section): :mod:`scalms.analysis.frame_selection` picks the frames (spread above a
threshold, largest first, thinned in descriptor space) and :mod:`scalms.analysis.learning` holds
the records of a round (spreads, picks, held-out errors).

- :mod:`scalms.learn.settings`: everything ``scalms learn run`` is asked to do, checked.
- :mod:`scalms.learn.state`: the learning folder: settings, rounds, which step is done.
- :mod:`scalms.learn.steps`: one function per step of a round, each resumable on its own.
- :mod:`scalms.learn.loop`: the rounds, step after step; ``status``.
"""
