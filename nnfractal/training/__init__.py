"""Training: the data, the hyperparameter window, the batched engine and what it is measured by.

``data`` (fixed tensors for a run) -> ``grid`` (window -> hyperparameters of any set of points)
-> ``engine`` (train M models at once: curves) -> ``measure`` (curves -> one signed score per
model). ``reference`` trains one model the ordinary way (the yardstick of the tests);
``budget`` checks memory and storage before anything is written; ``allocator`` picks the malloc
and the threads the process trains on.
"""
