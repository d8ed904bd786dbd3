"""Data helpers: the demo phantom."""

from monai_ssl.data.phantom import PHANTOM_LABEL_NAMES, make_phantom, write_phantom_dataset

__all__ = ["PHANTOM_LABEL_NAMES", "make_phantom", "write_phantom_dataset"]
