"""CASA environment: offline measures data, the CASA log file, CASA's console output."""
from .offline import (
    BootstrapState,
    CASAMissingError,
    MeasuresDataError,
    bootstrap,
    casadata_path,
    import_casatasks,
    import_casatools,
    state,
)

__all__ = ["BootstrapState", "CASAMissingError", "MeasuresDataError", "bootstrap", "casadata_path",
           "import_casatasks", "import_casatools", "state"]
