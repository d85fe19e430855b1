"""qrl: reinforcement-learning agents whose policy and value networks are variational quantum circuits.

``import qrl`` limits torch and OpenMP to one thread unless ``QRL_NUM_THREADS`` or ``OMP_NUM_THREADS``
says otherwise (small circuits run 6-40x slower with more; see :mod:`qrl.threads`), and fixes glibc's malloc
thresholds unless ``QRL_KEEP_MALLOC=1`` (state batches reused from the heap; see :mod:`qrl.malloc`).
"""

from qrl.malloc import fix_malloc_thresholds
from qrl.threads import limit_threads

limit_threads()
fix_malloc_thresholds()

import qrl.qenv  # noqa: E402, F401  (registers QubitTarget-v0 with Gymnasium)
from qrl.circuits import CircuitSpec  # noqa: E402
from qrl.errors import QRLError  # noqa: E402
from qrl.nn import VQC  # noqa: E402
from qrl.sb3 import VQCActorCriticPolicy  # noqa: E402

__version__ = "0.1.0"

__all__ = ["VQC", "CircuitSpec", "QRLError", "VQCActorCriticPolicy", "__version__"]
