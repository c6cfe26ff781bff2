"""ganlib: GAN models, losses, training, metrics, dissection, pruning and export as plain PyTorch.

Importing ``ganlib`` stays cheap and torch-free: the consumer path (``ganlib.serving``) must run in an
environment that has only numpy, onnxruntime, boto3 and pillow. Import submodules explicitly.
"""

__version__ = "0.1.0"
