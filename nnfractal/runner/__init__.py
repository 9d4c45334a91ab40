"""The runner: one grid of networks trained into a run folder, resumable tile by tile.

``run`` (plan, train, analyse and draw a grid; ``execute`` and ``resume``), ``backends`` (where
tiles train: this process or Ray tasks; Ctrl-C and SIGTERM stop after the chunk), ``adaptive``
(train only near the boundary, fill the rest).
"""
