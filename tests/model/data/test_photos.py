"""Real photos as data: class sets, the cache, the validation split."""

import math
from pathlib import Path

import pytest
import torch

import model.data.photos as photos_mod
from model.data.photos import (
    VAL_FRACTION,
    PhotoSet,
    load_photos,
    parse_classes,
    scored_accuracy,
    split_photos,
    validation_split,
)
from tests.helpers import write_photo_folder


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_photo_folder(tmp_path_factory.mktemp("photos"), per_folder=20)


@pytest.mark.parametrize(
    ("text", "classes"), [("0", [0]), ("5|7|9", [5, 7, 9]), ("2|6", [2, 6]), ("", [])]
)
def test_label_sets(text: str, classes: list[int]) -> None:
    assert parse_classes(text).nonzero().flatten().tolist() == classes


def test_a_class_outside_the_ten_is_refused() -> None:
    with pytest.raises(ValueError, match="class 12"):
        parse_classes("5|12")


def test_photos_become_28x28_with_their_sets(folder: Path, tmp_path: Path) -> None:
    photos = load_photos(folder, cache_dir=tmp_path)
    assert photos.images.shape == (80, 28, 28) and photos.images.dtype == torch.uint8
    shoes = photos.folders.index("shoes")
    assert photos.label_sets[shoes].nonzero().flatten().tolist() == [5, 7, 9]
    assert photos.in_class.sum() == 60  # the hats are none of the ten
    # What training sees is exactly what /predict computes for the same file.
    data = (folder / photos.files[shoes]).read_bytes()
    assert torch.equal(
        photos.images[shoes], torch.from_numpy(photos_mod.silhouette.prepare_photo(data))
    )


def test_the_cache_is_used_and_rebuilt_when_photos_or_the_silhouette_version_change(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_photos(folder, cache_dir=tmp_path)
    [cache] = tmp_path.glob("photos-*.safetensors")

    def no_decoding(data: bytes) -> torch.Tensor:
        raise AssertionError("decoded although the cache is current")

    with monkeypatch.context() as m:
        m.setattr(photos_mod.silhouette, "prepare_photo", no_decoding)
        assert torch.equal(load_photos(folder, cache_dir=tmp_path).images, first.images)
    # Another version of the silhouette: a new key, a rebuild.
    with monkeypatch.context() as m:
        m.setattr(photos_mod, "SILHOUETTE_VERSION", photos_mod.SILHOUETTE_VERSION + 1)
        load_photos(folder, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("photos-*.safetensors"))) == 2
    # A changed photo: a new key and its new pixels.
    changed = tmp_path / "changed"
    write_photo_folder(changed, per_folder=20)
    (changed / first.files[0]).write_bytes((folder / first.files[5]).read_bytes())
    again = load_photos(changed, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("photos-*.safetensors"))) == 3
    assert torch.equal(again.images[0], first.images[5]) and cache.exists()


def test_the_validation_split_is_stratified_seeded_and_disjoint(folder: Path) -> None:
    photos = load_photos(folder, cache_dir=None)
    train, val = validation_split(photos)
    assert set(train.tolist()).isdisjoint(val.tolist())
    assert sorted(train.tolist() + val.tolist()) == list(range(len(photos)))
    for name in set(photos.folders):
        members = [i for i, f in enumerate(photos.folders) if f == name]
        held = [i for i in val.tolist() if photos.folders[i] == name]
        assert len(held) == math.ceil(VAL_FRACTION * len(members)) >= 0.15 * len(members)
    again = validation_split(photos)
    assert torch.equal(again[1], val)
    other = split_photos(photos, VAL_FRACTION, seed=1)[1]
    assert not torch.equal(other, val)  # the seed matters


def test_scored_accuracy_counts_a_prediction_inside_the_set() -> None:
    sets = torch.stack([parse_classes(t) for t in ("0", "0", "5|7|9", "5|7|9", "")])
    photos = PhotoSet(
        torch.zeros(5, 28, 28, dtype=torch.uint8),
        sets,
        ("t-shirt", "t-shirt", "shoes", "shoes", "hat"),
        tuple("abcde"),
    )
    acc = scored_accuracy(photos, torch.tensor([0, 6, 7, 9, 3]))
    assert acc == {"shoes": 1.0, "t-shirt": 0.5, "mean": 0.75}
