import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def mnist_tiny():
    from nnfractal.data import load_mnist
    return load_mnist(train_size=32, test_size=64, seed=0, download=False)
