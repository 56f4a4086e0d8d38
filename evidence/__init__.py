"""evidence: signed, verifiable audit evidence packages for Azure Machine Learning governance."""

__version__ = "0.1.0"
