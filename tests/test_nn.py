"""The VQC module: scaling, shapes, pickling after Lightning ran, switching backends."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch

from qrl.circuits import CircuitSpec
from qrl.errors import QRLError
from qrl.nn import VQC, forward_together


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


def test_bounds_map_is_linear_onto_half_a_turn_and_clips():
    # bounds exact in float32 (the buffers take the module's dtype); last feature: low == high
    low, high = np.array([-1.25, -0.0625, 3.0]), np.array([0.75, 0.0625, 3.0])
    spec = CircuitSpec(n_qubits=3, n_layers=2, n_inputs=3, n_outputs=1, obs_map="bounds")
    vqc = VQC(spec, device="torch", obs_low=low, obs_high=high).double()
    x = np.array([[-1.25, -0.0625, 3.0], [0.75, 0.0625, 3.0], [-0.3, 0.0, 3.0], [0.15, 0.035, 3.0], [5.0, -9.0, 3.0]])
    mapped = vqc.map_observation(torch.as_tensor(x)).numpy()
    expected = np.pi / 2 * (2 * (np.clip(x, low, high) - low) / np.where(high > low, high - low, 1.0) - 1)
    expected[:, 2] = 0.0
    np.testing.assert_allclose(mapped, expected, atol=1e-12, rtol=0)
    h = np.pi / 2
    np.testing.assert_allclose(mapped[:2, :2], [[-h, -h], [h, h]], atol=1e-12, rtol=0)
    np.testing.assert_allclose(mapped[4, :2], [h, -h], atol=1e-12, rtol=0)  # clipped, not wrapped
    # the angles are lambda * map, for every layer
    with torch.no_grad():
        vqc.input_scaling.copy_(torch.tensor([[0.5, 1.0, 2.0], [1.5, -1.0, 1.0]], dtype=torch.float64))
    angles = vqc.angles(torch.as_tensor(x)).detach().numpy()
    np.testing.assert_allclose(angles, vqc.input_scaling.detach().numpy()[None] * mapped[:, None, :],
                               atol=1e-12, rtol=0)


def test_bounds_are_buffers_in_the_state_dict_and_follow_dtype():
    spec = CircuitSpec(n_qubits=2, n_layers=1, n_inputs=2, obs_map="bounds")
    vqc = VQC(spec, obs_low=[-1.0, 0.0], obs_high=[1.0, 4.0])
    state = vqc.state_dict()
    assert state["obs_low"].tolist() == [-1.0, 0.0] and state["obs_high"].tolist() == [1.0, 4.0]
    assert "obs_low" not in dict(vqc.named_parameters())
    assert vqc.double().obs_low.dtype == torch.float64
    assert "obs_low" not in VQC(CircuitSpec()).state_dict()  # other maps keep their state dict


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"obs_low": [-1, -np.inf, 0], "obs_high": [1, 2, np.inf]},
         r"the observation has infinite bounds for features \[1, 2\]; try obs_map='arctan'"),
        ({"obs_low": [-1, -3.4028235e38, 0], "obs_high": [1, 2, 3]}, r"infinite bounds for features \[1\]"),
        ({}, r"obs_map='bounds' needs the observation bounds.*try obs_map='arctan'"),
        ({"obs_low": [0, 0], "obs_high": [1, 1]}, r"expected obs_low and obs_high with 3 values.*got 2 and 2"),
        ({"obs_low": [0, 2, 0], "obs_high": [1, 1, 1]},
         r"expected obs_low <= obs_high; got low > high for features \[1\]"),
    ],
)
def test_bounds_errors_name_the_fix(kwargs, message):
    with pytest.raises(QRLError, match=message):
        VQC(CircuitSpec(n_qubits=3, n_inputs=3, obs_map="bounds"), **kwargs)


def test_bounds_given_to_another_map_is_an_error():
    with pytest.raises(QRLError, match=r"obs_low and obs_high are the bounds of obs_map='bounds'; got obs_map='tanh'"):
        VQC(CircuitSpec(obs_map="tanh"), obs_low=[0] * 4, obs_high=[1] * 4)


def test_scale_map_divides_by_fixed_numbers_without_clipping():
    # the TensorFlow Quantum tutorial's CartPole map: x / (2.4, 2.5, 0.21, 2.5), values past them kept
    scale = np.array([2.4, 2.5, 0.21, 2.5])
    spec = CircuitSpec(n_qubits=4, n_layers=2, n_inputs=4, n_outputs=2, obs_map="scale")
    vqc = VQC(spec, device="torch", obs_scale=scale.tolist()).double()
    x = np.array([[0.0, 0.0, 0.0, 0.0], [2.4, -2.5, 0.21, 2.5], [-1.2, 5.0, -0.105, -7.5]])
    mapped = vqc.map_observation(torch.as_tensor(x)).numpy()
    held = scale.astype(np.float32).astype(np.float64)  # the buffer is made in float32, then follows .double()
    assert vqc.obs_scale.tolist() == held.tolist()
    np.testing.assert_allclose(mapped, x / held, atol=1e-12, rtol=0)
    np.testing.assert_allclose(mapped[2], [-0.5, 2.0, -0.5, -3.0], atol=1e-7, rtol=0)  # not clipped to 1
    with torch.no_grad():
        vqc.input_scaling.copy_(torch.tensor([[0.5, 1.0, 2.0, -1.0], [1.5, -1.0, 1.0, 3.0]], dtype=torch.float64))
    angles = vqc.angles(torch.as_tensor(x)).detach().numpy()
    np.testing.assert_allclose(angles, vqc.input_scaling.detach().numpy()[None] * (x / held)[:, None, :],
                               atol=1e-12, rtol=0)
    # a buffer saved with the weights (SB3's load restores it), not trained; one number serves every input
    assert "obs_scale" in vqc.state_dict() and "obs_scale" not in dict(vqc.named_parameters())
    one = VQC(CircuitSpec(n_qubits=3, n_inputs=3, obs_map="scale"), obs_scale=0.5)
    assert one.obs_scale.tolist() == [0.5, 0.5, 0.5] and one.double().obs_scale.dtype == torch.float64


@pytest.mark.parametrize(
    ("obs_scale", "message"),
    [
        (None, r"obs_map='scale' divides each feature by a fixed number; expected obs_scale=\[1.0, 1.0, 1.0\]"),
        ([1.0, 2.0], r"expected obs_scale with 3 positive numbers .*; got 2 values"),
        ("wide", r"got something that is not a list of numbers \('wide'\); try obs_scale=\[1.0, 1.0, 1.0\]"),
        ([1.0, 0.0, 2.0], r"every value must be finite and positive; got \[1.0, 0.0, 2.0\]"),
        ([1.0, float("inf"), 2.0], r"every value must be finite and positive"),
    ],
)
def test_scale_errors_name_the_fix(obs_scale, message):
    with pytest.raises(QRLError, match=message):
        VQC(CircuitSpec(n_qubits=3, n_inputs=3, obs_map="scale"), obs_scale=obs_scale)


def test_scale_given_to_another_map_is_an_error():
    with pytest.raises(QRLError, match=r"obs_scale divides the features of obs_map='scale'; got obs_map='arctan'"):
        VQC(CircuitSpec(), obs_scale=[1.0] * 4)


@pytest.mark.parametrize("device", ["torch", "lightning.qubit"])
def test_basis_map_flips_exactly_the_one_bits(device):
    # Zero ansatz weights (RY(0) RZ(0), CZ ring: diagonal): <Z_i> = (-1)^{b_i} in every layer count.
    spec = CircuitSpec(n_qubits=3, n_layers=2, n_inputs=3, n_outputs=3, obs_map="basis")
    vqc = VQC(spec, device=device).double()
    assert not isinstance(vqc.input_scaling, torch.nn.Parameter)  # fixed: angles stay 0 or pi
    with torch.no_grad():
        vqc.weights.zero_()
    bits = torch.tensor([[0, 0, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]], dtype=torch.float64)
    torch.testing.assert_close(vqc.map_observation(bits), np.pi * bits, atol=0, rtol=0)
    # two re-uploaded RX(pi) flips cancel: layer 1 flips, layer 2 flips back
    torch.testing.assert_close(vqc(bits).detach(), torch.ones(4, 3, dtype=torch.float64), atol=1e-12, rtol=0)
    one_layer = VQC(spec.replace(data_reuploading=False), device=device).double()
    with torch.no_grad():
        one_layer.weights.zero_()
    torch.testing.assert_close(one_layer(bits).detach(), 1 - 2 * bits, atol=1e-12, rtol=0)


@pytest.mark.parametrize("device", ["auto", "torch", "torch:native", "torch:adjoint", "lightning.qubit"])
def test_an_empty_batch_gives_an_empty_result_and_zero_gradients(device):
    spec = CircuitSpec(n_qubits=3, n_layers=2, n_inputs=3, n_outputs=2)
    vqc = VQC(spec, device=device, seed=0)
    out = vqc(torch.zeros(0, 3))
    assert out.shape == (0, 2) and out.dtype == torch.float32
    out.sum().backward()
    for name, p in vqc.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) == 0, name
    a, b = VQC(spec, device=device, seed=1), VQC(spec, device=device, seed=2)
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(0))
    empty, full = forward_together([a, b], [torch.zeros(0, 3), x])
    assert empty.shape == (0, 2)
    torch.testing.assert_close(full, b(x), rtol=0, atol=0)
