"""Test-suite settings: one intra-op thread.

The suite's tensors are small; on a 2-core machine torch's thread pool costs far more than it
gains (measured 10-15x slower element-wise ops under load), and results stay deterministic.
"""

import torch

torch.set_num_threads(1)
