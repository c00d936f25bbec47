"""PowStepReference (aihwkit PowStepReferenceDevice): the per-element reference with aihwkit's
numerical symmetric-point estimate, checked against aihwkit 1.1.0's own values, and arrays built
with the device's reference read about 0 at the SP."""

import pytest
import torch

from analogtrain.arrays import AnalogArray
from analogtrain.devices import PowStepReference

QUIET = {"pow_gamma_dtod": 0.0, "dw_min": 0.01, "dw_min_dtod": 0.0, "up_down_dtod": 0.0, "w_max_dtod": 0.0,
         "w_min_dtod": 0.0, "dw_min_std": 0.0}

#: aihwkit 1.1.0, AnalogTile(3, 2, SingleRPUConfig(PowStepReferenceDevice(subtract_symmetry_point=True,
#: pow_gamma=g, pow_up_down=u, n_estimation_steps=n, **QUIET))).get_hidden_parameters()["reference"]
#: (= "reset_bias"); the same for every device (no spread); float32
AIHWKIT = {(0.3, 1.0, -1): -0.07382342219352722, (-0.4, 2.0, -1): 0.10521557182073593,
           (0.3, 1.0, 50): -0.040357913821935654}


@pytest.mark.parametrize("up_down, gamma, steps", list(AIHWKIT))
def test_symmetric_point_estimate_and_reference_equal_aihwkit(up_down, gamma, steps):
    dev = PowStepReference(subtract_symmetry_point=True, pow_gamma=gamma, pow_up_down=up_down,
                           n_estimation_steps=steps, **QUIET)
    arr = AnalogArray((3, 2), dev, seed=0, reference=dev.array_reference())
    want = AIHWKIT[(up_down, gamma, steps)]
    torch.testing.assert_close(arr.reference, torch.full((3, 2), want), rtol=2e-5, atol=2e-6)
    hidden = arr.get_hidden_parameters()
    torch.testing.assert_close(hidden["reset_bias"], torch.full((3, 2), want), rtol=2e-5, atol=2e-6)
    if steps <= 0:  # converged: within a step of the exact SP (bisection of G)
        assert float((arr.symmetric_point() - arr.reference).abs().max()) < 0.01


def test_reference_spread_and_no_write_noise():
    dev = PowStepReference(reference_mean=0.1, reference_std=0.05, **QUIET)
    arr = AnalogArray((64, 64), dev, seed=1, reference=dev.array_reference())
    assert float(arr.reference.mean()) == pytest.approx(0.1, abs=0.003)
    assert float(arr.reference.std()) == pytest.approx(0.05, rel=0.05)
    with pytest.raises(ValueError, match="write_noise_std"):
        PowStepReference(write_noise_std=1.0)
    with pytest.raises(ValueError, match="n_estimation_steps"):
        PowStepReference(n_estimation_steps=2.5)
