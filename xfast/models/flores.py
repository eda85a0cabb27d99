"""FLORES-200 language codes for NLLB-200 (docs/translation.md).

:func:`flores_code` maps an ISO 639-1/639-3 code (``de``, ``swa``) or a FLORES-200 code
(``deu_Latn``) to the FLORES-200 code NLLB expects; languages NLLB-200 lacks (``bbj``,
``pcm``) raise :class:`~xfast.errors.ParameterError` [E402].
"""

from __future__ import annotations

from xfast.errors import ParameterError, msg

__all__ = ["FLORES200", "flores_code", "is_supported"]

# The 202 language codes of NLLB-200, in the order of its vocabulary.
FLORES200: tuple[str, ...] = tuple(
    """
    ace_Arab ace_Latn acm_Arab acq_Arab aeb_Arab afr_Latn ajp_Arab aka_Latn amh_Ethi
    apc_Arab arb_Arab ars_Arab ary_Arab arz_Arab asm_Beng ast_Latn awa_Deva ayr_Latn
    azb_Arab azj_Latn bak_Cyrl bam_Latn ban_Latn bel_Cyrl bem_Latn ben_Beng bho_Deva
    bjn_Arab bjn_Latn bod_Tibt bos_Latn bug_Latn bul_Cyrl cat_Latn ceb_Latn ces_Latn
    cjk_Latn ckb_Arab crh_Latn cym_Latn dan_Latn deu_Latn dik_Latn dyu_Latn dzo_Tibt
    ell_Grek eng_Latn epo_Latn est_Latn eus_Latn ewe_Latn fao_Latn pes_Arab fij_Latn
    fin_Latn fon_Latn fra_Latn fur_Latn fuv_Latn gla_Latn gle_Latn glg_Latn grn_Latn
    guj_Gujr hat_Latn hau_Latn heb_Hebr hin_Deva hne_Deva hrv_Latn hun_Latn hye_Armn
    ibo_Latn ilo_Latn ind_Latn isl_Latn ita_Latn jav_Latn jpn_Jpan kab_Latn kac_Latn
    kam_Latn kan_Knda kas_Arab kas_Deva kat_Geor knc_Arab knc_Latn kaz_Cyrl kbp_Latn
    kea_Latn khm_Khmr kik_Latn kin_Latn kir_Cyrl kmb_Latn kon_Latn kor_Hang kmr_Latn
    lao_Laoo lvs_Latn lij_Latn lim_Latn lin_Latn lit_Latn lmo_Latn ltg_Latn ltz_Latn
    lua_Latn lug_Latn luo_Latn lus_Latn mag_Deva mai_Deva mal_Mlym mar_Deva min_Latn
    mkd_Cyrl plt_Latn mlt_Latn mni_Beng khk_Cyrl mos_Latn mri_Latn zsm_Latn mya_Mymr
    nld_Latn nno_Latn nob_Latn npi_Deva nso_Latn nus_Latn nya_Latn oci_Latn gaz_Latn
    ory_Orya pag_Latn pan_Guru pap_Latn pol_Latn por_Latn prs_Arab pbt_Arab quy_Latn
    ron_Latn run_Latn rus_Cyrl sag_Latn san_Deva sat_Beng scn_Latn shn_Mymr sin_Sinh
    slk_Latn slv_Latn smo_Latn sna_Latn snd_Arab som_Latn sot_Latn spa_Latn als_Latn
    srd_Latn srp_Cyrl ssw_Latn sun_Latn swe_Latn swh_Latn szl_Latn tam_Taml tat_Cyrl
    tel_Telu tgk_Cyrl tgl_Latn tha_Thai tir_Ethi taq_Latn taq_Tfng tpi_Latn tsn_Latn
    tso_Latn tuk_Latn tum_Latn tur_Latn twi_Latn tzm_Tfng uig_Arab ukr_Cyrl umb_Latn
    urd_Arab uzn_Latn vec_Latn vie_Latn war_Latn wol_Latn xho_Latn ydd_Hebr yor_Latn
    yue_Hant zho_Hans zho_Hant zul_Latn
    """.split()
)

_CODES = frozenset(FLORES200)

