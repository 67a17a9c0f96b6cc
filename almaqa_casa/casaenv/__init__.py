"""CASA environment: offline measures data, versions, logging helpers."""
from .offline import BootstrapState, MeasuresDataError, bootstrap, casadata_path, import_casatools, state

__all__ = ["BootstrapState", "MeasuresDataError", "bootstrap", "casadata_path",
           "import_casatools", "state"]
