import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from monai_ssl.transforms import RandRestorationDegradation

ONLY = {  # each degradation alone
    "shuffle": {"shuffle_prob": 1.0, "remap_prob": 0.0, "paint_prob": 0.0},
    "remap": {"shuffle_prob": 0.0, "remap_prob": 1.0, "paint_prob": 0.0},
    "inpaint": {"shuffle_prob": 0.0, "remap_prob": 0.0, "paint_prob": 1.0, "inpaint_prob": 1.0},
    "outpaint": {"shuffle_prob": 0.0, "remap_prob": 0.0, "paint_prob": 1.0, "inpaint_prob": 0.0},
}


def volume() -> torch.Tensor:
    return torch.rand(1, 32, 28, 24, generator=torch.Generator().manual_seed(0))


def test_shuffling_alone_permutes_voxels_inside_boxes():
    img = volume()
    out = RandRestorationDegradation(**ONLY["shuffle"], shuffle_holes=8, shuffle_size=4).set_random_state(0)(img)
    changed = out != img
    assert 0 < int(changed.sum()) <= 8 * 4**3
    assert torch.equal(torch.sort(out.flatten()).values, torch.sort(img.flatten()).values)  # the same values


def test_remap_alone_is_a_monotonic_function_of_the_input():
    img = volume()
    out = RandRestorationDegradation(**ONLY["remap"]).set_random_state(1)(img)
    order = torch.argsort(img.flatten())
    steps = torch.diff(out.flatten()[order])
    assert bool((steps >= -1e-6).all()) or bool((steps <= 1e-6).all())
    assert not torch.equal(out, img)


def test_inpainting_changes_a_few_boxes_and_outpainting_keeps_only_them():
    img = volume()
    inpainted = RandRestorationDegradation(**ONLY["inpaint"], paint_holes=2, paint_size=6).set_random_state(2)(img)
    outpainted = RandRestorationDegradation(**ONLY["outpaint"], paint_holes=2, paint_size=6).set_random_state(2)(img)
    total = img.numel()
    kept_by_outpainting = int((outpainted == img).sum())
    assert 0 < int((inpainted != img).sum()) <= 2 * 12**3  # boxes of 6 to 12 voxels
    assert 0 < kept_by_outpainting <= 2 * 12**3 and kept_by_outpainting < total // 2
    for out in (inpainted, outpainted):
        assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0  # noise in [0, 1], like the input


def test_the_drawn_degradations_follow_their_probabilities():
    transform = RandRestorationDegradation().set_random_state(3)
    counts = {"shuffle": 0, "remap": 0, "inpaint": 0, "outpaint": 0}
    for _ in range(400):
        transform.randomize()
        for name in transform.applied:
            counts[name] += 1
    assert abs(counts["shuffle"] / 400 - 0.5) < 0.08 and abs(counts["remap"] / 400 - 0.9) < 0.05
    assert abs((counts["inpaint"] + counts["outpaint"]) / 400 - 0.9) < 0.05
    assert abs(counts["inpaint"] / (counts["inpaint"] + counts["outpaint"]) - 0.2) < 0.06
    assert list(transform.applied) == sorted(transform.applied, key=["shuffle", "remap", "inpaint", "outpaint"].index)


def test_same_seed_same_output_and_randomize_false_repeats_it_exactly():
    img = volume()
    a = RandRestorationDegradation().set_random_state(7)
    b = RandRestorationDegradation().set_random_state(7)
    first = a(img)
    assert torch.equal(first, b(img))
    assert torch.equal(a(img, randomize=False), first)
    assert not torch.equal(a(img), first)


def test_the_input_is_never_modified_and_types_follow_it():
    img = volume()
    before = img.clone()
    transform = RandRestorationDegradation(**ONLY["shuffle"]).set_random_state(0)
    out = transform(img)
    assert torch.equal(img, before)  # MONAI's RandCoarseShuffle works in place; this transform copies first
    assert isinstance(transform(img.numpy(), randomize=False), np.ndarray)
    meta = MetaTensor(img, meta={"filename_or_obj": "scan.nii.gz"})
    out = transform(meta, randomize=False)
    assert isinstance(out, MetaTensor) and out.meta["filename_or_obj"] == "scan.nii.gz"


@pytest.mark.parametrize(
    "kwargs, match",
    [({"shuffle_prob": 1.5}, "shuffle_prob must be a probability"), ({"inpaint_prob": -0.1}, "inpaint_prob"),
     ({"paint_holes": 0}, "paint_holes must be >= 1"), ({"shuffle_size": 0}, "shuffle_size must be a positive int")],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RandRestorationDegradation(**kwargs)
