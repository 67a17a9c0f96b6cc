"""Image operations: impbcor recovery, polarization maps, statistics, FITS I/O."""
