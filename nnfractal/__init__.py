"""nnfractal: where neural-network training stops working, mapped over hyperparameter grids."""
__version__ = "0.1.0"
