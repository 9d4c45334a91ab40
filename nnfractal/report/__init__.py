"""Reports: the self-contained report.html of any result folder (run, zoom, sample, comparison)."""
