"""Schema: validation errors name the row and column; parquet round trip; TRL conversational format."""

import json

import pandas as pd
import pytest
from PIL import Image

from study.prefs import COLUMNS, PrefSchemaError, load_prefs, make_row, save_prefs, to_trl, validate_rows
from study.prefs.random_corruption import random_corruption_recipe
from study.prefs.schema import check_scene_ids


@pytest.fixture
def rows(world):
    return random_corruption_recipe(world, n=6, seed=0)


def test_make_row_and_roundtrip(rows, world, tmp_path):
    assert len(rows) == 6 and all(set(r) == set(COLUMNS) for r in rows)
    path = save_prefs(rows, tmp_path / "p" / "prefs.parquet", world)
    back = load_prefs(path, world)
    assert back == rows
    assert not list((tmp_path / "p").glob(".*.tmp"))  # atomic write left no temporary file


@pytest.mark.parametrize("row_idx", [0, 3])
def test_missing_column_names_row_and_column(rows, row_idx):
    bad = [dict(r) for r in rows]
    del bad[row_idx]["chosen"]
    with pytest.raises(PrefSchemaError, match=rf"row {row_idx}, column 'chosen'.*missing"):
        validate_rows(bad)


def test_empty_chosen_and_rejected(rows):
    bad = [dict(r) for r in rows]
    bad[2]["chosen"] = "   "
    with pytest.raises(PrefSchemaError, match=r"row 2, column 'chosen'.*empty"):
        validate_rows(bad)
    bad = [dict(r) for r in rows]
    bad[4]["rejected"] = ""
    with pytest.raises(PrefSchemaError, match=r"row 4, column 'rejected'.*empty"):
        validate_rows(bad)


def test_chosen_equals_rejected(rows):
    bad = [dict(r) for r in rows]
    bad[1]["rejected"] = bad[1]["chosen"]
    with pytest.raises(PrefSchemaError, match=r"row 1, column 'rejected'.*equals chosen"):
        validate_rows(bad)
    bad = [dict(r) for r in rows]
    bad[5]["rejected_2"] = bad[5]["chosen"]
    with pytest.raises(PrefSchemaError, match=r"row 5, column 'rejected_2'"):
        validate_rows(bad)


def test_unknown_scene_id(rows, world):
    bad = [dict(r) for r in rows]
    bad[3]["scene_id"] = "train-999999"
    validate_rows(bad)  # without a world there is nothing to check scene ids against
    with pytest.raises(PrefSchemaError, match=r"row 3, column 'scene_id'.*train-999999"):
        validate_rows(bad, world)
    bad[3]["scene_id"] = "nonsense"
    with pytest.raises(PrefSchemaError, match=r"row 3, column 'scene_id'"):
        validate_rows(bad, world)


def test_bad_types_unknown_columns_and_source_ids(rows):
    bad = [dict(r) for r in rows]
    bad[0]["seed"] = "0"
    with pytest.raises(PrefSchemaError, match=r"row 0, column 'seed'"):
        validate_rows(bad)
    bad = [dict(r) for r in rows]
    bad[2]["source_ids"] = "not json"
    with pytest.raises(PrefSchemaError, match=r"row 2, column 'source_ids'"):
        validate_rows(bad)
    bad = [dict(r) for r in rows]
    bad[1]["chossen"] = "x"
    with pytest.raises(PrefSchemaError, match=r"row 1, column 'chossen'"):
        validate_rows(bad)


def test_load_validates_file_contents(rows, world, tmp_path):
    df = pd.DataFrame(rows)
    df.loc[4, "rejected"] = df.loc[4, "chosen"]
    df.to_parquet(tmp_path / "bad.parquet")
    with pytest.raises(PrefSchemaError, match=r"row 4, column 'rejected'"):
        load_prefs(tmp_path / "bad.parquet")
    pd.DataFrame(rows).drop(columns=["scene_id"]).to_parquet(tmp_path / "nocol.parquet")
    with pytest.raises(PrefSchemaError, match=r"column 'scene_id'.*missing"):
        load_prefs(tmp_path / "nocol.parquet")


def test_optional_rejected_2_defaults_to_empty(rows):
    r = dict(rows[0])
    del r["rejected_2"]
    assert validate_rows([r])[0]["rejected_2"] == ""
    row = make_row(
        prompt="p ?",
        chosen="a .",
        rejected="b .",
        scene_id="train-000000",
        recipe="x",
        seed=3,
        source_ids={"chosen": "c"},
    )
    assert json.loads(row["source_ids"]) == {"chosen": "c"} and row["rejected_2"] == ""


