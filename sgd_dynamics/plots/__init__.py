"""Figures of a run: its full spectra or spectral densities (figure 1), its alignment over
training (figure 2), its loss, accuracy and H_p's extremes (figure 3), the picture of its wandb
workspace. PNG output only (Agg canvas, no display). The sweep report's figures are
`sgd_dynamics.report.figures`."""

from sgd_dynamics.plots.alignment import alignment_figure
from sgd_dynamics.plots.common import save_figure
from sgd_dynamics.plots.density import density_figure
from sgd_dynamics.plots.run_figures import (
    ALIGNMENT_PNG,
    DENSITIES_PNG,
    FULL_SPECTRA_PNG,
    TRAINING_PNG,
    draw_run_figures,
)
from sgd_dynamics.plots.spectra import choose_steps, full_spectra_figure
from sgd_dynamics.plots.training import training_figure

__all__ = [
    "ALIGNMENT_PNG",
    "DENSITIES_PNG",
    "FULL_SPECTRA_PNG",
    "TRAINING_PNG",
    "alignment_figure",
    "choose_steps",
    "density_figure",
    "draw_run_figures",
    "full_spectra_figure",
    "save_figure",
    "training_figure",
]
