"""dcgan_ref.datasets.loading: every source decodes to the same uint8 tensor + labels, errors are
DataErrors that say what to fix, and a split decodes once then comes from the cache.
SVHN files are tested in test_data_svhn.py."""
from __future__ import annotations

import hashlib
import io
import pickle
import socket
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dcgan_ref.datasets import formats as data_formats
from dcgan_ref.datasets import loading as data
from dcgan_ref.datasets.loading import DataError, ImageSet, detect_format, load_split

CIFAR10_CLASSES = data_formats.CIFAR10_CLASSES


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "cache"


# ------------------------------------------------------------------ synthetic builders

def cifar_batch(n: int, seed: int, label_offset: int = 0) -> dict[bytes, object]:
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"synthetic", b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": [(i + label_offset) % 10 for i in range(n)]}


def write_pickle(path: Path, obj: object) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def make_cifar_dir(root: Path, n_train: int = 3, n_test: int = 4) -> Path:
    """A tiny cifar-10-batches-py/ in torchvision's layout (bytes keys, like Python 2's)."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        write_pickle(folder / f"data_batch_{i}", cifar_batch(n_train, seed=i, label_offset=i))
    write_pickle(folder / "test_batch", cifar_batch(n_test, seed=0))
    write_pickle(folder / "batches.meta", {b"label_names": [c.encode() for c in CIFAR10_CLASSES]})
    return folder


def png_bytes(value: int, size: tuple[int, int] = (8, 6), mode: str = "RGB") -> bytes:
    """A solid image whose red channel (or grey level) is `value`."""
    colour = value if mode == "L" else (value, 255 - value, 7)
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


TREE_CLASSES = ("zebra", "ant")  # sorted order: ant, zebra
TREE_STEMS = (10, 9, 1, 2)  # numeric order: 1, 2, 9, 10


def tree_files() -> dict[str, bytes]:
    """split/class/file -> bytes; the red value encodes (class, stem) for order checks."""
    files = {}
    for split in ("train", "test"):
        for c, name in enumerate(TREE_CLASSES):
            for stem in TREE_STEMS:
                files[f"{split}/{name}/{stem}.png"] = png_bytes(100 * c + stem)
    files["train/ant/2.png"] = png_bytes(2, mode="L")  # greyscale: converted to RGB
    return files


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for key, blob in files.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_bytes(blob)
    return root


def write_tar(path: Path, files: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as archive:
        for key, blob in files.items():
            info = tarfile.TarInfo(key)
            info.size = len(blob)
            archive.addfile(info, io.BytesIO(blob))
    return path


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for key, blob in files.items():
            archive.writestr(key, blob)
    return path


# ----------------------------------------------------------------- official CIFAR-10

def test_cifar_official_folder_decodes_rows_in_chw_order(tmp_path, cache):
    folder = make_cifar_dir(tmp_path / "cifar")
    batch = pickle.loads((folder / "data_batch_2").read_bytes())

    train = load_split(tmp_path / "cifar", "train", cache_dir=cache)

    assert detect_format(tmp_path / "cifar") == "cifar10-official"
    assert train.images.shape == (15, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.images.is_contiguous()
    assert train.classes == CIFAR10_CLASSES and train.description == "CIFAR-10"
    row = batch[b"data"][1]  # data_batch_2 is rows 3..5; a row is R plane, G plane, B plane
    assert train.images[4, 1, 5, 7] == row[1024 + 5 * 32 + 7]
    assert torch.equal(train.images[4].flatten(), torch.from_numpy(row))
    assert train.labels[:6].tolist() == [1, 2, 3, 2, 3, 4]
    test = load_split(folder, "test", cache_dir=cache)  # the batches folder itself works too
    assert len(test) == 4 and test.labels.tolist() == [0, 1, 2, 3]


def test_cifar_official_tarball_reads_like_the_folder(tmp_path, cache):
    folder = make_cifar_dir(tmp_path / "cifar")
    tarball = tmp_path / "dl" / "cifar-10-python.tar.gz"
    tarball.parent.mkdir()
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(folder, arcname="cifar-10-batches-py")

    from_dir = load_split(tmp_path / "cifar", "train", cache_dir=cache)
    from_tar = load_split(tarball.parent, "train", cache_dir=cache)

    assert detect_format(tarball) == "cifar10-official"
    assert torch.equal(from_dir.images, from_tar.images)
    assert torch.equal(from_dir.labels, from_tar.labels)
    assert from_tar.sha256 != from_dir.sha256  # different bytes, different identity


def test_cifar_batch_of_official_size_must_have_the_official_md5(tmp_path, cache, monkeypatch):
    folder = make_cifar_dir(tmp_path / "cifar")
    batch = cifar_batch(10_000, seed=3)
    (folder / "test_batch").write_bytes(pickle.dumps(batch, protocol=4))  # raw array bytes
    official_md5 = data_formats.CIFAR10_SPLITS["test"][0][1]

    with pytest.raises(DataError, match=rf"test_batch: md5 [0-9a-f]{{32}} does not match "
                                        rf"the official md5 {official_md5}") as err:
        load_split(folder, "test", cache_dir=cache)
    assert "cifar-10-python.tar.gz" in str(err.value)

    own_md5 = hashlib.md5((folder / "test_batch").read_bytes()).hexdigest()
    monkeypatch.setitem(data_formats.CIFAR10_SPLITS, "test", [["test_batch", own_md5]])
    assert len(load_split(folder, "test", cache_dir=cache)) == 10_000

    blob = bytearray((folder / "test_batch").read_bytes())
    pixel = blob.find(batch[b"data"][5].tobytes()) + 7
    assert pixel > 7
    blob[pixel] ^= 0xFF  # one flipped pixel
    (folder / "test_batch").write_bytes(bytes(blob))
    with pytest.raises(DataError, match=f"md5 .* does not match the official md5 {own_md5}"):
        load_split(folder, "test", cache_dir=cache)


def test_cifar_missing_batch_is_named(tmp_path, cache):
    folder = make_cifar_dir(tmp_path / "cifar")
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError, match=r"missing data_batch_3 .*cifar-10-python.tar.gz"):
        load_split(folder, "train", cache_dir=cache)
    assert len(load_split(folder, "test", cache_dir=cache)) == 4  # test split is complete


@pytest.mark.parametrize("corrupt, message", [
    (lambda b: b[: len(b) // 2], "cannot unpickle it"),
    (lambda b: pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}),
     r"expected 'data' uint8 of shape \(N, 3072\), found uint8 \(2, 100\)"),
    (lambda b: pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}),
     r"labels must lie in 0..9, found 0..10"),
    (lambda b: pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}),
     "2 images but 1 labels"),
    (lambda b: b"cos\nsystem\n(S'echo pwned'\ntR.", "refusing to load global os.system"),
])
def test_cifar_corrupt_batch_is_a_data_error(tmp_path, cache, corrupt, message):
    folder = make_cifar_dir(tmp_path / "cifar")
    (folder / "test_batch").write_bytes(corrupt((folder / "test_batch").read_bytes()))
    with pytest.raises(DataError, match=message) as err:
        load_split(folder, "test", cache_dir=cache)
    assert "test_batch" in str(err.value)


@pytest.mark.parametrize("name", ["cifar-10-python.tar.gz", "tree.tar.xz", "tree.tar", "tree.zip"])
def test_truncated_archive_is_named(tmp_path, cache, name):
    if name.startswith("cifar"):
        folder = make_cifar_dir(tmp_path / "cifar")
        files = {f"cifar-10-batches-py/{p.name}": p.read_bytes() for p in folder.iterdir()}
    else:
        files = tree_files()
    mode = {"gz": "w:gz", "xz": "w:xz", "tar": "w"}.get(name.split(".")[-1])
    path = write_zip(tmp_path / name, files) if mode is None else write_tar(tmp_path / name, files, mode)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # for .tar: a member boundary
    with pytest.raises(DataError, match=f"{name}: cannot read the archive .*truncated or corrupt"):
        load_split(path, "test", cache_dir=cache)


def test_unknown_split_lists_the_available_ones(tmp_path, cache):
    make_cifar_dir(tmp_path / "cifar")
    with pytest.raises(DataError, match="no split 'val'; available splits: train, test"):
        load_split(tmp_path / "cifar", "val", cache_dir=cache)


# ------------------------------------------------------------------------ Imagenet32

def write_imagenet32(root: Path, batches: list[int], n: int = 4) -> None:
    (root / "Imagenet32_train").mkdir(parents=True)
    (root / "Imagenet32_val").mkdir()
    for b in batches:
        labels = [b * 100 + i + 1 for i in range(n)]  # 1-based, unique per batch
        write_pickle(root / "Imagenet32_train" / f"train_data_batch_{b}",
                     {"data": np.full((n, 3072), b, np.uint8), "labels": labels,
                      "mean": np.zeros(3072)})
    write_pickle(root / "Imagenet32_val" / "val_data",
                 {"data": np.zeros((3, 3072), np.uint8), "labels": [1, 1000, 5]})


def test_imagenet32_batches_become_zero_based_labels_in_batch_order(tmp_path, cache):
    write_imagenet32(tmp_path / "in32", [2, 1, 3])

    train = load_split(tmp_path / "in32", "train", cache_dir=cache)
    val = load_split(tmp_path / "in32", "val", cache_dir=cache)

    assert detect_format(tmp_path / "in32") == "imagenet32"
    assert train.images.shape == (12, 3, 32, 32)
    assert train.images[:, 0, 0, 0].tolist() == [1] * 4 + [2] * 4 + [3] * 4
    assert train.labels.tolist()[:5] == [100, 101, 102, 103, 200]
    assert train.description == "Imagenet32 (train batches 1-3 of 10)"
    assert val.labels.tolist() == [0, 999, 4] and val.description == "Imagenet32"
    assert len(val.classes) == 1000


def test_imagenet32_gap_in_train_batches_and_bad_labels_are_named(tmp_path, cache):
    write_imagenet32(tmp_path / "in32", [1, 3])
    with pytest.raises(DataError, match="missing train_data_batch_2 "):
        load_split(tmp_path / "in32", "train", cache_dir=cache)
    write_pickle(tmp_path / "in32" / "Imagenet32_val" / "val_data",
                 {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 3]})
    with pytest.raises(DataError, match=r"val_data: labels must lie in 1..1000, found 0..3"):
        load_split(tmp_path / "in32", "val", cache_dir=cache)


# ------------------------------------------------------------------ image-folder trees

def test_image_folder_orders_classes_and_numeric_files_and_converts_to_rgb(tmp_path, cache):
    root = write_tree(tmp_path / "mydata", tree_files())

    train = load_split(root, "train", cache_dir=cache)

    assert detect_format(root) == "image-folder"
    assert train.classes == ("ant", "zebra")
    assert train.images.shape == (8, 3, 6, 8)
    assert train.labels.tolist() == [0] * 4 + [1] * 4
    # ant is class index 1 in TREE_CLASSES (red = 100 + stem), zebra index 0 (red = stem)
    assert train.images[:, 0, 0, 0].tolist() == [101, 2, 109, 110, 1, 2, 9, 10]
    assert train.images[1, :, 0, 0].tolist() == [2, 2, 2]  # the greyscale PNG
    assert train.description == "image folder mydata"


@pytest.mark.parametrize("archive", ["tree.tar.gz", "tree.tgz", "tree.tar.xz", "tree.tar", "tree.zip"])
def test_archives_decode_like_the_folder_one_level_down_too(tmp_path, cache, archive):
    files = tree_files()
    folder = load_split(write_tree(tmp_path / "tree", files), "test", cache_dir=cache)
    nested = {f"tree/{key}": blob for key, blob in files.items()}
    path = tmp_path / archive
    if archive.endswith(".zip"):
        write_zip(path, nested)
    else:
        write_tar(path, nested, {"gz": "w:gz", "tgz": "w:gz", "xz": "w:xz", "tar": "w"}[archive.split(".")[-1]])

    packed = load_split(path, "test", cache_dir=cache)

    assert detect_format(path) == "image-folder-archive"
    assert torch.equal(packed.images, folder.images) and torch.equal(packed.labels, folder.labels)
    assert packed.classes == folder.classes and packed.description == "image folder tree"


def test_folder_one_level_down_is_found(tmp_path, cache):
    write_tree(tmp_path / "outer" / "inner", tree_files())
    assert len(load_split(tmp_path / "outer", "train", cache_dir=cache)) == 8


@pytest.mark.parametrize("suffix, description", [("jpg", "CIFAR-10 (JPEG copy)"),
                                                 ("png", "CIFAR-10 (image folder)")])
def test_cifar_class_folders_get_a_cifar_description(tmp_path, cache, suffix, description):
    for name in CIFAR10_CLASSES:
        (tmp_path / "c" / "test" / name).mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(tmp_path / "c" / "test" / name / f"0.{suffix}")
    imageset = load_split(tmp_path / "c", "test", cache_dir=cache)
    assert imageset.description == description and imageset.classes == CIFAR10_CLASSES


@pytest.mark.parametrize("packed", [False, True])
def test_corrupt_image_is_named(tmp_path, cache, packed):
    files = tree_files()
    files["test/zebra/9.png"] = files["test/zebra/9.png"][:30]  # truncated PNG
    path = write_tar(tmp_path / "t.tar.gz", files) if packed else write_tree(tmp_path / "t", files)
    with pytest.raises(DataError, match=r"test/zebra/9.png: not a readable image"):
        load_split(path, "test", cache_dir=cache)


def test_images_of_another_size_are_named(tmp_path, cache):
    files = tree_files()
    files["train/zebra/9.png"] = png_bytes(9, size=(5, 5))
    with pytest.raises(DataError, match=r"train/zebra/9.png: image is 5x5, but .* is 8x6; "
                                        "all images must share one size"):
        load_split(write_tree(tmp_path / "t", files), "train", cache_dir=cache)


@pytest.mark.parametrize("packed", [False, True])
def test_empty_class_folder_is_named(tmp_path, cache, packed):
    root = write_tree(tmp_path / "t", tree_files())
    (root / "test" / "bee").mkdir()
    (root / "train" / "bee").mkdir()
    (root / "train" / "bee" / "notes.txt").write_text("not an image")
    if packed:
        with tarfile.open(tmp_path / "t.tar", "w") as archive:
            archive.add(root, arcname="t")
        root = tmp_path / "t.tar"
    with pytest.raises(DataError, match=r"class folder test/bee/ holds no .png/.jpg/.jpeg images"):
        load_split(root, "test", cache_dir=cache)


def test_splits_with_different_classes_are_refused(tmp_path, cache):
    files = {k: v for k, v in tree_files().items() if not k.startswith("test/ant/")}
    with pytest.raises(DataError, match="class folders differ between"):
        load_split(write_tree(tmp_path / "t", files), "train", cache_dir=cache)


def test_missing_and_unrecognised_paths_list_accepted_formats(tmp_path, cache):
    with pytest.raises(DataError, match="does not exist; accepted data sources"):
        load_split(tmp_path / "nowhere", "train", cache_dir=cache)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "readme.txt").write_text("hi")
    with pytest.raises(DataError, match=r"(?s)holds no recognised data; accepted data sources.*"
                                        r"cifar-10-batches-py.*train_32x32.mat.*\.zip"):
        load_split(tmp_path / "junk", "train", cache_dir=cache)
    with pytest.raises(DataError, match="no recognised data"):
        detect_format(tmp_path / "junk")


# --------------------------------------------------------------- missing official files

def test_missing_cifar_without_download_says_what_to_put_where(tmp_path, cache):
    with pytest.raises(DataError) as err:
        load_split(tmp_path / "empty", "train", dataset="cifar10", download=False, cache_dir=cache)
    message = str(err.value)
    assert "put cifar-10-python.tar.gz (from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz)" in message
    assert "cifar-10-batches-py/" in message and str(tmp_path / "empty") in message


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known (network disabled by test)")
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.mark.parametrize("dataset, expected", [
    ("cifar10", "cifar-10-python.tar.gz (from https://www.cs.toronto.edu"),
    ("svhn", "test_32x32.mat (from http://ufldl.stanford.edu/housenumbers/test_32x32.mat)"),
])
def test_download_without_network_is_a_data_error(tmp_path, cache, no_network, dataset, expected):
    timeout = socket.getdefaulttimeout()
    with pytest.raises(DataError, match=f"could not download {dataset}") as err:
        load_split(tmp_path / "dl", "test", dataset=dataset, download=True, cache_dir=cache)
    assert expected in str(err.value)
    assert socket.getdefaulttimeout() == timeout
    assert list((tmp_path / "dl").iterdir()) == []  # no partial download left behind


def test_imagenet32_is_never_downloaded(tmp_path, cache):
    with pytest.raises(DataError, match="train_data_batch_1 .. train_data_batch_10 and val_data"
                                        ".*never downloaded automatically"):
        load_split(tmp_path, "train", dataset="imagenet32", download=True, cache_dir=cache)


def test_dataset_hint_must_fit_what_is_found(tmp_path, cache):
    make_cifar_dir(tmp_path / "cifar")
    with pytest.raises(DataError, match="holds cifar10-official data, not svhn"):
        load_split(tmp_path / "cifar", "train", dataset="svhn", cache_dir=cache)
    with pytest.raises(DataError, match="unknown dataset 'mnist'"):
        load_split(tmp_path / "cifar", "train", dataset="mnist", cache_dir=cache)


# ---------------------------------------------------------------------- hash and cache

@pytest.fixture
def decode_calls(monkeypatch) -> list[str]:
    calls: list[str] = []
    real = data._decode

    def counting(source, split):
        calls.append(split)
        return real(source, split)

    monkeypatch.setattr(data, "_decode", counting)
    return calls


def test_second_load_comes_from_the_cache_until_the_bytes_change(tmp_path, cache, decode_calls):
    root = write_tree(tmp_path / "t", tree_files())
    first = load_split(root, "train", cache_dir=cache)
    second = load_split(root, "train", cache_dir=cache)

    assert decode_calls == ["train"]
    assert torch.equal(first.images, second.images) and torch.equal(first.labels, second.labels)
    assert (second.classes, second.sha256, second.description) == \
        (first.classes, first.sha256, first.description)
    assert sorted(p.name for p in cache.iterdir()) == sorted(
        f"{first.sha256}{end}" for end in (".images.npy", ".labels.npy", ".json"))

    (root / "train" / "ant" / "1.png").write_bytes(png_bytes(42))
    changed = load_split(root, "train", cache_dir=cache)
    assert decode_calls == ["train", "train"] and changed.sha256 != first.sha256
    assert changed.images[0, 0, 0, 0] == 42


def test_default_cache_dir_follows_the_environment(tmp_path, monkeypatch, decode_calls):
    monkeypatch.setenv("DCGAN_REPRO_CACHE", str(tmp_path / "envcache"))
    assert data.default_cache_dir() == tmp_path / "envcache"
    root = write_tree(tmp_path / "t", tree_files())
    load_split(root, "test")
    load_split(root, "test")
    assert decode_calls == ["test"] and len(list((tmp_path / "envcache").glob("*.json"))) == 1


def test_failed_load_caches_nothing_and_corrupt_cache_is_rebuilt(tmp_path, cache, decode_calls):
    files = tree_files()
    bad = dict(files, **{"train/ant/9.png": b"garbage"})
    with pytest.raises(DataError):
        load_split(write_tree(tmp_path / "bad", bad), "train", cache_dir=cache)
    assert not cache.exists() or list(cache.iterdir()) == []

    root = write_tree(tmp_path / "good", files)
    first = load_split(root, "train", cache_dir=cache)
    (cache / f"{first.sha256}.images.npy").write_bytes(b"\x93NUMPY truncated")
    again = load_split(root, "train", cache_dir=cache)
    assert torch.equal(again.images, first.images)
    assert decode_calls == ["train", "train", "train"]
    assert load_split(root, "train", cache_dir=cache).sha256 == first.sha256
    assert len(decode_calls) == 3  # the rebuilt entry is used


def test_sha256_of_a_single_file_source_follows_the_documented_recipe(tmp_path, cache):
    path = write_zip(tmp_path / "t.zip", tree_files())
    file_hash = hashlib.sha256(path.read_bytes()).hexdigest()
    expected = hashlib.sha256(f"dcgan-repro-data/v1 split=test\n{file_hash}  .\n".encode()).hexdigest()
    assert load_split(path, "test", cache_dir=cache).sha256 == expected
    assert load_split(path, "train", cache_dir=cache).sha256 != expected


# --------------------------------------------------------------------------- ImageSet

def test_imageset_subset_and_validation():
    images = torch.arange(5, dtype=torch.uint8).view(5, 1, 1, 1).expand(5, 3, 2, 2).contiguous()
    imageset = ImageSet(images, torch.arange(5), ("a",), "f" * 64, "x")
    part = imageset.subset(torch.tensor([4, 1]))
    assert len(part) == 2 and part.labels.tolist() == [4, 1]
    assert part.images[:, 0, 0, 0].tolist() == [4, 1] and part.images.is_contiguous()
    assert (part.classes, part.sha256, part.description) == (("a",), "f" * 64, "x")
    assert len(imageset.subset(imageset.labels % 2 == 0)) == 3
    with pytest.raises(ValueError, match="images must be uint8"):
        ImageSet(images.float(), torch.arange(5), ("a",), "", "")
    with pytest.raises(ValueError, match="labels must be int64"):
        ImageSet(images, torch.arange(4), ("a",), "", "")


# -------------------------------------------------------------------------- real data

@pytest.mark.slow
def test_real_cifar10_jpeg_copy_test_split(shared_data):
    test = load_split(shared_data / "cifar10_jpeg.tar.xz", "test")
    assert test.images.shape == (10_000, 3, 32, 32)
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert test.classes == CIFAR10_CLASSES and test.description == "CIFAR-10 (JPEG copy)"


@pytest.mark.slow
def test_real_lossless_slice_matches_the_jpeg_copy_image_for_image(shared_data):
    train = load_split(shared_data / "cifar10_lossless_slice.tar.xz", "train")
    test = load_split(shared_data / "cifar10_lossless_slice.tar.xz", "test")
    jpeg = load_split(shared_data / "cifar10_jpeg.tar.xz", "test")
    assert (len(train), len(test)) == (4000, 1000)
    assert test.description == "CIFAR-10 (image folder)" and test.classes == CIFAR10_CLASSES
    # both are sorted by official order within a class: the k-th bird is the same bird
    for label in range(10):
        lossless = test.images[test.labels == label][:20].float()
        lossy = jpeg.images[jpeg.labels == label][:20].float()
        error = (lossless - lossy).abs().mean(dim=(1, 2, 3))
        assert error.max() < 15, f"class {label}: images do not line up ({error.tolist()})"


@pytest.mark.slow
def test_real_cifar10_jpeg_copy_train_split(shared_data):
    train = load_split(shared_data / "cifar10_jpeg.tar.xz", "train")
    assert train.images.shape == (50_000, 3, 32, 32)
    assert torch.bincount(train.labels).tolist() == [5000] * 10
    mean = train.images.float().mean(dim=(0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor([0.4913, 0.4821, 0.4465]), atol=2e-3)
