import os
import pickle

import pytest
import torch

from monai_ssl.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint


def test_save_is_atomic_a_crash_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    save_checkpoint({"model": {"w": torch.ones(2)}}, str(path))

    def crash(obj, f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        save_checkpoint({"model": {"w": torch.zeros(2)}}, str(path))
    assert torch.equal(load_checkpoint(str(path))["model"]["w"], torch.ones(2))
    assert os.listdir(tmp_path) == ["model.pt"]


def test_load_uses_weights_only(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("arbitrary code",))

    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": Payload()}, str(path))
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(str(path))


def test_plain_state_dict_is_wrapped_and_bad_files_are_reported(tmp_path):
    torch.save({"w": torch.ones(1)}, str(tmp_path / "plain.pt"))
    assert set(load_checkpoint(str(tmp_path / "plain.pt"))) == {"model"}
    torch.save([1, 2], str(tmp_path / "list.pt"))
    with pytest.raises(ValueError, match="checkpoint dict"):
        load_checkpoint(str(tmp_path / "list.pt"))
    with pytest.raises(FileNotFoundError):
        load_checkpoint(str(tmp_path / "absent.pt"))


def test_latest_checkpoint_picks_the_highest_iteration(tmp_path):
    assert latest_checkpoint(str(tmp_path)) is None
    for iteration in (8, 120, 16):
        save_checkpoint({"model": {}}, str(tmp_path / f"checkpoint_iter{iteration:08d}.pt"))
    assert latest_checkpoint(str(tmp_path)).endswith("checkpoint_iter00000120.pt")


@pytest.mark.parametrize("content", [b"", b"\x00" * 64 + b"random bytes, not a checkpoint"], ids=["empty", "random"])
def test_unreadable_files_name_the_file_and_never_suggest_weights_only_false(tmp_path, content):
    path = tmp_path / "broken.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError) as error:
        load_checkpoint(str(path))
    assert str(error.value) == f"{path} is not a readable PyTorch checkpoint (truncated or not a checkpoint)."
    assert "weights_only" not in str(error.value)


def test_truncated_checkpoint_is_named(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint({"model": {"w": torch.ones(1000)}}, str(path))
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(ValueError, match="model.pt is not a readable PyTorch checkpoint"):
        load_checkpoint(str(path))
