"""The parent <-> child boundary.

The parent (the ``scalms`` command) writes a task file (:mod:`.task`), starts
``<env python> -m scalms.workers.child TASK`` (:mod:`.parent`), follows the events the child
prints (:mod:`.events`) and reads the HDF5 file the child wrote. The child (:mod:`.child`) is the
only place a model package is imported.
"""
