"""FLORES-200 codes for NLLB (SPEC §8): the exception table, MasakhaNER codes, unsupported languages."""

import pytest

from xfast.errors import ParameterError
from xfast.models.flores import FLORES200, flores_code, is_supported

# SPEC §8, written out by hand (not derived from xfast's tables)
SPEC_EXCEPTIONS = {
    "ar": "arb_Arab", "fa": "pes_Arab", "ms": "zsm_Latn", "sw": "swh_Latn", "swa": "swh_Latn",
    "zh": "zho_Hans", "ja": "jpn_Jpan", "ko": "kor_Hang", "th": "tha_Thai", "my": "mya_Mymr",
    "he": "heb_Hebr", "el": "ell_Grek", "ka": "kat_Geor", "ru": "rus_Cyrl", "bg": "bul_Cyrl",
    "kk": "kaz_Cyrl", "hi": "hin_Deva", "mr": "mar_Deva", "bn": "ben_Beng", "ta": "tam_Taml",
    "te": "tel_Telu", "ml": "mal_Mlym", "ur": "urd_Arab",
}
LATIN = {
    "af": "afr", "de": "deu", "en": "eng", "es": "spa", "et": "est", "eu": "eus", "fi": "fin",
    "fr": "fra", "hu": "hun", "id": "ind", "it": "ita", "jv": "jav", "nl": "nld", "pt": "por",
    "tl": "tgl", "tr": "tur", "vi": "vie", "yo": "yor",
}
MASAKHANER = "bam ewe fon hau ibo kin lug luo mos nya sna tsn twi wol xho yor zul".split()


def test_table_has_nllb_codes():
    assert len(FLORES200) == 202 == len(set(FLORES200))
    assert all(len(c.split("_")) == 2 and len(c.split("_")[1]) == 4 for c in FLORES200)
    assert {"eng_Latn", "deu_Latn", "swh_Latn", "zho_Hant", "pes_Arab"} <= set(FLORES200)


@pytest.mark.parametrize("lang,code", sorted(SPEC_EXCEPTIONS.items()))
def test_spec_exceptions(lang, code):
    assert flores_code(lang) == code


@pytest.mark.parametrize("lang,iso3", sorted(LATIN.items()))
def test_latin_languages(lang, iso3):
    assert flores_code(lang) == f"{iso3}_Latn"


@pytest.mark.parametrize("lang", MASAKHANER)
def test_masakhaner_languages(lang):
    assert flores_code(lang) == f"{lang}_Latn"


def test_full_codes_pass_through():
    for code in FLORES200:
        assert flores_code(code) == code
    assert flores_code("DEU_LATN") == "deu_Latn"
    assert flores_code(" de ") == "deu_Latn"


@pytest.mark.parametrize("lang", ["bbj", "pcm", "BBJ"])
def test_missing_from_nllb(lang):
    with pytest.raises(ParameterError, match=r"\[E402\].*not supported by NLLB-200"):
        flores_code(lang)
    assert not is_supported(lang)


@pytest.mark.parametrize("lang", ["xx", "klingon", "abc_Latn"])
def test_unknown(lang):
    with pytest.raises(ParameterError, match=r"\[E402\]"):
        flores_code(lang)


@pytest.mark.parametrize("lang", ["", "  ", None, 3])
def test_invalid_type(lang):
    with pytest.raises(ParameterError, match=r"\[E202\]"):
        flores_code(lang)
