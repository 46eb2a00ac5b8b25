"""Carbon benchmark harness for one CIFAR-10 CNN training, tracked by CodeCarbon.

The host side (CLI, planning, backends, reports) never imports TensorFlow; the
worker side (``harness.worker`` and the modules it imports) is the only code that does.
"""

__version__ = "0.1.0"
