import pytest
from shequtong_identity.domain.idnumber import check_digit, normalize_id_number

from shequtong_kit.errors import InvalidArgument

# The standard's own worked example and a number ending in X.
VALID = ["11010519491231002X", "440524198001010013", "310113199003074517"]


@pytest.mark.parametrize("number", VALID)
def test_valid_numbers_pass(number: str) -> None:
    assert normalize_id_number(number) == number


def test_lower_case_x_and_spaces_are_normalised() -> None:
    assert normalize_id_number(" 11010519491231002x ") == "11010519491231002X"


def test_check_digit_of_the_standard_example() -> None:
    assert check_digit("11010519491231002") == "X"
    assert check_digit("44052419800101001") == "3"


@pytest.mark.parametrize("number", ["110105194912310021", "440524198001010014", "310113199003074518"])
def test_wrong_check_digit_is_refused(number: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        normalize_id_number(number)
    assert err.value.code == "id_number_check_digit"


@pytest.mark.parametrize(
    "number",
    ["", "11010519491231002", "11010519491231002XX", "1101051949123100AX", "110105194902300021", "010105194912310021"],
)
def test_malformed_numbers_are_refused(number: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        normalize_id_number(number)
    assert err.value.code == "id_number_invalid"


def test_errors_never_echo_the_number() -> None:
    with pytest.raises(InvalidArgument) as err:
        normalize_id_number("110105194912310021")
    assert "110105194912310021" not in str(err.value)
