"""mrnet.train: data checks, the knee phantom, mrnet-baseline training, FGSM retraining and export.

Importing this package does not import torch; the modules that train do.
"""
