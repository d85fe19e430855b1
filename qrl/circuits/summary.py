"""``summary``: a circuit described in a few lines of text, with its weight shape and parameter counts."""

from __future__ import annotations

from qrl.circuits.ansatze import ANSATZE
from qrl.circuits.spec import OBS_MAP_FORMULAS, CircuitSpec


def summary(spec: CircuitSpec) -> str:
    """What ``spec`` computes and how many parameters it trains, as text.

    Args:
        spec: the circuit.

    Returns:
        lines ``circuit``, ``encoding``, ``ansatz``, ``readout`` and ``parameters``; the parameter
        counts are those of :meth:`CircuitSpec.parameter_counts`.

    **Example**

    >>> print(summary(CircuitSpec(n_qubits=2, n_layers=3, n_inputs=2, n_outputs=2)))
    circuit:    2 qubits, 3 layers, data re-uploading (encoding in every layer)
    encoding:   RX(lambda[l, i] * arctan(x_i)) on qubit i, i < 2; lambda trainable, shape (3, 2)
    ansatz:     hea: RY-RZ on every qubit, then a CZ ring; weights shape (3, 2, 2)
    readout:    z: out_0 = w_0 * <Z0>, out_1 = w_1 * <Z1>; w trainable, init 1.0
    parameters: 12 rotations + 6 input scaling + 2 output weights = 20
    """
    counts = spec.parameter_counts()
    if spec.data_reuploading:
        layering = "data re-uploading (encoding in every layer)"
    else:
        layering = "encoding before the first layer only"
    angle = OBS_MAP_FORMULAS[spec.obs_map]
    if spec.trains_input_scaling:
        angle = ("lambda[l, i]" if spec.data_reuploading else "lambda[i]") + f" * {angle}"
        lam_state = f"lambda trainable, shape {spec.input_scaling_shape}"
    else:
        lam_state = "lambda fixed to 1"
    if spec.obs_map == "basis":
        lam_state = "b_i in {0, 1}: the discrete observation in binary; " + lam_state
    ansatz = ANSATZE[spec.ansatz]
    outputs = ", ".join(f"out_{a} = {'-' if label.startswith('-') else ''}w_{a} * <{label.lstrip('-')}>"
                        for a, label in enumerate(spec.observable_labels()))
    w_state = f"w trainable, init {spec.output_scale_init}" if spec.output_scaling else \
        f"w fixed to {spec.output_scale_init}"
    return "\n".join([
        f"circuit:    {spec.n_qubits} qubit{'s' if spec.n_qubits != 1 else ''}, {spec.n_layers} "
        f"layer{'s' if spec.n_layers != 1 else ''}, {layering}",
        f"encoding:   {spec.encoding.upper()}({angle}) on qubit i, i < {spec.n_inputs}; {lam_state}",
        f"ansatz:     {spec.ansatz}: {ansatz.description}; weights shape {spec.weight_shape}",
        f"readout:    {spec.readout}: {outputs}; {w_state}",
        f"parameters: {counts['rotations']} rotations + {counts['input_scaling']} input scaling + "
        f"{counts['output_weights']} output weights = {counts['total']}",
    ])
