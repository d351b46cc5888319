"""File formats: structures in, HDF5 results out, exports for other tools."""
