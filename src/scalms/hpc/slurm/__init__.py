"""SLURM job arrays of scalms commands: the engine scalms scales out on (no scheduler of its own).

- ``split``: a scalms command into array tasks (rattle shards, structures shared out).
- ``script``: the readable sbatch script, from a template in ``HPC/``.
- ``scheduler``: sbatch, squeue, scontrol, sacct through argument lists.
- ``jobdir``: the job folder (script, ``job.json``, per-task folders, logs, exit codes).
- ``jobs``: submit, and each task's state; ``collect``: merge the outputs, resubmit failures.
"""
