"""Amplitude renormalization: scaling spectra, atmospheric lines, plots.

Modules (data flows top to bottom):

* ``inputs``  - task parameters to plain values (vis may be qa_restore's result)
* ``msinfo``  - MS metadata read once (msmetadata, table)
* ``reader``  - one pass over the autocorrelation rows; cross-correlation flags
* ``atm``     - atmosphere model once per spw, lines per elevation bin
* ``spectra`` - the pipeline heuristic's mathematics (pure numpy)
* ``engine``  - target -> spw -> scan -> field loop and its bookkeeping
* ``caltable``- the correction as a 'B TSYS' calibration table
* ``plots``, ``report`` - PNG plots and the self-contained HTML page
* ``run``     - the task: all of the above for one or more MSs
"""
