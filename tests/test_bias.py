"""The --bias expression language: parsing, precedence, shortcuts, errors, slugs, target attribute."""

import itertools
import re

import numpy as np
import pytest

from aign_tf.data.bias import SHORTCUTS, bias_attribute, bias_slug, parse_bias, select_prior
from aign_tf.data.celeba import CELEBA_ATTRIBUTES

NAMES = ("Male", "Young", "Smiling", "Big_Lips", "Eyeglasses", "5_o_Clock_Shadow")


def _truth_table(names=NAMES) -> np.ndarray:
    """uint8 [2**A, A]: every combination of attribute values."""
    return np.array(list(itertools.product([0, 1], repeat=len(names))), np.uint8)


def _col(labels, name, names=NAMES):
    return labels[:, names.index(name)].astype(bool)


def test_precedence_not_over_and_over_or():
    t = _truth_table()
    male, young, smiling = _col(t, "Male"), _col(t, "Young"), _col(t, "Smiling")
    np.testing.assert_array_equal(parse_bias("Male or Young and Smiling", NAMES)(t), male | (young & smiling))
    np.testing.assert_array_equal(parse_bias("Young and Smiling or Male", NAMES)(t), (young & smiling) | male)
    np.testing.assert_array_equal(parse_bias("not Male and Young", NAMES)(t), ~male & young)
    np.testing.assert_array_equal(parse_bias("not Male or Young", NAMES)(t), ~male | young)
    np.testing.assert_array_equal(parse_bias("not not Male", NAMES)(t), male)


def test_parentheses_group():
    t = _truth_table()
    male, young, smiling = _col(t, "Male"), _col(t, "Young"), _col(t, "Smiling")
    np.testing.assert_array_equal(parse_bias("(Male or Young) and Smiling", NAMES)(t), (male | young) & smiling)
    np.testing.assert_array_equal(parse_bias("not (Male and Young)", NAMES)(t), ~(male & young))
    expr = "(Smiling or Big_Lips) and not Eyeglasses"
    expected = (smiling | _col(t, "Big_Lips")) & ~_col(t, "Eyeglasses")
    np.testing.assert_array_equal(parse_bias(expr, NAMES)(t), expected)
    np.testing.assert_array_equal(parse_bias("((Male))", NAMES)(t), male)


def test_names_and_keywords_are_case_insensitive():
    t = _truth_table()
    expected = _col(t, "Male") & ~_col(t, "Young")
    for expr in ("Male and not Young", "MALE AND NOT YOUNG", "male And nOt young"):
        np.testing.assert_array_equal(parse_bias(expr, NAMES)(t), expected)
    np.testing.assert_array_equal(parse_bias("5_O_CLOCK_SHADOW", NAMES)(t), _col(t, "5_o_Clock_Shadow"))


def test_every_shortcut_equals_its_definition_on_celeba_names():
    labels = (np.random.default_rng(0).random((200, 40)) < 0.5).astype(np.uint8)
    expected = {
        "male": _col(labels, "Male", CELEBA_ATTRIBUTES), "female": ~_col(labels, "Male", CELEBA_ATTRIBUTES),
        "young": _col(labels, "Young", CELEBA_ATTRIBUTES), "old": ~_col(labels, "Young", CELEBA_ATTRIBUTES),
        "big_lips": _col(labels, "Big_Lips", CELEBA_ATTRIBUTES),
        "big_nose": _col(labels, "Big_Nose", CELEBA_ATTRIBUTES),
        "smiling": _col(labels, "Smiling", CELEBA_ATTRIBUTES),
        "eyeglasses": _col(labels, "Eyeglasses", CELEBA_ATTRIBUTES), "none": np.ones(200, bool),
    }
    assert set(SHORTCUTS) == set(expected)
    for shortcut, want in expected.items():
        np.testing.assert_array_equal(parse_bias(shortcut, CELEBA_ATTRIBUTES)(labels), want, err_msg=shortcut)
        np.testing.assert_array_equal(parse_bias(shortcut.upper(), CELEBA_ATTRIBUTES)(labels), want)


def test_shortcuts_inside_expressions():
    t = _truth_table()
    np.testing.assert_array_equal(parse_bias("female and smiling", NAMES)(t), ~_col(t, "Male") & _col(t, "Smiling"))
    np.testing.assert_array_equal(parse_bias("not old", NAMES)(t), _col(t, "Young"))
    np.testing.assert_array_equal(parse_bias("old or (female and not eyeglasses)", NAMES)(t),
                                  ~_col(t, "Young") | (~_col(t, "Male") & ~_col(t, "Eyeglasses")))
    np.testing.assert_array_equal(parse_bias("none and male", NAMES)(t), _col(t, "Male"))


