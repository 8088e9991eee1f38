"""overnight: autonomous ML research campaigns on Prefect, with MLflow as memory."""

__version__ = "0.1.0"
