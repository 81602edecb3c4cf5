"""`fcbench.tables`: the one layout of terminal tables (the commands' text is checked by their
own tests and the docs; these pin the layouts themselves)."""

from __future__ import annotations

from fcbench.tables import column_lines, label_lines, megabytes, money_cell, ranged


def test_labels_pad_to_the_widest_or_a_given_width() -> None:
    rows = [("FC per day", "1.00 CNY"), ("saving", "9.0%")]
    assert label_lines(rows) == ["  FC per day  1.00 CNY", "  saving      9.0%"]
    assert label_lines([("cu", "3 CU")], width=6) == ["  cu      3 CU"]


def test_columns_right_left_and_first_left_with_a_rule() -> None:
    head, rows = ["row", "P(cold)"], [["measured", "0.1"]]
    assert column_lines(head, rows) == ["     row  P(cold)", "measured      0.1"]
    assert column_lines(head, rows, align="left", strip=True) == [
        "row       P(cold)", "measured  0.1"]
    assert column_lines(head, rows, align="first-left", rule=True) == [
        "row       P(cold)", "--------  -------", "measured      0.1"]


def test_cells() -> None:
    assert ranged(0.5, 0.25, 0.75, ".2f") == "0.50 [0.25, 0.75]"
    assert ranged(2.0, None, None, ".0f") == "2"
    assert money_cell(None) == "-" and money_cell(0.12345) == "0.1235"
    assert megabytes(12_345_678) == "12.3 MB"
