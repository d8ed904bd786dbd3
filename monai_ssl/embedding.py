"""Per-volume encoder embeddings: what the pretraining bundle's ``inference.json`` computes and saves.

A pretrained encoder is mostly reused by fine-tuning, but its pooled deepest features also serve as a compact
description of each scan (retrieval, clustering an archive, checking what the encoder separates).
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from ignite.engine import Engine, Events
from monai.data import FolderLayout
from monai.utils import CommonKeys as Keys
from torch import nn

from monai_ssl.networks.adapters import get_adapter
from monai_ssl.utils import atomic_path

__all__ = ["EncoderEmbedding", "EmbeddingWriter"]

logger = logging.getLogger(__name__)


class EncoderEmbedding(nn.Module):
    """The deepest encoder features of ``network``, averaged over space: one vector of
    ``feature_channels`` values per input volume. The decoder is not run.

    Args:
        network: a network with a registered encoder adapter (e.g. MONAI's UNet); referenced, not copied, so that
            loading weights into it (a bundle's ``network_def``) changes the embedding.
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.adapter = get_adapter(network)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deepest = self.adapter.encode(x)[-1]
        return deepest.mean(dim=tuple(range(2, deepest.ndim)))


class EmbeddingWriter:
    """Ignite handler saving each volume's embedding (``engine.state.output[i]["pred"]``) to
    ``output_dir/<input file name>_embedding.npy`` (float32), written atomically, named by MONAI's
    ``FolderLayout``: with ``data_root_dir``, the input's folders below it are kept, so that layouts with one file
    name per subject (``subject/Flair.nii.gz``: BraTS, BIDS) give one embedding per subject.

    Args:
        output_dir: folder of the embeddings.
        image_key: the output key whose metadata names the input file.
        data_root_dir: the folder whose layout the embeddings mirror (see
            :func:`monai_ssl.bundle.input_root`); ``""`` writes every embedding into ``output_dir``.
        separate_folder: one folder per input file, as MONAI's ``SaveImage``.
    """

    def __init__(self, output_dir: str, image_key: str = Keys.IMAGE, data_root_dir: str = "",
                 separate_folder: bool = False) -> None:
        self.image_key = image_key
        self.layout = FolderLayout(output_dir, postfix="embedding", extension=".npy", parent=separate_folder,
                                   makedirs=True, data_root_dir=data_root_dir)

    def attach(self, engine: Engine) -> None:
        engine.add_event_handler(Events.ITERATION_COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        for sample in engine.state.output:
            source = sample[self.image_key].meta["filename_or_obj"]
            if isinstance(source, (list, tuple)):  # several channel files: named after the first
                source = source[0]
            path = str(self.layout.filename(subject=str(source)))
            with atomic_path(path, suffix=".npy") as temporary, open(temporary, "wb") as f:
                np.save(f, sample[Keys.PRED].detach().float().cpu().numpy())
            logger.info("saved embedding %s", path)
