"""polarff: polarizable force fields from neural-network classifiers, run in OpenMM.

Pipeline (each stage one module; nothing imports upward)::

    io / label / build  ->  data.Frame  ->  descriptors  ->  discretize  ->  model (Keras)
        ->  artifact (*.pff)  ->  runtime (torch twin)  ->  openmm (forces)  ->  simulate / analysis

Heavy frameworks (TensorFlow, torch, OpenMM) are imported inside the modules that need them, so
``import polarff`` and ``polarff --help`` stay fast.
"""

__version__ = "0.1.0"

from polarff.errors import PolarffError, InputError  # noqa: F401
from polarff.data import Frame, LABELS  # noqa: F401
