"""The VQC module: scaling, shapes, pickling after Lightning ran, switching backends."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch

from qrl.circuits import CircuitSpec
from qrl.errors import QRLError
from qrl.nn import VQC


def test_forward_is_output_scaling_times_readout_of_scaled_angles():
    spec = CircuitSpec(n_qubits=1, n_layers=1, n_inputs=1, n_outputs=1, obs_map="arctan")
    vqc = VQC(spec, device="torch").double()
    with torch.no_grad():
        vqc.weights.copy_(torch.tensor([[[0.4, 0.1]]], dtype=torch.float64))
        vqc.input_scaling.fill_(2.0)
        vqc.output_scaling.fill_(3.0)
    x = torch.tensor([[0.5], [-2.0]], dtype=torch.float64)
    expected = 3.0 * np.cos(2.0 * np.arctan(x.numpy()[:, 0])) * np.cos(0.4)
    np.testing.assert_allclose(vqc(x).detach().numpy()[:, 0], expected, atol=1e-12, rtol=0)


def test_gradients_reach_every_parameter():
    vqc = VQC(CircuitSpec(n_outputs=2), seed=0)
    vqc(torch.randn(5, 4)).pow(2).sum().backward()
    for name, p in vqc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_seed_fixes_initial_weights():
    a, b = VQC(CircuitSpec(), seed=3), VQC(CircuitSpec(), seed=3)
    assert torch.equal(a.weights, b.weights)
    assert not torch.equal(a.weights, VQC(CircuitSpec(), seed=4).weights)


def test_wrong_input_width_is_an_error():
    with pytest.raises(QRLError, match=r"expected input of shape \(batch, 4\); got \(2, 3\)"):
        VQC(CircuitSpec())(torch.zeros(2, 3))


@pytest.mark.parametrize("clone", [pickle.loads, copy.deepcopy], ids=["pickle", "deepcopy"])
def test_pickle_and_deepcopy_after_lightning_ran(clone):
    vqc = VQC(CircuitSpec(n_outputs=2), device="lightning.qubit", seed=0)
    x = torch.randn(4, 4)
    y = vqc(x)
    y.sum().backward()  # the device has executed (and differentiated): it no longer pickles itself
    twin = clone(pickle.dumps(vqc)) if clone is pickle.loads else clone(vqc)
    assert twin.device_name == "lightning.qubit"
    torch.testing.assert_close(twin(x), y, atol=1e-6, rtol=0)


def test_set_device_keeps_weights_and_values():
    vqc = VQC(CircuitSpec(n_outputs=2), device="torch", seed=1).double()
    x = torch.randn(6, 4, dtype=torch.float64)
    y = vqc(x).detach()
    vqc.set_device("lightning.qubit")
    assert vqc.device_name == "lightning.qubit"
    torch.testing.assert_close(vqc(x).detach(), y, atol=1e-12, rtol=0)
