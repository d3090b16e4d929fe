"""One curvature snapshot, composed from the operators, the solvers, the Gram route and the
densities.

- `spectra`: `compute_spectra` and its result `Spectra`.
- `arguments`: checks of the per-call arguments (samples, k, batch size, warm start).
- `dense`: the dense method (exact P×P matrices, all eigenvalues).
- `iterative`: the iterative method (matrix-free products, H_p's extremes, Hutchinson traces).
- `parts`: what the two methods share (`SnapshotParts`, the solves with the snapshot's settings).
- `densities`: the snapshot's spectral densities (exact or by quadrature).

The settings are `options.SpectraOptions`; the size-steered choices are in `thresholds`.
"""

from .spectra import Spectra, compute_spectra

__all__ = ["Spectra", "compute_spectra"]
