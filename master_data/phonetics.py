"""A French phonetic key: names that sound alike in French get the same key.

English keys (Soundex, Metaphone) miss what French spelling does: "Thibault"/"Thibaut"/"Tibo",
"Philippe"/"Filip", "Grégoire"/"Grégoir", "Meunier"/"Munier", silent final consonants, nasal vowels
(AN/EN/AM/EM, IN/AIN/EIN/UN, ON/OM). The rules below follow the published Soundex2-FR and Phonex
ideas (groups rewritten to one sound, silent letters dropped, doubled sounds collapsed), kept small
and documented here rather than pulled from an unmaintained library. The key is a comparison level
and a blocking key, never a replacement for the name.
"""

from __future__ import annotations

import re
from functools import lru_cache

from master_data.normalise import name_tokens

# Ordered rewrites; each (pattern, replacement) applies to the whole word. Digits stand for nasal
# vowels so that "AN" and "EN" collapse together but not with "A" + "N" spellings like "ANNE".
_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"^MAC", "MAK"),
        (r"AULT$|AUD$|AUT$", "O"),
        (r"PH", "F"),
        (r"BV", "V"),
        (r"CHR", "KR"),
        (r"SCH", "CH"),
        (r"SH", "CH"),
        (r"CH", "9"),  # "ch" as in chat
        (r"GU([EIY])", r"K\1"),
        (r"QU", "K"),
        (r"Q", "K"),
        (r"C([EIY])", r"S\1"),
        (r"CK|CC|C", "K"),
        (r"G([EIY])", r"J\1"),
        (r"GU", "K"),
        (r"G", "K"),
        (r"TH", "T"),
        (r"H", ""),
        (r"W", "V"),
        (r"Y", "I"),
        (r"Z", "S"),
        (r"EAU|AU", "O"),
        (r"OU", "U"),
        (r"EU|OE", "E"),
        (r"EA", "A"),
        (r"(AI|EI)(?=[^NM]|$)", "E"),
        (r"(AIN|EIN|IN|UN|IM|YN)(?=[^AEIOUNM]|$)", "1"),
        (r"(AN|AM|EN|EM)(?=[^AEIOUNM]|$)", "2"),
        (r"(ON|OM)(?=[^AEIOUNM]|$)", "3"),
        (r"(ER|EZ|ET|ES|ED)$", "E"),
        (r"X$", ""),
        (r"(?<=.)[STDX]$", ""),
        (r"(?<=.)E$", ""),
        (r"(.)\1+", r"\1"),
    )
)


@lru_cache(maxsize=1 << 18)
def phonetic_word(word: str) -> str:
    """The French phonetic key of one folded word (A-Z only)."""
    key = word
    for pattern, replacement in _RULES:
        key = pattern.sub(replacement, key)
    return key


@lru_cache(maxsize=1 << 18)
def phonetic(text: str) -> str:
    """The French phonetic key of a name, each word keyed then glued: "Thibault" == "Tibo"."""
    return "".join(phonetic_word(token) for token in name_tokens(text))