# ISO 639-1 -> ISO 639-3 (macro-language codes resolved to the FLORES member NLLB uses).
_ISO1 = {
    "af": "afr", "am": "amh", "ar": "arb", "az": "azj", "be": "bel", "bg": "bul", "bm": "bam",
    "bn": "ben", "bo": "bod", "bs": "bos", "ca": "cat", "cs": "ces", "cy": "cym", "da": "dan",
    "de": "deu", "ee": "ewe", "el": "ell", "en": "eng", "eo": "epo", "es": "spa", "et": "est",
    "eu": "eus", "fa": "pes", "fi": "fin", "fj": "fij", "fo": "fao", "fr": "fra", "ga": "gle",
    "gd": "gla", "gl": "glg", "gn": "grn", "gu": "guj", "ha": "hau", "he": "heb", "hi": "hin",
    "hr": "hrv", "ht": "hat", "hu": "hun", "hy": "hye", "id": "ind", "ig": "ibo", "is": "isl",
    "it": "ita", "ja": "jpn", "jv": "jav", "ka": "kat", "kg": "kon", "ki": "kik", "kk": "kaz",
    "km": "khm", "kn": "kan", "ko": "kor", "ky": "kir", "lb": "ltz", "lg": "lug", "li": "lim",
    "ln": "lin", "lo": "lao", "lt": "lit", "lv": "lvs", "mg": "plt", "mi": "mri", "mk": "mkd",
    "ml": "mal", "mn": "khk", "mr": "mar", "ms": "zsm", "mt": "mlt", "my": "mya", "nb": "nob",
    "ne": "npi", "nl": "nld", "nn": "nno", "no": "nob", "ny": "nya", "oc": "oci", "om": "gaz",
    "or": "ory", "pa": "pan", "pl": "pol", "ps": "pbt", "pt": "por", "qu": "quy", "rn": "run",
    "ro": "ron", "ru": "rus", "rw": "kin", "sa": "san", "sc": "srd", "sd": "snd", "sg": "sag",
    "si": "sin", "sk": "slk", "sl": "slv", "sm": "smo", "sn": "sna", "so": "som", "sq": "als",
    "sr": "srp", "ss": "ssw", "st": "sot", "su": "sun", "sv": "swe", "sw": "swh", "ta": "tam",
    "te": "tel", "tg": "tgk", "th": "tha", "ti": "tir", "tk": "tuk", "tl": "tgl", "tn": "tsn",
    "tr": "tur", "ts": "tso", "tt": "tat", "tw": "twi", "ug": "uig", "uk": "ukr", "ur": "urd",
    "uz": "uzn", "vi": "vie", "wo": "wol", "xh": "xho", "yi": "ydd", "yo": "yor", "zh": "zho",
    "zu": "zul",
}

# ISO 639-3 codes whose FLORES member differs, or that have several scripts in FLORES-200.
_ISO3 = {"swa": "swh", "ara": "arb", "fas": "pes", "per": "pes", "msa": "zsm", "may": "zsm"}
_DEFAULT_SCRIPT = {"zho": "zho_Hans"}

# Languages known to be missing from NLLB-200 (docs/translation.md: MasakhaNER's bbj and pcm).
_MISSING = {
    "bbj": "Ghomálá' is not one of NLLB-200's languages",
    "pcm": "Nigerian Pidgin is not one of NLLB-200's languages",
}


def _resolve(lang: str) -> str | None:
    if lang in _CODES:
        return lang
    low = lang.strip().lower().replace("-", "_")
    for code in FLORES200:  # case-insensitive full code, e.g. "DEU_LATN"
        if code.lower() == low:
            return code
    iso = low.split("_", 1)[0]
    iso = _ISO1.get(iso, iso)
    iso = _ISO3.get(iso, iso)
    if iso in _DEFAULT_SCRIPT:
        return _DEFAULT_SCRIPT[iso]
    matches = [c for c in FLORES200 if c.split("_", 1)[0] == iso]
    if len(matches) == 1:
        return matches[0]
    latn = f"{iso}_Latn"
    return latn if latn in _CODES else None


def flores_code(lang: str) -> str:
    """FLORES-200 code of ``lang`` (``"de"`` -> ``"deu_Latn"``, ``"swa"`` -> ``"swh_Latn"``).

    Raises :class:`ParameterError` [E402] for a language NLLB-200 does not cover.
    """
    if not isinstance(lang, str) or not lang.strip():
        expected = "a language code such as 'de' or 'deu_Latn'"
        raise ParameterError(msg("E202", name="lang", expected=expected, value=lang))
    key = lang.strip().lower()
    if key in _MISSING:
        raise ParameterError(msg("E402", lang=lang, hint=_MISSING[key] + "; the translation pipelines cannot run for it"))
    code = _resolve(lang)
    if code is None:
        raise ParameterError(
            msg("E402", lang=lang, hint="give an ISO 639 code or a FLORES-200 code such as 'deu_Latn'")
        )
    return code


def is_supported(lang: str) -> bool:
    """Whether :func:`flores_code` maps ``lang`` to an NLLB-200 language."""
    try:
        flores_code(lang)
    except ParameterError:
        return False
    return True


def partition(langs: list[str]) -> tuple[dict[str, str], dict[str, str]]:
    """``({lang: FLORES-200 code}, {lang: why not})`` for the languages NLLB-200 covers and
    the ones it does not, in the given order."""
    ok, skipped = {}, {}
    for lang in langs:
        try:
            ok[lang] = flores_code(lang)
        except ParameterError as err:
            skipped[lang] = str(err)
    return ok, skipped


def is_known(lang: str) -> bool:
    """Whether ``lang`` is a language code xfast knows (NLLB-200's, or one it lists as missing)."""
    return isinstance(lang, str) and (is_supported(lang) or lang.strip().lower() in _MISSING)
