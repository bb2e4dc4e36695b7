"""One intra-op thread: on a small shared CPU, OpenMP threads spinning against other processes
made this suite about 20x slower (70 s vs 3 s). Belongs in tests/conftest.py for every suite."""

import torch

torch.set_num_threads(1)
