"""Bad input: a clear error, never a traceback; every problem at once, each fully described.

Each bad input is the example survey (``data/example``) with a few cells, columns or codebook
lines changed, written to ``tmp_path``. The assertions are on the content of the
``ValidationError``: its ``problems`` (file, column, example rows, bad values, what was
expected, hint) and its text.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from impactmodel.cli import app
from impactmodel.codebook import Codebook, ItemSpec, load_codebook
from impactmodel.errors import Problem, ValidationError
from impactmodel.loading import load_survey
from impactmodel.territories import department_codes, normalise_department_code
from impactmodel.vocabulary import POPULATIONS

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "data" / "example"
DATA = EXAMPLE / "respondents.csv"
CODEBOOK = EXAMPLE / "codebook.toml"

ANSI = re.compile(r"\x1b\[[0-9;]*m")


# --- helpers ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    """The example table, every column as text (cells are edited as a user would)."""
    return pd.read_csv(DATA, dtype=str)


@pytest.fixture(scope="module")
def codebook_text() -> str:
    return CODEBOOK.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def book() -> Codebook:
    return load_codebook(CODEBOOK)


def item_not_asked_of(book: Codebook, population: str) -> ItemSpec:
    """An item whose questionnaire leaves out ``population`` (missing by design)."""
    items = [i for i in book.items if population not in i.asked]
    assert items, f"every item of the example is asked of {population}"
    return items[0]


def edit_first_item(text: str, key: str, new_line: str) -> tuple[str, str]:
    """Replace the ``key = ...`` line of the first ``[items.X]`` table; return text and X."""
    header = re.search(r"^\[items\.([^\]]+)\]$", text, flags=re.MULTILINE)
    assert header, "the example codebook has no [items.X] table"
    start = header.end()
    end = text.find("\n[", start)
    end = len(text) if end < 0 else end
    block, n = re.subn(rf"^{key} = .*$", new_line, text[start:end], count=1,
                       flags=re.MULTILINE)
    assert n == 1, f"no '{key} = ' line in [items.{header.group(1)}]"
    return text[:start] + block + text[end:], header.group(1)


def write_table(frame: pd.DataFrame, tmp_path: Path, name: str = "respondents.csv") -> Path:
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def edited(raw: pd.DataFrame, tmp_path: Path, cells: Mapping[tuple[int, str], str | None],
           name: str = "respondents.csv") -> Path:
    """Write a copy of the example with ``cells[(row index, column)] = value`` changed."""
    frame = raw.copy()
    for (index, column), value in cells.items():
        frame.loc[index, column] = value
    return write_table(frame, tmp_path, name)


def write_codebook(text: str, tmp_path: Path, old: str, new: str) -> Path:
    """Write the codebook ``text`` with the first ``old`` replaced by ``new``."""
    assert old in text, f"the example codebook no longer contains {old!r}"
    path = tmp_path / "codebook.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def failure(data: Path, codebook: Path = CODEBOOK) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        load_survey(data, codebook)
    return info.value


def codebook_failure(path: Path) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        load_codebook(path)
    return info.value


def find(problems, title: str, column: str | None = None) -> Problem:
    """The one problem whose title contains ``title`` (and whose column is ``column``)."""
    hits = [p for p in problems if title in p.title and (column is None or p.column == column)]
    assert len(hits) == 1, (f"expected one problem '{title}' (column {column}), got:\n"
                            + "\n".join(p.render() for p in problems))
    return hits[0]


def rows_where(raw: pd.DataFrame, mask: pd.Series, n: int) -> list[int]:
    """The first ``n`` row indexes where ``mask`` holds."""
    index = [int(i) for i in raw.index[mask][:n]]
    assert len(index) == n
    return index


def spreadsheet_rows(indexes: list[int]) -> tuple[int, ...]:
    """Row numbers as problems give them: 1-based data rows."""
    return tuple(i + 1 for i in indexes)


def levenshtein(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def suggestions(hint: str | None) -> dict[str, str]:
    """Parse "'975' -> closest valid code '974'; ..." into {bad: suggested}."""
    assert hint
    return dict(re.findall(r"'([^']+)' -> closest valid code '([^']+)'", hint))


def run_cli(*args: str):
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result, ANSI.sub("", result.output)


def flat(text: str) -> str:
    """Text with runs of whitespace (including rich's line wrapping) made single spaces."""
    return " ".join(text.split())


# --- the baseline: the example is valid, and the copy-and-edit round trip keeps it so ----


def test_the_unedited_copy_is_valid(raw, tmp_path):
    survey = load_survey(write_table(raw, tmp_path), CODEBOOK)
    assert survey.n_respondents == len(raw) > 1000


# --- territory -------------------------------------------------------------------------


def test_unknown_department_codes_are_named_with_the_closest_valid_code(raw, tmp_path):
    idx = rows_where(raw, raw["department"].notna(), 4)
    path = edited(raw, tmp_path, {(idx[0], "department"): "975",
                                  (idx[2], "department"): "96",
                                  (idx[3], "department"): "2C"})
    exc = failure(path)
    assert len(exc.problems) == 1
    p = find(exc.problems, "unknown department code", "department")
    assert p.file == str(path)
    assert p.rows == spreadsheet_rows([idx[0], idx[2], idx[3]])
    assert p.values == ("'975'", "'96'", "'2C'")
    assert p.count == 3
    assert "INSEE department code" in (p.expected or "")
    suggested = suggestions(p.hint)
    assert set(suggested) == {"975", "96", "2C"}
    codes = department_codes()
    for bad, code in suggested.items():  # a valid code, and one of the fewest edits away
        assert code in codes
        assert levenshtein(bad, code) == min(levenshtein(bad, c) for c in codes), (bad, code)
    assert suggested["2C"] in {"2A", "2B"}  # a Corsican typo is pointed to Corsica
    text = str(exc)
    assert str(path) in text and "'department'" in text
    assert "'975'" in text and "'96'" in text and "'2C'" in text


def test_the_expected_department_range_is_right(raw, tmp_path):
    path = edited(raw, tmp_path, {(0, "department"): "975"})
    p = find(failure(path).problems, "unknown department code", "department")
    assert "01..95" in (p.expected or "")


@pytest.mark.parametrize(("value", "code"), [
    (1, "01"), (1.0, "01"), ("1", "01"), ("1.0", "01"), ("01", "01"), (" 01 ", "01"),
    (75, "75"), ("2a", "2A"), ("2B", "2B"), (974, "974"),
    ("0", None), ("00", None), ("20", None), ("2C", None), ("975", None), ("96", None),
    ("100", None), ("", None), (float("nan"), None),
])
def test_department_codes_are_normalised(value, code):
    assert normalise_department_code(value) == code


def test_one_digit_department_codes_in_a_csv_are_accepted(raw, tmp_path):
    ain = raw["department"] == "01"
    assert ain.sum() > 0
    frame = raw.copy()
    frame.loc[ain, "department"] = "1"
    survey = load_survey(write_table(frame, tmp_path), CODEBOOK)
    assert (survey.department[ain.to_numpy()] == "01").all()
    assert (survey.region[ain.to_numpy()] == "84").all()  # Ain is in Auvergne-Rhône-Alpes


def test_integer_department_codes_in_a_parquet_file_are_accepted(tmp_path):
    typed = pd.read_csv(DATA, dtype={"department": str})
    metropolitan = typed[typed["department"].str.isdigit()].copy()  # drop 2A / 2B: not ints
    metropolitan["department"] = metropolitan["department"].astype("int64")
    assert 1 in set(metropolitan["department"])
    path = tmp_path / "respondents.parquet"
    metropolitan.to_parquet(path)
    survey = load_survey(path, CODEBOOK)
    assert survey.n_respondents == len(metropolitan)
    got = survey.department.astype(str).to_numpy()
    want = metropolitan["department"].map(lambda v: f"{v:02d}").to_numpy()
    assert (got == want).all()


# --- population ------------------------------------------------------------------------


def test_unknown_population_is_reported_with_a_suggestion(raw, tmp_path):
    idx = rows_where(raw, raw["population"] == "citizen", 2)
    path = edited(raw, tmp_path, {(idx[0], "population"): "citizens",
                                  (idx[1], "population"): "citizens"})
    exc = failure(path)
    p = find(exc.problems, "unknown population", "population")
    assert p.file == str(path)
    assert p.rows == spreadsheet_rows(idx)
    assert p.values == ("'citizens'",)
    for population in POPULATIONS:
        assert population in (p.expected or "")
    assert "did you mean 'citizen'?" in (p.hint or "")
    assert "did you mean 'citizen'?" in str(exc)


def test_every_unknown_population_gets_its_suggestion(raw, tmp_path):
    idx = rows_where(raw, raw["population"] == "citizen", 3)
    path = edited(raw, tmp_path, {(idx[0], "population"): None,
                                  (idx[1], "population"): "citizens",
                                  (idx[2], "population"): "electd"})
    p = find(failure(path).problems, "unknown population", "population")
    assert p.values == ("missing", "'citizens'", "'electd'")
    assert "'citizen'" in (p.hint or "")
    assert "'elected'" in (p.hint or "")


POPULATION_CODES = {"citizen": "1", "elected": "2", "business": "3", "association": "4"}


def test_population_codes_from_the_codebook(raw, codebook_text, tmp_path):
    table = "\n[survey.population_codes]\n" + "".join(
        f'{code} = "{population}"\n' for population, code in POPULATION_CODES.items())
    book = write_codebook(codebook_text, tmp_path, "\n[design]", table + "\n[design]")
    frame = raw.copy()
    frame["population"] = frame["population"].map(POPULATION_CODES)
    good = write_table(frame, tmp_path, "coded.csv")
    survey = load_survey(good, book)
    assert (survey.population.astype(str) == raw["population"]).all()
    result, output = run_cli("validate", good, "--codebook", book)
    assert result.exit_code == 0, output
    frame.loc[3, "population"] = "5"
    frame.loc[4, "population"] = "citizen"  # the identifier is no code once codes are given
    exc = failure(write_table(frame, tmp_path, "bad.csv"), book)
    p = find(exc.problems, "unknown population", "population")
    assert p.rows == (4, 5) and p.values == ("'5'", "'citizen'")
    assert p.expected == "one of 1, 2, 3, 4"


# --- item answers ----------------------------------------------------------------------


def test_likert_answers_outside_the_scale(raw, tmp_path, book):
    first, last = book.items[0], book.items[-1]
    scale = first.scale
    assert scale.levels == (1, 2, 3, 4, 5)  # the example's agree scale
    idx = rows_where(raw, raw[first.column].notna(), 2)
    jdx = rows_where(raw, raw[last.column].notna(), 1)
    path = edited(raw, tmp_path, {(idx[0], first.column): "9",
                                  (idx[1], first.column): "0",
                                  (jdx[0], last.column): "6"})
    exc = failure(path)
    assert len(exc.problems) == 2
    p = find(exc.problems, "outside the item's scale", first.column)
    assert p.rows == spreadsheet_rows(idx)
    assert p.values == ("'9'", "'0'")
    assert "[1, 2, 3, 4, 5]" in (p.expected or "") and scale.name in (p.expected or "")
    q = find(exc.problems, "outside the item's scale", last.column)
    assert q.rows == spreadsheet_rows(jdx) and q.values == ("'6'",)


def test_an_answer_from_a_population_not_asked(raw, tmp_path, book):
    item = item_not_asked_of(book, "citizen")
    idx = rows_where(raw, raw["population"] == "citizen", 1)
    assert pd.isna(raw.loc[idx[0], item.column])  # missing by design in the example
    path = edited(raw, tmp_path, {(idx[0], item.column): "3"})
    exc = failure(path)
    assert len(exc.problems) == 1
    p = find(exc.problems, "population the item was not asked of", item.column)
    assert p.rows == spreadsheet_rows(idx)
    assert p.values == ("'3'",)
    assert "missing by design" in (p.expected or "")
    assert ", ".join(item.asked) in (p.expected or "")
    assert "answered by citizen" in (p.hint or "")


# --- weights ---------------------------------------------------------------------------


def test_negative_zero_missing_and_non_numeric_weights_are_each_reported(raw, tmp_path):
    idx = list(range(10, 15))
    path = edited(raw, tmp_path, {(idx[0], "weight"): "-1.5", (idx[1], "weight"): "0",
                                  (idx[2], "weight"): None, (idx[3], "weight"): "abc",
                                  (idx[4], "weight"): "1,5"})
    exc = failure(path)
    assert len(exc.problems) == 3
    nonpos = find(exc.problems, "zero or negative weights", "weight")
    assert nonpos.rows == spreadsheet_rows(idx[:2])
    assert nonpos.values == ("'-1.5'", "'0'")
    missing = find(exc.problems, "missing weights", "weight")
    assert missing.rows == spreadsheet_rows([idx[2]])
    assert missing.values == ("missing",)
    text = find(exc.problems, "non-numeric weights", "weight")
    assert text.rows == spreadsheet_rows(idx[3:])
    assert text.values == ("'abc'", "'1,5'")
    for p in (nonpos, missing, text):
        assert p.expected == "a number > 0"
        assert p.file == str(path)


def test_an_infinite_weight_is_reported(raw, tmp_path):
    path = edited(raw, tmp_path, {(0, "weight"): "inf"})
    p = find(failure(path).problems, "weight", "weight")
    assert p.rows == (1,)


def test_many_bad_rows_show_a_few_examples_and_the_total(raw, tmp_path):
    idx = list(range(20, 28))
    path = edited(raw, tmp_path, {(i, "weight"): "0" for i in idx})
    exc = failure(path)
    p = find(exc.problems, "zero or negative weights", "weight")
    assert p.rows == spreadsheet_rows(idx[:5])
    assert p.count == 8
    assert "(8 rows in all)" in str(exc)


# --- ids and design --------------------------------------------------------------------


def test_duplicate_respondent_ids_name_their_rows(raw, tmp_path):
    dup = raw.loc[12, "respondent_id"]
    path = edited(raw, tmp_path, {(40, "respondent_id"): dup})
    exc = failure(path)
    assert len(exc.problems) == 1
    p = find(exc.problems, "duplicate respondent ids", "respondent_id")
    assert p.rows == (13, 41)
    assert p.values == (repr(dup),)
    assert "rows: 13, 41" in str(exc)


def test_missing_respondent_ids(raw, tmp_path):
    path = edited(raw, tmp_path, {(7, "respondent_id"): None})
    p = find(failure(path).problems, "missing respondent ids", "respondent_id")
    assert p.rows == (8,)


def test_a_psu_nested_in_two_strata(raw, tmp_path):
    row = 30
    stratum = raw.loc[row, "stratum"]
    donor = rows_where(raw, raw["stratum"] != stratum, 1)[0]
    psu, other = raw.loc[donor, "psu"], raw.loc[donor, "stratum"]
    path = edited(raw, tmp_path, {(row, "psu"): psu})
    exc = failure(path)
    assert len(exc.problems) == 1
    p = find(exc.problems, "PSU nested in two or more strata", "psu")
    assert row + 1 in p.rows and donor + 1 in p.rows
    assert p.values == (repr(psu),)
    assert "stratum" in (p.expected or "")
    assert stratum in (p.hint or "") and other in (p.hint or "")


# --- columns named by the codebook -----------------------------------------------------


def test_a_renamed_data_column_is_pointed_out(raw, tmp_path):
    path = write_table(raw.rename(columns={"weight": "weights"}), tmp_path)
    exc = failure(path)
    assert len(exc.problems) == 1  # the weight checks skip the absent column
    p = exc.problems[0]
    assert p.column == "weight"
    assert "missing from the data" in p.title and "design.weight" in p.title
    assert "'weights'" in (p.hint or "")


def test_a_codebook_column_with_a_typo_is_pointed_out(tmp_path, codebook_text):
    book = write_codebook(codebook_text, tmp_path, 'weight = "weight"', 'weight = "wieght"')
    exc = failure(DATA, book)
    assert len(exc.problems) == 1
    p = exc.problems[0]
    assert p.file == str(DATA) and p.column == "wieght"
    assert "missing from the data" in p.title
    assert "the data has 'weight'" in (p.hint or "")


# --- codebook --------------------------------------------------------------------------

def typo(word: str) -> str:
    """A misspelling: the last two letters swapped."""
    return word[:-2] + word[-1] + word[-2]


@pytest.mark.parametrize(("key", "title"), [
    ("impact", "unknown impact"),
    ("lens", "unknown lens"),
    ("dimension", "unknown dimension"),
    ("scale", "unknown scale"),
    ("asked", "unknown population"),
])
def test_an_item_mapped_to_an_unknown_name(codebook_text, book, tmp_path, key, title):
    first = book.items[0]
    right = {"asked": first.asked[0], "scale": first.scale.name}.get(key) or getattr(first, key)
    wrong = typo(right)
    assert wrong != right
    line = (f'asked = ["{wrong}"]' if key == "asked" else f'{key} = "{wrong}"')
    text, name = edit_first_item(codebook_text, key, line)
    assert name == first.column
    path = tmp_path / "codebook.toml"
    path.write_text(text, encoding="utf-8")
    exc = codebook_failure(path)
    assert len(exc.problems) == 1
    p = find(exc.problems, title, f"items.{first.column}.{key}")
    assert p.file == str(path)
    assert p.values == (repr(wrong),)
    assert p.hint == f"did you mean '{right}'?"
    assert right in (p.expected or "")
    assert f"{path}, column 'items.{first.column}.{key}': {title}" in str(exc)


@pytest.mark.parametrize(("old", "new", "column", "guess"), [
    ('weight = "weight"', 'wieght = "weight"', "design.wieght", "weight"),
    ('\nreverse = ', '\nrevers = ', "items.{first}.revers", "reverse"),
    ('title = "', 'titel = "', "survey.titel", "title"),
    ("[poststratification]", "[poststratificaton]", "poststratificaton", "poststratification"),
])
def test_an_unknown_codebook_key_gets_did_you_mean(codebook_text, book, tmp_path, old, new,
                                                  column, guess):
    column = column.format(first=book.items[0].column)
    path = write_codebook(codebook_text, tmp_path, old, new)
    exc = codebook_failure(path)
    p = find(exc.problems, "unknown key", column)
    assert p.file == str(path)
    assert p.hint == f"did you mean '{guess}'?"
    assert guess in (p.expected or "")
    assert f"{path}, column '{column}': unknown key" in str(exc)


def test_a_codebook_error_stops_loading_before_the_data(codebook_text, tmp_path):
    book = write_codebook(codebook_text, tmp_path, 'weight = "weight"', 'wieght = "weight"')
    exc = failure(tmp_path / "absent.csv", book)  # the data is not even opened
    assert [p.file for p in exc.problems] == [str(book)]


def test_invalid_toml(codebook_text, tmp_path):
    line = codebook_text.splitlines().index("[design]") + 1
    book = write_codebook(codebook_text, tmp_path, "[design]", "[design")
    exc = codebook_failure(book)
    assert len(exc.problems) == 1
    p = exc.problems[0]
    assert p.file == str(book)
    assert "not valid TOML" in p.title and f"line {line}" in p.title
    assert p.expected == "a TOML codebook"


def test_missing_codebook(tmp_path):
    exc = failure(DATA, tmp_path / "nowhere.toml")
    assert len(exc.problems) == 1
    assert exc.problems[0].file == str(tmp_path / "nowhere.toml")
    assert "cannot read the codebook" in exc.problems[0].title


# --- files -----------------------------------------------------------------------------


def test_missing_data_file(tmp_path):
    exc = failure(tmp_path / "absent.csv")
    assert len(exc.problems) == 1
    assert exc.problems[0].file == str(tmp_path / "absent.csv")
    assert exc.problems[0].title == "file not found"


def test_unsupported_extension(raw, tmp_path):
    path = write_table(raw, tmp_path, "respondents.xlsx")  # exists, but is not readable
    exc = failure(path)
    assert len(exc.problems) == 1
    p = exc.problems[0]
    assert p.file == str(path)
    assert "unsupported file type '.xlsx'" in p.title
    for suffix in (".csv", ".parquet", ".sav", ".dta"):
        assert suffix in (p.expected or "")


def test_a_corrupt_file_is_reported_not_raised(tmp_path):
    path = tmp_path / "respondents.parquet"
    path.write_text("this is not parquet\n")
    exc = failure(path)
    assert len(exc.problems) == 1
    assert exc.problems[0].file == str(path)
    assert "cannot read the file as .parquet" in exc.problems[0].title


def test_a_table_without_respondents_is_rejected(raw, tmp_path):
    path = write_table(raw.iloc[:0], tmp_path)
    exc = failure(path)
    assert exc.problems[0].file == str(path)


# --- everything at once ----------------------------------------------------------------


@pytest.fixture
def many_problems(raw, book, tmp_path) -> tuple[Path, set[tuple[str, str]]]:
    """One file with nine different problems in ten rows; also the (title, column) of each."""
    citizen = rows_where(raw, raw["population"] == "citizen", 10)
    asked = next(i for i in book.items if "citizen" in i.asked)
    not_asked = item_not_asked_of(book, "citizen")
    donor = rows_where(raw, raw["stratum"] != raw.loc[citizen[9], "stratum"], 1)[0]
    cells: dict[tuple[int, str], str | None] = {
        (citizen[0], "department"): "975",
        (citizen[1], "population"): "citizens",
        (citizen[2], asked.column): "9",
        (citizen[3], "weight"): "-1",
        (citizen[4], "weight"): None,
        (citizen[5], "weight"): "abc",
        (citizen[6], "respondent_id"): raw.loc[citizen[7], "respondent_id"],
        (citizen[8], not_asked.column): "3",
        (citizen[9], "psu"): raw.loc[donor, "psu"],
    }
    kinds = {
        ("unknown department code", "department"),
        ("unknown population", "population"),
        ("answer outside the item's scale", asked.column),
        ("zero or negative weights", "weight"),
        ("missing weights", "weight"),
        ("non-numeric weights", "weight"),
        ("duplicate respondent ids", "respondent_id"),
        ("answers from a population the item was not asked of", not_asked.column),
        ("PSU nested in two or more strata", "psu"),
    }
    return edited(raw, tmp_path, cells), kinds


def test_every_problem_in_a_file_is_reported_at_once(many_problems):
    path, kinds = many_problems
    exc = failure(path)
    assert len(exc.problems) >= len(kinds) == 9
    assert {(p.title, p.column) for p in exc.problems} == kinds
    for p in exc.problems:  # each names the file, column, rows and values, and what was expected
        assert p.file == str(path)
        assert p.column and p.rows and p.values and p.expected, p
    text = str(exc)
    assert text.startswith(f"{len(exc.problems)} problems found in the input:")
    for p in exc.problems:
        assert p.render() in text


def test_every_codebook_problem_is_reported_at_once(codebook_text, book, tmp_path):
    first = book.items[0].column
    text = write_codebook(codebook_text, tmp_path, 'weight = "weight"',
                          'wieght = "weight"').read_text(encoding="utf-8")
    text, _ = edit_first_item(text, "impact", 'impact = "perfomance"')
    text, _ = edit_first_item(text, "scale", 'scale = "no_such_scale"')
    path = write_codebook(text, tmp_path, "[poststratification]", "[poststratificaton]")
    exc = codebook_failure(path)
    assert len(exc.problems) >= 4
    assert {(p.title, p.column) for p in exc.problems} >= {
        ("unknown key", "design.wieght"),
        ("unknown impact", f"items.{first}.impact"),
        ("unknown scale", f"items.{first}.scale"),
        ("unknown key", "poststratificaton"),
    }
    assert all(p.file == str(path) for p in exc.problems)


# --- command line ----------------------------------------------------------------------


def test_cli_reports_every_problem_and_exits_2(many_problems):
    path, kinds = many_problems
    result, output = run_cli("validate", path, "--codebook", CODEBOOK)
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in output
    assert output.startswith("error: 9 problems found in the input:")
    for title, column in kinds:
        assert f"{path}, column '{column}': {title}" in output
    assert "got: '975'" in output and "got: 'citizens'" in output


def test_cli_accepts_valid_data(raw):
    result, output = run_cli("validate", DATA, "--codebook", CODEBOOK)
    assert result.exit_code == 0, output
    assert result.exception is None
    assert flat(output).startswith(f"valid: {DATA}: {len(raw)} respondents")


@pytest.mark.parametrize("case", ["missing data", "unsupported", "invalid toml",
                                  "missing codebook"])
def test_cli_exits_2_on_unreadable_input(case, codebook_text, tmp_path):
    data, book, needle = DATA, CODEBOOK, ""
    if case == "missing data":
        data, needle = tmp_path / "absent.csv", "file not found"
    elif case == "unsupported":
        data, needle = tmp_path / "respondents.xlsx", "unsupported file type '.xlsx'"
    elif case == "invalid toml":
        book, needle = write_codebook(codebook_text, tmp_path, "[design]", "[design"), \
            "not valid TOML"
    else:
        book, needle = tmp_path / "absent.toml", "cannot read the codebook"
    result, output = run_cli("validate", data, "--codebook", book)
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert needle in output


def test_cli_default_codebook_is_next_to_the_data(raw, tmp_path):
    path = write_table(raw, tmp_path)  # no codebook.toml in tmp_path
    result, output = run_cli("validate", path)
    assert result.exit_code == 2
    assert f"{tmp_path / 'codebook.toml'}: cannot read the codebook" in output


def test_console_script_prints_no_traceback(many_problems):
    path, _ = many_problems
    script = Path(sys.executable).with_name("impactmodel")
    if not script.is_file():
        pytest.skip("the impactmodel console script is not installed next to this Python")
    done = subprocess.run([str(script), "validate", str(path), "--codebook",
                           str(CODEBOOK)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    assert "unknown population" in done.stderr and "duplicate respondent ids" in done.stderr


def test_cli_prints_bracketed_text_verbatim(raw, tmp_path):
    path = edited(raw, tmp_path, {(0, "population"): "citizens"})
    result, output = run_cli("validate", path, "--codebook", CODEBOOK)
    assert result.exit_code == 2
    assert "map other codes with [survey.population_codes] in the codebook" in output


def test_cli_survives_markup_like_values(raw, tmp_path):
    path = edited(raw, tmp_path, {(0, "population"): "[/citizen]"})
    result, output = run_cli("validate", path, "--codebook", CODEBOOK)
    assert result.exit_code == 2
    assert "'[/citizen]'" in output
