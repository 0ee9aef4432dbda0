"""Lightning callbacks of a training run (conf/callbacks/): pictures, measurements, faults, speed, checkpoints."""

from encdec_pl.runtime.callbacks.checkpoints import BestCheckpoint, LastCheckpoint
from encdec_pl.runtime.callbacks.equilibrium import EquilibriumDetector
from encdec_pl.runtime.callbacks.faults import FaultHandler
from encdec_pl.runtime.callbacks.latent_norm import LatentNormPlot
from encdec_pl.runtime.callbacks.lr_schedule import CosineDecay
from encdec_pl.runtime.callbacks.progress import ProgressBar
from encdec_pl.runtime.callbacks.quality import QualityMonitor
from encdec_pl.runtime.callbacks.reconstructions import ReconstructionGrid
from encdec_pl.runtime.callbacks.speed import FastStep
from encdec_pl.runtime.callbacks.time_estimate import TimeEstimate

__all__ = [
    "BestCheckpoint",
    "CosineDecay",
    "EquilibriumDetector",
    "FastStep",
    "FaultHandler",
    "LastCheckpoint",
    "LatentNormPlot",
    "ProgressBar",
    "QualityMonitor",
    "ReconstructionGrid",
    "TimeEstimate",
]