def test_bool_labels_accepted_and_bad_labels_rejected():
    t = _truth_table()
    np.testing.assert_array_equal(parse_bias("Male", NAMES)(t.astype(bool)), _col(t, "Male"))
    with pytest.raises(ValueError, match=r"0/1 \(map CelebA's -1 to 0\)"):
        parse_bias("Male", NAMES)(t.astype(np.int8) * 2 - 1)
    with pytest.raises(ValueError, match=r"shape \[N, 6\]"):
        parse_bias("Male", NAMES)(t[:, :3])


def test_unknown_attribute_lists_valid_names_and_shortcuts():
    with pytest.raises(ValueError) as info:
        parse_bias("Male and not Wizard", NAMES)
    message = str(info.value)
    assert "'Wizard'" in message and "'Male and not Wizard'" in message
    for name in NAMES:
        assert name in message
    assert "female" in message and "big_nose" in message


def test_shortcut_needing_a_missing_attribute_names_the_shortcut():
    with pytest.raises(ValueError, match=r"'Big_Nose' \(from shortcut 'big_nose'\) in bias expression 'big_nose'"):
        parse_bias("big_nose", NAMES)


@pytest.mark.parametrize("expression,position", [
    ("Male and", 8), ("(Male or Young", 14), ("Male)", 4), ("Male Young", 5), ("Male & Young", 5),
    ("and Male", 0), ("Male or ()", 9), ("not", 3),
])
def test_syntax_errors_give_the_position(expression, position):
    with pytest.raises(ValueError, match=rf"syntax error in bias expression .* at position {position}\b"):
        parse_bias(expression, NAMES)


@pytest.mark.parametrize("expression", ["", "   "])
def test_empty_expression_is_rejected(expression):
    with pytest.raises(ValueError, match="empty bias expression"):
        parse_bias(expression, NAMES)


def test_select_prior_returns_sorted_int64_indices():
    t = _truth_table()
    chosen = select_prior(t, "Male and not Young", NAMES)
    assert chosen.dtype == np.int64
    np.testing.assert_array_equal(chosen, np.flatnonzero(_col(t, "Male") & ~_col(t, "Young")))
    np.testing.assert_array_equal(select_prior(t, "none", NAMES), np.arange(len(t)))


def test_empty_selection_reports_counts():
    labels = np.zeros((10, len(NAMES)), np.uint8)
    labels[:4, NAMES.index("Male")] = 1
    labels[6:9, NAMES.index("Eyeglasses")] = 1
    with pytest.raises(ValueError) as info:
        select_prior(labels, "Male and Eyeglasses", NAMES)
    message = str(info.value)
    assert "selected 0 of 10 images" in message
    assert "Male=4" in message and "Eyeglasses=3" in message


def test_bias_slug():
    assert bias_slug("male") == "male"
    assert bias_slug("Male and not Young") == "male_and_not_young"
    assert bias_slug("  MALE   and not young ") == "male_and_not_young"
    a, b = bias_slug("(Smiling or Big_Lips) and Eyeglasses"), bias_slug("Smiling or (Big_Lips and Eyeglasses)")
    assert a != b and a.startswith("smiling_or_big_lips_and_eyeglasses_")
    long = bias_slug(" or ".join(CELEBA_ATTRIBUTES))
    assert len(long) <= 70
    for slug in (a, b, long, bias_slug("Male & Young!"), bias_slug("/../etc")):
        assert re.fullmatch(r"[a-z0-9_]+", slug), slug


def test_bias_attribute():
    assert bias_attribute("male", CELEBA_ATTRIBUTES) == ("Male", True)
    assert bias_attribute("female", CELEBA_ATTRIBUTES) == ("Male", False)
    assert bias_attribute("old", CELEBA_ATTRIBUTES) == ("Young", False)
    assert bias_attribute("big_lips", CELEBA_ATTRIBUTES) == ("Big_Lips", True)
    assert bias_attribute("Male and not Young", CELEBA_ATTRIBUTES) == ("Male", True)
    assert bias_attribute("not young and male", CELEBA_ATTRIBUTES) == ("Young", False)
    assert bias_attribute("not (Smiling or Male)", CELEBA_ATTRIBUTES) == ("Smiling", False)
    assert bias_attribute("none", CELEBA_ATTRIBUTES) is None
    with pytest.raises(ValueError, match="Wizard"):
        bias_attribute("Wizard", CELEBA_ATTRIBUTES)