def test_to_trl_conversational_vision_format(rows, world, tiny):
    ds = to_trl(rows, world)
    assert len(ds) == len(rows) and set(ds.column_names) == {"prompt", "chosen", "rejected", "images"}
    ex = ds[0]
    assert ex["prompt"][0]["role"] == "user"
    assert [p["type"] for p in ex["prompt"][0]["content"]] == ["image", "text"]
    assert ex["prompt"][0]["content"][1]["text"] == rows[0]["prompt"]
    assert ex["chosen"] == [{"role": "assistant", "content": [{"type": "text", "text": rows[0]["chosen"]}]}]
    assert ex["rejected"][0]["content"][0]["text"] == rows[0]["rejected"]
    assert isinstance(ex["images"][0], Image.Image) and ex["images"][0].size == (48, 48)
    with pytest.raises(PrefSchemaError, match=r"row 0, column 'rejected_2'"):
        to_trl(rows, world, with_rejected_2=True)
    # TRL's own vision preference collator accepts the rows as they are
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    _, processor = tiny
    batch = DataCollatorForVisionPreference(processor)([ds[0], ds[1]])
    image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
    assert batch["input_ids"].shape[0] == 4 and batch["pixel_values"].shape[0] == 4
    assert int((batch["input_ids"][0] == image_id).sum()) == 64


TEST_SPLIT = (
    "is a scene of the test split, which is held out for evaluation: preference data must not use it "
    "(allowed splits: ['train', 'val'])"
)


def test_test_split_scenes_are_refused_even_without_a_world(rows, world):
    bad = [dict(r) for r in rows]
    bad[2]["scene_id"] = "test-000001"  # a real scene of the world: leakage into evaluation, not a typo
    assert world.scenes("test")[1].scene_id == "test-000001"
    with pytest.raises(PrefSchemaError) as e:
        validate_rows(bad)
    assert str(e.value) == f"preference data: row 2, column 'scene_id': 'test-000001' {TEST_SPLIT}"
    with pytest.raises(PrefSchemaError, match="test split"):
        validate_rows(bad, world)
    validate_rows([dict(bad[2], scene_id="val-000001")], world)  # val: allowed (held-out annotator pairs)
    with pytest.raises(PrefSchemaError, match="'ood-000001' is a scene of the ood split, which is held out"):
        validate_rows([dict(bad[3], scene_id="ood-000001")], world)  # the organism's ood gates are evaluation too


def test_a_file_with_test_scenes_is_named(rows, tmp_path):
    df = pd.DataFrame(rows)
    df.loc[4, "scene_id"] = "test-000003"
    df.to_parquet(tmp_path / "leaky.parquet")
    with pytest.raises(PrefSchemaError) as e:
        load_prefs(tmp_path / "leaky.parquet")
    assert (
        str(e.value)
        == f"preference data {tmp_path / 'leaky.parquet'}: row 4, column 'scene_id': 'test-000003' {TEST_SPLIT}"
    )
    assert e.value.source == tmp_path / "leaky.parquet" and e.value.row == 4


def test_an_unknown_scene_names_the_file_and_row(rows, world, tmp_path):
    df = pd.DataFrame(rows)
    df.loc[3, "scene_id"] = "train-999999"
    path = tmp_path / "unknown.parquet"
    df.to_parquet(path)
    with pytest.raises(PrefSchemaError) as e:
        load_prefs(path, world)
    msg = f"preference data {path}: row 3, column 'scene_id': unknown scene 'train-999999' (not in world {world.root})"
    assert str(e.value) == msg


def test_check_scene_ids_before_training(rows, world, tmp_path):
    """What alignment calls before training: today an unknown id is a bare IndexError when its image loads."""
    path = tmp_path / "prefs.parquet"
    bad = [dict(r) for r in rows]
    bad[5]["scene_id"] = "train-999999"
    with pytest.raises(IndexError):
        world.image("train-999999")
    for data in (bad, pd.DataFrame(bad), [{"prompt": r["prompt"], "scene_id": r["scene_id"]} for r in bad]):
        with pytest.raises(PrefSchemaError) as e:
            check_scene_ids(data, world, source=path)
        assert str(e.value) == (
            f"preference data {path}: row 5, column 'scene_id': unknown scene 'train-999999' "
            f"(not in world {world.root})"
        )
    bad[5]["scene_id"] = "test-000000"
    with pytest.raises(PrefSchemaError) as e:
        check_scene_ids(bad, world)
    assert str(e.value) == f"preference data: row 5, column 'scene_id': 'test-000000' {TEST_SPLIT}"
    with pytest.raises(PrefSchemaError, match=r"row 1, column 'scene_id': is missing"):
        check_scene_ids([{"prompt": "a ?", "scene_id": "train-000000"}, {"prompt": "b ?"}], world)
    check_scene_ids(rows, world)  # valid rows pass
    check_scene_ids(to_trl(rows[:2], world), world)  # a ready TRL dataset has its images: nothing to check
    check_scene_ids(to_trl(rows[:2], world, keep_ids=True), world)
