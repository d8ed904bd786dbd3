"""A bundle as the MONAI Model Zoo takes it in a pull request: the weights out of git, listed in
``large_files.yml`` (path, URL, md5) and uploaded as release assets, with a TorchScript ``models/model.ts``.

The repository keeps the weights in ``models/`` for offline use; :func:`zoo_release` writes, from a bundle folder,
the folder to put in the Zoo's ``models/`` directory (no file over the Zoo's 1 MB pre-commit limit) and the assets
to attach to a release at ``url_prefix``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

__all__ = ["LARGE_FILE_LIMIT", "zoo_release"]

# the Model Zoo's pre-commit hook refuses larger files
LARGE_FILE_LIMIT = 1_000_000


def _md5(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "md5").hexdigest()


def _export_torchscript(bundle_dir: str, output: str) -> None:
    from monai.bundle import ckpt_export

    configs = os.path.join(bundle_dir, "configs")
    ckpt_export(net_id="network_def", filepath=output, ckpt_file=os.path.join(bundle_dir, "models", "model.pt"),
                meta_file=os.path.join(configs, "metadata.json"), config_file=os.path.join(configs, "inference.json"),
                bundle_root=bundle_dir)


def zoo_release(bundle_dir: str, url_prefix: str, out_dir: str, name: str | None = None) -> dict:
    """Write ``out_dir/<name>/`` (the bundle without its large files, with ``large_files.yml``) and
    ``out_dir/assets/`` (the large files, named ``<name>_<file>``, to upload under ``url_prefix``).

    Args:
        bundle_dir: a bundle folder with ``models/model.pt`` (a plain ``state_dict`` of ``network_def``).
        url_prefix: where the assets will be downloadable, e.g.
            ``https://github.com/ORG/monai-ssl/releases/download/v0.1.0``.
        out_dir: an empty or new folder.
        name: the bundle's folder name in the Zoo (default: ``bundle_dir``'s).

    Returns:
        ``{"folder": the Zoo folder, "bundle": [its files], "assets": [asset paths]}``.

    Raises:
        ValueError: no ``models/model.pt``, a non-http(s) ``url_prefix``, a non-empty ``out_dir``, or a file other
            than the weights over the Zoo's 1 MB limit.
    """
    bundle_dir = os.path.abspath(bundle_dir)
    name = name or os.path.basename(bundle_dir)
    if not os.path.isfile(os.path.join(bundle_dir, "models", "model.pt")):
        raise ValueError(f"{bundle_dir} has no models/model.pt: train (or fine-tune) the bundle's network first; the "
                         "Model Zoo needs its weights.")
    if not url_prefix.startswith(("https://", "http://")):
        raise ValueError(f"url_prefix must be the http(s) address the assets will be downloaded from, got "
                         f"{url_prefix!r}.")
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise ValueError(f"{out_dir} is not empty; give a new folder.")
    target, assets = os.path.join(out_dir, name), os.path.join(out_dir, "assets")
    shutil.copytree(bundle_dir, target, ignore=shutil.ignore_patterns("__pycache__", "outputs", "*.pyc"))
    os.makedirs(assets)
    _export_torchscript(bundle_dir, os.path.join(target, "models", "model.ts"))
    entries, uploaded = [], []
    models = os.path.join(target, "models")
    for file in sorted(os.listdir(models)):
        relative, source = f"models/{file}", os.path.join(models, file)
        asset = os.path.join(assets, f"{name}_{file}")
        shutil.move(source, asset)
        uploaded.append(asset)
        entries.append({"path": relative, "url": f"{url_prefix.rstrip('/')}/{name}_{file}", "hash_val": _md5(asset),
                        "hash_type": "md5"})
    os.rmdir(models)
    # the Zoo reads YAML; JSON values are valid YAML scalars, so no YAML writer is needed
    lines = ["large_files:"] + [line for e in entries for line in (
        f"  - path: {json.dumps(e['path'])}", f"    url: {json.dumps(e['url'])}",
        f"    hash_val: {json.dumps(e['hash_val'])}", f"    hash_type: {json.dumps(e['hash_type'])}")]
    with open(os.path.join(target, "large_files.yml"), "w") as f:
        f.write("\n".join(lines) + "\n")
    files = sorted(os.path.relpath(os.path.join(d, f), target) for d, _, names in os.walk(target) for f in names)
    too_large = [f for f in files if os.path.getsize(os.path.join(target, f)) > LARGE_FILE_LIMIT]
    if too_large:
        raise ValueError(f"{too_large} exceed the Model Zoo's {LARGE_FILE_LIMIT} byte limit; only models/ is moved "
                         "to release assets.")
    return {"folder": target, "bundle": files, "assets": uploaded}

