"""HPC: reference data for training and benchmarking, and SLURM submission.

- ``labels``: one frame's reference energy and forces from any calculator (a DFT code or an MLIP)
  and how a labelled frame is stored (``REF_energy``, ``REF_forces``: the keys MACE reads).
- ``dft``: the DFT codes through ASE (CP2K, VASP, Quantum ESPRESSO), the thesis's settings as
  defaults, each refusing a frame whose SCF did not converge.
- ``rattle``/``rattle_job``: rattled (optionally alloyed, with molecules) frames, labelled one by
  one, appended as they finish, resumable; ``e0``: isolated-atom energies.
- ``package``: train/valid/test splits by source file; ``recompute``: the DFT-settings benchmark.
- ``slurm``: sbatch scripts from the templates in ``HPC/``, job arrays, status, collect, resubmit.
"""
