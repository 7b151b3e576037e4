import base64
import os

import pytest
from shequtong_identity.domain.households import normalize_address
from shequtong_identity.domain.people import (
    PiiProtector,
    display_name,
    mask_phone,
    normalize_phone,
    normalize_real_name,
    validate_password,
)

from shequtong_kit.errors import InvalidArgument


def test_phone_is_normalised_and_masked() -> None:
    assert normalize_phone("+86 138-1234-5678") == "13812345678"
    assert mask_phone("13812345678") == "138****5678"
    with pytest.raises(InvalidArgument):
        normalize_phone("12812345678")
    with pytest.raises(InvalidArgument):
        normalize_phone("1381234567")


@pytest.mark.parametrize(
    ("name", "shown"), [("张三", "张*"), ("王小明", "王**"), ("欧阳娜娜", "欧阳**"), ("欧阳", "欧*")]
)
def test_display_name_masks_the_given_name(name: str, shown: str) -> None:
    assert display_name(name) == shown


def test_real_name_rules() -> None:
    assert normalize_real_name("  李  四 ") == "李 四"
    with pytest.raises(InvalidArgument):
        normalize_real_name("")
    with pytest.raises(InvalidArgument):
        normalize_real_name("Robert'); DROP TABLE--")


def test_password_length() -> None:
    validate_password("12345678")
    with pytest.raises(InvalidArgument) as err:
        validate_password("1234567")
    assert err.value.code == "password_too_short"


def test_id_numbers_are_hmacked_and_encrypted_never_kept_clear() -> None:
    key = base64.urlsafe_b64encode(os.urandom(32)).decode()
    pii = PiiProtector("k" * 32, key)
    number = "11010519491231002X"
    assert pii.id_hmac(number) == pii.id_hmac(number)
    assert pii.id_hmac(number) != PiiProtector("j" * 32, key).id_hmac(number)
    blob = pii.encrypt(number)
    assert number.encode() not in blob
    assert pii.encrypt(number) != blob  # fresh nonce every time
    assert pii.decrypt(blob) == number
    assert "k" * 32 not in repr(pii)


def test_encryption_key_must_be_32_bytes() -> None:
    with pytest.raises(ValueError):
        PiiProtector("k" * 32, base64.urlsafe_b64encode(os.urandom(16)).decode())


def test_addresses_urban_or_rural_with_a_stable_key() -> None:
    a = normalize_address(building="12号楼", unit="2", room="301")
    b = normalize_address(building=" 12号楼 ", unit="2", room="３０１")  # full-width digits
    assert a.key == b.key
    village = normalize_address(village_group="3组", house_number="18号")
    assert village.key != a.key
    for bad in (
        {"building": "1"},
        {"village_group": "3组"},
        {"building": "1", "room": "2", "village_group": "3"},
        {},
    ):
        with pytest.raises(InvalidArgument):
            normalize_address(**bad)
