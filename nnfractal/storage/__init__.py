"""Storage: the zarr store of a run, the run folder as one object, and atomic files and folders.

``store`` (curves, axes, tile done-flags, metadata), ``run_folder`` (where each file of a run
lives; claiming, locking, reading and writing a folder), ``folders`` (atomic writes and staged
folders, so that a crash or a second process never loses anything).
"""
