"""Hardware device names ``<plugin device>@<machine>``: credentials, IBM snapshots, size checks.

Credentials come from environment variables when a device is created and are never written anywhere
(a device is saved as its name). The names qrl knows are listed in the README (Real hardware).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from qrl.errors import QRLError

# device-name prefix -> (environment variables, any of which is enough; how to set them)
CREDENTIALS = {
    "qiskit.remote": (("QISKIT_IBM_TOKEN",),
                      "export QISKIT_IBM_TOKEN=<IBM Quantum API key> (and QISKIT_IBM_INSTANCE=<instance CRN>)"),
    "ionq.": (("IONQ_API_KEY",), "export IONQ_API_KEY=<IonQ API key>"),
    "braket.aws.": (("AWS_ACCESS_KEY_ID", "AWS_PROFILE"),
                    "export AWS_ACCESS_KEY_ID=... AWS_SECRET_ACCESS_KEY=... AWS_DEFAULT_REGION=... "
                    "(or AWS_PROFILE=<profile> from ~/.aws/credentials)"),
}
# plugin device -> example of the name qrl expects (the part after @ says which machine)
TARGET_EXAMPLES = {
    "qiskit.aer": "qiskit.aer@FakeManilaV2",
    "qiskit.remote": "qiskit.remote@ibm_brisbane",
    "ionq.qpu": "ionq.qpu@aria-1",
    "braket.aws.qubit": "braket.aws.qubit@arn:aws:braket:us-east-1::device/qpu/ionq/Aria-1",
}
HARDWARE_PREFIXES = ("qiskit.remote", "ionq.", "braket.aws.")


def is_hardware(name: str) -> bool:
    """A device that samples like hardware: a real QPU plugin or an IBM device snapshot."""
    return "@" in name or name.startswith(HARDWARE_PREFIXES)


def check_credentials(device: str) -> None:
    """Raise with the variables to set when a real device's credentials are not in the environment."""
    for prefix, (variables, how) in CREDENTIALS.items():
        if device.startswith(prefix):
            if prefix == "braket.aws." and (Path.home() / ".aws" / "credentials").is_file():
                return
            if not any(os.environ.get(v) for v in variables):
                raise QRLError(f"{device} needs credentials; {' or '.join(variables)} is not set; try {how}")


def device_kwargs(name: str) -> dict:
    """Keyword arguments for ``qml.device`` of a hardware name ``<device>@<target>`` (credentials
    from the environment, machines looked up); ``{}`` for other names."""
    base, _, target = name.partition("@")
    if base in ("qiskit.remote", "braket.aws.qubit") and not target:
        raise QRLError(f"{base} needs the machine in the name; got {name!r}; try {TARGET_EXAMPLES[base]}")
    check_credentials(base)
    if not target:
        return {}
    if target.startswith("Fake") and base != "qiskit.aer":
        raise QRLError(f"a device snapshot (@{target}) runs on qiskit.aer; got {name}; try qiskit.aer@{target}")
    if base.startswith("qiskit."):
        # Qiskit's transpiler maps, routes and compiles to the native gates (seeded: reproducible layouts)
        return {"backend": qiskit_backend(name), "optimization_level": 1, "seed_transpiler": 0}
    if base.startswith("ionq."):
        return {"backend": target, "api_key": os.environ["IONQ_API_KEY"]}
    if base.startswith("braket."):
        return {"device_arn": target}
    raise QRLError(f"device {name!r}: qrl knows no machine names for {base}; expected one of "
                   f"{', '.join(TARGET_EXAMPLES.values())}")


@functools.lru_cache(maxsize=8)
def qiskit_backend(name: str):
    """The Qiskit backend behind ``qiskit.aer@Fake...`` (an offline snapshot) or ``qiskit.remote@ibm_...``
    (IBM Quantum, credentials from ``QISKIT_IBM_TOKEN``); built once per process."""
    base, _, target = name.partition("@")
    if base == "qiskit.aer":
        return fake_ibm_backend(target, device=name)
    if base != "qiskit.remote":
        fix = f"qiskit.aer@{target}" if target.startswith("Fake") else f"qiskit.remote@{target}"
        raise QRLError(f"an IBM machine (@{target}) runs on qiskit.aer (snapshots) or qiskit.remote; got {name}; "
                       f"try {fix}")
    check_credentials(base)
    try:
        from qiskit_ibm_runtime import QiskitRuntimeService
    except ImportError as exc:
        raise QRLError(f"{name} needs qiskit-ibm-runtime; try pip install 'qrl[hardware]'") from exc
    try:
        service = QiskitRuntimeService(channel=os.environ.get("QISKIT_IBM_CHANNEL", "ibm_quantum_platform"),
                                       token=os.environ["QISKIT_IBM_TOKEN"],
                                       instance=os.environ.get("QISKIT_IBM_INSTANCE") or None)
        return service.backend(target)
    except Exception as exc:  # network, authentication, unknown backend: all reported the same way
        raise QRLError(f"could not reach IBM backend {target!r}: {exc}; check QISKIT_IBM_TOKEN, "
                       f"QISKIT_IBM_INSTANCE and the backend name") from exc


def fake_ibm_backend(snapshot: str, device: str | None = None):
    """An offline IBM device snapshot, ``qiskit_ibm_runtime.fake_provider.<snapshot>()``."""
    try:
        from qiskit_ibm_runtime import fake_provider
    except ImportError as exc:
        raise QRLError(f"{device or snapshot} needs qiskit-ibm-runtime; try pip install 'qrl[hardware]'") from exc
    if not snapshot.startswith("Fake") or not hasattr(fake_provider, snapshot):
        names = sorted(n for n in dir(fake_provider) if n.startswith("Fake") and n.endswith("V2"))
        raise QRLError(f"unknown IBM device snapshot {snapshot!r}; expected a class of "
                       f"qiskit_ibm_runtime.fake_provider such as {', '.join(names[:6])}, ...")
    return getattr(fake_provider, snapshot)()


def snapshot_for(name: str) -> str | None:
    """The offline snapshot standing in for an IBM device name in a dry run (``ibm_brisbane`` ->
    ``FakeBrisbane``), or ``None`` if the name is no IBM device."""
    base, _, target = name.partition("@")
    if base == "qiskit.aer" and target:
        return target
    if base == "qiskit.remote" and target.startswith("ibm_"):
        return "Fake" + target.removeprefix("ibm_").capitalize()
    return None


def check_size(name: str, n_qubits: int) -> None:
    """Refuse a circuit wider than the Qiskit machine ``name`` (the plugin's own error names no fix)."""
    if name.startswith("qiskit.") and "@" in name:
        chip = qiskit_backend(name)
        if n_qubits > chip.num_qubits:
            raise QRLError(f"{name} has {chip.num_qubits} qubits; the circuit needs {n_qubits}; try a larger "
                           f"machine (e.g. qiskit.aer@FakeGuadalupeV2, 16 qubits)")
