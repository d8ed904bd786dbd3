"""The contrastive losses' options: domain-specific positives (shared labels) and the local loss on dense
features of two views."""

import pytest
import torch
from monai.losses import ContrastiveLoss

from monai_ssl.losses import GatheredContrastiveLoss, LocalContrastiveLoss


def test_distinct_labels_give_nt_xent_and_shared_labels_add_positives():
    generator = torch.Generator().manual_seed(0)
    first, second = torch.randn(5, 8, generator=generator), torch.randn(5, 8, generator=generator)
    loss = GatheredContrastiveLoss(0.3)
    assert float(loss(first, second, torch.arange(5))) == pytest.approx(
        float(ContrastiveLoss(temperature=0.3)(first, second)), rel=1e-5)
    # by hand: samples 0 and 1 share a band, so each view of sample 0 has three positives
    labels = torch.tensor([7, 7, 1, 2, 3])
    views = torch.nn.functional.normalize(torch.cat([first, second]), dim=1)
    logits = views @ views.T / 0.3
    expected = []
    for i in range(10):
        others = [j for j in range(10) if j != i]
        log_denominator = torch.logsumexp(logits[i, others], 0)
        positives = [j for j in others if labels[j % 5] == labels[i % 5]]
        expected.append(-torch.stack([logits[i, j] - log_denominator for j in positives]).mean())
    assert float(loss(first, second, labels)) == pytest.approx(float(torch.stack(expected).mean()), rel=1e-5)
    with pytest.raises(ValueError, match="one label per sample"):
        loss(first, second, torch.arange(4))


def shifted_pair(shift: int, flip: bool):
    """Two views (8^3) of one volume: the second starts ``shift`` voxels further along x, optionally flipped."""
    first = torch.eye(4)
    second = torch.eye(4)
    second[0, 3] = shift
    if flip:
        second[0, 0], second[0, 3] = -1.0, shift + 7
    return torch.stack([first, second])


@pytest.mark.parametrize("flip", [False, True])
def test_shared_voxels_are_the_same_volume_voxels_in_both_views(flip):
    maps = shifted_pair(3, flip)
    indices = LocalContrastiveLoss(positions=27).shared_voxels(maps, (8, 8, 8))
    sources = [(index.float() @ m[:3, :3].T + m[:3, 3]) for index, m in zip(indices, maps)]
    assert torch.equal(sources[0], sources[1])
    assert sources[0][:, 0].min() == 3 and sources[0][:, 0].max() == 7  # the overlap along x only
    assert indices.shape[1] == 27 and bool((indices >= 0).all() and (indices < 8).all())
    assert LocalContrastiveLoss().shared_voxels(shifted_pair(9, flip), (8, 8, 8)) is None


def test_the_local_loss_rewards_matching_features_of_the_same_voxel():
    generator = torch.Generator().manual_seed(0)
    volume_features = torch.randn(1, 16, 11, 8, 8, generator=generator)  # features of the volume's voxels
    maps = shifted_pair(3, True)
    first = volume_features[..., :8, :, :]
    second = volume_features[..., 3:11, :, :].flip(2)  # the second view: shifted by 3, flipped along x
    loss = LocalContrastiveLoss(temperature=0.1, positions=27)
    matching = loss(first, second, maps[None])
    unrelated = loss(first, torch.randn(1, 16, 8, 8, 8, generator=generator), maps[None])
    assert float(matching) < 0.05 < float(unrelated)
    apart = loss(first.requires_grad_(True), second, shifted_pair(9, False)[None])
    assert float(apart) == 0.0
    apart.backward()  # no overlap adds nothing, but keeps a graph
    with pytest.raises(ValueError, match="positions must be >= 2"):
        LocalContrastiveLoss(positions=1)
