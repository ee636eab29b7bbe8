"""network_jvp on a torch.compile'd backbone (issue 11, item 1): the forward-mode JVP of a compiled MLP equals
the eager one and central finite differences in float64. On torch 2.14 CPU, dynamo does not trace a
compiled module inside torch.func.jvp (the backend is never called): the JVP runs the eager module, so
the fallback is automatic and exact; the test pins the result, whichever way a torch version goes."""
from __future__ import annotations

import shutil

import pytest
import torch

from lit_diffusion.backbones import MLP
from lit_diffusion.contract import network_jvp


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="torch.compile on CPU needs a C compiler (cc/gcc) for inductor; none on PATH")
def test_jvp_through_a_compiled_backbone_equals_the_eager_jvp():
    torch.manual_seed(0)
    net = MLP(2, 32, 2, second_time=True).double()
    g = torch.Generator().manual_seed(1)
    x, tx = (torch.randn(8, 2, generator=g, dtype=torch.float64) for _ in range(2))
    t = 0.1 + 0.8 * torch.rand(8, generator=g, dtype=torch.float64)
    r, tt = 0.5 * t, torch.ones_like(t)
    out_ref, d_ref = network_jvp(net, x, t, tx, tt, r=r)
    net.compile()
    out, d = network_jvp(net, x, t, tx, tt, r=r)
    torch.testing.assert_close(d, d_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(out, out_ref, rtol=1e-10, atol=1e-10)
    _, d_fd = network_jvp(net, x, t, tx, tt, r=r, method="finite_difference", step=1e-6)
    torch.testing.assert_close(d_fd, d_ref, rtol=1e-6, atol=1e-6)
    out.pow(2).sum().backward()  # the primal keeps its graph through the compiled module
    assert net.output.weight.grad is not None and bool(net.output.weight.grad.abs().sum() > 0)
