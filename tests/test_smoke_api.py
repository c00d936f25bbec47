import torch

import analogtrain as at


def test_public_api_trains_a_linear_layer():
    """The API of the core issue, end to end: loss must fall on a realisable target."""
    torch.manual_seed(0)
    dev = at.devices.SoftBounds(tau=1.0, asymmetry=0.0, dw_min=1e-4)
    cfg = at.AnalogConfig(algorithm=at.algorithms.AnalogSGD(), device=dev, io=at.IO.perfect(), engine="expected")
    layer = at.nn.AnalogLinear(8, 3, bias=False, config=cfg)
    target = torch.randn(3, 8) * 0.2
    opt = at.optim.AnalogSGD(layer.parameters(), lr=0.1)
    x = torch.randn(256, 8)
    y = x @ target.T
    first = None
    for _ in range(300):
        opt.zero_grad()
        loss = 0.5 * ((layer(x) - y) ** 2).sum(1).mean()
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.01 * first
