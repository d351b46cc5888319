"""Analysis records survive a round trip through their JSON files."""

import numpy as np

from scalms.analysis.results import DiffusionFit, MeanSquaredDisplacement, SoluteTrace
from scalms.io.analysis_files import load_record, save_record


def test_a_record_with_nested_fits_round_trips_with_dtypes(tmp_path):
    fit = DiffusionFit(5.4e-6, 5.4e-5 * 6, 0.3, 0.98, 100.0, 1000.0)
    msd = MeanSquaredDisplacement(
        lag_fs=np.linspace(0, 1000, 11),
        msd_A2=np.arange(11.0),
        per_atom_A2=np.arange(22.0).reshape(2, 11),
        indices=np.array([3, 17], dtype=np.int64),
        symbol="Pt",
        method="fft",
        origin_stride=1,
        fit=fit,
        per_atom_fit=(fit, fit),
    )
    back = load_record(save_record(msd, tmp_path / "msd.json"))
    assert isinstance(back, MeanSquaredDisplacement) and back.fit == fit
    assert back.per_atom_fit == (fit, fit)
    assert back.indices.dtype == np.int64
    np.testing.assert_array_equal(back.per_atom_A2, msd.per_atom_A2)


def test_tuples_of_names_stay_tuples(tmp_path):
    trace = SoluteTrace(
        time_fs=np.arange(3.0),
        indices=np.array([0]),
        distance_A=np.ones((3, 1)),
        surface_A=np.full((3, 1), 7.0),
        symbol="Bi",
        n_surface=5,
        surface_elements=("Ga",),
        n_atoms=342,
    )
    back = load_record(save_record(trace, tmp_path / "t.json"))
    assert back.surface_elements == ("Ga",) and back.n_atoms == 342
    np.testing.assert_array_equal(back.surface_A, trace.surface_A)
