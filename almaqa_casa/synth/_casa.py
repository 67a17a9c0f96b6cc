"""casatools/casatasks imported offline (measures from casadata)."""
from __future__ import annotations

try:  # the package's own bootstrap
    from almaqa_casa.casaenv import casadata_path, import_casatools
except Exception:  # pragma: no cover - package import failing for other reasons
    import importlib.util as _u
    import os as _os
    _p = _os.path.join(_os.path.dirname(_os.path.dirname(__file__)), "casaenv", "offline.py")
    _spec = _u.spec_from_file_location("_almaqa_casaenv_offline", _p)
    _m = _u.module_from_spec(_spec)
    _spec.loader.exec_module(_m)
    casadata_path, import_casatools = _m.casadata_path, _m.import_casatools

casatools = import_casatools()
import casatasks  # noqa: E402

__all__ = ["casadata_path", "casatasks", "casatools"]
